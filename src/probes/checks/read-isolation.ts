import { relationObject, type Finding, type SampleRow } from '../../findings/finding.js';
import { comment, fix } from '../../findings/fix.js';
import type { TenancyPlan } from '../../plan/tenancy.js';
import type { Tenant } from '../../seed/ledger.js';
import type { RawRow } from '../../target/session.js';
import { actorOf, attribute, attributionColumn, describeContext, maskRow, personalOf, publicFlagOf, reproduction, runAs, sourcesOf, visibleTenantIds } from '../context.js';
import { diagnoseReadLeak } from '../../findings/diagnose.js';
import { commentText, ident } from '../../target/sql.js';
import { plural } from '../../report/text.js';
import { expectedOwnRows, fullReadOf, isIndirect, preparedName, mayHideTenantRows, readTargets, shownStatement, type ReadTarget } from '../targets.js';
import { defineProbe, type ProbeContext } from '../types.js';

/** One tenant's read of a relation, attributed: its rows, its own, other tenants' by id, samples of those. */
export interface TenantRead {
  error?: string;
  rows: number;
  own: number;
  /** Rows of other tenants by tenant id (or the value found, for a tenant that was not seeded). */
  foreign: Map<string, number>;
  samples: SampleRow[];
  /** Other tenants' rows that are public by design (`is_public = true`), not counted as foreign. */
  published: number;
}

/**
 * Reads made before the probes (the own-rows precheck), for the plan they were made under, by statement and
 * tenant: read-isolation takes them instead of running the same statement under the same context again.
 * The seed does not change in between (every probe is rolled back).
 */
const earlier = new WeakMap<TenancyPlan, Map<string, TenantRead>>();

/**
 * Run a read target's statement as `tenant` and attribute every row (tenant column, seeded key, canary).
 * `keepForLater` keeps the result for read-isolation, which then does not run it again.
 *
 * Where the rows carry a tenant column, the server counts them by its value first (the same statement,
 * grouped): when every row is the tenant's own, that is the whole answer, and no row crosses the wire.
 * Anything else (a row of another tenant, a NULL tenant, an error) is read again row by row and attributed
 * here, so that findings carry samples and errors are the statement's own.
 */
export async function readAsTenant(context: ProbeContext, target: ReadTarget, tenant: Tenant, keepForLater = false): Promise<TenantRead> {
  const key = `${target.statement}\0${tenant.id}`;
  const kept = earlier.get(context.plan);
  const done = kept?.get(key);
  if (done) {
    if (!keepForLater) kept!.delete(key);
    return done;
  }
  // A read that scans the whole relation is made once: row by row, not counted first and read again on a leak.
  const read = (target.scansAll ? null : await countedRead(context, target, tenant)) ?? (await fullRead(context, target, tenant));
  if (keepForLater) {
    if (!kept) earlier.set(context.plan, new Map([[key, read]]));
    else kept.set(key, read);
  }
  return read;
}

/** The read counted by tenant on the server; null unless every row is the tenant's own. */
async function countedRead(context: ProbeContext, target: ReadTarget, tenant: Tenant): Promise<TenantRead | null> {
  const returned = new Set(target.access.select ? target.relation.columns.map((column) => column.name) : target.access.selectColumns);
  const column = attributionColumn(target.relationPlan, context.plan.tenantColumns, (name) => returned.has(name));
  if (!column) return null;
  const counted = `select r.${ident(column)} as "tenant", count(*)::text as "rows" from (${target.statement}) as r group by 1`;
  const result = await runAs(context, { kind: 'tenant', tenant }, counted, [], { name: preparedName('count', target) });
  if (result.error) return null;
  // Rows of the tenants the platform made for this actor alone (a personal account) are its own to see, not the tenant's.
  const personal = personalOf(context, tenant);
  let own = 0;
  let rows = 0;
  for (const row of result.rows) {
    if (row.tenant === null || (row.tenant !== tenant.id && !personal.has(row.tenant))) return null;
    rows += Number(row.rows);
    if (row.tenant === tenant.id) own += Number(row.rows);
  }
  return { rows, own, foreign: new Map(), samples: [], published: 0 };
}

async function fullRead(context: ProbeContext, target: ReadTarget, tenant: Tenant): Promise<TenantRead> {
  const result = await runAs(context, { kind: 'tenant', tenant }, target.statement, [], { name: preparedName('read', target) });
  if (result.error) return { rows: result.rows.length, own: 0, foreign: new Map(), samples: [], published: 0, error: result.error.message };
  const { seen, foreign, samples, published } = attributeRows(context, target, result.rows, visibleTenantIds(actorOf(context, tenant)));
  return { rows: result.rows.length, own: seen.get(tenant.id) ?? 0, foreign, samples, published: [...published.values()].reduce((sum, count) => sum + count, 0) };
}

