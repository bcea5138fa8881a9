import type { Relation } from '../catalog/types.js';
import { inheritedBy } from '../rules/privilege-helpers.js';
import type { InconclusiveReason } from '../findings/verdict.js';
import { pending, type AuditSession } from '../target/session.js';
import { runAs, sourcesOf } from './context.js';
import { readAsTenant } from './checks/read-isolation.js';
import { mapOver } from './schedule.js';
import { OwnRowBuilder } from './own-row.js';
import { expectedOwnRows, readTargets, shownStatement } from './targets.js';
import type { ProbeContext } from './types.js';
import { requireRelation } from '../catalog/lookup.js';
import { PRESET_NAMES } from '../presets/index.js';

/**
 * True when no policy for `command` applies to the role on a table with row-level security: PostgreSQL
 * then shows (or accepts) no row under any context, so an empty result says nothing about the context.
 */
function deniesEveryRow(context: ProbeContext, relation: Relation, command: 'SELECT' | 'INSERT'): boolean {
  if (!relation.rlsEnabled) return false;
  const roles = inheritedBy(context.catalog, context.plan.role);
  return !relation.policies.some(
    (policy) => policy.permissive && (policy.command === 'ALL' || policy.command === command) && policy.roles.some((name) => name === 'public' || roles.has(name)),
  );
}

/**
 * Before any probe: every tenant must see its own seeded rows on every tenant-owned table it may SELECT,
 * and must be able to insert its own row where it may INSERT. Where it cannot, the context proves nothing
 * there (a context that sets the wrong thing hides every row, which looks exactly like isolation), and the
 * run is inconclusive for that relation. `blindEverywhere` when no tenant sees its own rows on any table
 * checked (the context sets nothing the policies read): then another candidate context is worth trying.
 */
export async function ownRowsPrecheck(context: ProbeContext, options: { writes?: boolean; sessions?: readonly AuditSession[] } = {}): Promise<{ reasons: InconclusiveReason[]; blindEverywhere: boolean; checked: number }> {
  const sessions = options.sessions ?? [context.session];
  const chosen = readTargets(context, (relation) => sourcesOf(context, relation)).flatMap((target) => {
    const { relation } = target;
    const table = relation.kind === 'table' || relation.kind === 'partitioned-table';
    if (!target.reliable || relation.partitionOf || (!table && relation.kind !== 'view')) return [];
    if (table && deniesEveryRow(context, relation, 'SELECT')) return [];
    const expected = new Map(context.tenants.map((tenant) => [tenant.id, table ? (expectedOwnRows(context, relation.qualified, tenant) ?? 0) : target.sources.reduce((sum, source) => sum + context.ledger.count(source, tenant.id), 0)]));
    return [...expected.values()].some((count) => count > 0) ? [{ target, table, expected }] : [];
  });
  // The reads are kept for read-isolation, which would run the same statements under the same contexts.
  const blinds = await mapOver(sessions, chosen, async (session, { target, table, expected }) => {
    const blind: string[] = [];
    // Called together: the session sends the reads one after the other without waiting (rolledBack).
    const reads = context.tenants.map((tenant) => (expected.get(tenant.id) ? pending(readAsTenant({ ...context, session }, target, tenant, true)) : null));
    for (const [index, tenant] of context.tenants.entries()) {
      const count = expected.get(tenant.id)!;
      if (!count) continue;
      const read = await reads[index]!;
      if (read.error !== undefined) blind.push(`${tenant.label}: error ${read.error}`);
      else if (!read.own) blind.push(`${tenant.label} sees 0 of its ${count} rows${table ? '' : ' in the tables the view reads'}`);
    }
    return blind;
  });
  // Views count only where nothing else can be read (PostgREST's API schema over a private one): a view may
  // filter its rows (`where not archived`), so one tenant seeing none of its rows there proves little alone.
  const failures: { relation: string; statement: string; detail: string; everyTenant: boolean }[] = [];
  const viewFailures: typeof failures = [];
  chosen.forEach(({ target, table, expected }, index) => {
    const blind = blinds[index]!;
    const everyTenant = blind.length === [...expected.values()].filter((count) => count > 0).length;
    if (blind.length) (table ? failures : viewFailures).push({ relation: target.relation.qualified, statement: shownStatement(target.statement), detail: blind.join('; '), everyTenant });
  });
  const checked = chosen.filter((entry) => entry.table).length;
  const viewsChecked = chosen.length - checked;
  const everywhere = checked > 1 && failures.length === checked ? { failed: failures, count: checked, what: 'tenant-owned tables' } : !checked && viewsChecked > 0 && viewFailures.length === viewsChecked ? { failed: viewFailures, count: viewsChecked, what: 'views over tenant-owned tables (the only relations the role may read)' } : null;
  if (everywhere) {
    // The context itself is wrong: one reason, not one per relation.
    const first = everywhere.failed[0]!;
    return { blindEverywhere: true, checked: everywhere.count, reasons: [
      {
        reason:
          `no tenant sees its own rows on any of the ${everywhere.count} ${everywhere.what} (${everywhere.failed.map((failure) => failure.relation).join(', ')}) as ${context.plan.role} ` +
          `after \`${context.plan.contextSql}\`; e.g. ${first.statement}: ${first.detail}. Every probe proved nothing`,
        hint: `the context SQL does not set what the policies read: give the setting with --setting, the SQL the application runs with --context-sql (with $tenant, $user, $role), or ${PRESET_NAMES.map((name) => `--preset ${name}`).join(' / ')}`,
        context: `no tenant saw its own rows on ${everywhere.failed.map((failure) => failure.relation).join(', ')}`,
      },
    ] };
  }
  // One table checked, and no tenant saw its rows there: the context showed no tenant its rows either.
  const blind = checked > 0 && failures.length === checked && failures.every((failure) => failure.everyTenant);
  const reasons: InconclusiveReason[] = failures.map((failure) => ({
    ...(blind ? { context: `no tenant saw its own rows on ${failure.relation}` } : {}),
    relation: failure.relation,
    reason: `${failure.statement} as ${context.plan.role} after \`${context.plan.contextSql}\`: ${failure.detail}; the probes on ${failure.relation} proved nothing`,
    hint: `check the policies on ${failure.relation} for the current tenant, or give the tenant column with --tenant-column if ${failure.relation} is planned wrong`,
  }));
  if (options.writes ?? true) reasons.push(...(await ownInsertCheck(context, sessions)));
  return { reasons, blindEverywhere: checked > 0 && failures.length === checked, checked };
}

