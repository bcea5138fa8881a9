import type { Relation } from '../catalog/types.js';
import { AuditError } from '../errors.js';
import type { SampleRow } from '../findings.js';
import type { RelationPlan } from '../plan/tenancy.js';
import type { Ledger, Tenant } from '../seed/ledger.js';
import type { AuditSession, QueryOutcome, RawRow } from '../session.js';
import { ident, inlineParameters, literal } from '../sql.js';
import type { ProbeContext } from './types.js';

/** The tenant context a probe runs under: a tenant, or one of the ways "no tenant" really occurs. */
export type ContextState =
  | { kind: 'tenant'; tenant: Tenant }
  | { kind: 'never-set' }
  | { kind: 'empty' }
  | { kind: 'unknown-tenant'; id: string };

export function contextLabel(state: ContextState): string {
  switch (state.kind) {
    case 'tenant':
      return state.tenant.label;
    case 'never-set':
      return 'never set';
    case 'empty':
      return 'empty string';
    case 'unknown-tenant':
      return 'unknown tenant';
  }
}

export function describeContext(context: ProbeContext, state: ContextState): string {
  const { setting, role } = context.plan;
  switch (state.kind) {
    case 'tenant':
      return `role ${role}, ${setting} = '${state.tenant.id}' (${state.tenant.label})`;
    case 'never-set':
      return `role ${role} on a fresh connection where ${setting} was never set (current_setting(..., true) is NULL)`;
    case 'empty':
      return `role ${role} after a transaction that set ${setting} ended (the setting now reads '')`;
    case 'unknown-tenant':
      return `role ${role}, ${setting} = '${state.id}' (no such tenant)`;
  }
}

/** A tenant id of the key's type that no tenant has. */
export function unknownTenantId(baseType: string, tenants: Tenant[]): string {
  const candidates: Record<string, string> = {
    int2: '32123',
    int4: '2100000001',
    int8: '9100000000000000001',
    numeric: '2100000001',
    uuid: '00000000-0000-4000-8000-00000000dead',
  };
  const id = candidates[baseType] ?? 'rls-audit-no-such-tenant';
  return tenants.some((tenant) => tenant.id === id) ? `${id.slice(0, -1)}7` : id;
}

function setterSql(context: ProbeContext, tenantId: string): string {
  return `${inlineParameters(context.plan.contextSql, [tenantId]).replace(/;\s*$/, '')};`;
}

/** psql-ready SQL that reproduces `statement` under `state`. */
export function reproduction(context: ProbeContext, state: ContextState, statement: string, params: readonly (string | number | boolean | null)[] = []): string {
  const role = `set local role ${ident(context.plan.role)};`;
  const body = `${inlineParameters(statement, params).replace(/;\s*$/, '')};`;
  switch (state.kind) {
    case 'tenant':
      return [`begin;`, role, `${setterSql(context, state.tenant.id)}  -- ${state.tenant.label}`, body, `rollback;`].join('\n');
    case 'unknown-tenant':
      return [`begin;`, role, `${setterSql(context, state.id)}  -- no such tenant`, body, `rollback;`].join('\n');
    case 'never-set':
      return [`-- on a new connection, before anything sets ${context.plan.setting}`, `begin;`, role, body, `rollback;`].join('\n');
    case 'empty':
      return [
        `-- on one connection: a request's transaction sets the tenant and ends`,
        `begin;`,
        role,
        setterSql(context, context.tenants[0]!.id),
        `commit;  -- ${context.plan.setting} now reads ${literal('')} on this connection`,
        `begin;`,
        role,
        body,
        `rollback;`,
      ].join('\n');
  }
}

export interface RunResult {
  rows: RawRow[];
  rowCount: number;
  error?: { message: string; code?: string };
  /** The context SQL itself failed: the statement never ran. */
  contextFailed?: boolean;
}

/**
 * Set the tenant as the application does. The audit's own setter (set_config of the discovered setting, or a
 * preset's) is a prepared statement reused on the connection; the application's SQL (`contextSql` in the
 * scenario) goes through userQuery, which proves after every run that it left the transaction alone.
 */
export function setContext(context: ProbeContext, session: AuditSession, tenantId: string): Promise<QueryOutcome> {
  if (context.scenario.contextSql !== undefined) return session.userQuery(context.plan.contextSql, [tenantId], 'the context SQL');
  return session.query(context.plan.contextSql, [tenantId], 'rls_audit_set_context');
}

/**
 * Run `statement` as the application role under `state`, inside a savepoint that is rolled back.
 * Errors are returned, not thrown: an error is often the finding.
 */
