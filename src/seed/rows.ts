import { columnOf, requireColumn } from '../catalog/lookup.js';
import type { Column, ForeignKey, Relation } from '../catalog/types.js';
import type { RelationPlan } from '../plan/tenancy.js';
import type { DeferredReferences } from './deferred.js';
import type { LedgerRow, Tenant } from './ledger.js';
import type { Leaf, Partitions } from './partitions.js';
import { RowPlanner } from './planner.js';
import type { Lessons } from './repairs.js';
import { columnsToFill, comboKeys, isSequenceBacked, KEY_LIMITS, nullableKey, selfReferences, uniqueColumns, uniqueKeys, type ColumnSpec } from './shapes.js';
import type { SeedState } from './state.js';

/** Rows planned for one insert, in the order of `columns`. */
export interface BuiltRows {
  columns: ColumnSpec[];
  rows: (string | null)[][];
  /** Why the rows cannot go in (a parent they must reference is missing), or null. */
  problem: string | null;
  planner: RowPlanner;
}

/** Parent rows a foreign key of a row of `tenant` may point at: the same tenant's, or shared ones. */
export function parentRows(state: SeedState, foreignKey: ForeignKey, tenant: Tenant | null): readonly LedgerRow[] {
  const parentPlan = state.plans.get(foreignKey.references);
  if (!parentPlan || parentPlan.tenancy === 'shared' || !tenant) return state.ledger.rows(foreignKey.references);
  return state.ledger.rows(foreignKey.references, tenant.id);
}

/** The values of the rows the seeder inserts: how many each tenant gets, and each row planned to meet the constraints. */
export class RowBuilder {
  private serial = 0;
  private keysTaken = 0n;
  private readonly planners = new Map<string, RowPlanner>();
  private readonly nextSerial = () => ++this.serial;

  constructor(
    private readonly state: SeedState,
    private readonly partitions: Partitions,
    private readonly lessons: Lessons,
    private readonly deferred: DeferredReferences,
    private readonly rowsPerTenant: number,
    private readonly explicitKeys: boolean,
  ) {}

  /** Rows each tenant is due in a relation: its capacity less what it has. */
  wanted(relation: Relation, relationPlan: RelationPlan): { tenant: Tenant; count: number }[] {
    return this.state.ledger.tenants.map((tenant) => ({
      tenant,
      count: (relationPlan.tenancy === 'tenant-table' ? 1 : this.capacity(relation, relationPlan, tenant)) - this.state.ledger.count(relation.qualified, tenant.id),
    }));
  }

  /**
   * How many rows one tenant can have: one when a unique key is the tenant column alone; the number of
   * distinct parent combinations when a unique key consists of the tenant column and foreign keys.
   */
  private capacity(relation: Relation, relationPlan: RelationPlan, tenant: Tenant): number {
    let capacity = this.rowsPerTenant;
    const tenantColumn = relationPlan.tenancy === 'tenant-table' ? null : relationPlan.tenantColumn;
    for (const key of uniqueKeys(relation)) {
      if (tenantColumn && key.length && key.every((column) => column === tenantColumn)) return 1;
    }
    for (const key of comboKeys(relation, tenantColumn)) {
      capacity = Math.min(capacity, key.foreignKeys.reduce((product, foreignKey) => product * Math.max(1, parentRows(this.state, foreignKey, tenant).length), 1));
    }
    return Math.max(1, capacity);
  }

  /** The tenant table's key is the tenant id itself. */
  pinTenantKey(relationPlan: RelationPlan, tenant: Tenant | null, columns: ColumnSpec[], rows: (string | null)[][]): void {
    if (relationPlan.tenancy !== 'tenant-table' || !tenant) return;
    const key = columns.findIndex(({ column }) => column.name === this.state.plan.tenantKey.column);
    if (key >= 0) for (const row of rows) row[key] = tenant.id;
  }