/**
 * Attribute the rows a read target returned (tenant column, seeded key, canary): rows of the `members`
 * tenants (the actor's own, with those the platform made for it alone) counted by tenant, rows of any other tenant counted by tenant id (or by the unseeded value the
 * row carries), with up to three of those masked as samples (keys and tenant columns stay readable).
 */
export function attributeRows(
  context: ProbeContext,
  target: ReadTarget,
  rows: readonly RawRow[],
  members: ReadonlySet<string>,
): { seen: Map<string, number>; foreign: Map<string, number>; samples: SampleRow[]; published: Map<string, number> } {
  const { relation, relationPlan } = target;
  const keep = new Set([...(relation.primaryKey ?? []), ...(relationPlan.tenantColumn ? [relationPlan.tenantColumn] : []), ...context.plan.tenantColumns]);
  const seen = new Map<string, number>();
  const foreign = new Map<string, number>();
  const published = new Map<string, number>();
  const samples: SampleRow[] = [];
  for (const row of rows) {
    const owner = attribute(row, relationPlan, relation, context.ledger, context.plan.tenantColumns, target.sources);
    if (owner.kind === 'tenant' && members.has(owner.tenant.id)) seen.set(owner.tenant.id, (seen.get(owner.tenant.id) ?? 0) + 1);
    else if (owner.kind === 'tenant' || owner.kind === 'other-tenant') {
      // Another tenant's row that it published (`or is_public`): visible to every tenant by design.
      const flag = publicFlagOf(context.plan, relationPlan, target.sources, row);
      if (flag !== null) {
        published.set(flag, (published.get(flag) ?? 0) + 1);
        continue;
      }
      const id = owner.kind === 'tenant' ? owner.tenant.id : owner.value;
      foreign.set(id, (foreign.get(id) ?? 0) + 1);
      if (samples.length < 3) samples.push(maskRow(row, keep, context.tenants));
    }
  }
  return { seen, foreign, samples, published };
}

