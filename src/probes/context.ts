import { withoutTerminator } from '../analysis/sql-text.js';
import type { Relation } from '../catalog/types.js';
import { AuditError } from '../errors.js';
import type { SampleRow } from '../findings/finding.js';
import type { RelationPlan, TenancyPlan } from '../plan/tenancy.js';
import { roleNameOf } from '../plan/actors.js';
import { contextStatementOf, contextValuesOf, type Actor } from '../seed/actors.js';
import type { Ledger, Tenant } from '../seed/ledger.js';
import { pending, type QueryOutcome, type RawRow } from '../target/session.js';
import { ident, inlineParameters, lineComment, literal } from '../target/sql.js';
import type { ProbeContext } from './types.js';
import { columnOf, relationOf } from '../catalog/lookup.js';

/**
 * The context a probe runs under: a tenant (as the actor that stands for it), another actor (a user in
 * two tenants, a user in none), or one of the ways "no tenant" really occurs.
 */
export type ContextState =
  | { kind: 'tenant'; tenant: Tenant }
  | { kind: 'actor'; actor: Actor }
  | { kind: 'never-set' }
  | { kind: 'empty' }
  | { kind: 'unknown-tenant'; id: string }
  /** A request with no credentials at all: the platform's anonymous role (Supabase anon), no claims. */
  | { kind: 'anonymous'; role: string };

export function contextLabel(state: ContextState): string {
  switch (state.kind) {
    case 'tenant':
      return state.tenant.label;
    case 'actor':
      return state.actor.label;
    case 'never-set':
      return 'never set';
    case 'empty':
      return 'empty string';
    case 'unknown-tenant':
      return 'unknown tenant';
    case 'anonymous':
      return `anonymous (${state.role})`;
  }
}

/** The actor a probe "as tenant X" runs as: the tenant itself, its user, or its role. */
export function actorOf(context: ProbeContext, tenant: Tenant): Actor {
  return context.actors?.primary.get(tenant.id) ?? { label: tenant.label, tenants: [tenant], user: null, role: null };
}

/**
 * The tenants whose rows `actor` may see: its own, and those the platform made for it alone when the audit
 * created it (a personal account; see `Actor.personal`). Rows of any other tenant are foreign to it.
 */
export function visibleTenantIds(actor: Actor): Set<string> {
  return new Set([...actor.tenants, ...(actor.personal ?? [])].map((tenant) => tenant.id));
}

/** The tenants the platform made for the actor of `tenant` alone (see `Actor.personal`): their rows are its own to see, not foreign. */
export function personalOf(context: ProbeContext, tenant: Tenant): Set<string> {
  return new Set((actorOf(context, tenant).personal ?? []).map((personal) => personal.id));
}

/** The actor of a tenant id no tenant has: a user no one is, a role that does not exist. */
function unknownActor(context: ProbeContext, id: string): Actor {
  const { actors } = context.plan;
  const user = actors.kind === 'user' ? (actors.membership ? unknownTenantId(actors.users!.baseType, []) : id) : null;
  const role = actors.kind === 'role' ? roleNameOf(actors.roleTemplate!, id) : null;
  // Read through a table: a key of its type that no row has (a session id no one holds).
  const lookup = actors.lookup ? columnOf(relationOf(context.catalog, actors.lookup.relation), actors.lookup.keyColumn) : undefined;
  return { label: 'unknown tenant', tenants: [], user, role, ...(lookup && !role ? { key: unknownTenantId(lookup.baseType, []) } : {}) };
}

/** Values for the context SQL's parameters ($tenant, $user, $role), in its positional order. */
export function contextValues(context: ProbeContext, actor: Actor, tenantId: string | null = actor.tenants[0]?.id ?? null): (string | null)[] {
  return contextValuesOf(context.plan, actor, tenantId);
}

/**
 * Set `actor`'s context as the application does. The application's SQL (`contextSql` in the scenario) goes
 * through userQuery, which proves after every run that it left the transaction alone: nothing may be sent
 * before it has answered (`mustWait`). The audit's own setter (a discovered setting, a preset's claims) is
 * a prepared statement reused on the connection, named after its text (discovery may switch to another); a
 * role per tenant is the audit's own `set local role`. Both are only sent: their outcome is read later.
 */
export function sendContext(context: ProbeContext, actor: Actor, tenantId?: string | null): { outcome: Promise<unknown>; mustWait: boolean } {
  const { session } = context;
  const statement = contextStatementOf(context.plan, actor, tenantId);
  if (statement.origin === 'application') {
    return { outcome: pending(session.userQuery(statement.text, statement.values, 'the context SQL', actor.role ? [actor.role] : [])), mustWait: true };
  }
  if (!statement.values.length) return { outcome: session.send(statement.text), mustWait: false };
  return { outcome: session.send(statement.text, statement.values, `rls_audit_set_context_${textHash(statement.text)}`), mustWait: false };
}

