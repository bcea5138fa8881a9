import { defaultGenerator } from '../analysis/sql-text.js';
import type { Column, Relation } from '../catalog/types.js';
import type { RelationPlan } from '../plan/tenancy.js';
import type { Tenant } from '../seed/ledger.js';
import { pending, type RawRow } from '../target/session.js';
import type { Severity } from '../findings/severity.js';
import { ident, literal, qualifiedIdent, relationIdent, textArrayLiteral } from '../target/sql.js';
import type { RelationAccess, RoleAccess } from './access.js';
import { actorOf, contextLabel, describeContext, reproduction, sendContext, type ContextState } from './context.js';
import { isIndirect } from './targets.js';
import { viewMapping } from '../analysis/views.js';
import { inPart } from './schedule.js';
import { describeRisk, riskHint, riskWords, writeRisk, type WriteEvent } from '../target/sequences.js';
import { unseededEntry } from '../scenario/schema.js';
import type { ProbeContext, ProbeOutcome } from './types.js';
import { columnOf, columnType, relationOf, requireColumn } from '../catalog/lookup.js';

/**
 * Shared machinery of the write-isolation probes (foreign-insert, foreign-update, foreign-delete,
 * blind-update, blind-delete, tenant-reassignment, truncate, upsert-conflict, cross-tenant-reference):
 * which tables to write, how to tell whose rows a write touched, and how to run a write as the
 * application role so that it is measured and then rolled back.
 */

export type Privilege = 'insert' | 'update' | 'delete' | 'truncate';

export interface WriteTarget {
  relation: Relation;
  /** How the relation belongs to a tenant; for a partition or inheritance child, its parent's tenancy. */
  relationPlan: RelationPlan;
  access: RelationAccess;
  /** How an administrator query finds the tenant of every row (joins along a foreign-key path if needed). */
  scope: TenantScope;
  /** False when seeding this table failed or was partial: a probe that finds nothing proves nothing. */
  reliable: boolean;
  /** For a view: the table it writes, and its columns by view column name (`todo_id` -> `id`). */
  base?: Relation;
  baseColumns?: ReadonlyMap<string, string>;
  /** For a view: the role cannot write the table itself, so the view is its ordinary path to the rows. */
  ordinary?: boolean;
}

export interface TenantScope {
  /** `from` clause whose base relation is aliased `r`. */
  from: string;
  /** Expression giving the tenant id of row `r`. */
  tenant: string;
  /** The SQL type of `tenant` (the tenant column's), so that it is compared as itself and an index on it serves. */
  tenantType: string | null;
}

/**
 * `tenant = $n::type`: the rows of one tenant, compared in the tenant column's own type so that an index on it
 * serves (a comparison of `tenant::text` reads every row of the table, the application's included).
 */
export function tenantIs(scope: TenantScope, position: number): string {
  return scope.tenantType ? `${scope.tenant} = $${position}::${scope.tenantType}` : `(${scope.tenant})::text = $${position}`;
}

/** `tenant = any($n::type[])`: the rows of the given tenants (the parameter is `tenantIds(...)`), through an index where one serves. */
export function tenantIn(scope: TenantScope, position: number): string {
  return scope.tenantType ? `${scope.tenant} = any($${position}::${scope.tenantType}[])` : `(${scope.tenant})::text = any($${position}::text[])`;
}

/** The audit's own (seeded) tenants, as the parameter of `tenantIn`. */
export function auditTenantIds(context: ProbeContext): string {
  return textArrayLiteral(context.ledger.tenants.map((tenant) => tenant.id));
}

function isBaseTable(relation: Relation): boolean {
  return relation.kind === 'table' || relation.kind === 'partitioned-table';
}