export const readIsolation = defineProbe({
  order: 30,
  meta: {
    id: 'read-isolation',
    matrix: 'read',
    title: 'Other tenants\' rows are visible',
    severity: 'critical',
    objectKind: 'table',
    summary: "As a tenant, the application role reads other tenants' rows.",
    example: 'As tenant A, `select * from "public"."documents"` returns 20 rows of tenant B and 20 of other tenants: permissive policy support_can_read (using true) does not restrict rows to the current tenant, and permissive policies are ORed together.',
    explanation:
      'For every tenant and every relation the application role can select from (tables, partitions, inheritance children, views, materialized views), ' +
      'the probe sets the tenant context the way the application does, runs select * as the application role, and attributes every returned row ' +
      'to its tenant through the tenant column, the seeded keys or the per-tenant canary in text values. Any row of another tenant is a leak: ' +
      'critical on a table queried normally, high on a partition, child, view or materialized view queried directly.',
    precondition:
      'Critical: as a tenant, with the context set the way the application sets it, a plain select * on a table returns rows the ' +
      'seed ledger (tenant column, keys, canaries) attributes to another tenant: an ordinary query leaks. High when the relation ' +
      'read is a partition, inheritance child, view or materialized view queried directly.',
  },
  related: [
    {
      id: 'own-rows-hidden',
      matrix: 'read',
      title: 'A tenant cannot read its own rows',
      severity: 'low',
      objectKind: 'table',
      summary: 'A tenant sees fewer of its own rows than it owns, or its read fails.',
      example: `As tenant A, \`select * from "public"."tenants"\` returns 0 of the tenant's 1 rows: a policy hides the tenant's own data.`,
      explanation:
        'Reported by the read-isolation probe when a tenant sees fewer of its own seeded rows than it owns, or its read fails: ' +
        'a policy that hides a tenant\'s own data is a defect, not a leak.',
      precondition:
        'Low: as a tenant, the read shows fewer of its own seeded rows than it owns, or fails; nothing of another tenant is seen, so ' +
        'no one gains access: the application is broken for that tenant.',
    },
  ],
  split: 'relation',
  async run(context, report) {
    const findings: Finding[] = [];
    for (const target of readTargets(context, (relation) => sourcesOf(context, relation))) {
      const { relation, relationPlan, statement } = target;
      const leaks: { tenant: Tenant; foreign: Map<string, number>; rows: number; samples: SampleRow[]; statement: string }[] = [];
      const hidden: { tenant: Tenant; expected: number; seen: number; error?: string }[] = [];
      for (const tenant of context.tenants) {
        // Where the policy itself forces a full scan, the other reads are sampled; this one reads the relation in full, once.
        const used = target.sampled?.why === 'policy' && tenant === context.tenants[0] ? fullReadOf(context, target) : target;
        const read = await readAsTenant(context, used, tenant);
        const base = { check: this.meta.id, relation: relation.qualified, context: tenant.label, tenant: tenant.id, sql: shownStatement(used.statement) };
        if (read.error !== undefined) {
          context.record({ ...base, outcome: 'error', rows: 0, foreignRows: 0, missingOwnRows: 0, error: read.error });
          hidden.push({ tenant, expected: expectedOwnRows(context, relation.qualified, tenant) ?? 0, seen: 0, error: read.error });
          continue;
        }
        const { foreign, own, samples } = read;
        const foreignRows = [...foreign.values()].reduce((sum, count) => sum + count, 0);
        const expected = target.reliable && read.rows <= context.scenario.maxRowsPerQuery && !mayHideTenantRows(context, relation.qualified) ? expectedOwnRows(context, relation.qualified, tenant) : null;
        const missing = expected === null ? 0 : Math.max(0, expected - own);
        const outcome = foreignRows ? 'leak' : !target.reliable ? 'unreliable' : missing ? 'hidden' : 'pass';
        context.record({ ...base, outcome, rows: read.rows, foreignRows, missingOwnRows: missing, ...(read.published ? { publicRows: read.published } : {}) });
        if (foreignRows) leaks.push({ tenant, foreign, rows: read.rows, samples, statement: used.statement });
        if (missing) hidden.push({ tenant, expected: expected!, seen: own });
      }
      if (leaks.length) {
        const first = leaks[0]!;
        const diagnosis = diagnoseReadLeak(context, relation, relationPlan);
        const [foreignTenant, foreignCount] = [...first.foreign][0]!;
        const name = (id: string) => context.ledger.tenant(id)?.label ?? `tenant ${id} (not seeded)`;
        const perTenant = leaks.map((leak) => `${leak.tenant.label} sees ${[...leak.foreign].map(([id, count]) => `${count} of ${name(id)}`).join(', ')}`);
        findings.push(report({
          severity: isIndirect(relation) ? 'high' : 'critical',
          object: relationObject(relation),
          tenant: first.tenant.id,
          foreignTenant,
          message: `As ${first.tenant.label}, ${shownStatement(first.statement)} returns ${plural(foreignCount, 'row')} of ${name(foreignTenant)}${first.foreign.size > 1 ? ` and ${[...first.foreign.values()].slice(1).reduce((sum, count) => sum + count, 0)} of other tenants` : ''}: ${diagnosis.reason}.`,
          evidence: {
            sql: reproduction(context, { kind: 'tenant', tenant: first.tenant }, shownStatement(first.statement)),
            context: describeContext(context, { kind: 'tenant', tenant: first.tenant }),
            rowCount: first.rows,
            sampleRows: first.samples,
            details: `${perTenant.join('; ')} (${leaks.length} of ${context.tenants.length} tenants affected)`,
          },
          fix: diagnosis.fix,
          cause: diagnosis.cause,
        }));
      }
      const ownHidden = hidden.filter((entry) => entry.error || entry.seen < entry.expected);
      if (ownHidden.length && !leaks.length) {
        const first = ownHidden[0]!;
        findings.push(report({
          check: 'own-rows-hidden',
          severity: 'low',
          object: relationObject(relation),
          tenant: first.tenant.id,
          message: first.error
            ? `As ${first.tenant.label}, ${shownStatement(statement)} fails (${first.error}): the tenant cannot read its own rows.`
            : `As ${first.tenant.label}, ${shownStatement(statement)} returns ${first.seen} of the tenant's ${first.expected} rows: a policy hides the tenant's own data.`,
          evidence: {
            sql: reproduction(context, { kind: 'tenant', tenant: first.tenant }, shownStatement(statement)),
            context: describeContext(context, { kind: 'tenant', tenant: first.tenant }),
            error: first.error,
            details: ownHidden.map((entry) => `${entry.tenant.label}: ${entry.error ? `error ${entry.error}` : `${entry.seen} of ${entry.expected} own rows`}`).join('; '),
          },
          fix: fix([
            comment(`check the USING clauses on ${commentText(relation.qualified)}: a row of the current tenant must satisfy at least one permissive and every restrictive policy`),
            comment('and the role needs EXECUTE on any function the policies call'),
          ]),
        }));
      }
    }
    return findings;
  },
});
