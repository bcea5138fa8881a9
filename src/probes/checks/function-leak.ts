import { functionEffects, type EffectVerdict } from '../../analysis/effects.js';
import { alterDefaultPrivileges, alterFunction, comment, fix, or, revoke, type Fix, type FixAlternative, type FixStep } from '../../findings/fix.js';
import { loadRoutineIndex } from '../../analysis/routine-index.js';
import { loadParser } from '../../analysis/parse.js';
import type { FunctionInfo } from '../../catalog/types.js';
import { currentTenantExpression } from '../../findings/fixes.js';
import type { Finding } from '../../findings/finding.js';
import { PRESETS } from '../../presets/index.js';
import type { Tenant } from '../../seed/ledger.js';
import { commentText, ident, inlineParameters } from '../../target/sql.js';
import { actorOf, contextLabel, describeContext, reproduction, runAs } from '../context.js';
import { chainEvidence, chainTargets, describeOpened, opened, runChain } from '../chains.js';
import type { FindingInput } from '../../findings/finding.js';
import { describeForeign, tallyRows, type RowTally } from '../foreign-rows.js';
import { plural } from '../../report/text.js';
import { defineProbe, type ProbeContext } from '../types.js';
import { argumentsFor, callStatement, keyed, returnedRelation, type Variant } from '../function-arguments.js';
import { CALL_TIMEOUT, changeCountSql, changedOf, countedCall, REFUSED } from '../function-census.js';

interface Call {
  variant: Variant;
  statement: string;
  params: (string | null)[];
  /** The tenant whose ids the arguments carry (the caller, or for `foreign` another tenant). */
  argumentTenant: Tenant;
}

function fixFor(context: ProbeContext, fn: FunctionInfo, variant: Variant): Fix {
  const role = ident(context.plan.role);
  const signature = fn.signature;
  const steps: FixStep[] = [];
  const alternatives: FixAlternative[] = [];
  if (variant === 'foreign') {
    steps.push(comment(`${commentText(signature)} returns the rows of whatever tenant its arguments name: filter by the tenant of the transaction instead,`));
    steps.push(comment(`e.g. where tenant_id = ${commentText(currentTenantExpression(context.plan))}, and ignore (or drop) the tenant argument`));
  }
  if (fn.securityDefiner) {
    steps.push(comment("let the caller's policies apply:"), alterFunction(signature, 'security invoker'));
    alternatives.push(or(`, if it must stay SECURITY DEFINER, filter every table it reads by ${commentText(currentTenantExpression(context.plan))}`, []));
  } else {
    steps.push(comment(`${commentText(signature)} runs with the caller's rights: the relations it reads leak (see their read-isolation findings); fix their policies`));
  }
  alternatives.push(or(' stop exposing it:', [revoke('execute', `function ${signature}`, `public, ${role}`)]));
  return fix(steps, alternatives);
}

/** Why a function was not called; the terminal lists these. */
export const NOT_CALLED = 'not called on a live database (it may act outside the transaction)';

/**
 * On a database the audit does not own: which functions are provably free of effects outside the
 * transaction (analysis/effects.ts reads their bodies and everything they call).
 */
async function liveEffects(context: ProbeContext, functions: FunctionInfo[]): Promise<Map<number, EffectVerdict>> {
  await loadParser();
  return functionEffects(await loadRoutineIndex(context.session, context.catalog.serverVersionNum), functions);
}

