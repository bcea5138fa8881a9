/** Reaching the database, applying the schema, introspecting and planning: what `lint` and `audit` start with. */
import { analyze, loadParser, type Analysis } from '../analysis/index.js';
import { introspect } from '../catalog/introspect.js';
import type { Catalog } from '../catalog/types.js';
import { AuditError } from '../errors.js';
import { planTenancy, type TenancyPlan } from '../plan/tenancy.js';
import type { Report } from '../report/model.js';
import type { Scenario } from '../scenario/schema.js';
import { applySchemaFiles, readSchemaFiles, type SchemaFile } from '../target/schema-files.js';
import { runScript } from '../target/sent-sql.js';
import { AuditSession, pending } from '../target/session.js';
import { openTarget, type Target } from '../target/index.js';
import { isLockTimeout, lockTimeoutError } from '../target/locks.js';
import { connect, DEFAULT_BOUNDS, LIVE_BOUNDS } from '../target/connect.js';
import { PRESETS } from '../presets/index.js';

import type { AuditOptions } from '../audit.js';

export class Stopwatch {
  private last = Date.now();
  readonly started = Date.now();
  lap(): number {
    const now = Date.now();
    const elapsed = now - this.last;
    this.last = now;
    return elapsed;
  }
}
export interface Prepared {
  schemaFiles: SchemaFile[];
  target: Target;
  session: AuditSession;
  catalog: Catalog;
  analysis: Analysis;
  plan: TenancyPlan;
}

/** Reach the database, apply the schema, open the audit transaction, introspect and plan. */
export async function prepare(scenario: Scenario, options: AuditOptions, timings: Report['timings'], clock: Stopwatch, readOnly: boolean): Promise<Prepared & { close(): Promise<void> }> {
  const log = options.log ?? (() => undefined);
  const progress = options.progress ?? (() => undefined);
  // The parser compiles (WASM) while the cluster starts, when this process would otherwise only wait.
  const parser = pending(loadParser());
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
    await parser;
    if (commitSchema && (toApply.length || presetSetup)) {
      const admin = await connect(target.connectionString, DEFAULT_BOUNDS);
      try {
        if (presetSetup) await runScript(admin, presetSetup);
        await applySchemaFiles(toApply, (sql) => runScript(admin, sql));
      } finally {
        await admin.end();
      }
    }
    session = await AuditSession.open(target.connectionString, {
      readOnly: readOnly && !(toApply.length && !commitSchema),
      bounds: target.disposable ? DEFAULT_BOUNDS : LIVE_BOUNDS,
      // On a database it does not own, the audit leaves the server time between its statements.
      pace: target.disposable ? 1 : scenario.pace,
    });
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
export function newTimings(): Report['timings'] {
  return { start: 0, schema: 0, introspection: 0, seeding: 0, probes: 0, report: 0, total: 0, perProbe: {} };
}
