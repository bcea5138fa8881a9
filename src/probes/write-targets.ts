/**
 * The write-isolation probes' targets: which tables (and views over them) to write, how each is scoped to a tenant,
 * which writes a live database's sequences forbid, and the keys and values that address one row.
 */
import { defaultGenerator } from '../analysis/sql-text.js';
import type { Column, Relation } from '../catalog/types.js';
import type { RelationPlan } from '../plan/tenancy.js';
import type { Tenant } from '../seed/ledger.js';
import type { Severity } from '../findings/severity.js';
import { ident, qualifiedIdent, relationIdent, textArrayLiteral } from '../target/sql.js';
import type { RelationAccess, RoleAccess } from './access.js';
import { isIndirect } from './targets.js';
import { viewMapping } from '../analysis/views.js';
import { inPart } from './schedule.js';
import { describeRisk, riskHint, riskWords, writeRisk, type WriteEvent } from '../target/sequences.js';
import { unseededEntry } from '../scenario/schema.js';
import type { ProbeContext } from './types.js';
import { columnOf, columnType, relationOf, requireColumn } from '../catalog/lookup.js';

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
  // Only for columns inView found in the view.
  const rename = (columns: readonly (string | null)[]) => columns.map((column) => viewName.get(column!)!);
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
