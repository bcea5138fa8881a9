import type { Relation } from '../catalog/types.js';
import type { Tenant } from '../seed/ledger.js';
import { pending, type RawRow } from '../target/session.js';
import { ident, literal, relationIdent } from '../target/sql.js';
import { actorOf, contextLabel, describeContext, reproduction, sendContext, type ContextState } from './context.js';
import type { ProbeContext, ProbeOutcome } from './types.js';
import { requireColumn } from '../catalog/lookup.js';
import { auditTenantIds, tenantIn, tenantIs, type WriteTarget } from './write-targets.js';

/**
 * Shared machinery of the write-isolation probes (foreign-insert, foreign-update, foreign-delete,
 * blind-update, blind-delete, tenant-reassignment, truncate, upsert-conflict, cross-tenant-reference):
 * which tables to write, how to tell whose rows a write touched, and how to run a write as the
 * application role so that it is measured and then rolled back.
 */

export interface Marker {
  columns: string[];
  values: (string | null)[];
}

export interface TenantCounts {
  /** Rows per tenant id (`null` for rows whose tenant cannot be read, e.g. a NULL foreign key). */
  total: Map<string | null, number>;
  /** Rows per tenant that match the marker (a value written, a foreign key pointed). */
  marked: Map<string | null, number>;
}

/**
 * As the administrator (no policy applies): how many rows each of the audit's tenants has, and how many match
 * `marker`. Only the audit's tenants are counted (through an index on the tenant column where there is one):
 * every write probe judges a write by what it did to the rows of the audit's tenants, and counting the
 * application's rows on a staging database would read the whole table twice per write. `everyTenant` counts
 * every row (TRUNCATE, which only runs on a cluster of the run's own, reports whose rows it removed).
 * The count is sent before this returns (runWrite pipelines it with the write).
 */
export function tenantCounts(context: ProbeContext, target: WriteTarget, marker?: Marker, options: { everyTenant?: boolean } = {}): Promise<TenantCounts> {
  const params: (string | null)[] = [...(marker?.values ?? [])];
  const matches = marker
    ? marker.columns.map((name, index) => `r.${ident(baseColumn(target, name))} is not distinct from $${index + 1}::${requireColumn(target.relation, name).type}`).join(' and ')
    : 'false';
  let where = '';
  if (!options.everyTenant) {
    params.push(auditTenantIds(context));
    where = ` where ${tenantIn(target.scope, params.length)}`;
  }
  const sent = context.session.send(
    `select (${target.scope.tenant})::text as tenant, count(*)::text as total, count(*) filter (where ${matches})::text as marked from ${target.scope.from}${where} group by 1`,
    params,
  );
  return pending(
    sent.then(({ rows }) => {
      const counts: TenantCounts = { total: new Map(), marked: new Map() };
      for (const row of rows) {
        counts.total.set(row.tenant ?? null, Number(row.total));
        counts.marked.set(row.tenant ?? null, Number(row.marked));
      }
      return counts;
    }),
  );
}

const baselines = new WeakMap<ProbeContext, Map<string, TenantCounts>>();

/** Rows per tenant in the seeded state, counted once per relation and audit (writes are rolled back). */
export async function baselineCounts(context: ProbeContext, target: WriteTarget, options: { everyTenant?: boolean } = {}): Promise<TenantCounts> {
  const cache = baselines.get(context) ?? new Map<string, TenantCounts>();
  baselines.set(context, cache);
  const key = `${options.everyTenant ? 'every' : 'audit'}\0${target.relation.qualified}`;
  const cached = cache.get(key);
  if (cached) return cached;
  const counts = await tenantCounts(context, target, undefined, options);
  cache.set(key, counts);
  return counts;
}

/** Per tenant, how far `measure` moved between before and after (only tenants that changed). */
export function changes(before: Map<string | null, number>, after: Map<string | null, number>): Map<string | null, number> {
  const delta = new Map<string | null, number>();
  for (const tenant of new Set([...before.keys(), ...after.keys()])) {
    const change = (after.get(tenant) ?? 0) - (before.get(tenant) ?? 0);
    if (change !== 0) delta.set(tenant, change);
  }
  return delta;
}