export const functionLeak = defineProbe({
  order: 50,
  meta: {
    id: 'function-leak',
    matrix: 'outside',
    title: "A function returns other tenants' rows",
    severity: 'high',
    objectKind: 'function',
    summary: "A function the application role may call returns other tenants' rows.",
    example: `As tenant A, \`select * from "public"."search_messages"(''::text)\` returns 20 rows of tenant B: it is SECURITY DEFINER and runs with the rights of its owner.`,
    explanation:
      'Calls every function the application role may execute that returns something (rows, a composite, a set or a value) as each tenant, ' +
      "with neutral arguments (empty text, zero, the tenant's own ids, defaults where the function has them), with NULLs where it is not strict, " +
      "and with another tenant's keys in every argument that can hold one: by the column its body compares it with (the value that column holds " +
      "in a row of that tenant), else by its name (a tenant id, the key of one of its rows, its user's id); that last call, " +
      'SECURITY DEFINER or not, runs in a savepoint in which the administrator counts every tenant\'s rows before and after, and, for a ' +
      "signed-in user, the caller's memberships and what it reads afterwards. Every returned row or value is attributed through the tenant column, the " +
      "seeded keys and the canaries. A SECURITY DEFINER function runs with its owner's rights, so policies that do not apply to the owner do not " +
      'protect its result: a definer function must filter by the tenant of the transaction itself, or be SECURITY INVOKER. Each call runs in a ' +
      'savepoint that is rolled back, with a short statement timeout. Against a database that is not the run\'s own (a url target) a function ' +
      'is called only when its parsed body (and everything it calls) provably has no effect outside the transaction: no dynamic SQL, COPY, ' +
      'writes, sequences, advisory locks, notifications, signals to other sessions, dblink or untrusted languages; the rest are reported as ' +
      '"not called on a live database" (audit a copy with --schema-from to call them), and the calls that are made are read-only.',
    precondition:
      'High: the role may EXECUTE a function that returns something, and a call as one tenant returns rows or values the seed ledger ' +
      'attributes to another tenant (with neutral arguments, NULLs, or that tenant\'s ids); or a call with another tenant\'s keys ' +
      'changes that tenant\'s rows (counted by the administrator in the same rolled-back savepoint), or makes the calling user a ' +
      'member of that tenant or opens its rows. On a live database only functions proven free of outside effects are called; the ' +
      'others are not reported here (a SECURITY DEFINER one stays a medium definer-function finding, unproven).',
  },
  split: 'whole',
  related: [
    {
      id: 'anonymous-function-leak',
      title: 'A request without credentials reaches tenant rows through a function',
      severity: 'critical',
      objectKind: 'function',
      matrix: 'outside',
      summary: "A function the platform's anonymous role may call returns or changes tenant rows.",
      example: `Without credentials, as anon, \`select * from "public"."get_team_projects"('5b1f…'::uuid)\` returns 20 rows of tenant B: anon may EXECUTE public.get_team_projects(uuid), and it is SECURITY DEFINER, running with the rights of postgres.`,
      explanation:
        "With a preset (Supabase, PostgREST), a request without a JWT runs as the platform's anonymous role (Supabase `anon`, PostgREST's " +
        'db-anon-role). Every function that role may EXECUTE (Supabase grants EXECUTE on new functions to anon by default, and PostgreSQL to ' +
        "PUBLIC) is called as it, with no claims: with each tenant's keys in every argument that can hold one (tenant id, the key of a " +
        "tenant-owned row, a user id), with NULLs and with '%'. Any tenant row that comes back, or that the administrator sees changed in the " +
        'same rolled-back savepoint, is reachable by anyone on the internet. Fix: revoke EXECUTE from the anonymous role and PUBLIC (and ' +
        'from the default privileges), or make the function check the caller.',
      precondition:
        "Critical: with a preset that names an anonymous role, that role holds EXECUTE on the function (and USAGE on its schema), and a call as " +
        "it, with no credentials, returns rows the seed ledger attributes to a tenant or changes a tenant's rows (counted by the administrator " +
        'in the same rolled-back savepoint): a request without credentials reads or changes tenant rows through an RPC. Without a preset, or when ' +
        'the anonymous role may not EXECUTE it, nothing is reported. On a live database only functions proven free of outside effects are called.',
    },
  ],
  async run(context, report) {
    const findings: Finding[] = [];
    const platform = new Set(context.plan.preset ? PRESETS[context.plan.preset].platformSchemas : []);
    // Functions that return something are called for what they return; SECURITY DEFINER ones, even void, also
    // for what they change when called with another tenant's keys.
    // Functions that return something are called for what they return; the others (SECURITY DEFINER ones, and
    // on a cluster of the run's own every one) for what they change when called with another tenant's keys.
    const candidates = context.catalog.functions.filter((fn) => (fn.returnKind !== 'void' || fn.securityDefiner || context.disposable) && fn.returnKind !== 'trigger' && !platform.has(fn.schema));
    if (!candidates.length) return findings;
    // The application role, and the platform's anonymous role (a request without credentials), each where it may EXECUTE.
    const anonymousRole = context.plan.anonymousRole;
    const { rows } = await context.session.query(
      `select p.oid::text as oid,
         (has_function_privilege($1, p.oid, 'EXECUTE') and has_schema_privilege($1, p.pronamespace, 'USAGE'))::text as app,
         (case when $3::text is null then false else has_function_privilege($3::text, p.oid, 'EXECUTE') and has_schema_privilege($3::text, p.pronamespace, 'USAGE') end)::text as anonymous
       from pg_proc p where p.oid = any($2::oid[])`,
      [context.plan.role, candidates.map((fn) => fn.oid), anonymousRole],
    );
    const executable = new Set(rows.filter((row) => row.app === 'true').map((row) => Number(row.oid)));
    const anonymous = new Set(rows.filter((row) => row.anonymous === 'true').map((row) => Number(row.oid)));
    const callable = candidates.filter((candidate) => executable.has(candidate.oid) || anonymous.has(candidate.oid));
    const effects = context.disposable ? null : await liveEffects(context, callable);
    for (const fn of callable) {
      const effect = effects?.get(fn.oid);
      if (effect && !effect.free) {
        context.record({
          check: this.meta.id, relation: fn.signature, context: 'all tenants', tenant: null, sql: fn.signature, outcome: 'skipped', rows: 0, foreignRows: 0, missingOwnRows: 0,
          error: `${NOT_CALLED}: ${effect.reason}`,
        });
        // A function that was not called may leak: the run proves nothing about it.
        context.inconclusive({
          relation: fn.signature,
          reason: `function-leak did not call ${fn.signature} on this live database: ${effect.reason}`,
          hint: 'audit a copy with --schema-from URL, where every function is called',
        });
        continue;
      }
      if (anonymousRole && anonymous.has(fn.oid)) {
        const found = await anonymousCalls(context, fn, anonymousRole);
        if (found) findings.push(report(found));
      }
      if (!executable.has(fn.oid)) continue;
      // One function, one finding: a keyed call that proved it is the finding; the calls below still run and are recorded.
      const keyed = await keyedCalls(context, fn, this.meta.id);
      if (keyed) findings.push(report(keyed));
      const proven = keyed !== null;
      if (fn.returnKind === 'void') continue;
      const returned = returnedRelation(context, fn);
      const leaks: { tenant: Tenant; call: Call; tally: RowTally }[] = [];
      for (const [index, tenant] of context.tenants.entries()) {
        const other = context.tenants[(index + 1) % context.tenants.length]!;
        const calls: Call[] = [];
        for (const variant of ['neutral', 'wildcard', 'null', 'foreign'] as const) {
          if (variant === 'null' && (fn.strict || fn.argumentTypes.length - fn.defaultArguments === 0)) continue;
          const argumentTenant = variant === 'foreign' ? other : tenant;
          const args = argumentsFor(context, fn, variant, argumentTenant);
          if (!args || ((variant === 'foreign' || variant === 'wildcard') && !args.pointed)) continue;
          calls.push({ variant, statement: callStatement(context, fn, args.values.length), params: args.values, argumentTenant });
        }
        if (!calls.length) {
          context.record({ check: this.meta.id, relation: fn.signature, context: tenant.label, tenant: tenant.id, sql: fn.signature, outcome: 'skipped', rows: 0, foreignRows: 0, missingOwnRows: 0, error: 'no neutral value fits its arguments' });
          continue;
        }
        for (const call of calls) {
          const result = await runAs(context, { kind: 'tenant', tenant }, call.statement, call.params, {
            before: [
              `select set_config('statement_timeout', '${CALL_TIMEOUT}', true)`,
              // A database that is not ours: a function that writes could advance a sequence, which no
              // rollback undoes. Read-only for the call (reverted with the savepoint) makes such a call fail instead.
              ...(context.disposable ? [] : ['set local transaction_read_only = on']),
            ],
          });
          const sql = inlineParameters(call.statement, call.params);
          if (result.error) {
            const readOnly = result.error.code === '25006';
            context.record({
              check: this.meta.id, relation: fn.signature, context: tenant.label, tenant: tenant.id, sql, outcome: readOnly ? 'skipped' : 'error', rows: 0, foreignRows: 0, missingOwnRows: 0,
              error: readOnly ? `the function writes, and the target is not disposable: not called read-write (${result.error.message})` : result.error.message,
            });
            continue;
          }
          const tally = tallyRows(context, tenant, result.rows, fn.returnKind === 'composite' ? { relation: returned } : { canaryOnly: true });
          // Only rows that all trace back to the caller prove the function safe; nothing returned, or rows
          // that cannot be attributed (counts, aggregates), prove nothing either way.
          const outcome = tally.foreignRows ? 'leak' : tally.rows > 0 && tally.own === tally.rows ? 'pass' : 'inconclusive';
          context.record({ check: this.meta.id, relation: fn.signature, context: tenant.label, tenant: tenant.id, sql, outcome, rows: tally.rows, foreignRows: tally.foreignRows, missingOwnRows: 0 });
          if (tally.foreignRows) leaks.push({ tenant, call, tally });
        }
      }
      if (!leaks.length || proven) continue;
      // Prefer the plainest proof: neutral arguments over NULLs over another tenant's ids.
      const order: Variant[] = ['neutral', 'wildcard', 'null', 'foreign'];
      leaks.sort((a, b) => order.indexOf(a.call.variant) - order.indexOf(b.call.variant));
      const first = leaks[0]!;
      const [foreignTenant] = [...first.tally.foreign.keys()];
      const shown = inlineParameters(first.call.statement, first.call.params).replace(/ limit \d+$/, '');
      const how =
        first.call.variant === 'foreign'
          ? `it returns the rows of the tenant its arguments name (${first.call.argumentTenant.label}'s ids), whatever the tenant of the transaction`
          : fn.securityDefiner
            ? `it is SECURITY DEFINER and runs with the rights of its owner ${fn.owner}, to whom the tenant policies do not apply`
            : 'it runs with the caller\'s rights, so the relations it reads let other tenants\' rows through';
      findings.push(report({
        severity: 'high',
        object: fn.signature,
        tenant: first.tenant.id,
        foreignTenant,
        message: `As ${first.tenant.label}, ${shown} returns ${describeForeign(context, first.tally.foreign)}: ${how}.`,
        evidence: {
          sql: reproduction(context, { kind: 'tenant', tenant: first.tenant }, shown),
          context: describeContext(context, { kind: 'tenant', tenant: first.tenant }),
          rowCount: first.tally.rows,
          sampleRows: first.tally.samples,
          details: `${plural(leaks.length, 'call')} returned other tenants' rows: ${leaks
            .slice(0, 6)
            .map((leak) => `${leak.tenant.label}, ${leak.call.variant} arguments: ${describeForeign(context, leak.tally.foreign)}`)
            .join('; ')}${fn.securityDefiner ? `; ${fn.signature} is SECURITY DEFINER, owned by ${fn.owner}` : ''}`,
        },
        fix: fixFor(context, fn, first.call.variant),
      }));
    }
    return findings;
  },
});