/** The tenancy of a base table: its own plan, or, for a partition or inheritance child, its parent's. */
export function ownership(context: ProbeContext, relation: Relation): RelationPlan | null {
  const plans = new Map(context.plan.relations.map((entry) => [entry.relation, entry]));
  let current: Relation | undefined = relation;
  for (let depth = 0; current && depth < 16; depth += 1) {
    const entry = plans.get(current.qualified);
    if (!entry || entry.tenancy === 'shared') return null;
    if (entry.tenancy !== 'derived') return { ...entry, relation: relation.qualified, kind: relation.kind };
    const parent: string | undefined = current.partitionOf ?? current.inheritsFrom[0];
    current = parent ? relationOf(context.catalog, parent) : undefined;
  }
  return null;
}

export function tenantScope(context: ProbeContext, relation: Relation, relationPlan: RelationPlan): TenantScope | null {
  const base = `${relationIdent(relation)} as r`;
  const typeOf = (owner: Relation | undefined, name: string) => columnType(owner, name) ?? null;
  if (relationPlan.tenantColumn) return { from: base, tenant: `r.${ident(relationPlan.tenantColumn)}`, tenantType: typeOf(relation, relationPlan.tenantColumn) };
  if (!relationPlan.path?.length) return null;
  const plans = new Map(context.plan.relations.map((entry) => [entry.relation, entry]));
  let from = base;
  let alias = 'r';
  relationPlan.path.forEach((hop, index) => {
    const next = `p${index + 1}`;
    const on = hop.columns.map((column, position) => `${next}.${ident(hop.referencedColumns[position]!)} = ${alias}.${ident(column)}`).join(' and ');
    from += ` left join ${qualifiedIdent(hop.references)} as ${next} on ${on}`;
    alias = next;
  });
  const last = plans.get(relationPlan.path[relationPlan.path.length - 1]!.references);
  if (!last?.tenantColumn) return null;
  const owner = relationOf(context.catalog, last.relation);
  return { from, tenant: `${alias}.${ident(last.tenantColumn)}`, tenantType: typeOf(owner, last.tenantColumn) };
}

/**
 * An auto-updatable view over one tenant-owned table (the API layer of PostgREST and Supabase), as a write
 * target: statements go to the view, rows are counted in the table as the administrator. The view's columns
 * map onto the table's through the parse tree of its definition (`select t.id as todo_id ...`), else by name
 * and type; the table's keys stand for the view's. A view that hides the tenant or owner column (`api.todos`
 * without owner_id) serves the probes that name rows by key (`byKey`): deleting or updating another tenant's
 * row through it; the others cannot write another tenant's row through it, and say so (see viewCoverage).
 */
