import { analyze, loadParser, type Analysis } from './analysis/index.js';
import { introspect } from './catalog/introspect.js';
import type { Catalog } from './catalog/types.js';
import { AuditError, AuditTimeout, errorMessage } from './errors.js';
import type { Baseline } from './findings/baseline.js';
import type { Finding } from './findings/finding.js';
import { finishFindings } from './findings/finish.js';
import { allChecks, ruleChecks } from './findings/checks.js';
import { apiReach } from './plan/api-reach.js';
import { planTenancy, type TenancyPlan } from './plan/tenancy.js';
import { roleAccess } from './probes/access.js';
import { familyCoverage } from './probes/coverage.js';
import { parseShard, planUnits, runPlan, type ProbeRun } from './probes/schedule.js';
import { PROBES } from './probes/registry.js';
import { RULES } from './rules/registry.js';
import type { Probe, ProbeContext, ProbeRecord } from './probes/types.js';
import { REPORT_SCHEMA_VERSION, type RelationReport, type Report } from './report/model.js';
import { parseScenario } from './scenario/load.js';
import { unseededEntry, type Scenario, type ScenarioInput } from './scenario/schema.js';
import { applySchemaFiles, readSchemaFiles, type SchemaFile } from './target/schema-files.js';
import { locateObjects, sourceRootUri } from './report/locate.js';
import type { SeedOutcome, WriteBlock } from './seed/outcome.js';
import { seed } from './seed/seed.js';
import { seedActors } from './seed/actors.js';
import { runScript } from './target/sent-sql.js';
import { adoptOwnedRows } from './seed/owned.js';
import { seedIdentityLookup } from './seed/identity.js';
import { AuditSession } from './target/session.js';
import { describeRisk, movedSequences, readSequences, riskHint, riskWords, sequenceRisks, writeRisk } from './target/sequences.js';
import { relationIdent } from './target/sql.js';
import { openTarget, type Target } from './target/index.js';
import { describeFailure } from './target/schema-from.js';
import { isLockTimeout, lockTimeoutError } from './target/locks.js';
import { connect, DEFAULT_BOUNDS, LIVE_BOUNDS } from './target/connect.js';
import { contextCall, userSqlProblem } from './analysis/statements.js';
import { withoutTerminator } from './analysis/sql-text.js';
import { userSqlEffects } from './analysis/effects.js';
import { loadRoutineIndex } from './analysis/routine-index.js';
import { VERSION } from './version.js';
import { Inconclusive, type InconclusiveReason } from './findings/verdict.js';
import { PRESETS } from './presets/index.js';
import { buildReplay } from './report/replay.js';
import { addNote, remark, reportNotes, type Note } from './report/notes.js';
import { ownRowsPrecheck } from './probes/precheck.js';
import { snapshotNeverSet, sourcesOf } from './probes/context.js';
import { forcedFullScans, readTargets, samplingNotes } from './probes/targets.js';

export interface AuditOptions {
  /** Progress lines for a console; never receives a password. */
  log?: (line: string) => void;
  /**
   * Use this target instead of opening the scenario's (tests, library users with their own cluster). The
   * target is borrowed: the scenario's schema files are applied inside the audit's transaction and rolled
   * back with it, so the target is left as it was and can be audited again.
   */
  target?: Target;
  /** The target already holds the scenario's schema (`createAuditDatabase` applied it once): the files are read, for locations, and not applied. */
  schemaApplied?: boolean;
  /** Called as each phase advances: what a progress bar shows. */
  progress?: (event: AuditProgress) => void;
  /** Called once the tenancy is planned (`rls-audit init` writes a scenario from it). */
  onPlan?: (plan: TenancyPlan, catalog: Catalog) => void;
  /** Keep the seeded rows and the context in the report (`replay`), for `--format pgtap`. */
  replay?: boolean;
  /** Compare the findings with this baseline (`--baseline`): only new and worse findings fail the run. */
  baseline?: Baseline;
}

/** The phases of an audit, in order; `lint` has no seeding and no probes. */
export const AUDIT_PHASES = ['target', 'schema', 'catalog', 'seeding', 'probes'] as const;
export type AuditPhase = (typeof AUDIT_PHASES)[number];

/** `completed` of `total` steps of `phase` are done; `step` names the one that just finished. */
export interface AuditProgress {
  phase: AuditPhase;
  completed: number;
  total: number;
  step?: string;
}