/**
 * A function judged by calls (SECURITY DEFINER or not): as one tenant's actor, with another tenant's keys in every
 * argument that can hold one (its tenant id, the key of one of its rows from the seed ledger, the id of its user; a
 * plain word in other text, neutral values elsewhere), in a rolled-back savepoint in which the administrator counts every
 * tenant's rows before and after. What comes back is attributed (tenant column, seeded keys, canaries); what
 * changed is compared per tenant. Rows of the caller's own tenant (or of a tenant the call creates) are not a
 * leak. Each call is recorded with `keysOf`: reconcile lowers the definer-function finding to info when every
 * such call ran and touched nothing of the other tenant, and keeps it (unproven) when none could be made.
 */
async function keyedCalls(context: ProbeContext, fn: FunctionInfo, check: string): Promise<FindingInput | null> {
  const { plan } = context;
  const [first, second] = context.tenants;
  if (!first || !second) return null;
  const measure = changeCountSql(context);
  const returned = returnedRelation(context, fn);
  for (const [tenant, keysOf] of [[first, second], [second, first]] as const) {
    const label = `${tenant.label} with ${keysOf.label}'s keys`;
    const args = argumentsFor(context, fn, 'keys', keysOf);
    if (!args) {
      context.record({ check, relation: fn.signature, context: label, tenant: tenant.id, sql: fn.signature, outcome: 'skipped', rows: 0, foreignRows: 0, missingOwnRows: 0, keysOf: keysOf.id, error: 'no value fits its arguments' });
      continue;
    }
    const statement = callStatement(context, fn, args.values.length);
    const sql = inlineParameters(statement, args.values);
    const run = await countedCall(context, plan.role, actorOf(context, tenant), measure, statement, args.values);
    if (run.error) {
      const refused = run.error.code !== undefined && REFUSED.has(run.error.code);
      const readOnly = run.error.code === '25006';
      context.record({
        check, relation: fn.signature, context: refused ? `${label} (refused: ${run.error.message})` : label, tenant: tenant.id, sql, keysOf: keysOf.id,
        outcome: refused ? 'pass' : readOnly ? 'skipped' : 'error', rows: 0, foreignRows: 0, missingOwnRows: 0,
        ...(refused ? {} : { error: readOnly ? `the function writes, and the target is not disposable: not called read-write (${run.error.message})` : run.error.message }),
      });
      continue;
    }
    const tally = tallyRows(context, tenant, run.rows, fn.returnKind === 'composite' ? { relation: returned } : { canaryOnly: true });
    const foreignReturned = tally.foreign.get(keysOf.id) ?? 0;
    const changed = changedOf(run.before, run.after, keysOf);
    const leak = foreignReturned > 0 || changed.size > 0;
    context.record({ check, relation: fn.signature, context: label, tenant: tenant.id, sql, keysOf: keysOf.id, outcome: leak ? 'leak' : 'pass', rows: tally.rows, foreignRows: foreignReturned + changed.size, missingOwnRows: 0 });
    if (!leak) continue;
    const what = [
      ...(foreignReturned ? [`returns ${describeForeign(context, new Map([[keysOf.id, foreignReturned]]))}`] : []),
      ...(changed.size ? [`changes rows of ${keysOf.label} (${[...changed].map(([relation, change]) => `${relation}: ${change}`).join('; ')})`] : []),
    ].join(' and ');
    const shown = sql.replace(/ limit \d+$/, '');
    // A user who called it: did it make the caller a member of the other tenant, and what does the caller read
    // now? The same call again, followed by a read of every tenant-owned relation in the same savepoint.
    const actor = actorOf(context, tenant);
    const chain = actor.user !== null && plan.actors.membership
      ? await runChain(context, actor, { statement, params: args.values }, chainTargets(context), { prelude: [`select set_config('statement_timeout', '${CALL_TIMEOUT}', true)`] })
      : null;
    const joined = chain && !chain.error && chain.membershipsAfter.has(keysOf.id) && !chain.membershipsBefore.has(keysOf.id);
    const found = chain && !chain.error ? opened(chain) : [];
    if (joined || found.length) {
      return {
        severity: 'high',
        object: fn.signature,
        tenant: tenant.id,
        foreignTenant: keysOf.id,
        message: `As ${actor.label}, ${shown} with ${keysOf.label}'s keys ${what}${joined ? `: the caller is now a member of ${keysOf.label}` : ''}${found.length ? `; then ${describeOpened(context, found)}` : ''}: the ${fn.securityDefiner ? `SECURITY DEFINER function acts with the rights of ${fn.owner}` : 'function acts'} on whatever keys it is given, without checking that they belong to the caller.`,
        evidence: {
          sql: chainEvidence(context, actor, { statement, params: args.values }, found, chainTargets(context)),
          context: describeContext(context, { kind: 'actor', actor }),
          rowCount: tally.rows,
          sampleRows: found.find((entry) => entry.foreign.size)?.samples ?? tally.samples,
          details: `called as ${tenant.label} with ${keysOf.label}'s keys${keyed(args.keys)}; the administrator counted every tenant's rows before and after, in the same rolled-back savepoint; memberships of the caller before: ${[...chain!.membershipsBefore].map((id) => context.ledger.tenant(id)?.label ?? id).join(', ') || 'none'}, after: ${[...chain!.membershipsAfter].map((id) => context.ledger.tenant(id)?.label ?? id).join(', ') || 'none'}${found.length ? `; after the call ${describeOpened(context, found)}` : ''}`,
        },
        fix: fixFor(context, fn, 'foreign'),
      };
    }
    return {
      severity: 'high',
      object: fn.signature,
      tenant: tenant.id,
      foreignTenant: keysOf.id,
      message: `As ${tenant.label}, ${shown} with ${keysOf.label}'s keys ${what}: the ${fn.securityDefiner ? `SECURITY DEFINER function acts with the rights of ${fn.owner}` : 'function acts, with the rights of the caller,'} on whatever keys it is given, without checking that they belong to the caller.`,
      evidence: {
        sql: reproduction(context, { kind: 'tenant', tenant }, shown),
        context: describeContext(context, { kind: 'tenant', tenant }),
        rowCount: tally.rows,
        sampleRows: tally.samples,
        details: `called as ${tenant.label} with ${keysOf.label}'s keys${keyed(args.keys)}; the administrator counted every tenant's rows before and after, in the same rolled-back savepoint`,
      },
      fix: fixFor(context, fn, 'foreign'),
    };
  }
  return null;
}

