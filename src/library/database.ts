import pg from 'pg';
import { audit, lint, type AuditOptions } from '../audit.js';
import { introspect } from '../catalog/introspect.js';
import type { Catalog } from '../catalog/types.js';
import { loadParser } from '../analysis/parse.js';
import { userSqlProblem } from '../analysis/statements.js';
import { AuditError } from '../errors.js';
import { planTenancy, type TenancyPlan } from '../plan/tenancy.js';
import { PRESETS } from '../presets/index.js';
import type { Report } from '../report/model.js';
import { applySchemaFiles, readSchemaFiles } from '../target/schema-files.js';
import { parseScenario } from '../scenario/load.js';
import type { Scenario, ScenarioInput } from '../scenario/schema.js';
import { seed } from '../seed/seed.js';
import { contextStatementOf, seedActors, type Actor, type Actors } from '../seed/actors.js';
import { seedIdentityLookup } from '../seed/identity.js';
import type { Tenant } from '../seed/ledger.js';
import { blankComments } from '../target/sent-sql.js';
import { AuditSession } from '../target/session.js';
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
  /**
   * As `asTenant`, for a signed-in user where users belong to tenants through memberships (Supabase,
   * PostgREST): `tenants` names the tenants the user belongs to: `A` (or `['A']`) the user of tenant A,
   * `['A', 'B']` the user seeded as a member of the first two tenants, `[]` the user of no tenant.
   */
  asUser<Row extends object = Record<string, unknown>>(
    tenants: string | string[],
    work: (connection: TenantConnection, user: SeededUser) => Promise<TenantQueryResult<Row>>,
  ): Promise<AttributedRow<Row>[]>;
  /** Stop the cluster and delete its data directory. */
  close(): Promise<void>;
}

/** A seeded user as a test sees it: its id (the JWT's `sub`) and the tenants it belongs to. */
export interface SeededUser {
  id: string;
  label: string;
  tenants: SeededTenant[];
}

/**
 * A throwaway PostgreSQL for one test file: started once, the scenario's schema applied once, and every
 * `audit()` and `asTenant()` in a transaction of its own that is rolled back, so they can run in any order.
 */
function tenantNamed(tenants: Tenant[], name: string): Tenant {
  const tenant = tenants.find((candidate) => tenantMatches(candidate, name));
  if (!tenant) throw new AuditError(`no seeded tenant ${name}: the tenants are ${tenants.map((entry) => `${entry.label} (${entry.id})`).join(', ')}`);
  return tenant;
}

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
      // What the platform creates before any migration runs (preset: 'supabase'), then the schema.
      const presetSetup = scenario.preset ? PRESETS[scenario.preset].setupSql : null;
      if (presetSetup) await admin.query(presetSetup);
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

  /**
   * Seed the tenants (rolled back afterwards), then run `work` as the application role in the context of the
   * actor `choose` picks, and attribute the rows it returns.
   */
  async function runAs<Row extends object, Who>(
    method: 'asTenant' | 'asUser',
    choose: (tenants: Tenant[], actors: Actors) => { actor: Actor; who: Who },
    work: (connection: TenantConnection, who: Who) => Promise<TenantQueryResult<Row>>,
  ): Promise<AttributedRow<Row>[]> {
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
      // Rows of tables whose insert triggers read the tenant setting go in with it set: nothing here observes the never-set state.
      const seeded = await seed(session, catalog, plan, { tenants: scenario.tenants, rows: scenario.rows, seed: scenario.seed ?? 1, setContext: true });
      const actors = await seedIdentityLookup(session, catalog, plan, await seedActors(session, catalog, plan, seeded.tenants, seeded.ledger, scenario.seed ?? 1), seeded.ledger, scenario.seed ?? 1);
      const { actor, who } = choose(seeded.tenants, actors);
      const rows = await session.savepoint(
        async () => {
          const setter = contextStatementOf(plan, actor);
          if (setter.origin === 'application') await session.userQuery(setter.text, setter.values, 'the context SQL', actor.role ? [actor.role] : []);
          else await session.query(setter.text, setter.values);
          const transaction = await session.query('select txid_current() as id');
          const connection: TenantConnection = {
            query: async <Row extends object>(text: string, values: unknown[] = []) => {
              const problem = userSqlProblem(text, 'query');
              if (problem) throw new AuditError(`${method} cannot run ${JSON.stringify(text)}: ${problem}`);
              // One statement over the extended protocol (the session's connection sends nothing else), comments as spaces.
              const result = await session.client.query({ text: blankComments(text), values });
              return { rows: result.rows as Row[], rowCount: result.rowCount ?? 0 };
            },
          };
          const returned = await work(connection, who);
          // The application's SQL must not have ended the transaction the seed rows live in.
          const after = await session.query('select txid_current() as id').catch(() => ({ rows: [{ id: null }] }));
          if (after.rows[0]?.id !== transaction.rows[0]?.id) throw new AuditError(`the queries run as ${actor.label} ended the audit's transaction: ${method} must not commit or roll back`);
          return 'rows' in returned ? [...returned.rows] : [...returned];
        },
        false,
        [session.roleStatement(plan.role)],
      );
      return rows.map((row) => ({ row, owner: attributeRow(row, plan, seeded.ledger) }));
    } finally {
      await session.end();
    }
  }

  return {
    target,
    scenario,
    audit: (overrides = {}, extra = {}) => audit({ ...scenario, ...overrides }, { ...extra, ...options }),
    lint: (overrides = {}, extra = {}) => lint({ ...scenario, ...overrides }, { ...extra, ...options }),
    asTenant: <Row extends object>(name: string, work: (connection: TenantConnection, tenant: SeededTenant) => Promise<TenantQueryResult<Row>>) =>
      runAs<Row, SeededTenant>('asTenant', (tenants, actors) => {
        const tenant = tenantNamed(tenants, name);
        return { actor: actors.primary.get(tenant.id)!, who: { id: tenant.id, label: tenant.label } };
      }, work),
    asUser: <Row extends object>(names: string | string[], work: (connection: TenantConnection, user: SeededUser) => Promise<TenantQueryResult<Row>>) =>
      runAs<Row, SeededUser>('asUser', (tenants, actors) => {
        if (actors.kind !== 'user') throw new AuditError(`asUser needs users who belong to tenants, and the probes here run as ${actors.kind === 'role' ? 'a role per tenant' : 'tenants'}: use asTenant`);
        const wanted = (Array.isArray(names) ? names : [names]).map((name) => tenantNamed(tenants, name).id).sort();
        const users = [...actors.primary.values(), actors.multi, actors.outsider].filter((actor): actor is Actor => actor !== null && actor.user !== null);
        const actor = users.find((candidate) => candidate.tenants.map((tenant) => tenant.id).sort().join('\0') === wanted.join('\0'));
        if (!actor) throw new AuditError(`no seeded user belongs to exactly ${wanted.length ? wanted.join(', ') : 'no tenant'}: the users are ${users.map((entry) => `${entry.label} (${entry.user})`).join(', ')}`);
        return { actor, who: { id: actor.user!, label: actor.label, tenants: actor.tenants.map((tenant) => ({ id: tenant.id, label: tenant.label })) } };
      }, work),
    close: () => target.close(),
  };
}
