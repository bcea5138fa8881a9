import pg from 'pg';
import { audit, lint, type AuditOptions } from '../audit.js';
import { introspect } from '../catalog/introspect.js';
import type { Catalog } from '../catalog/types.js';
import { loadParser } from '../analysis/parse.js';
import { userSqlProblem } from '../analysis/statements.js';
import { AuditError } from '../errors.js';
import { planTenancy, type TenancyPlan } from '../plan/tenancy.js';
import type { Report } from '../report/model.js';
import { applySchemaFiles, readSchemaFiles } from '../schema-files.js';
import { parseScenario } from '../scenario/load.js';
import type { Scenario, ScenarioInput } from '../scenario/schema.js';
import { seed } from '../seed/seed.js';
import { contextStatementOf, seedActors } from '../seed/actors.js';
import { blankComments } from '../sent-sql.js';
import { AuditSession } from '../session.js';
import { openTarget, type Target } from '../target/index.js';
import { attributeRow, tenantMatches, type AttributedRow, type SeededTenant } from './attribution.js';

/** What the application's code gets inside `asTenant`: a connection as the application role, in the tenant's context. */
export interface TenantConnection {
  /** Run a query as the application would (parameters `$1`, `$2`, ...); values come back typed as `pg` types them. */
  query<Row extends object = Record<string, unknown>>(text: string, values?: unknown[]): Promise<{ rows: Row[]; rowCount: number }>;
}

export type TenantQueryResult<Row extends object> = readonly Row[] | { rows: readonly Row[] };

export interface AuditDatabase {
  /** The running cluster (a superuser connection string); the schema is applied and committed. */
  readonly target: Target;
  /** The scenario every audit starts from, defaults applied. */
  readonly scenario: Scenario;
  /** Audit the database in one transaction that is rolled back; `overrides` change the scenario for this audit only. */
  audit(overrides?: Partial<ScenarioInput>, options?: Omit<AuditOptions, 'target' | 'schemaApplied'>): Promise<Report>;
  /** The static rules alone, read-only. */
  lint(overrides?: Partial<ScenarioInput>, options?: Omit<AuditOptions, 'target' | 'schemaApplied'>): Promise<Report>;
  /**
   * Seed the scenario's tenants (in a transaction that is rolled back afterwards), then run `work` as the
   * application role with `tenant`'s context set the way the application sets it (`tenant`: `A`, `tenant A`
   * or a tenant id). Returns the rows `work` returns, each with the tenant it belongs to.
   */
  asTenant<Row extends object = Record<string, unknown>>(
    tenant: string,
    work: (connection: TenantConnection, tenant: SeededTenant) => Promise<TenantQueryResult<Row>>,
  ): Promise<AttributedRow<Row>[]>;
  /** Stop the cluster and delete its data directory. */
  close(): Promise<void>;
}

/**
 * A throwaway PostgreSQL for one test file: started once, the scenario's schema applied once, and every
 * `audit()` and `asTenant()` in a transaction of its own that is rolled back, so they can run in any order.
 */
export async function createAuditDatabase(input: ScenarioInput): Promise<AuditDatabase> {
  const scenario = await parseScenario(input, 'the scenario given to createAuditDatabase()');
  if (scenario.target.kind === 'url') {
    throw new AuditError('createAuditDatabase starts a database of its own: for an existing database, call audit() with target: { kind: "url", url }');
  }
  const schemaFiles = await readSchemaFiles(scenario.schema);
  const target = await openTarget(scenario);
  try {
    const admin = new pg.Client({ connectionString: target.connectionString });
    await admin.connect();
    try {
      await applySchemaFiles(schemaFiles, (sql) => admin.query(sql));
    } finally {
      await admin.end();
    }
  } catch (error) {
    await target.close();
    throw error;
  }

  let planned: Promise<{ catalog: Catalog; plan: TenancyPlan }> | undefined;
  const options = { target, schemaApplied: true };
  return {
    target,
    scenario,
    audit: (overrides = {}, extra = {}) => audit({ ...scenario, ...overrides }, { ...extra, ...options }),
    lint: (overrides = {}, extra = {}) => lint({ ...scenario, ...overrides }, { ...extra, ...options }),
    async asTenant<Row extends object>(name: string, work: (connection: TenantConnection, tenant: SeededTenant) => Promise<TenantQueryResult<Row>>): Promise<AttributedRow<Row>[]> {
      await loadParser();
      const session = await AuditSession.open(target.connectionString);
      try {
        // The schema does not change between calls: read the catalog and plan the tenancy once.
        planned ??= (async () => {
          const catalog = await introspect(session.client, scenario.schemas);
          return { catalog, plan: planTenancy(catalog, scenario) };
        })().catch((error: unknown) => {
          planned = undefined;
          throw error;
        });
        const { catalog, plan } = await planned;
        const seeded = await seed(session, catalog, plan, { tenants: scenario.tenants, rows: scenario.rows, seed: scenario.seed ?? 1 });
        const actors = await seedActors(session, catalog, plan, seeded.tenants, seeded.ledger, scenario.seed ?? 1);
        const tenant = seeded.tenants.find((candidate) => tenantMatches(candidate, name));
        if (!tenant) throw new AuditError(`no seeded tenant ${name}: the tenants are ${seeded.tenants.map((entry) => `${entry.label} (${entry.id})`).join(', ')}`);
        const rows = await session.savepoint(
          async () => {
            const actor = actors.primary.get(tenant.id)!;
            const setter = contextStatementOf(plan, actor);
            if (setter.userSql) await session.userQuery(setter.text, setter.values, 'the context SQL', actor.role ? [actor.role] : []);
            else await session.query(setter.text);
            const transaction = await session.query('select txid_current() as id');
            const connection: TenantConnection = {
              query: async <Row extends object>(text: string, values: unknown[] = []) => {
                const problem = userSqlProblem(text, 'query');
                if (problem) throw new AuditError(`asTenant cannot run ${JSON.stringify(text)}: ${problem}`);
                // One statement over the extended protocol (the session's connection sends nothing else), comments as spaces.
                const result = await session.client.query({ text: blankComments(text), values });
                return { rows: result.rows as Row[], rowCount: result.rowCount ?? 0 };
              },
            };
            const returned = await work(connection, { id: tenant.id, label: tenant.label });
            // The application's SQL must not have ended the transaction the seed rows live in.
            const after = await session.query('select txid_current() as id').catch(() => ({ rows: [{ id: null }] }));
            if (after.rows[0]?.id !== transaction.rows[0]?.id) throw new AuditError(`the queries run as ${tenant.label} ended the audit's transaction: asTenant must not commit or roll back`);
            return 'rows' in returned ? [...returned.rows] : [...returned];
          },
          false,
          [session.roleStatement(plan.role)],
        );
        return rows.map((row) => ({ row, owner: attributeRow(row, plan, seeded.ledger) }));
      } finally {
        await session.end();
      }
    },
    close: () => target.close(),
  };
}