function viewTarget(context: ProbeContext, view: Relation, privilege: Privilege, options: WriteTargetOptions, seeding: Map<string, { status: string }>): WriteTarget | null {
  if (privilege === 'truncate' || view.dependsOn.length !== 1 || !inPart(context, view.qualified)) return null;
  const roleAccess = options.access ?? context.access;
  const access = roleAccess.get(view.qualified);
  if (!access?.[privilege]) return null;
  const base = relationOf(context.catalog, view.dependsOn[0]);
  if (!base || !isBaseTable(base)) return null;
  const basePlan = ownership(context, base);
  if (!basePlan || (basePlan.tenancy === 'tenant-table' && !options.tenantTable)) return null;
  const shape = viewShape(view, base, basePlan);
  if (!shape.key || (shape.hidesTenant && !options.byKey)) {
    // Said only of views PostgreSQL can write through; a hidden key hides a leak when the view is the role's only way to the table.
    if (viewMapping(view)?.updatable) {
      const why = shape.key
        ? `${view.qualified} hides ${base.qualified}.${basePlan.tenantColumn}: a row cannot be written for another tenant or moved to one through it (its rows are probed by key: foreign-update, foreign-delete)`
        : `${view.qualified} does not show ${base.qualified}'s key (${rowKey(base).join(', ')}): its rows cannot be named by key, so writes through it were not probed`;
      viewCoverage(context, options.check, view, why, !shape.key && !roleAccess.get(base.qualified)?.[privilege]);
    }
    return null;
  }
  const scope = tenantScope(context, base, basePlan);
  if (!scope) return null;
  const { toBase } = shape;
  const viewName = new Map([...toBase].map(([shown, column]) => [column, shown]));
  const rename = (columns: readonly string[]) => columns.map((column) => viewName.get(column)!);
  const inView = (columns: readonly (string | null)[]) => columns.every((name) => name !== null && viewName.has(name));
  const relation: Relation = {
    ...view,
    columns: base.columns.filter((column) => viewName.has(column.name)).map((column) => ({ ...column, name: viewName.get(column.name)! })),
    primaryKey: base.primaryKey && inView(base.primaryKey) ? rename(base.primaryKey) : null,
    constraints: base.constraints.filter((constraint) => inView(constraint.columns)).map((constraint) => ({ ...constraint, columns: rename(constraint.columns) })),
    foreignKeys: base.foreignKeys.filter((foreignKey) => inView(foreignKey.columns)).map((foreignKey) => ({ ...foreignKey, columns: rename(foreignKey.columns) })),
    indexes: base.indexes.filter((index) => inView(index.columns)).map((index) => ({ ...index, columns: rename(index.columns as string[]) })),
  };
  const seeded = seeding.get(base.qualified);
  return {
    relation,
    relationPlan: { ...basePlan, relation: view.qualified, kind: view.kind, tenantColumn: basePlan.tenantColumn ? (viewName.get(basePlan.tenantColumn) ?? null) : null },
    access,
    scope,
    reliable: !seeded || seeded.status === 'seeded' || seeded.status === 'existing',
    base,
    baseColumns: toBase,
    ordinary: !roleAccess.get(base.qualified)?.[privilege],
  };
}

/** How a view shows its table: view column -> table column, whether the table's row key and tenant column are among them. */
function viewShape(view: Relation, base: Relation, basePlan: RelationPlan): { toBase: Map<string, string>; key: boolean; hidesTenant: boolean } {
  const mapped = viewMapping(view)?.columns;
  const toBase = new Map<string, string>();
  for (const column of view.columns) {
    const name = mapped ? mapped.get(column.name) : base.columns.some((candidate) => candidate.name === column.name && candidate.type === column.type) ? column.name : undefined;
    // One view column per table column: a column shown twice is written once.
    if (name && ![...toBase.values()].includes(name)) toBase.set(column.name, name);
  }
  const shown = new Set(toBase.values());
  const key = rowKey(base);
  return { toBase, key: key.every((column) => column !== 'ctid' && shown.has(column)), hidesTenant: Boolean(basePlan.tenantColumn && !shown.has(basePlan.tenantColumn)) };
}

/** Coverage, not silence: record once per probe and view what did not run through it and why. */
function viewCoverage(context: ProbeContext, check: string | undefined, view: Relation, why: string, hidesLeak: boolean): void {
  if (!check) return;
  context.record({ check, relation: view.qualified, context: '-', tenant: null, sql: `-- not probed through ${view.qualified}`, outcome: 'skipped', rows: 0, foreignRows: 0, missingOwnRows: 0, error: why });
  if (hidesLeak) {
    context.inconclusive({
      relation: view.qualified,
      reason: `${check} did not run on ${view.qualified}: ${why}`,
      hint: `grant the role access to the view's key columns, or audit writes to the table with --role for a role that writes it directly`,
    });
  }
}

/** What a write through the target is diagnosed on: the table itself (a view's policies are its table's). */
export function writtenTable(context: ProbeContext, target: WriteTarget): { relation: Relation; relationPlan: RelationPlan } {
  if (!target.base) return { relation: target.relation, relationPlan: target.relationPlan };
  return { relation: target.base, relationPlan: ownership(context, target.base) ?? target.relationPlan };
}

/** Severity of a write to another tenant's rows through this target: an API view that is the role's only way to the table is an ordinary path. */
export function writeSeverity(target: WriteTarget): Severity {
  return target.ordinary ? 'critical' : directSeverity(target.relation);
}