/** Where the role may INSERT, each tenant must be able to insert a row of its own (rolled back; in user tenancy, under its own user). */
async function ownInsertCheck(context: ProbeContext, sessions: readonly AuditSession[]): Promise<InconclusiveReason[]> {
  const builder = new OwnRowBuilder(context);
  const seeding = new Map(context.seedResults.map((result) => [result.relation, result]));
  const tenant = context.tenants[0]!;
  const rows = context.plan.relations.flatMap((relationPlan) => {
    if (relationPlan.tenancy !== 'direct' && relationPlan.tenancy !== 'fk-path') return [];
    const relation = requireRelation(context.catalog, relationPlan.relation);
    if (relation.kind !== 'table' || relation.partitionOf || !context.access.get(relation.qualified)?.insert) return [];
    if (seeding.get(relation.qualified)?.status !== 'seeded' || deniesEveryRow(context, relation, 'INSERT')) return [];
    // Adding a member is an act of the tenant's owners, which a plain member may rightly be refused: the
    // self-join probe tries it.
    if (relation.qualified === context.plan.actors.membership?.relation) return [];
    const row = builder.ownRow(relation, relationPlan, tenant);
    return row ? [{ relation, row }] : [];
  });
  const results = await mapOver(sessions, rows, (session, { row }) => runAs({ ...context, session }, { kind: 'tenant', tenant }, row.sql, row.params));
  const reasons: InconclusiveReason[] = [];
  rows.forEach(({ relation }, index) => {
    const result = results[index]!;
    // Only row-level security refusing a tenant's own row says the context is wrong; other errors (a
    // constraint the builder could not satisfy) are about the row, not the context.
    if (result.error?.code === '42501' && /row-level security/.test(result.error.message)) {
      reasons.push({
        relation: relation.qualified,
        reason: `as ${tenant.label}, inserting a row of its own into ${relation.qualified} after \`${context.plan.contextSql}\` fails: ${result.error.message}; the write probes on ${relation.qualified} proved nothing`,
        hint: `check the WITH CHECK of the INSERT policies on ${relation.qualified}, or the context (--setting, --context-sql, --preset)`,
      });
    }
  });
  return reasons;
}