/** `20 rows of tenant B, 20 of tenant C`: tenants named by label when seeded. */
export function describeTenants(context: ProbeContext, counts: Map<string | null, number>, noun = 'row'): string {
  return [...counts]
    .sort(([a], [b]) => tenantName(context, a).localeCompare(tenantName(context, b)))
    .map(([id, count], index) => `${Math.abs(count)} ${index === 0 ? `${noun}${Math.abs(count) === 1 ? '' : 's'} ` : ''}of ${tenantName(context, id)}`)
    .join(', ');
}

function tenantName(context: ProbeContext, id: string | null): string {
  if (id === null) return 'no tenant';
  return context.ledger.tenant(id)?.label ?? `tenant ${id} (not seeded)`;
}

/** The table's name of a target's column (a view may rename it). */
function baseColumn(target: WriteTarget, name: string): string {
  return target.baseColumns?.get(name) ?? name;
}

/** As the administrator: the given columns of one row of `tenant` (key columns non-null), or null. */
export async function rowOf(context: ProbeContext, target: WriteTarget, tenant: Tenant, columns: string[]): Promise<RawRow | null> {
  const select = columns.map((name) => (name === 'ctid' ? `r.ctid::text as ctid` : `r.${ident(baseColumn(target, name))}::text as ${ident(name)}`)).join(', ');
  const present = columns.map((name) => (name === 'ctid' ? 'true' : `r.${ident(baseColumn(target, name))} is not null`)).join(' and ');
  const order = columns.filter((name) => name !== 'ctid').map((name) => `r.${ident(baseColumn(target, name))}`).join(', ');
  const { rows } = await context.session.query(
    `select ${select} from ${target.scope.from} where ${tenantIs(target.scope, 1)} and ${present}${order ? ` order by ${order}` : ''} limit 1`,
    [tenant.id],
  );
  return rows[0] ?? null;
}

export interface WriteError {
  message: string;
  code?: string;
  /** The constraint the error names, e.g. the foreign key that rejected a row. */
  constraint?: string;
}

export interface WriteRun<T> {
  rowCount: number;
  error?: WriteError;
  before: T;
  after: T;
  /**
   * True when the statement was repeated with foreign-key triggers off, because the only thing that
   * rejected it was a foreign key of ANOTHER table referencing the rows written (the policy allowed it).
   */
  replica: boolean;
}

/** Rejected by row-level security or by a missing privilege on the table: the isolation held. */
function isDenied(error: WriteError): boolean {
  return error.code === '42501' && /row-level security|permission denied for (table|relation)/i.test(error.message);
}

function toWriteError(error: unknown): WriteError {
  const failure = error as { message?: string; code?: string; constraint?: string };
  return { message: failure.message ?? String(error), code: failure.code, constraint: failure.constraint };
}

/** A foreign-key error that comes from a table referencing `relation` (not from `relation`'s own keys). */
function referencedElsewhere(context: ProbeContext, relation: Relation, error: WriteError): boolean {
  if (error.code !== '23503' || !error.constraint) return false;
  if (relation.foreignKeys.some((foreignKey) => foreignKey.name === error.constraint)) return false;
  // User triggers do not fire with foreign-key triggers off: only repeat when the table has none.
  return !context.catalog.triggers.some((trigger) => trigger.relation === relation.qualified && trigger.enabled);
}

/** A request without credentials: the platform's anonymous role, nothing set (see describeContext). */
export type AnonymousState = Extract<ContextState, { kind: 'anonymous' }>;

function isAnonymous(actor: Tenant | AnonymousState): actor is AnonymousState {
  return 'kind' in actor && actor.kind === 'anonymous';
}

/**
 * Run one write as the application role with `actor`'s tenant context (or, for an `AnonymousState`, as the
 * platform's anonymous role with no context at all, as a request without credentials runs), inside a
 * savepoint that is rolled back. `measure` runs as the administrator just before and just after the write (in the same savepoint;
 * after is read only when the write succeeded), so a probe sees exactly which tenants' rows the write
 * touched. It must send its statements before it returns (`session.send`): everything is written at once,
 * and the savepoint's rollback follows right behind (a statement sent later is refused);
 * `baseline` stands in for the measure before when the probe already has it (every write is rolled back,
 * so the seeded state is the same).
 * When an UPDATE or DELETE is rejected only because other tables reference the rows, it is repeated with
 * `session_replication_role = replica` (foreign-key triggers off): the policy let it through, which is
 * what is being tested.
 */