export async function setContext(context: ProbeContext, actor: Actor, tenantId?: string | null): Promise<void> {
  await sendContext(context, actor, tenantId).outcome;
}

function textHash(text: string): string {
  let hash = 0;
  for (const char of text) hash = (Math.imul(hash, 31) + char.charCodeAt(0)) | 0;
  return (hash >>> 0).toString(36);
}

/** The context SQL with its values inlined, for evidence a reader pastes into psql. */
export function contextSetter(context: ProbeContext, actor: Actor, tenantId?: string | null): string {
  const statement = contextStatementOf(context.plan, actor, tenantId);
  return `${withoutTerminator(inlineParameters(statement.text, statement.values))};`;
}

function describeActor(actor: Actor): string {
  return [actor.user !== null ? `user ${actor.user}` : null, actor.role !== null ? `role ${actor.role}` : null].filter(Boolean).join(', ');
}

export function describeContext(context: ProbeContext, state: ContextState): string {
  const { setting, role } = context.plan;
  switch (state.kind) {
    case 'tenant': {
      const actor = actorOf(context, state.tenant);
      const who = describeActor(actor);
      return `role ${role}, ${setting} = '${state.tenant.id}' (${state.tenant.label}${who ? `; ${who}` : ''})`;
    }
    case 'actor':
      return `role ${role}, ${state.actor.label} (${describeActor(state.actor) || 'no user'})`;
    case 'never-set':
      return `role ${role} on a fresh connection where ${setting} was never set (current_setting(..., true) is NULL)`;
    case 'empty':
      return `role ${role} after a transaction that set ${setting} ended (the setting now reads '')`;
    case 'unknown-tenant':
      return `role ${role}, ${setting} = '${state.id}' (no such tenant)`;
    case 'anonymous':
      return `role ${state.role} (the platform's anonymous role), nothing set: a request without credentials`;
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


/** psql-ready SQL that reproduces `statement` under `state`. */
export function reproduction(context: ProbeContext, state: ContextState, statement: string, params: readonly (string | number | boolean | null)[] = []): string {
  const role = `set local role ${ident(context.plan.role)};`;
  const body = `${withoutTerminator(inlineParameters(statement, params))};`;
  switch (state.kind) {
    case 'tenant':
      return [`begin;`, role, `${contextSetter(context, actorOf(context, state.tenant))}  ${lineComment(state.tenant.label)}`, body, `rollback;`].join('\n');
    case 'actor':
      return [`begin;`, role, `${contextSetter(context, state.actor)}  ${lineComment(state.actor.label)}`, body, `rollback;`].join('\n');
    case 'unknown-tenant':
      return [`begin;`, role, `${contextSetter(context, unknownActor(context, state.id), state.id)}  -- no such tenant`, body, `rollback;`].join('\n');
    case 'never-set':
      return [lineComment(`on a new connection, before anything sets ${context.plan.setting}`), `begin;`, role, body, `rollback;`].join('\n');
    case 'anonymous':
      return [`-- a request without credentials, on a new connection`, `begin;`, `set local role ${ident(state.role)};`, body, `rollback;`].join('\n');
    case 'empty':
      return [
        `-- on one connection: a request's transaction sets the tenant and ends`,
        `begin;`,
        role,
        contextSetter(context, actorOf(context, context.tenants[0]!)),
        `commit;  ${lineComment(`${context.plan.setting} now reads ${literal('')} on this connection`)}`,
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
  const actor = state.kind === 'tenant' ? actorOf(context, state.tenant) : state.kind === 'actor' ? state.actor : state.kind === 'unknown-tenant' ? unknownActor(context, state.id) : null;
  // Everything is sent at once and read afterwards (one round trip), except the application's own SQL.
  return session.rolledBack(async () => {
    let set: Promise<unknown> | null = null;
    if (state.kind === 'empty') {
      // A transaction-local setting that ended: set it in a nested savepoint and roll that back.
      const first = actorOf(context, context.tenants[0]!);
      if (contextStatementOf(plan, first).origin === 'application') {
        try {
          await session.savepoint(() => setContext(context, first));
        } catch (error) {
          session.rethrowStop(error);
          return async () => contextFailure(error);
        }
      } else {
        // Sent with the rest and read with it: a failure is the nested savepoint's, which is rolled back.
        session.send('savepoint rls_audit_ended');
        set = sendContext(context, first).outcome;
        session.send('rollback to savepoint rls_audit_ended');
        session.send('release savepoint rls_audit_ended');
      }
    } else if (actor) {
      const sent = sendContext(context, actor, state.kind === 'unknown-tenant' ? state.id : undefined);
      set = sent.outcome;
      if (sent.mustWait) {
        try {
          await set;
        } catch (error) {
          session.rethrowStop(error);
          return async () => contextFailure(error);
        }
      }
    }
    const sentBefore = (options.before ?? []).map((sql) => session.send(sql));
    const before = sentBefore.length ? pending((async () => { for (const sent of sentBefore) await sent; })()) : null;
    const settle = async (result: Promise<QueryOutcome>): Promise<RunResult> => {
      if (set) {
        try {
          await set;
        } catch (error) {
          session.rethrowStop(error);
          return contextFailure(error);
        }
      }
      await before;
      // No savepoint of its own: an error aborts only this savepoint, which is rolled back anyway.
      try {
        const { rows, rowCount } = await result;
        return { rows, rowCount };
      } catch (error) {
        session.rethrowStop(error);
        const failure = error as { message?: string; code?: string };
        return { rows: [], rowCount: 0, error: { message: failure.message ?? String(error), code: failure.code } };
      }
    };
    if (options.userSql) {
      // The application's statement is checked after it runs: nothing is sent behind it before that.
      const outcome = await settle(pending(session.userQuery(statement, params, options.userSql)));
      return async () => outcome;
    }
    const result = session.send(statement, params, options.name);
    return () => settle(result);
  }, [session.roleStatement(state.kind === 'anonymous' ? state.role : plan.role)]);
}

/** The context SQL failed: the statement never ran. If it broke out of the audit's transaction, the audit stops (see AuditSession.userQuery). */
function contextFailure(error: unknown): RunResult {
  if (error instanceof AuditError) throw error;
  const failure = error as { message?: string; code?: string };
  return { rows: [], rowCount: 0, error: { message: `the context SQL failed: ${failure.message ?? String(error)}`, code: failure.code }, contextFailed: true };
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

/**
 * The column rows are attributed by: the relation's tenant column, else the first of the plan's tenant
 * columns, among those the rows have (`has`). Undefined when they have none.
 */
export function attributionColumn(relationPlan: RelationPlan, tenantColumns: string[], has: (column: string) => boolean): string | undefined {
  return relationPlan.tenantColumn && has(relationPlan.tenantColumn) ? relationPlan.tenantColumn : tenantColumns.find(has);
}

/** Which tenant a returned row belongs to: by tenant column, by seeded key, or by canary. */
export function attribute(row: RawRow, relationPlan: RelationPlan, relation: Relation, ledger: Ledger, tenantColumns: string[], sources: string[]): Attribution {
  const tenantColumn = attributionColumn(relationPlan, tenantColumns, (column) => column in row);
  if (tenantColumn) {
    const value = row[tenantColumn];
    if (value !== null && value !== undefined) {
      const tenant = ledger.tenant(value);
      return tenant ? { kind: 'tenant', tenant, via: 'tenant column' } : { kind: 'other-tenant', value };
    }
  }
  for (const source of [relation.qualified, ...sources]) {
    const seeded = ledger.tenantByKey(source, row);
    if (seeded === null) return { kind: 'shared' };
    if (seeded !== undefined) return { kind: 'tenant', tenant: ledger.tenant(seeded)!, via: 'seeded key' };
  }
  const byCanary = ledger.tenantsByCanary(row);
  if (byCanary.length === 1) return { kind: 'tenant', tenant: byCanary[0]!, via: 'canary' };
  if (byCanary.length > 1) return { kind: 'other-tenant', value: byCanary.map((tenant) => tenant.id).join('+') };
  return relationPlan.tenancy === 'shared' ? { kind: 'shared' } : { kind: 'unattributed' };
}

/**
 * The visibility flag a read row is public by (`is_public = true`), when a permissive SELECT policy of its relation,
 * or of a relation a view reads, admits every tenant's rows by it: such a row is every tenant's to read by design,
 * not a leak. Null for any other row, and for rows that do not carry the flag columns.
 */
export function publicFlagOf(plan: TenancyPlan, relationPlan: RelationPlan, sources: readonly string[], row: RawRow): string | null {
  const plans = [relationPlan, ...sources.map((source) => plan.relations.find((candidate) => candidate.relation === source)).filter((entry): entry is RelationPlan => Boolean(entry))];
  for (const candidate of plans) {
    for (const flags of candidate.publicRows ?? []) {
      if (flags.every((flag) => flag.column in row && flagHolds(row[flag.column] ?? null, flag.value))) return flags.map((flag) => `${flag.column} = ${flag.value}`).join(' and ');
    }
  }
  return null;
}

function flagHolds(value: string | null, expected: string): boolean {
  if (value === null) return false;
  if (expected === 'true' || expected === 'false') return (value === 't' || value === 'true') === (expected === 'true');
  return value === expected;
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
  const seen = new Set<string>();
  const queue = [...relation.dependsOn, ...(relation.partitionOf ? [relation.partitionOf] : []), ...relation.inheritsFrom];
  while (queue.length) {
    const name = queue.shift()!;
    if (seen.has(name)) continue;
    seen.add(name);
    const source = relationOf(context.catalog, name);
    if (source) queue.push(...source.dependsOn);
  }
  // Partitions hold their parent's seeded rows.
  for (const candidate of context.catalog.relations) if (candidate.partitionOf === relation.qualified) seen.add(candidate.qualified);
  return [...seen];
}
