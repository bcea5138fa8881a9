/** The report of a run or a lint: notes, coverage and copy gaps, the finishing pipeline. */
import type { Catalog } from '../catalog/types.js';
import type { Finding } from '../findings/finding.js';
import { finishFindings } from '../findings/finish.js';
import { allChecks, ruleChecks } from '../findings/checks.js';
import { apiReach } from '../plan/api-reach.js';
import type { TenancyPlan } from '../plan/tenancy.js';
import type { ProbeRecord } from '../probes/types.js';
import { REPORT_SCHEMA_VERSION, type RelationReport, type Report } from '../report/model.js';
import { unseededEntry, type Scenario } from '../scenario/schema.js';
import { locateObjects, sourceRootUri } from '../report/locate.js';
import type { SeedOutcome } from '../seed/outcome.js';
import type { Target } from '../target/index.js';
import { describeFailure } from '../target/schema-from.js';
import { VERSION } from '../version.js';
import { Inconclusive, type InconclusiveReason } from '../findings/verdict.js';
import { remark, reportNotes, type Note } from '../report/notes.js';
import { samplingNotes } from '../probes/targets.js';

import type { AuditOptions } from '../audit.js';
import type { Prepared } from './prepare.js';

function relationReports(catalog: Catalog, plan: TenancyPlan, seeded: SeedOutcome | null): RelationReport[] {
  const byName = new Map(catalog.relations.map((relation) => [relation.qualified, relation]));
  return plan.relations.map((entry) => {
    const relation = byName.get(entry.relation)!;
    const seeding = seeded?.results.find((result) => result.relation === entry.relation);
    return {
      name: entry.relation,
      kind: entry.kind,
      tenancy: entry.tenancy,
      tenantColumn: entry.tenantColumn,
      path: entry.path ? entry.path.map((hop) => `${hop.from}(${hop.columns.join(', ')}) -> ${hop.references}`).join(', ') : null,
      reason: entry.reason,
      rlsEnabled: relation.rlsEnabled,
      rlsForced: relation.rlsForced,
      seeding: seeding
        ? { status: seeding.status, rows: seeding.rows, reason: seeding.reason, repairs: seeding.repairs, tenants: seeding.tenants, adopted: seeding.adopted, partitions: seeding.partitions }
        : null,
    };
  });
}
/**
 * Coverage gaps (a tenant-owned relation or partition without rows of some tenant), grouped per relation;
 * those the scenario accepts in `unseeded` are said so.
 */
export function coverageGaps(seeded: SeedOutcome, scenario: Scenario): { relation: string; tenants: string[]; reason: string; accepted: string | null; hint?: string }[] {
  const grouped = new Map<string, { relation: string; tenants: string[]; reason: string; accepted: string | null; hint?: string }>();
  for (const gap of seeded.gaps) {
    const label = seeded.tenants.find((tenant) => tenant.id === gap.tenant)?.label ?? gap.tenant;
    const accepted = unseededEntry(scenario, gap.relation);
    const entry = grouped.get(gap.relation) ?? { relation: gap.relation, tenants: [], reason: gap.reason, accepted: accepted?.reason ?? null, ...(gap.hint ? { hint: gap.hint } : {}) };
    entry.tenants.push(label);
    grouped.set(gap.relation, entry);
  }
  return [...grouped.values()];
}

function coverageNotes(seeded: SeedOutcome, scenario: Scenario): Note[] {
  return coverageGaps(seeded, scenario).map((gap) => ({ kind: 'coverage', relation: gap.relation, tenants: gap.tenants, reason: gap.reason, accepted: gap.accepted }));
}
/**
 * A tenant-owned relation (or partition) left without rows of some tenant proved nothing about that tenant
 * there: the run is inconclusive, unless the scenario accepts it in `unseeded`.
 */
export function coverageReasons(seeded: SeedOutcome, scenario: Scenario): InconclusiveReason[] {
  return coverageGaps(seeded, scenario)
    .filter((gap) => !gap.accepted)
    .map((gap) => ({
      relation: gap.relation,
      reason: `tenant-owned ${gap.relation} has no seeded row of ${gap.tenants.join(', ')}: ${gap.reason}`,
      hint: `${gap.hint ?? 'fix what stops the rows (the constraint or trigger named)'}, or, if that is intended, accept it in the scenario: unseeded: [{ relation: ${gap.relation}, reason: ... }]`,
    }));
}

/**
 * --schema-from: a statement of the source's dump the copy could not recreate leaves what it would have
 * made unaudited. A policy, view, table, grant, trigger or rule of a tenant-owned relation (or of one the
 * copy does not hold, whose tenancy is unknown), or a function (whose body may read anything), that is
 * missing makes the run inconclusive: the copy may pass where the source leaks. Everything else the copy
 * lacks is listed in the notes.
 */