/**
 * Tenant-owned base tables (and partitions and inheritance children, which the role may write directly
 * when granted) on which the application role holds `privilege`, and auto-updatable views over them.
 */
export function writeTargets(context: ProbeContext, privilege: Privilege, options: WriteTargetOptions): WriteTarget[] {
  const all = allWriteTargets(context, privilege, options);
  // On a live database, a write that would advance a sequence is not made (see sequences.ts); TRUNCATE is
  // never run there at all, so only its privilege is asked.
  const events = options.events ?? (privilege === 'truncate' ? [] : [PRIVILEGE_EVENTS[privilege]]);
  return all.filter((target) => !sequenceSkip(context, options.check, target.relation.qualified, events));
}

export interface WriteTargetOptions {
  /** Include the tenant table itself. */
  tenantTable: boolean;
  /** The probe names rows by key only: views that hide the tenant column serve too. */
  byKey?: boolean;
  /** The probe asking: a target skipped because the write would advance a sequence is recorded under it. */
  check?: string;
  /** The statement kinds the probe runs on each target (default: the privilege's). */
  events?: WriteEvent[];
  /** Whose privileges decide the targets (default: the application role's); the platform's anonymous role's for its writes. */
  access?: RoleAccess;
}

const PRIVILEGE_EVENTS: Record<Exclude<Privilege, 'truncate'>, WriteEvent> = { insert: 'INSERT', update: 'UPDATE', delete: 'DELETE' };

const EVENT_SQL: Record<WriteEvent, (relation: string) => string> = {
  INSERT: (relation) => `insert into ${relation} ...`,
  UPDATE: (relation) => `update ${relation} ...`,
  DELETE: (relation) => `delete from ${relation} ...`,
  TRUNCATE: (relation) => `truncate ${relation}`,
};

/**
 * On a database the audit does not own (and without --allow-sequence-gaps): when a write of `events` to
 * the relation would advance a sequence, which no rollback undoes, the write is not made. The probe's
 * statement is recorded as skipped with the reason, and the run is inconclusive for the relation (unless
 * the scenario accepts it in `unseeded`). Returns whether the write must be skipped.
 */
export function sequenceSkip(context: ProbeContext, check: string | undefined, relation: string, events: readonly WriteEvent[]): boolean {
  const risk = writeRisk(context.catalog, context.sequenceRisks ?? [], relation, events);
  if (!risk) return false;
  const cause = describeRisk(relation, risk);
  const event = events.find((candidate) => risk.events.includes(candidate)) ?? events[0]!;
  if (check) {
    context.record({
      check,
      relation,
      context: '-',
      tenant: null,
      sql: EVENT_SQL[event](relation),
      outcome: 'skipped',
      rows: 0,
      foreignRows: 0,
      missingOwnRows: 0,
      error: `not run on this live database: ${event} would ${riskWords(risk)} (${cause})`,
    });
  }
  if (!unseededEntry(context.scenario, relation)) {
    context.inconclusive({
      relation,
      reason: `${relation} was not written on this live database: writing it would ${riskWords(risk)} (${cause}); what its write probes check was not proven`,
      hint: riskHint(risk),
    });
  }
  return true;
}

function allWriteTargets(context: ProbeContext, privilege: Privilege, options: WriteTargetOptions): WriteTarget[] {
  const seeding = new Map(context.seedResults.map((result) => [result.relation, result]));
  const targets: WriteTarget[] = [];
  for (const relation of context.catalog.relations) {
    if (relation.kind === 'view') {
      const target = viewTarget(context, relation, privilege, options, seeding);
      if (target) targets.push(target);
      continue;
    }
    if (!isBaseTable(relation) || !inPart(context, relation.qualified)) continue;
    const access = (options.access ?? context.access).get(relation.qualified);
    if (!access?.[privilege]) continue;
    const relationPlan = ownership(context, relation);
    if (!relationPlan || (relationPlan.tenancy === 'tenant-table' && !options.tenantTable)) continue;
    const scope = tenantScope(context, relation, relationPlan);
    if (!scope) continue;
    const seeded = seeding.get(relation.qualified) ?? seeding.get(relation.partitionOf ?? relation.inheritsFrom[0] ?? '');
    targets.push({ relation, relationPlan, access, scope, reliable: !seeded || seeded.status === 'seeded' || seeded.status === 'existing' });
  }
  return targets;
}