/** Whom the anonymous role's calls are attributed for: no tenant, so every tenant's row that comes back is foreign to it. */
const NOBODY: Tenant = { id: '\u0000anonymous', label: 'the anonymous role', canary: '\u0000' };

/**
 * A function the platform's anonymous role may EXECUTE, called as that role with no credentials (no claims, no
 * context): with each tenant's keys in every argument that can hold one, with NULLs (where it is not strict) and
 * with '%' in its text arguments, each in a rolled-back savepoint in which the administrator counts every
 * tenant's rows before and after. Any tenant's row that comes back, or any tenant's row changed, is the finding:
 * a request without credentials reaches tenant data.
 */
async function anonymousCalls(context: ProbeContext, fn: FunctionInfo, role: string): Promise<FindingInput | null> {
  const check = 'anonymous-function-leak';
  const measure = changeCountSql(context);
  const returned = returnedRelation(context, fn);
  const state = { kind: 'anonymous' as const, role };
  const calls: { label: string; keysOf?: Tenant; statement: string; values: (string | null)[] }[] = [];
  const seen = new Set<string>();
  const add = (label: string, values: (string | null)[], keysOf?: Tenant) => {
    const statement = callStatement(context, fn, values.length);
    const key = inlineParameters(statement, values);
    if (seen.has(key)) return;
    seen.add(key);
    calls.push({ label, statement, values, ...(keysOf ? { keysOf } : {}) });
  };
  for (const tenant of context.tenants) {
    const args = argumentsFor(context, fn, 'keys', tenant);
    if (args) add(args.pointed ? `with ${tenant.label}'s keys${keyed(args.keys)}` : 'neutral arguments', args.values, args.pointed ? tenant : undefined);
  }
  const first = context.tenants[0];
  const wildcard = first ? argumentsFor(context, fn, 'wildcard', first) : null;
  if (wildcard?.pointed) add("'%' in its text arguments", wildcard.values);
  if (!fn.strict && fn.argumentTypes.length - fn.defaultArguments > 0) {
    const nulls = argumentsFor(context, fn, 'null', first ?? NOBODY);
    if (nulls) add('NULL arguments', nulls.values);
  }
  if (!calls.length) {
    context.record({ check, relation: fn.signature, context: contextLabel(state), tenant: null, sql: fn.signature, outcome: 'skipped', rows: 0, foreignRows: 0, missingOwnRows: 0, error: 'no value fits its arguments' });
    return null;
  }
  const leaks: { label: string; shown: string; tally: RowTally; changed: Map<string, Map<string, string>> }[] = [];
  for (const call of calls) {
    const label = `${contextLabel(state)}, ${call.label}`;
    const sql = inlineParameters(call.statement, call.values);
    const run = await countedCall(context, role, null, measure, call.statement, call.values);
    const keysOf = call.keysOf ? { keysOf: call.keysOf.id } : {};
    if (run.error) {
      const refused = run.error.code !== undefined && REFUSED.has(run.error.code);
      const readOnly = run.error.code === '25006';
      context.record({
        check, relation: fn.signature, context: refused ? `${label} (refused: ${run.error.message})` : label, tenant: null, sql, ...keysOf,
        outcome: refused ? 'pass' : readOnly ? 'skipped' : 'error', rows: 0, foreignRows: 0, missingOwnRows: 0,
        ...(refused ? {} : { error: readOnly ? `the function writes, and the target is not disposable: not called read-write (${run.error.message})` : run.error.message }),
      });
      continue;
    }
    const tally = tallyRows(context, NOBODY, run.rows, fn.returnKind === 'composite' ? { relation: returned } : { canaryOnly: true });
    const changed = new Map(context.tenants.map((tenant) => [tenant.id, changedOf(run.before, run.after, tenant)] as const).filter(([, changes]) => changes.size > 0));
    const leak = tally.foreignRows > 0 || changed.size > 0;
    // Rows that cannot be attributed (a count, a flag) prove nothing either way.
    const outcome = leak ? 'leak' : tally.rows === 0 ? 'pass' : 'inconclusive';
    context.record({ check, relation: fn.signature, context: label, tenant: null, sql, ...keysOf, outcome, rows: tally.rows, foreignRows: tally.foreignRows + changed.size, missingOwnRows: 0 });
    if (leak) leaks.push({ label: call.label, shown: sql.replace(/ limit \d+$/, ''), tally, changed });
  }
  const proof = leaks[0];
  if (!proof) return null;
  const what = [
    ...(proof.tally.foreignRows ? [`returns ${describeForeign(context, proof.tally.foreign)}`] : []),
    ...[...proof.changed].map(([tenant, changes]) => `changes rows of ${context.ledger.tenant(tenant)?.label ?? tenant} (${[...changes].map(([relation, change]) => `${relation}: ${change}`).join('; ')})`),
  ].join(' and ');
  const [foreignTenant] = [...proof.tally.foreign.keys(), ...proof.changed.keys()];
  return {
    check,
    severity: 'critical',
    object: fn.signature,
    ...(foreignTenant ? { foreignTenant } : {}),
    message:
      `Without credentials, as ${role}, ${proof.shown} ${what}: ${role} may EXECUTE ${fn.signature}, and ` +
      `${fn.securityDefiner ? `it is SECURITY DEFINER, running with the rights of ${fn.owner}` : `the policies let ${role} through to what it reads or writes`}.`,
    evidence: {
      sql: reproduction(context, state, proof.shown),
      context: describeContext(context, state),
      rowCount: proof.tally.rows,
      sampleRows: proof.tally.samples,
      details:
        `${plural(leaks.length, 'call')} of ${plural(calls.length, 'call')} as ${role} reached tenant rows: ${leaks.map((leak) => `${leak.label}: ${[
          ...(leak.tally.foreignRows ? [`returned ${describeForeign(context, leak.tally.foreign)}`] : []),
          ...[...leak.changed].map(([tenant, changes]) => `changed ${[...changes.values()].join(', ')} of ${context.ledger.tenant(tenant)?.label ?? tenant}`),
        ].join(', ')}`).join('; ')}; the administrator counted every tenant's rows before and after each call, in the same rolled-back savepoint`,
    },
    fix: fix([
      comment(`a request without credentials runs as ${commentText(role)}: it must not reach tenant data through ${commentText(fn.signature)}`),
      revoke('execute', `function ${fn.signature}`, `public, ${ident(role)}`),
      comment(`functions created later get EXECUTE for ${commentText(role)} (and PUBLIC) from the default privileges; to stop that, as the role that creates them:`),
      alterDefaultPrivileges(ident(fn.schema), `revoke execute on functions from ${ident(role)}`),
      alterDefaultPrivileges(null, 'revoke execute on functions from public'),
    ]),
  };
}