export async function runWrite<T>(
  context: ProbeContext,
  target: WriteTarget,
  actor: Tenant | AnonymousState,
  statement: string,
  params: (string | null)[],
  measure: (phase: 'before' | 'after') => Promise<T>,
  options: { before?: string[]; baseline?: T; cursor?: RowCursor } = {},
): Promise<WriteRun<T>> {
  const { session, plan } = context;
  // Sent at once and read afterwards (one round trip), up to the application's own context SQL if any.
  const attempt = (replica: boolean) =>
    session.rolledBack(async () => {
      const before = options.baseline === undefined ? pending(measure('before')) : null;
      const ready: Promise<unknown>[] = [];
      // As the administrator, before the role changes: the application role need not be able to read the row.
      if (options.cursor) ready.push(...options.cursor.statements.map((sql) => session.send(sql)));
      if (isAnonymous(actor)) {
        ready.push(session.send(session.roleStatement(actor.role)));
      } else {
        ready.push(session.send(session.roleStatement(plan.role)));
        const set = sendContext(context, actorOf(context, actor));
        ready.push(set.outcome);
        if (set.mustWait) await set.outcome;
      }
      for (const sql of options.before ?? []) ready.push(session.send(sql));
      const result = session.send(statement, params);
      const reset = session.send('reset role');
      const after = pending(measure('after'));
      return async () => {
        const measured = before ? await before : options.baseline!;
        for (const step of ready) await step;
        let rowCount: number;
        try {
          rowCount = (await result).rowCount;
        } catch (failure) {
          session.rethrowStop(failure);
          // The statement failed: nothing changed, and the enclosing savepoint is rolled back anyway.
          return { rowCount: 0, before: measured, after: measured, replica, error: toWriteError(failure) };
        }
        await reset;
        return { rowCount, before: measured, after: await after, replica };
      };
    }, replica ? ['set local session_replication_role = replica'] : []);
  const first = await attempt(false);
  if (first.error && referencedElsewhere(context, target.relation, first.error)) {
    const again = await attempt(true);
    if (!again.error) return again;
  }
  return first;
}

/** The cursor a bounded write names in `where current of`: one row the audit inserted. */
export const ROW_CURSOR = 'rls_audit_row';

export interface RowCursor {
  /** `declare rls_audit_row cursor for select ... where ctid = ... and tableoid = ...` and `fetch rls_audit_row`, run as the administrator. */
  statements: [string, string];
}

/**
 * On a database the audit does not own, a write that would name no row (`update t set c = x`, `delete
 * from t`) would lock and rewrite every row of the table, the application's included, for as long as the
 * probe runs (and write WAL for all of them). Instead it is bounded to one row the audit inserted: a
 * cursor over that row, declared as the administrator, and the same statement `where current of` it.
 * A CURRENT OF condition reads no column, so, as for the statement without WHERE, PostgreSQL applies the
 * UPDATE or DELETE policies and not the SELECT ones: the row is changed exactly when the blind statement
 * would have changed it. Null on a cluster of the run's own (the statement runs as it is), or when
 * `tenant` has no seeded row in the table.
 */
export async function boundedWrite(context: ProbeContext, target: WriteTarget, tenant: Tenant, statement: string): Promise<{ statement: string; cursor: RowCursor } | null | undefined> {
  if (context.disposable) return null;
  const { rows } = await context.session.query(
    `select r.ctid::text as ctid, r.tableoid::int8::text as tableoid from ${target.scope.from} where ${tenantIs(target.scope, 1)} limit 1`,
    [tenant.id],
  );
  const row = rows[0];
  if (!row?.ctid || !row.tableoid) return undefined;
  return {
    statement: `${statement} where current of ${ROW_CURSOR}`,
    cursor: { statements: [`declare ${ROW_CURSOR} cursor for select * from ${relationIdent(target.relation)} where ctid = ${literal(row.ctid)}::tid and tableoid = ${literal(row.tableoid)}::oid`, `fetch ${ROW_CURSOR}`] },
  };
}