class Stopwatch {
  private last = Date.now();
  readonly started = Date.now();
  lap(): number {
    const now = Date.now();
    const elapsed = now - this.last;
    this.last = now;
    return elapsed;
  }
}

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

interface Prepared {
  schemaFiles: SchemaFile[];
  target: Target;
  session: AuditSession;
  catalog: Catalog;
  analysis: Analysis;
  plan: TenancyPlan;
}

/** Reach the database, apply the schema, open the audit transaction, introspect and plan. */
async function prepare(scenario: Scenario, options: AuditOptions, timings: Report['timings'], clock: Stopwatch, readOnly: boolean): Promise<Prepared & { close(): Promise<void> }> {
  const log = options.log ?? (() => undefined);
  const progress = options.progress ?? (() => undefined);
  const schemaFiles = await readSchemaFiles(scenario.schema);
  progress({ phase: 'target', completed: 0, total: 1 });
  const target = options.target ?? (await openTarget(scenario, log));
  let session: AuditSession | undefined;
  const close = async () => {
    await session?.end();
    if (!options.target) await target.close();
  };
  // The schema is committed only on a cluster this audit started and throws away; on any other target it
  // is applied inside the audit's transaction and rolled back with it.
  const toApply = options.schemaApplied ? [] : schemaFiles;
  const commitSchema = target.disposable && !options.target;
  // What the platform creates before any migration runs (--preset supabase): only on a database the audit
  // owns, never on one it must leave as it was.
  const presetSetup = scenario.preset && target.disposable && !options.schemaApplied ? PRESETS[scenario.preset].setupSql : null;
  try {
    timings.start = clock.lap();
    progress({ phase: 'target', completed: 1, total: 1 });
    log(`target: ${target.description}`);
    progress({ phase: 'schema', completed: 0, total: toApply.length });
    if (!target.disposable && toApply.length) {
      throw new AuditError(
        'schema files cannot be applied to a database the audit does not own (--database-url): applied inside the audit\'s transaction, a migration would hold its locks on the live tables for the whole audit. ' +
          'Audit a copy instead: --schema-from URL --schema FILE copies the live schema, roles and grants into a throwaway cluster, applies the files there, and audits that.',
      );
    }
    await loadParser();
    if (commitSchema && (toApply.length || presetSetup)) {
      const admin = await connect(target.connectionString, DEFAULT_BOUNDS);
      try {
        if (presetSetup) await runScript(admin, presetSetup);
        await applySchemaFiles(toApply, (sql) => runScript(admin, sql));
      } finally {
        await admin.end();
      }
    }
    session = await AuditSession.open(target.connectionString, { readOnly: readOnly && !(toApply.length && !commitSchema), bounds: target.disposable ? DEFAULT_BOUNDS : LIVE_BOUNDS });
    const auditSession = session;
    if (!commitSchema && presetSetup) await auditSession.savepoint(() => auditSession.script(presetSetup), true);
    if (!commitSchema && toApply.length) {
      // A cluster the caller owns and reuses (library): the schema is applied inside the audit's transaction and rolled back with it.
      await applySchemaFiles(toApply, (sql) => auditSession.savepoint(() => auditSession.script(sql), true));
    }
    timings.schema = clock.lap();
    progress({ phase: 'schema', completed: toApply.length, total: toApply.length });
    progress({ phase: 'catalog', completed: 0, total: 1 });
    const catalog = await introspect(session.client, scenario.schemas);
    await loadParser();
    // The analysis is for the application role; when it is discovered by the plan, the policy scope is computed again for it.
    const early = analyze(catalog, scenario.role ?? null);
    const plan = planTenancy(catalog, scenario, early);
    const analysis = early.role === plan.role ? early : analyze(catalog, plan.role);
    timings.introspection = clock.lap();
    progress({ phase: 'catalog', completed: 1, total: 1, step: `${catalog.relations.length} relations` });
    options.onPlan?.(plan, catalog);
    log(`tenancy: ${plan.relations.filter((entry) => entry.tenancy !== 'shared').length} tenant-owned relation(s), ${plan.relations.filter((entry) => entry.tenancy === 'shared').length} shared; setting ${plan.setting}`);
    return { schemaFiles, target, session, catalog, analysis, plan, close };
  } catch (error) {
    const failure = isLockTimeout(error)
      ? await lockTimeoutError(error, { connection: target.connectionString, bounds: target.disposable ? DEFAULT_BOUNDS : LIVE_BOUNDS, doing: 'reading the catalog', statement: session?.lastStatement ?? null })
      : error;
    await close();
    throw failure;
  }
}