  private plannerFor(relation: Relation, columns: ColumnSpec[], leaf: Leaf | null): RowPlanner {
    const key = `${relation.qualified}\u0000${leaf?.relation.qualified ?? ''}\u0000${columns.map(({ column, unique }) => `${column.name}${unique ? '!' : ''}`).join(',')}`;
    let planner = this.planners.get(key);
    if (!planner) {
      const pinned = new Set(this.partitions.leaves(relation).flatMap((candidate) => candidate.keyColumns));
      planner = new RowPlanner(relation, columns.map(({ column }) => column), new Set(columns.filter(({ unique }) => unique).map(({ column }) => column.name)), pinned, leaf?.atoms ?? []);
      this.planners.set(key, planner);
    }
    return planner;
  }

  /**
   * Plan `count` rows of the tenant (null: shared rows): foreign keys pointing at its parents, partition bounds
   * met, explicit keys where needed, and values for the rest from the planner.
   */
  build(
    relation: Relation,
    relationPlan: RelationPlan,
    tenant: Tenant | null,
    count: number,
    useDefaults: boolean,
    options: { roots?: boolean; leaf?: Leaf | null },
  ): BuiltRows {
    /** Values fixed per row; `undefined` leaves the column to the planner for that row. */
    const forced = new Map<string, (rowIndex: number) => string | null | undefined>();
    /** Columns of nullable foreign keys: a check may want them NULL (`num_nonnulls(a_id, b_id) = 1`). */
    const nullable = new Set<string>();
    let problem: string | null = null;
    if (tenant && relationPlan.tenantColumn) forced.set(relationPlan.tenantColumn, () => tenant.id);
    // Rows public by design (`or is_public`) and rows that are not, in turn: probes must see both kinds.
    const alternatives = relationPlan.publicRows ?? [];
    for (const flag of new Set(alternatives.flat().map((entry) => entry.column))) {
      if (forced.has(flag) || !relation.columns.some((column) => column.name === flag)) continue;
      const boolean = requireColumn(relation, flag).baseType === 'bool';
      forced.set(flag, (rowIndex) => {
        const chosen = alternatives[Math.floor(rowIndex / 2) % alternatives.length]!.find((entry) => entry.column === flag);
        if (rowIndex % 2 === 0 && chosen) return chosen.value;
        return boolean ? String(alternatives.flat().find((entry) => entry.column === flag)!.value !== 'true') : undefined;
      });
    }
    const tenantColumn = tenant ? relationPlan.tenantColumn : null;
    // Distinct parent combinations for unique keys made of foreign keys (join tables, one-to-one links).
    const combos = new Map<ForeignKey, LedgerRow[]>();
    for (const key of comboKeys(relation, relationPlan.tenancy === 'tenant-table' ? null : relationPlan.tenantColumn)) {
      const lists = key.foreignKeys.map((foreignKey) => parentRows(this.state, foreignKey, tenant));
      if (lists.some((list) => !list.length)) continue;
      const total = lists.reduce((product, list) => product * list.length, 1);
      const start = this.state.faker.number.int({ min: 0, max: Math.max(0, total - 1) });
      const used = this.state.ledger.count(relation.qualified, tenant?.id ?? null);
      key.foreignKeys.forEach((foreignKey, position) => {
        const picks: LedgerRow[] = [];
        for (let rowIndex = 0; rowIndex < count; rowIndex += 1) {
          let index = (start + used + rowIndex) % total;
          for (let inner = lists.length - 1; inner > position; inner -= 1) index = Math.floor(index / lists[inner]!.length);
          picks.push(lists[position]![index % lists[position]!.length]!);
        }
        if (!combos.has(foreignKey)) combos.set(foreignKey, picks);
      });
    }
    for (const foreignKey of relation.foreignKeys) {
      const self = foreignKey.references === relation.qualified;
      const nonTenantColumns = foreignKey.columns.filter((column) => column !== tenantColumn);
      if (self && options.roots) {
        if (nullableKey(relation, foreignKey)) {
          for (const column of nonTenantColumns) if (!forced.has(column)) forced.set(column, () => null);
        }
        continue;
      }
      if (!self && this.deferred.isDeferred(relation, foreignKey)) {
        this.deferred.leave(relation, foreignKey);
        if (nullableKey(relation, foreignKey)) for (const column of nonTenantColumns) if (!forced.has(column)) forced.set(column, () => null);
        continue;
      }
      const parents = parentRows(this.state, foreignKey, tenant);
      if (!parents.length) {
        if (!nullableKey(relation, foreignKey)) problem = `no seeded row in ${foreignKey.references} to reference through ${foreignKey.name}`;
        else for (const column of nonTenantColumns) if (!forced.has(column)) forced.set(column, () => null);
        continue;
      }
      const picks = combos.get(foreignKey) ?? Array.from({ length: count }, () => this.state.faker.helpers.arrayElement(parents));
      foreignKey.columns.forEach((column, position) => {
        if (column === tenantColumn) return;
        if (!columnOf(relation, column)?.notNull) nullable.add(column);
        const referenced = foreignKey.referencedColumns[position]!;
        forced.set(column, (rowIndex) => picks[rowIndex]!.values[referenced] ?? null);
      });
    }
    const needsKeys = this.explicitKeys || (options.roots && selfReferences(relation).some((foreignKey) => !nullableKey(relation, foreignKey)));
    if (needsKeys) {
      for (const column of relation.columns) {
        if (forced.has(column.name) || column.generated || !isSequenceBacked(column)) continue;
        const values = Array.from({ length: count }, () => this.highKey(column));
        if (values.every((value) => value !== null)) forced.set(column.name, (rowIndex) => values[rowIndex]!);
      }
    }
    const learned = this.lessons.of(relation);
    const unique = new Set([...uniqueColumns(relation), ...(learned?.unique ?? [])]);
    const mustFill = new Set([...forced.keys(), ...(learned?.fill ?? [])]);
    // A NOT NULL self reference of a root points at the row itself.
    const selfLinks = options.roots ? selfReferences(relation).filter((foreignKey) => !nullableKey(relation, foreignKey)) : [];
    for (const foreignKey of selfLinks) for (const column of [...foreignKey.columns, ...foreignKey.referencedColumns]) mustFill.add(column);
    const columns: ColumnSpec[] = columnsToFill(relation, mustFill, useDefaults).map((column) => ({ column, unique: unique.has(column.name) }));
    const planner = this.plannerFor(relation, columns, options.leaf ?? null);
    const rows = Array.from({ length: count }, (_, rowIndex) => {
      const fixed = new Map<string, string | null>();
      for (const [name, value] of forced) {
        const given = value(rowIndex);
        if (given !== undefined) fixed.set(name, given);
      }
      const row = planner.row(this.state.faker, { fixed, nullable, serial: this.nextSerial, canary: tenant?.canary ?? null });
      for (const foreignKey of selfLinks) {
        foreignKey.columns.forEach((column, position) => {
          const from = columns.findIndex((spec) => spec.column.name === foreignKey.referencedColumns[position]);
          const to = columns.findIndex((spec) => spec.column.name === column);
          if (from >= 0 && to >= 0 && column !== tenantColumn) row[to] = row[from]!;
        });
      }
      return row;
    });
    return { columns, rows, problem, planner };
  }

  /**
   * A key from the top of the column type's range, counting down. Used instead of the column's sequence
   * when the database is not ours (nextval() cannot be rolled back, so a sequence would remember the
   * audit), and for rows that must reference themselves.
   */
  private highKey(column: Column): string | null {
    const limit = KEY_LIMITS[column.baseType];
    if (limit === undefined) return null;
    this.keysTaken += 1n;
    return String(limit - this.keysTaken);
  }
}