export async function runAs(
  context: ProbeContext,
  state: ContextState,
  statement: string,
  params: unknown[] = [],
  options: { name?: string; before?: string[]; userSql?: string } = {},
): Promise<RunResult> {
  const { session, plan } = context;
  if (state.kind === 'never-set' && !params.length && !options.before?.length) {
    const snapshot = context.neverSet?.get(statement);
    if (snapshot) return snapshot;
  }
  return session.savepoint(
    async () => {
      try {
        if (state.kind === 'tenant' || state.kind === 'unknown-tenant') {
          await setContext(context, session, state.kind === 'tenant' ? state.tenant.id : state.id);
        } else if (state.kind === 'empty') {
          // A transaction-local setting that ended: set it in a nested savepoint and roll that back.
          await session.savepoint(() => setContext(context, session, context.tenants[0]!.id));
        }
      } catch (error) {
        // The context SQL broke out of the audit's transaction: the audit stops (see AuditSession.userQuery).
        if (error instanceof AuditError) throw error;
        const failure = error as { message?: string; code?: string };
        return { rows: [], rowCount: 0, error: { message: `the context SQL failed: ${failure.message ?? String(error)}`, code: failure.code }, contextFailed: true };
      }
      if (options.before?.length) await session.query(options.before.join('; '));
      // No savepoint of its own: an error aborts only this savepoint, which is rolled back anyway.
      try {
        const result = options.userSql ? await session.userQuery(statement, params, options.userSql) : await session.query(statement, params, options.name);
        return { rows: result.rows, rowCount: result.rowCount };
      } catch (error) {
        if (error instanceof AuditError) throw error;
        const failure = error as { message?: string; code?: string };
        return { rows: [], rowCount: 0, error: { message: failure.message ?? String(error), code: failure.code } };
      }
    },
    false,
    [session.roleStatement(plan.role)],
  );
}

/**
 * Read every relation the role may select from before anything sets a context on the audit's connection:
 * once a transaction has set a setting, the session reads '' for it, never NULL again, and the context
 * precheck and discovery set candidate contexts before the probes run. `runAs` answers the "never set"
 * state from this snapshot.
 */
export async function snapshotNeverSet(context: ProbeContext, statements: string[]): Promise<Map<string, RunResult>> {
  const snapshot = new Map<string, RunResult>();
  for (const statement of new Set(statements)) snapshot.set(statement, await runAs(context, { kind: 'never-set' }, statement));
  return snapshot;
}

export type Attribution =
  | { kind: 'tenant'; tenant: Tenant; via: 'tenant column' | 'seeded key' | 'canary' }
  | { kind: 'other-tenant'; value: string }
  | { kind: 'shared' }
  | { kind: 'unattributed' };

/** Which tenant a returned row belongs to: by tenant column, by seeded key, or by canary. */
export function attribute(row: RawRow, relationPlan: RelationPlan, relation: Relation, ledger: Ledger, tenantColumns: string[], sources: string[]): Attribution {
  const tenantColumn = relationPlan.tenantColumn && relationPlan.tenantColumn in row ? relationPlan.tenantColumn : tenantColumns.find((column) => column in row);
  if (tenantColumn) {
    const value = row[tenantColumn];
    if (value !== null && value !== undefined) {
      const tenant = ledger.tenant(value);
      return tenant ? { kind: 'tenant', tenant, via: 'tenant column' } : { kind: 'other-tenant', value };
    }
  }
  for (const source of [relation.qualified, ...sources]) {
    const seeded = ledger.findByKey(source, row);
    if (seeded) {
      if (seeded.tenant === null) return { kind: 'shared' };
      return { kind: 'tenant', tenant: ledger.tenant(seeded.tenant)!, via: 'seeded key' };
    }
  }
  const byCanary = ledger.tenantsByCanary(row);
  if (byCanary.length === 1) return { kind: 'tenant', tenant: byCanary[0]!, via: 'canary' };
  if (byCanary.length > 1) return { kind: 'other-tenant', value: byCanary.map((tenant) => tenant.id).join('+') };
  return relationPlan.tenancy === 'shared' ? { kind: 'shared' } : { kind: 'unattributed' };
}

/** Mask a row for evidence: keys, tenant columns and canaries stay readable, other values do not. */
export function maskRow(row: RawRow, keep: Set<string>, tenants: Tenant[]): SampleRow {
  const masked: SampleRow = {};
  for (const [column, value] of Object.entries(row)) {
    if (value === null || keep.has(column)) {
      masked[column] = value;
      continue;
    }
    const canaries = tenants.filter((tenant) => value.includes(tenant.canary)).map((tenant) => `canary of ${tenant.label}`);
    const hidden = value.length <= 2 ? '*'.repeat(value.length) : `${value.slice(0, 2)}${'*'.repeat(Math.min(6, value.length - 2))}`;
    masked[column] = canaries.length ? `${hidden} [${canaries.join(', ')}]` : hidden;
  }
  return masked;
}

/** Relations a view reads, transitively: where its rows' seeded keys are looked up. */
export function sourcesOf(context: ProbeContext, relation: Relation): string[] {
  const byName = new Map(context.catalog.relations.map((candidate) => [candidate.qualified, candidate]));
  const seen = new Set<string>();
  const queue = [...relation.dependsOn, ...(relation.partitionOf ? [relation.partitionOf] : []), ...relation.inheritsFrom];
  while (queue.length) {
    const name = queue.shift()!;
    if (seen.has(name)) continue;
    seen.add(name);
    const source = byName.get(name);
    if (source) queue.push(...source.dependsOn);
  }
  // Partitions hold their parent's seeded rows.
  for (const candidate of context.catalog.relations) if (candidate.partitionOf === relation.qualified) seen.add(candidate.qualified);
  return [...seen];
}
