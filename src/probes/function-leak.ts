import { functionEffects, OPERATORS_SQL, routineIndex, routinesSql, VIEWS_SQL, type EffectVerdict } from '../analysis/effects.js';
import { loadParser } from '../analysis/parse.js';
import type { FunctionInfo, Relation } from '../catalog/types.js';
import { currentTenantExpression } from '../fixes.js';
import type { Finding } from '../findings.js';
import type { RelationPlan } from '../plan/tenancy.js';
import { PRESETS } from '../presets/index.js';
import type { Tenant } from '../seed/ledger.js';
import { commentText, ident, inlineParameters } from '../sql.js';
import { describeContext, reproduction, runAs, sourcesOf } from './context.js';
import { describeForeign, tallyRows, type RowTally } from './foreign-rows.js';
import { plural } from '../text.js';
import { defineProbe, type ProbeContext } from './types.js';

const TENANT_ARGUMENT = /(^|_)(tenant|org|organi[sz]ation|account|workspace|team|company|customer|client)(_?id)?$/i;
const TEXT_TYPES = new Set(['text', 'character varying', 'character', 'name', 'citext']);
const NUMBER_TYPES = new Set(['integer', 'bigint', 'smallint', 'numeric', 'real', 'double precision']);
/** Per call: a function that sleeps, locks or loops must not hold the audit up. */
const CALL_TIMEOUT = '5s';

/** neutral: '' and 0; wildcard: '%' for free text (a search argument matches everything); null; foreign: another tenant's ids. */
type Variant = 'neutral' | 'wildcard' | 'null' | 'foreign';

interface Call {
  variant: Variant;
  statement: string;
  params: (string | null)[];
  /** The tenant whose ids the arguments carry (the caller, or for `foreign` another tenant). */
  argumentTenant: Tenant;
}

/** The argument name without the usual prefixes: `p_tenant_id` -> `tenant_id`. */
function bareName(name: string): string {
  return name.replace(/^(p_|in_|arg_|_)/i, '');
}

/** A neutral value of a type: empty text, zero, an empty array or object; undefined when there is none. */
function neutralValue(type: string): string | null | undefined {
  const base = type.replace(/\(.*\)$/, '');
  if (type.endsWith('[]')) return '{}';
  if (TEXT_TYPES.has(base)) return '';
  if (NUMBER_TYPES.has(base)) return '0';
  if (base === 'boolean') return 'false';
  if (base === 'uuid') return '00000000-0000-0000-0000-000000000000';
  if (base === 'json' || base === 'jsonb') return '{}';
  if (base === 'date' || base.startsWith('timestamp')) return '2000-01-01';
  return undefined;
}

const POLYMORPHIC = /^(any|anyelement|anyarray|anynonarray|anyenum|anyrange|anymultirange|anycompatible\w*|internal|cstring|"any")$/;

/** The tenant-owned relation an id-like argument most likely names: `conversation_id` -> conversations. */
function relationForId(context: ProbeContext, argument: string): { relation: Relation; column: string } | null {
  const stem = bareName(argument).replace(/_?id$/i, '').toLowerCase();
  if (!stem) return null;
  const names = new Set([stem, `${stem}s`, `${stem}es`, stem.replace(/y$/, 'ies')]);
  for (const entry of context.plan.relations) {
    if (entry.tenancy === 'shared' || entry.tenancy === 'derived') continue;
    const relation = context.catalog.relations.find((candidate) => candidate.qualified === entry.relation)!;
    if (!names.has(relation.name.toLowerCase())) continue;
    const key = (relation.primaryKey ?? []).filter((column) => !context.plan.tenantColumns.includes(column));
    if (key.length === 1) return { relation, column: key[0]! };
  }
  return null;
}

/**
 * Arguments for one call, or null when the function takes an argument no neutral value fits. Defaulted
 * arguments are left out (their defaults apply). `neutral`: empty text, zero, the tenant's own id and row
 * ids; `null`: NULL everywhere (functions that are not strict often read NULL as "no filter");
 * `foreign`: another tenant's id and row ids in the tenant and id arguments (a function that trusts them).
 */
function argumentsFor(context: ProbeContext, fn: FunctionInfo, variant: Variant, tenant: Tenant): { values: (string | null)[]; pointed: boolean } | null {
  const count = fn.argumentTypes.length - fn.defaultArguments;
  const values: (string | null)[] = [];
  let pointed = false;
  for (let index = 0; index < count; index += 1) {
    const type = fn.argumentTypes[index]!;
    const name = fn.argumentNames[index] ?? '';
    if (POLYMORPHIC.test(type)) return null;
    if (variant === 'null') {
      values.push(null);
      continue;
    }
    const base = type.replace(/\(.*\)$/, '');
    const idType = TEXT_TYPES.has(base) || NUMBER_TYPES.has(base) || base === 'uuid';
    if (idType && name && (TENANT_ARGUMENT.test(bareName(name)) || context.plan.tenantColumns.includes(bareName(name)))) {
      values.push(tenant.id);
      pointed = true;
      continue;
    }
    const target = idType && name ? relationForId(context, name) : null;
    const owned = target ? context.ledger.rows(target.relation.qualified, tenant.id)[0]?.values[target.column] : undefined;
    if (owned !== undefined && owned !== null) {
      values.push(owned);
      pointed = true;
      continue;
    }
    const neutral = neutralValue(type);
    if (neutral === undefined) {
      if (fn.strict) return null;
      values.push(null);
      continue;
    }
    if (variant === 'wildcard' && TEXT_TYPES.has(base)) {
      values.push('%');
      pointed = true;
      continue;
    }
    values.push(neutral);
  }
  return { values, pointed };
}