/** The `begin;` that opens a reproduction, after the comment lines that may precede it (a request without credentials). */
const OPENING = /^((?:--[^\n]*\n)*)begin;\n/;

/** psql-ready evidence for a write: the context it ran under, the statement, rolled back. */
export function writeEvidence(context: ProbeContext, actor: Tenant | AnonymousState, statement: string, params: (string | null)[], options: { replica?: boolean; before?: string[]; cursor?: RowCursor } = {}): { sql: string; context: string } {
  const state: ContextState = isAnonymous(actor) ? actor : { kind: 'tenant', tenant: actor };
  let sql = reproduction(context, state, [...(options.before ?? []), statement].join(';\n'), params);
  if (options.cursor) {
    const [declare, fetch] = options.cursor.statements;
    sql = sql.replace(OPENING, `$1begin;\n${declare};\n${fetch};  -- as the superuser: one row of ${isAnonymous(actor) ? 'a tenant' : 'the other tenant'}, which the statement names with CURRENT OF\n`);
  }
  if (options.replica) {
    sql = sql.replace(
      OPENING,
      '$1begin;\nset local session_replication_role = replica;  -- as the superuser, before SET ROLE: only the foreign keys of tables referencing these rows rejected the statement\n',
    );
  }
  return { sql, context: describeContext(context, state) };
}

/** Record one executed write statement in the report. */
export function recordWrite(
  context: ProbeContext,
  check: string,
  target: WriteTarget,
  actor: Tenant | AnonymousState,
  sql: string,
  outcome: ProbeOutcome,
  rows: number,
  foreignRows: number,
  error?: WriteError | string,
  /** False when the statement cannot exist for this relation, so skipping it hides nothing. */
  hidesLeak = true,
): void {
  if (outcome === 'skipped' && hidesLeak) {
    // Skipped for a reason that hides a possible leak (a lock another session held, no row of its own to bound it to).
    context.inconclusive({
      relation: target.relation.qualified,
      reason: `${check} could not run on ${target.relation.qualified}: ${typeof error === 'string' ? error : error?.code === '55P03' ? 'another session held a lock it needed (the audit does not wait on the application)' : (error?.message ?? 'skipped')}`,
      hint: 'run it again when the application is quiet, or audit a copy with --schema-from URL',
    });
  }
  context.record({
    check,
    relation: target.relation.qualified,
    context: isAnonymous(actor) ? contextLabel(actor) : actor.label,
    tenant: isAnonymous(actor) ? null : actor.id,
    sql,
    outcome,
    rows,
    foreignRows,
    missingOwnRows: 0,
    ...(error ? { error: typeof error === 'string' ? error : error.message } : {}),
  });
}

/**
 * The outcome of a statement that did not reach another tenant: `pass` when it ran, or when row-level
 * security (or a missing privilege) rejected it, which is isolation holding; `inconclusive` when it failed
 * for another reason (a constraint the generated values missed); `unreliable` when it ran on a table
 * whose seeding failed, so that nothing it did not touch was there to touch. `skipped` when another session held a lock the statement needed (lock timeout):
 * the audit does not wait on the application.
 */
export function quietOutcome(target: WriteTarget, error: WriteError | undefined): ProbeOutcome {
  // Another session held a lock (lock_timeout: the audit does not make the application wait, nor wait on it).
  if (error?.code === '55P03') return 'skipped';
  if (error) return isDenied(error) ? 'pass' : 'inconclusive';
  return target.reliable ? 'pass' : 'unreliable';
}

/** Errors that new generated values may avoid: a unique value taken, a CHECK or type rule the generator missed. */
export function retryable(error: WriteError | undefined): boolean {
  return Boolean(error?.code && !isDenied(error) && /^(23505|23514|23502|23P01|22)/.test(error.code));
}

/** How many times a probe builds new values for a statement that failed on a retryable error. */
export const ATTEMPTS = 3;