/**
 * The application's context setter must parse as the application role before any probe relies on it.
 * PREPARE analyses it (names, types) without running it: running it would define the setting on this
 * connection, and the "never set" probes need a connection on which nothing has set it yet. A CALL cannot
 * be prepared: the procedure it names must exist with that many arguments, and the role may execute it.
 */
async function checkContextSql(session: AuditSession, plan: TenancyPlan): Promise<void> {
  if (plan.roleSwitch) return;
  const failed = (why: string) =>
    new AuditError(
      `the context SQL failed as role ${plan.role} (${plan.contextSql}): ${why}. Give the SQL the application runs with --context-sql, using $tenant (or $1) for the tenant id, $user for the user id and $role for the tenant's role.`,
    );
  const call = contextCall(plan.contextSql);
  if (call) {
    const { rows } = await session.query(
      `select count(*)::int as n from pg_proc p
       join pg_namespace n on n.oid = p.pronamespace
       where p.prokind = 'p' and p.proname = $1 and ($2::text is null and n.nspname = any(current_schemas(true)) or n.nspname = $2)
         and p.pronargs >= $3::int and p.pronargs - p.pronargdefaults <= $3::int and has_function_privilege($4, p.oid, 'EXECUTE')`,
      [call.name, call.schema, call.arguments, plan.role],
    );
    if (Number(rows[0]?.n ?? 0) === 0) throw failed(`no procedure ${call.schema ? `${call.schema}.` : ''}${call.name} taking ${call.arguments} argument(s) that ${plan.role} may execute`);
    return;
  }
  try {
    await session.savepoint(
      async () => {
        await session.query(`prepare rls_audit_context(${plan.contextParameters.map(() => 'text').join(', ')}) as ${withoutTerminator(plan.contextSql)}`);
        await session.query('deallocate rls_audit_context');
      },
      false,
      [session.roleStatement(plan.role)],
    );
  } catch (error) {
    throw failed(errorMessage(error));
  }
}

/**
 * User SQL runs inside the audit's transaction: the context setter and each named query must be exactly
 * one statement of a kind that cannot end or reconfigure that transaction. Checked before anything runs.
 * On a live database, everything the SQL reaches (functions, procedures, domain CHECKs, casts, operators,
 * defaults and triggers of what it writes) must also be free of effects outside the transaction
 * (analysis/effects.ts): dblink, advisory locks, NOTIFY, COPY, settings other than the application's own,
 * sequences (unless --allow-sequence-gaps) and whatever cannot be read are refused.
 */