function callStatement(context: ProbeContext, fn: FunctionInfo, count: number): string {
  const call = `${ident(fn.schema)}.${ident(fn.name)}(${fn.argumentTypes
    .slice(0, count)
    .map((type, index) => `$${index + 1}::${type}`)
    .join(', ')})`;
  const limit = context.scenario.maxRowsPerQuery + 1;
  return fn.returnKind === 'composite' ? `select * from ${call} limit ${limit}` : `select (${call})::text as ${ident(fn.name)} limit ${limit}`;
}

/** The table a function returns rows of (`setof messages`), so its rows are attributed by seeded key too. */
function returnedRelation(context: ProbeContext, fn: FunctionInfo): { relation: Relation; relationPlan: RelationPlan; sources: string[] } | undefined {
  const relation = context.catalog.relations.find((candidate) => candidate.qualified === fn.returnType || (candidate.name === fn.returnType && candidate.schema === fn.schema));
  const relationPlan = relation && context.plan.relations.find((entry) => entry.relation === relation.qualified);
  return relation && relationPlan ? { relation, relationPlan, sources: sourcesOf(context, relation) } : undefined;
}

function fixFor(context: ProbeContext, fn: FunctionInfo, variant: Variant): string {
  const role = ident(context.plan.role);
  const signature = fn.signature;
  const lines: string[] = [];
  if (variant === 'foreign') {
    lines.push(`-- ${commentText(signature)} returns the rows of whatever tenant its arguments name: filter by the tenant of the transaction instead,`);
    lines.push(`-- e.g. where tenant_id = ${commentText(currentTenantExpression(context.plan))}, and ignore (or drop) the tenant argument`);
  }
  if (fn.securityDefiner) {
    lines.push(`-- let the caller's policies apply:`);
    lines.push(`alter function ${signature} security invoker;`);
    lines.push(`-- or, if it must stay SECURITY DEFINER, filter every table it reads by ${commentText(currentTenantExpression(context.plan))}`);
  } else {
    lines.push(`-- ${commentText(signature)} runs with the caller's rights: the relations it reads leak (see their read-isolation findings); fix their policies`);
  }
  lines.push(`-- or stop exposing it:`);
  lines.push(`revoke execute on function ${signature} from public, ${role};`);
  return lines.join('\n');
}

/** Why a function was not called; the terminal lists these. */
export const NOT_CALLED = 'not called on a live database (it may act outside the transaction)';

/**
 * On a database the audit does not own: which functions are provably free of effects outside the
 * transaction (analysis/effects.ts reads their bodies and everything they call).
 */
async function liveEffects(context: ProbeContext, functions: FunctionInfo[]): Promise<Map<number, EffectVerdict>> {
  await loadParser();
  const routines = await context.session.query(routinesSql(context.catalog.serverVersionNum));
  const operators = await context.session.query(OPERATORS_SQL);
  const views = await context.session.query(VIEWS_SQL);
  return functionEffects(routineIndex(routines.rows, operators.rows, views.rows), functions);
}

export const functionLeak = defineProbe({
  meta: {
    id: 'function-leak',
    title: "A function returns other tenants' rows",
    severity: 'high',
    objectKind: 'function',
    summary: "A function the application role may call returns other tenants' rows.",
    example: `As tenant A, \`select * from "public"."search_messages"(''::text)\` returns 20 rows of tenant B: it is SECURITY DEFINER and runs with the rights of its owner.`,
    explanation:
      'Calls every function the application role may execute that returns something (rows, a composite, a set or a value) as each tenant, ' +
      "with neutral arguments (empty text, zero, the tenant's own ids, defaults where the function has them), with NULLs where it is not strict, " +
      "and with another tenant's ids in its tenant and id arguments. Every returned row or value is attributed through the tenant column, the " +
      "seeded keys and the canaries. A SECURITY DEFINER function runs with its owner's rights, so policies that do not apply to the owner do not " +
      'protect its result: a definer function must filter by the tenant of the transaction itself, or be SECURITY INVOKER. Each call runs in a ' +
      'savepoint that is rolled back, with a short statement timeout. Against a database that is not the run\'s own (a url target) a function ' +
      'is called only when its parsed body (and everything it calls) provably has no effect outside the transaction: no dynamic SQL, COPY, ' +
      'writes, sequences, advisory locks, notifications, signals to other sessions, dblink or untrusted languages; the rest are reported as ' +
      '"not called on a live database" (audit a copy with --schema-from to call them), and the calls that are made are read-only.',
  },
  async run(context, report) {
    const findings: Finding[] = [];
    const platform = new Set(context.plan.preset ? PRESETS[context.plan.preset].platformSchemas : []);
    const candidates = context.catalog.functions.filter((fn) => fn.returnKind !== 'void' && fn.returnKind !== 'trigger' && !platform.has(fn.schema));
    if (!candidates.length) return findings;
    const { rows } = await context.session.query(
      `select p.oid::text as oid from pg_proc p
       where p.oid = any($2::oid[]) and has_function_privilege($1, p.oid, 'EXECUTE') and has_schema_privilege($1, p.pronamespace, 'USAGE')`,
      [context.plan.role, candidates.map((fn) => fn.oid)],
    );
    const executable = new Set(rows.map((row) => Number(row.oid)));
    const callable = candidates.filter((candidate) => executable.has(candidate.oid));
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
      if (!leaks.length) continue;
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