/** Severity of a write that reaches another tenant: through a partition or child it is a path (high). */
export function directSeverity(relation: Relation): Severity {
  return isIndirect(relation) ? 'high' : 'critical';
}

/** Columns whose values must be unique (primary key, unique constraints and unique indexes). */
export function uniqueKeys(relation: Relation): string[][] {
  const keys: string[][] = [];
  const seen = new Set<string>();
  const add = (columns: string[]) => {
    const id = columns.join('\u0000');
    if (columns.length && !seen.has(id)) {
      seen.add(id);
      keys.push(columns);
    }
  };
  if (relation.primaryKey) add(relation.primaryKey);
  for (const constraint of relation.constraints) if (constraint.kind === 'primary-key' || constraint.kind === 'unique') add(constraint.columns);
  for (const index of relation.indexes) {
    if (index.unique && !index.partial && index.columns.every((column): column is string => column !== null)) add(index.columns as string[]);
  }
  return keys;
}

/** The columns that identify one row: the primary key, else a unique key of NOT NULL columns, else ctid. */
export function rowKey(relation: Relation): string[] {
  const notNull = (name: string) => columnOf(relation, name)?.notNull ?? false;
  return uniqueKeys(relation).find((key) => key.every(notNull)) ?? ['ctid'];
}

function keyType(relation: Relation, name: string): string {
  return name === 'ctid' ? 'tid' : requireColumn(relation, name).type;
}

/** `"a" = $1::integer and "b" = $2::text` for the key columns, numbered from `offset + 1`. */
export function keyCondition(relation: Relation, key: string[], offset = 0, alias = ''): string {
  return key.map((name, index) => `${alias}${name === 'ctid' ? 'ctid' : ident(name)} = $${offset + index + 1}::${keyType(relation, name)}`).join(' and ');
}

/**
 * Columns a probe may overwrite with a constant without changing which row it is or whose: not part of a
 * key or a foreign key, not the tenant column, not generated, identity or sequence-filled. Text columns
 * first (their values carry the tenant's canary, so a changed row is recognisable).
 */
export function plainColumns(relation: Relation, relationPlan: RelationPlan): Column[] {
  const excluded = new Set<string>([...uniqueKeys(relation).flat(), ...relation.foreignKeys.flatMap((foreignKey) => foreignKey.columns)]);
  if (relationPlan.tenantColumn) excluded.add(relationPlan.tenantColumn);
  for (const index of relation.indexes) if (index.unique) index.columns.forEach((column) => column && excluded.add(column));
  const candidates = relation.columns.filter(
    (column) => !excluded.has(column.name) && !column.generated && !column.identity && defaultGenerator(column.default) !== 'sequence',
  );
  const textual = (column: Column) => (column.category === 'S' && !column.enumValues && !column.isArray ? 0 : 1);
  return [...candidates].sort((a, b) => textual(a) - textual(b));
}

/** A value of `column` as `tenant` would write it: from the tenant's own seeded rows. */
export function ownValue(context: ProbeContext, relation: Relation, tenant: Tenant, column: string): string | null | undefined {
  // A partition's rows are seeded through its parent, a view's through the one table it shows.
  const ledgerName = relation.partitionOf ?? (relation.kind === 'view' ? relation.dependsOn[0] : undefined) ?? relation.qualified;
  const row = context.ledger.rows(ledgerName, tenant.id).find((candidate) => candidate.values[column] !== null && candidate.values[column] !== undefined);
  return row?.values[column];
}

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