async function checkUserSql(scenario: Scenario, plan: TenancyPlan, live: { session: AuditSession; catalog: Catalog } | null): Promise<void> {
  await loadParser();
  const contextProblem = plan.roleSwitch ? null : userSqlProblem(plan.contextSql, 'context');
  if (contextProblem) {
    throw new AuditError(`the context SQL (${plan.contextSql}) cannot run inside the audit's transaction: ${contextProblem}. Give one statement that sets the tenant, e.g. select set_config('app.current_tenant', $1, true).`);
  }
  for (const query of scenario.queries) {
    const problem = userSqlProblem(query.sql, 'query');
    if (problem) throw new AuditError(`the query ${query.name} (${query.sql}) cannot run inside the audit's transaction: ${problem}. Give one SELECT, INSERT, UPDATE, DELETE or MERGE.`);
  }
  if (!live) return;
  const index = await loadRoutineIndex((sql) => live.session.queryPaged(sql), live.catalog.serverVersionNum);
  const hint = 'On a database the audit does not own, user SQL may not act outside the audit\'s transaction; audit a copy instead (--schema-from URL), where it may';
  if (!plan.roleSwitch) {
    const verdict = userSqlEffects(index, plan.contextSql, scenario.allowSequenceGaps);
    if (!verdict.free) throw new AuditError(`the context SQL (${plan.contextSql}) is refused on this live database: ${verdict.reason}. ${hint}.`);
  }
  for (const query of scenario.queries) {
    const verdict = userSqlEffects(index, query.sql, scenario.allowSequenceGaps);
    if (!verdict.free) throw new AuditError(`the query ${query.name} (${query.sql}) is refused on this live database: ${verdict.reason}. ${hint}.`);
  }
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
 * Discovery by evidence: the planned context must let every tenant see its own seeded rows. When it lets
 * none see any, each other context the policies could mean (another setting they compare with a row column)
 * is tried on the same seeded data, and the first under which every tenant sees its own rows is kept. What
 * was chosen and why goes into the notes; the precheck's reasons for the context kept are returned.
 */
async function confirmContext(context: ProbeContext, prepared: Prepared, log: (line: string) => void, sessions: AuditSession[]): Promise<InconclusiveReason[]> {
  const planned = context.plan;
  const first = await ownRowsPrecheck(context, { sessions });
  if (!first.blindEverywhere || !planned.contextAlternatives.length) return first.reasons;
  for (const alternative of planned.contextAlternatives) {
    const candidate: TenancyPlan = { ...planned, setting: alternative.setting, contextSql: alternative.contextSql, contextParameters: alternative.contextParameters, contextAlternatives: [] };
    context.plan = candidate;
    const trial = await ownRowsPrecheck(context, { writes: false, sessions });
    if (!trial.reasons.length) {
      const note = `context: ${alternative.setting} chosen on seeded data: every tenant sees its own rows on the ${trial.checked} tenant-owned table(s) checked; under ${planned.setting} no tenant saw any`;
      candidate.notes = [...planned.notes, note];
      prepared.plan = candidate;
      log(note);
      return (await ownRowsPrecheck(context, { sessions })).reasons;
    }
  }
  context.plan = planned;
  return [
    ...first.reasons.map((reason) => ({ ...reason, reason: `${reason.reason}; also tried ${planned.contextAlternatives.map((alternative) => alternative.setting).join(', ')}: no tenant saw its own rows either` })),
  ];
}

/**
 * A probe that throws does not end the audit: it becomes an `error` record with the statement that failed
 * and the message, and the checks it would have made are inconclusive. Each probe runs in a savepoint, so
 * that a failure leaves the audit's transaction usable.
 */
async function runProbe(probe: Probe, context: ProbeContext): Promise<Finding[]> {
  const { session } = context;
  try {
    return await session.savepoint(() => probe.run(context), true);
  } catch (error) {
    // User SQL that broke out of the audit's transaction, and the time limit, stop the audit: nothing after them can be trusted.
    session.rethrowStop(error);
    // A lock the probe could not get (a migration holds the table): every probe of it would wait and fail alike; the audit stops and says which.
    if (isLockTimeout(error)) throw error;
    const statement = session.lastStatement ?? '';
    context.record({ check: probe.meta.id, relation: '(probe)', context: '-', tenant: null, sql: statement, outcome: 'error', rows: 0, foreignRows: 0, missingOwnRows: 0, error: errorMessage(error) });
    context.inconclusive({
      reason: `the ${probe.meta.id} probe stopped with an error: ${errorMessage(error)}${statement ? ` (while running: ${statement.slice(0, 200)})` : ''}; what it checks was not proven`,
      hint: 'see the error record in report.json; if the schema is unusual, report it with the SQL shown',
    });
    return [];
  }
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

function evaluateRules(catalog: Catalog, plan: TenancyPlan, analysis: Analysis): Finding[] {
  return RULES.flatMap((rule) => rule.evaluate({ catalog, plan, analysis }));
}

/** What a run found, as the finishing pipeline takes it. */
interface Found {
  ruleFindings: Finding[];
  probeFindings: Finding[];
  probes: ProbeRecord[];
  /** False when the run stopped at its time limit before every probe ran. */
  complete: boolean;
}

function buildReport(
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
  const notes: Note[] = [...(target.notes ?? []), ...plan.notes].map(remark);
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

function newTimings(): Report['timings'] {
  return { start: 0, schema: 0, introspection: 0, seeding: 0, probes: 0, report: 0, total: 0, perProbe: {} };
}

/**
 * The static audit alone: introspect and evaluate every rule, read-only (against a url target the
 * transaction is READ ONLY), no seeding, no probes.
 */
export async function lint(input: ScenarioInput, options: AuditOptions = {}): Promise<Report> {
  const scenario = await parseScenario(input, 'the scenario object', { requireSchema: !options.target });
  const startedAt = new Date().toISOString();
  const clock = new Stopwatch();
  const timings = newTimings();
  const prepared = await prepare(scenario, options, timings, clock, true);
  try {
    const findings = evaluateRules(prepared.catalog, prepared.plan, prepared.analysis);
    timings.probes = clock.lap();
    const inconclusive = new Inconclusive();
    for (const reason of copyReasons(prepared.target, prepared.catalog, prepared.plan)) inconclusive.add(reason);
    const report = buildReport('lint', scenario, prepared, null, null, { ruleFindings: findings, probeFindings: [], probes: [], complete: true }, startedAt, timings, options, inconclusive);
    timings.report = clock.lap();
    timings.total = Date.now() - clock.started;
    return report;
  } finally {
    await prepared.close();
  }
}

/**
 * Audit one scenario end to end: start or reach the database, apply the schema, introspect, plan,
 * evaluate the rules, seed, probe as the application role, tie rule findings to probe evidence, and
 * return the report. Everything after the schema happens in one transaction that is rolled back.
 */
export async function audit(input: ScenarioInput, options: AuditOptions = {}): Promise<Report> {
  const scenario = await parseScenario(input, 'the scenario object', { requireSchema: !options.target });
  const log = options.log ?? (() => undefined);
  const progress = options.progress ?? (() => undefined);
  const startedAt = new Date().toISOString();
  const clock = new Stopwatch();
  const timings = newTimings();
  const prepared = await prepare(scenario, options, timings, clock, false);
  const { session, catalog, analysis, plan, target } = prepared;
  // --timeout: when the run's time is up, the statement running is cancelled and every later query
  // fails; the audit then reports what it did so far (exit 2).
  const limit = scenario.timeoutSeconds;
  const limitReason = `the audit stopped at its time limit (--timeout ${limit}s)`;
  const deadline = clock.started + limit * 1000;
  // Every session the audit opens: the main one, and the probe workers below.
  const sessions: AuditSession[] = [session];
  session.setDeadline(deadline, limitReason);
  const timer = setTimeout(() => {
    for (const each of sessions) void each.expire(limitReason, target.connectionString, target.disposable ? DEFAULT_BOUNDS : LIVE_BOUNDS);
  }, Math.max(0, deadline - Date.now()));
  timer.unref();
  let ruleFindings: Finding[] = [];
  let seeded: SeedOutcome | null = null;
  let seedNumber: number | null = null;
  let forcedScans: ReadonlySet<string> | undefined;
  const probes: ProbeRecord[] = [];
  const probeFindings: Finding[] = [];
  const inconclusive = new Inconclusive();
  for (const reason of copyReasons(target, catalog, plan)) inconclusive.add(reason);
  try {
    await checkUserSql(scenario, plan, target.disposable ? null : { session, catalog });
    ruleFindings = evaluateRules(catalog, plan, analysis);
    // A live database: no sequence may move that a rollback cannot put back (see sequences.ts).
    const sequencesBefore = target.disposable ? null : await readSequences(session);
    // Relations whose writes would advance a sequence are left out of seeding and of the write probes; the
    // rest of the database is audited as usual.
    const risks = !target.disposable ? await sequenceRisks(session, catalog, plan, scenario.allowSequenceGaps) : [];
    for (const relation of new Set(risks.map((risk) => risk.relation))) {
      const causes = risks.filter((risk) => risk.relation === relation).map((risk) => `${risk.cause} (on ${risk.events.join(', ').toLowerCase()})`);
      const words = risks.some((risk) => risk.relation === relation && risk.effect === 'sequence') ? 'advance a sequence' : 'act outside the transaction';
      log(`sequences: ${relation} is not written where that would ${words} on this live database: ${causes.join('; ')}`);
    }
    const blocked: WriteBlock = (relation, event) => {
      const risk = writeRisk(catalog, risks, relation, [event]);
      if (!risk) return null;
      return {
        reason: `not ${event === 'INSERT' ? 'inserted into' : 'updated'} on this live database: that would ${riskWords(risk)} (${describeRisk(relation, risk)})`,
        hint: riskHint(risk),
      };
    };
    const lookup = plan.actors.lookup;
    if (lookup && (plan.roleSwitch || lookup.mode === 'own-row')) {
      // The actors' rows in the table the policies read the identity through: a role's name written, or a row inserted.
      const block = blocked(lookup.relation, plan.roleSwitch ? 'UPDATE' : 'INSERT');
      if (block) throw new AuditError(`the audit cannot give its actors their rows in ${lookup.relation} (the policies read the identity through it): ${block.reason}. Try: ${block.hint}.`);
    }
    if (plan.actors.kind === 'user' && plan.actors.membership && plan.actors.users) {
      for (const relation of [plan.actors.users.relation, plan.actors.membership.relation, ...(plan.actors.profile ? [plan.actors.profile.relation] : [])]) {
        const block = blocked(relation, 'INSERT');
        // Every probe acts as a user the audit creates there: without them nothing can be probed.
        if (block) throw new AuditError(`the audit's users and memberships cannot be created in ${relation}: ${block.reason}. Try: ${block.hint}.`);
      }
    }
    // The parts of a sharded run must seed the same tenants and rows: without a seed they share a fixed one.
    seedNumber = scenario.seed ?? (scenario.shard ? 1 : Math.floor(Math.random() * 2 ** 31));
    progress({ phase: 'seeding', completed: 0, total: 1 });
    // On a cluster that belongs to this run, the seed is committed and the precheck and the probes run over
    // `jobs` connections, each probe in its own rolled-back savepoint; anywhere else, on the audit's one
    // rolled-back transaction.
    const ownCluster = target.disposable && !options.target;
    // Tenant contexts set while seeding (insert triggers that read them) leave the setting defined on this
    // connection; the never-set state is then observed on a fresh one, which only sees a committed seed.
    seeded = await seed(session, catalog, plan, { tenants: scenario.tenants, rows: scenario.rows, seed: seedNumber, explicitKeys: !target.disposable, blocked, analysis, setContext: ownCluster });
    if (target.disposable) {
      // Materialized views were filled when the schema was applied, before any tenant existed.
      for (const relation of catalog.relations.filter((candidate) => candidate.kind === 'materialized-view')) {
        await session.savepoint(() => session.query(`refresh materialized view ${relationIdent(relation)}`), true);
      }
    }
    const actors = await seedIdentityLookup(session, catalog, plan, await seedActors(session, catalog, plan, seeded.tenants, seeded.ledger, seedNumber, !target.disposable), seeded.ledger, seedNumber, !target.disposable);
    for (const owned of await adoptOwnedRows(session, catalog, analysis, plan, actors, seeded.ledger, blocked)) {
      log(`actors: ${Object.values(owned.tenants).join('/')} row(s) of ${owned.relation} per tenant ${owned.relation === plan.actors.membership?.relation ? `give the tenant's users the most privileged ${owned.columns.join(', ')}` : `belong to the tenant's user (${owned.columns.join(', ')})`}`);
    }
    // Before any probe writes: the rows exactly as seeded.
    const replay = options.replay ? buildReplay(catalog, plan, seeded.ledger, actors) : null;
    if (typeof replay === 'string') throw new AuditError(`--format pgtap: ${replay}`);
    timings.seeding = clock.lap();
    progress({ phase: 'seeding', completed: 1, total: 1, step: `${seeded.rowsInserted} rows` });
    log(`seeded ${seeded.rowsInserted} rows for ${seeded.tenants.length} tenants`);

    for (const reason of coverageReasons(seeded, scenario)) inconclusive.add(reason);
    const context: ProbeContext = {
      session,
      catalog,
      analysis,
      plan,
      tenants: seeded.tenants,
      ledger: seeded.ledger,
      seedResults: seeded.results,
      scenario,
      access: await roleAccess(session, catalog, plan.role),
      connectionString: target.connectionString,
      disposable: target.disposable,
      sequenceRisks: risks,
      actors,
      record: (probe) => probes.push(probe),
      inconclusive: (reason) => inconclusive.add(reason),
    };
    context.forcedScans = await forcedFullScans(context);
    forcedScans = context.forcedScans;
    const jobs = ownCluster ? scenario.jobs : 1;
    if (ownCluster) await session.commit();
    const neverSetStatements = readTargets(context, (relation) => sourcesOf(context, relation)).map((target) => target.statement);
    if (seeded.contextSet) {
      const fresh = await AuditSession.open(target.connectionString, { bounds: DEFAULT_BOUNDS });
      try {
        context.neverSet = await snapshotNeverSet({ ...context, session: fresh }, neverSetStatements);
      } finally {
        session.queries += fresh.queries;
        await fresh.end();
      }
    } else context.neverSet = await snapshotNeverSet(context, neverSetStatements);
    const shard = scenario.shard ? parseShard(scenario.shard) : null;
    const workers: AuditSession[] = [];
    let run: ProbeRun;
    try {
      for (let job = 1; job < jobs; job += 1) {
        const worker = await AuditSession.open(target.connectionString, { bounds: DEFAULT_BOUNDS });
        worker.setDeadline(deadline, limitReason);
        workers.push(worker);
        sessions.push(worker);
      }
      await checkContextSql(session, plan);
      for (const reason of await confirmContext(context, prepared, log, [session, ...workers])) inconclusive.add(reason);
      const units = planUnits(PROBES, shard, jobs);
      progress({ phase: 'probes', completed: 0, total: units.length });
      run = await runPlan(context, units, [session, ...workers], runProbe, (completed, total, probe) => progress({ phase: 'probes', completed, total, step: probe }));
    } finally {
      for (const worker of workers) {
        session.queries += worker.queries;
        await worker.end();
      }
    }
    probeFindings.push(...run.findings);
    probes.push(...run.records);
    Object.assign(timings.perProbe, run.perProbe);
    timings.probes = clock.lap();
    const report = buildReport('run', scenario, prepared, seeded, seedNumber, { ruleFindings, probeFindings, probes, complete: true }, startedAt, timings, options, inconclusive, forcedScans);
    if (sequencesBefore) {
      const moved = movedSequences(sequencesBefore, await readSequences(session));
      if (moved.length) addNote(report, remark(`sequences that moved during the audit (by the audit's writes or by the application meanwhile): ${moved.join(', ')}`));
    }
    report.coverage = familyCoverage(context);
    if (replay) report.replay = replay;
    if (shard) report.shard = { index: shard.index + 1, count: shard.count, ruleFindings, probeFindings, accept: scenario.accept };
    timings.report = clock.lap();
    timings.total = Date.now() - clock.started;
    return report;
  } catch (failure) {
    // A lock another session holds (a migration): said with the relation, the holder and what to do.
    if (isLockTimeout(failure) && !session.expiredReason) {
      throw await lockTimeoutError(failure, {
        connection: target.connectionString,
        bounds: target.disposable ? DEFAULT_BOUNDS : LIVE_BOUNDS,
        doing: seeded ? `probing as ${plan.role}` : 'seeding its tenants\' rows',
        statement: session.lastStatement,
      });
    }
    // The statement that was running when time ran out fails with "canceling statement": that is the timeout too.
    const error = failure instanceof AuditTimeout ? failure : session.expiredReason ? new AuditTimeout(session.expiredReason) : null;

    if (!error) throw failure;
    // What was done so far: rule findings as they stand (grouped with the probes' findings, never refuted), the probes that ran.
    inconclusive.add({
      reason: `${error.message}: ${seeded ? 'not every probe ran' : 'seeding had not finished'}, so what did not run proves nothing`,
      hint: 'raise --timeout (e.g. --timeout 2h), or audit fewer tenants or rows (--tenants, --rows)',
    });
    const partial = buildReport('run', scenario, prepared, seeded, seedNumber, { ruleFindings, probeFindings, probes, complete: false }, startedAt, timings, options, inconclusive, forcedScans);
    const ran = new Set(probes.map((probe) => probe.check)).size;
    addNote(partial, remark(`${error.message} after ${Math.round((Date.now() - clock.started) / 1000)} s, ${seeded ? `during the probes (${ran} of ${PROBES.length} checks had run)` : 'before seeding had finished'}: this report is partial and proves nothing about what did not run. Raise --timeout, or audit fewer tenants or rows.`));
    timings.total = Date.now() - clock.started;
    error.message = `${error.message}: the report holds what was done so far (${probes.length} probe statements); nothing was committed.`;
    error.report = partial;
    throw error;
  } finally {
    clearTimeout(timer);
    await prepared.close();
  }
}
