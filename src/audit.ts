import type { Analysis } from './analysis/index.js';

import type { Catalog } from './catalog/types.js';
import { AuditError, AuditTimeout, errorMessage } from './errors.js';
import type { Baseline } from './findings/baseline.js';
import type { Finding } from './findings/finding.js';
import type { TenancyPlan } from './plan/tenancy.js';
import { roleAccess } from './probes/access.js';
import { familyCoverage } from './probes/coverage.js';
import { parseShard, planUnits, runPlan, type ProbeRun } from './probes/schedule.js';
import { PROBES } from './probes/registry.js';
import { RULES } from './rules/registry.js';
import type { Probe, ProbeContext, ProbeRecord } from './probes/types.js';
import type { Report } from './report/model.js';
import { parseScenario } from './scenario/load.js';
import type { ScenarioInput } from './scenario/schema.js';
import type { SeedOutcome, WriteBlock } from './seed/outcome.js';
import { seed } from './seed/seed.js';
import { seedActors } from './seed/actors.js';
import { adoptOwnedRows } from './seed/owned.js';
import { seedIdentityLookup } from './seed/identity.js';
import { AuditSession } from './target/session.js';
import { describeRisk, movedSequences, readSequences, riskHint, riskWords, sequenceRisks, writeRisk } from './target/sequences.js';
import { relationIdent } from './target/sql.js';
import type { Target } from './target/index.js';
import { isLockTimeout, lockTimeoutError } from './target/locks.js';
import { DEFAULT_BOUNDS, LIVE_BOUNDS } from './target/connect.js';
import { Inconclusive } from './findings/verdict.js';
import { buildReplay } from './report/replay.js';
import { addNote, remark } from './report/notes.js';
import { snapshotNeverSet, sourcesOf } from './probes/context.js';
import { forcedFullScans, readTargets } from './probes/targets.js';
import { prepare, newTimings, Stopwatch } from './audit/prepare.js';
import { checkContextSql, checkUserSql, confirmContext } from './audit/guards.js';
import { buildReport, copyReasons, coverageReasons } from './audit/report.js';

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

function evaluateRules(catalog: Catalog, plan: TenancyPlan, analysis: Analysis): Finding[] {
  return RULES.flatMap((rule) => rule.evaluate({ catalog, plan, analysis }));
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
    const pacer = session.pacer;
    if (pacer?.pausedMs) {
      timings.paused = Math.round(pacer.pausedMs);
      addNote(report, remark(`paced (--pace ${pacer.share}): on a database it does not own, the audit paused between its statements so that its connection kept the server busy at most ${Math.round(pacer.share * 100)}% of the time and left it to the application in between (timings.paused says how long; --pace 1 runs without pause)`));
    }
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
