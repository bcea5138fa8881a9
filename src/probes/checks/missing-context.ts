import { pending } from '../../target/session.js';
import { relationObject, type Finding } from '../../findings/finding.js';
import { attribute, contextLabel, describeContext, maskRow, publicFlagOf, reproduction, runAs, sourcesOf, unknownTenantId, type ContextState } from '../context.js';
import { diagnoseReadLeak, failsOpenCause, missingContextFix } from '../../findings/diagnose.js';
import { plural } from '../../report/text.js';
import { readTargets, shownStatement } from '../targets.js';
import { defineProbe } from '../types.js';
import { settingCasts } from '../../analysis/index.js';
import { tenantIdType } from '../../seed/values.js';

/**
 * Runs first: the "never set" state needs a connection on which nothing has set the tenant yet, and the
 * audit's one connection is such a connection until the first probe sets a tenant.
 */
export const missingContext = defineProbe({
  order: 10,
  meta: {
    id: 'missing-context',
    matrix: 'missing',
    title: 'No tenant set, rows visible (fails open)',
    severity: 'high',
    objectKind: 'table',
    summary: 'With no tenant set, the application role sees tenant rows.',
    example: 'With no tenant (never set), `select * from "public"."invoices"` returns 60 tenant rows: the policy fails open when no tenant is set.',
    explanation:
      'Reads every tenant-owned relation as the application role with no tenant, in the three ways that really happen: the setting was never set ' +
      'on a fresh connection (current_setting(..., true) is NULL), it was set by an earlier transaction that ended (it then reads the empty ' +
      "string '', not NULL), or it names a tenant that does not exist. Any visible tenant row means a request without a tenant sees data: the " +
      "policy fails open (typically `current_setting(...) is null or ...`, `coalesce(...)`, or a `= ''` branch).",
    precondition:
      'High: as the application role with no tenant in the context (never set on a fresh connection, set to \'\' by a transaction that ' +
      'ended, or naming a tenant that does not exist), a read of a tenant-owned relation returns tenant rows: any request that ' +
      'reaches the database without a tenant (a job, a forgotten code path, a pooled connection) reads them (missing context that ' +
      'fails open). A read that raises an error instead is missing-context-error (low).',
  },
  related: [
    {
      id: 'missing-context-error',
      matrix: 'missing',
      title: 'No tenant set, queries error',
      severity: 'low',
      objectKind: 'table',
      summary: 'With no tenant set, queries raise errors instead of returning nothing.',
      example: `With no tenant (empty string), \`select * from "public"."messages"\` raises "invalid input syntax for type integer" instead of returning no rows: after a transaction that set app.current_tenant ends, the setting reads '' (not NULL).`,
      explanation:
        "With no tenant, the relation's policy raises an error instead of returning no rows: current_setting without missing_ok fails on a fresh " +
        "connection, and ''::integer fails after a transaction-local setting ended (the empty-string trap). Nothing leaks, but requests fail in " +
        "ways that differ by connection history. Read the setting as nullif(current_setting(name, true), '').",
      precondition:
        'Low: with no tenant in the context, the read raises an error instead of returning no rows (current_setting without missing_ok ' +
        'on a fresh connection, \'\'::type after a transaction-local setting ended); no row of any tenant comes back, requests fail ' +
        'depending on the connection\'s history (missing context that raises errors).',
    },
  ],
  split: 'relation',
  async run(context, report) {
    const findings: Finding[] = [];
    const states: ContextState[] = [
      { kind: 'never-set' },
      { kind: 'empty' },
      // Of the type the seeded ids have: one that fits the policies' cast of the setting (a bigint key read as ::int).
      { kind: 'unknown-tenant', id: unknownTenantId(tenantIdType(context.plan.tenantKey.baseType, settingCasts(context.analysis, context.plan.setting)), context.tenants) },
      // On a platform with an anonymous role (Supabase anon, PostgREST's anonymous role), a request without credentials runs as it.
      ...(context.plan.anonymousRole ? [{ kind: 'anonymous' as const, role: context.plan.anonymousRole }] : []),
    ];
    const targets = readTargets(context, (relation) => sourcesOf(context, relation));
    const results = new Map<string, { state: ContextState; rows: number; visible: number; samples: Record<string, string | null>[]; error?: string }[]>();
    // State by state, so that "never set" runs for every relation before any tenant is ever set.
    for (const state of states) {
      // Every relation at once (the session sends the reads together), their outcomes taken in order.
      const runs = targets.map((target) => pending(runAs(context, state, target.statement)));
      for (const [index, target] of targets.entries()) {
        const { relation, relationPlan, statement } = target;
        const result = await runs[index]!;
        const base = { check: this.meta.id, relation: relation.qualified, context: contextLabel(state), tenant: null, sql: shownStatement(statement) };
        const list = results.get(relation.qualified) ?? [];
        results.set(relation.qualified, list);
        if (result.contextFailed && state.kind === 'unknown-tenant') {
          // The context SQL refuses an id no tenant has (a lookup, a cast): the state cannot occur this way.
          context.record({ ...base, outcome: 'skipped', rows: 0, foreignRows: 0, missingOwnRows: 0, error: `skipped: ${result.error!.message} for the id ${state.id}, which no tenant has` });
          continue;
        }
        if (result.error?.code === '42501' && state.kind === 'anonymous') {
          // The anonymous role may not read the relation at all: nothing to see, nothing to fail.
          context.record({ ...base, outcome: 'no-access', rows: 0, foreignRows: 0, missingOwnRows: 0, error: result.error.message });
          continue;
        }
        if (result.error) {
          context.record({ ...base, outcome: 'denied', rows: 0, foreignRows: 0, missingOwnRows: 0, error: result.error.message });
          list.push({ state, rows: 0, visible: 0, samples: [], error: result.error.message });
          continue;
        }
        const keep = new Set([...(relation.primaryKey ?? []), ...context.plan.tenantColumns]);
        const visibleRows = result.rows.filter((row) => {
          const owner = attribute(row, relationPlan, relation, context.ledger, context.plan.tenantColumns, target.sources);
          // A row public by design (`or is_public`) is visible without a tenant too.
          return owner.kind !== 'shared' && publicFlagOf(context.plan, relationPlan, target.sources, row) === null;
        });
        context.record({ ...base, outcome: visibleRows.length ? 'leak' : target.reliable ? 'pass' : 'unreliable', rows: result.rows.length, foreignRows: visibleRows.length, missingOwnRows: 0 });
        list.push({ state, rows: result.rows.length, visible: visibleRows.length, samples: visibleRows.slice(0, 3).map((row) => maskRow(row, keep, context.tenants)) });
      }
    }
    for (const target of targets) {
      const { relation, relationPlan, statement } = target;
      const list = results.get(relation.qualified) ?? [];
      const open = list.filter((entry) => entry.visible > 0);
      const errors = list.filter((entry) => entry.error);
      const shown = shownStatement(statement);
      if (open.length) {
        const first = open[0]!;
        // When the catalog shows a cause that has nothing to do with the setting (RLS off, a loose policy,
        // a definer view...), that cause is the finding's; otherwise the tenant policies fail open.
        const diagnosis = diagnoseReadLeak(context, relation, relationPlan);
        const failsOpen = diagnosis.cause.kind === 'policies-admit';
        findings.push(report({
          severity: 'high',
          object: relationObject(relation),
          message: `With no tenant (${open.map((entry) => contextLabel(entry.state)).join(', ')}), ${shown} returns ${plural(first.visible, 'tenant row')}: ${failsOpen ? 'the policy fails open when no tenant is set' : diagnosis.reason}.`,
          evidence: {
            sql: reproduction(context, first.state, shown),
            context: describeContext(context, first.state),
            rowCount: first.rows,
            sampleRows: first.samples,
            details: list.map((entry) => `${contextLabel(entry.state)}: ${entry.error ? `error ${entry.error}` : `${entry.visible} tenant rows`}`).join('; '),
          },
          fix: failsOpen ? missingContextFix(context, relation, relationPlan) : diagnosis.fix,
          cause: failsOpen ? failsOpenCause(context, relation) : diagnosis.cause,
        }));
      } else if (errors.length) {
        const first = errors[0]!;
        const emptyTrap = errors.some((entry) => entry.state.kind === 'empty');
        findings.push(report({
          check: 'missing-context-error',
          severity: 'low',
          object: relationObject(relation),
          message:
            `With no tenant (${errors.map((entry) => contextLabel(entry.state)).join(', ')}), ${shown} raises "${first.error}" instead of returning no rows` +
            (emptyTrap ? `: after a transaction that set ${context.plan.setting} ends, the setting reads '' (not NULL), and ''::${context.plan.tenantKey.type} is an error.` : '.'),
          evidence: {
            sql: reproduction(context, first.state, shown),
            context: describeContext(context, first.state),
            error: first.error,
            details: list.map((entry) => `${contextLabel(entry.state)}: ${entry.error ? `error ${entry.error}` : `${entry.visible} tenant rows`}`).join('; '),
          },
          fix: missingContextFix(context, relation, relationPlan),
          cause: failsOpenCause(context, relation),
        }));
      }
    }
    return findings;
  },
});