export function copyReasons(target: Target, catalog: Catalog, plan: TenancyPlan): InconclusiveReason[] {
  const known = new Set(catalog.relations.map((relation) => relation.qualified));
  const tenantOwned = new Set(plan.relations.filter((entry) => entry.tenancy !== 'shared').map((entry) => entry.relation));
  const reasons: InconclusiveReason[] = [];
  for (const failure of target.copyFailures ?? []) {
    // A view's own name is not in the copy (it failed): what decides is what it reads.
    const named = failure.kind === 'view' ? failure.relations.slice(1) : failure.relations;
    const concerned = named.filter((relation) => tenantOwned.has(relation) || !known.has(relation));
    const relationBound = ['policy', 'view', 'table', 'grant', 'trigger', 'rule'].includes(failure.kind);
    if (!(failure.kind === 'function' || (relationBound && concerned.length))) continue;
    const { extension } = failure;
    const what = failure.kind === 'function' ? 'its calls, and the policies and views that call it' : `what it allows on ${concerned.map((relation) => `${relation}${known.has(relation) ? '' : ' (not in the copy)'}`).join(', ')}`;
    reasons.push({
      ...(concerned[0] ? { relation: concerned[0] } : {}),
      reason: `${describeFailure(failure)}; ${what} was not audited, so the copy may pass where the source leaks`,
      hint: extension
        ? `run with --pg-bin DIR of a PostgreSQL build that has the extension ${extension} (the copy is made there), or audit the database itself with --database-url`
        : 'run with --pg-bin DIR of a PostgreSQL build like the source\'s (same version and extensions), or audit the database itself with --database-url',
    });
  }
  return reasons;
}
/** What a run found, as the finishing pipeline takes it. */
interface Found {
  ruleFindings: Finding[];
  probeFindings: Finding[];
  probes: ProbeRecord[];
  /** False when the run stopped at its time limit before every probe ran. */
  complete: boolean;
}

export function buildReport(
  command: Report['command'],
  scenario: Scenario,
  prepared: Prepared,
  seeded: SeedOutcome | null,
  seedNumber: number | null,
  found: Found,
  startedAt: string,
  timings: Report['timings'],
  options: AuditOptions,
  inconclusive: Inconclusive = new Inconclusive(),
  /** The large relations whose policy forces a full scan (their reads were sampled). */
  forcedScans?: ReadonlySet<string>,
): Report {
  const { plan, catalog, target, session } = prepared;
  const notes: Note[] = [...(target.notes ?? []).map(remark), ...plan.notes.map((note): Note => ({ kind: 'plan', note }))];
  for (const result of seeded?.results ?? []) {
    if (result.status === 'failed' || result.status === 'partial') notes.push({ kind: 'seeding', relation: result.relation, status: result.status, reason: result.reason });
  }
  if (seeded) notes.push(...coverageNotes(seeded, scenario));
  if (seeded && command === 'run') notes.push(...samplingNotes(catalog, plan, seeded.ledger, forcedScans).map(remark));
  const reach = apiReach(catalog, prepared.analysis, plan);
  if (plan.apiSchemas) {
    const outside = reach ? catalog.relations.filter((relation) => reach.unreachableRelations.has(relation.qualified) && plan.relations.some((entry) => entry.relation === relation.qualified && entry.tenancy !== 'shared')) : [];
    notes.push(
      remark(
        reach
          ? `the API exposes ${plan.apiSchemas.join(', ')} (apiSchemas): ${outside.length ? `${outside.map((relation) => relation.qualified).join(', ')} ${outside.length === 1 ? 'is' : 'are'} reached by nothing exposed there, so findings on ${outside.length === 1 ? 'it' : 'them'} are info` : 'every tenant-owned relation is reached from there'}`
          : `the API exposes ${plan.apiSchemas.join(', ')} (apiSchemas), but a function it may reach runs dynamic SQL or could not be read: every relation counts as reachable`,
      ),
    );
  }
  const finished = finishFindings({
    ...found,
    apiReach: reach,
    accept: scenario.accept,
    ...(options.baseline ? { baseline: options.baseline } : {}),
    failOn: scenario.failOn,
    rowsSeeded: seeded?.rowsInserted ?? 0,
    queries: session.queries,
    inconclusive: inconclusive.reasons,
    locate: (findings) => locateObjects(prepared.schemaFiles, findings),
  });
  return {
    schemaVersion: REPORT_SCHEMA_VERSION,
    tool: { name: 'rls-audit', version: VERSION },
    command,
    startedAt,
    scenario: {
      name: scenario.name,
      role: plan.role,
      setting: plan.setting,
      contextSql: plan.contextSql,
      tenantKey: `${plan.tenantKey.relation ?? '(values)'}.${plan.tenantKey.column} ${plan.tenantKey.type}`,
      tenantColumns: plan.tenantColumns,
      rowsPerTenant: seeded ? scenario.rows : 0,
      seed: seedNumber,
      failOn: scenario.failOn,
    },
    target: { kind: target.kind, description: target.description, serverVersion: catalog.serverVersion, database: catalog.database },
    tenants: (seeded?.tenants ?? []).map((tenant) => ({ ...tenant })),
    relations: relationReports(catalog, plan, seeded),
    locations: finished.locations,
    ...(prepared.schemaFiles.length ? { sourceRoot: sourceRootUri() } : {}),
    ...reportNotes(notes),
    checks: command === 'lint' ? ruleChecks() : allChecks(),
    probes: found.probes,
    findings: finished.findings,
    summary: finished.summary,
    ...(finished.baseline ? { baseline: finished.baseline } : {}),
    timings,
  };
}
