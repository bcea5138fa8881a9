import type { Faker } from '@faker-js/faker';
import { isSequenceDefault } from '../analysis/constraints.js';
import type { Column, Relation } from '../catalog/types.js';
import type { RelationPlan } from '../plan/tenancy.js';
import type { Tenant } from '../seed/ledger.js';
import { RowPlanner } from '../seed/planner.js';
import { partitionBounds } from '../seed/partitions.js';
import { defaultsFirst, uniqueColumns } from '../seed/shapes.js';
import { checksOf, createFaker } from '../seed/values.js';
import { ident, relationIdent } from '../target/sql.js';
import { writeRisk } from '../target/sequences.js';
import { userColumns } from '../plan/owners.js';
import { actorOf } from './context.js';
import type { ProbeContext } from './types.js';
import { columnOf } from '../catalog/lookup.js';
import { bucketOf } from './schedule.js';

/** An INSERT of one row, ready to execute (`params`) and to show (`values`). */
export interface RowInsert {
  sql: string;
  params: (string | null)[];
  /** The values given, by column, as text. */
  values: Record<string, string | null>;
}

/** Which row of which attempt (see OwnRowBuilder.enter): `key` names the attempt (relation, actor, victim), `attempt` its try. */
export interface Stream {
  key: string;
  attempt: number;
}

const KEY_TOPS: Record<string, bigint> = { int2: 32_767n, int4: 2_147_483_647n, int8: 9_223_372_036_854_775_807n };

/** Keys a sequence or identity would fill: the probe gives them explicitly (nextval cannot be rolled back). */
function sequenceFilled(column: Column): boolean {
  return Boolean(column.identity) || isSequenceDefault(column.default);
}

/**
 * Builds valid rows of a tenant, as the application would insert them: the tenant column set to the
 * tenant, every foreign key pointing at that tenant's seeded parents (or shared rows), other values from
 * the seeder's generators with the tenant's canary. Sequence-backed keys get explicit values far from the
 * seeded ones, so that probing never advances a sequence.
 */
export class OwnRowBuilder {
  private readonly faker: Faker;
  private readonly seed: number;
  private serial = 5_000_000;
  private keysTaken = 0n;
  private readonly plans: Map<string, RelationPlan>;

  constructor(private readonly context: ProbeContext) {
    this.seed = (context.scenario.seed ?? 0) + 7919;
    this.faker = createFaker(this.seed);
    this.plans = new Map(context.plan.relations.map((entry) => [entry.relation, entry]));
  }

  /**
   * Make the next row depend only on `stream` (and the run's seed), not on the rows built before it: for
   * attempts that run at once (schedule.inOrder), whose rows are built in an order no one fixes (a retry is
   * built when its first try has answered). Each try of a stream gets other values, serials and keys.
   */
  private enter(stream: Stream): void {
    this.faker.seed(this.seed + bucketOf(`${stream.key}\u0000${stream.attempt}`));
    this.serial = 5_000_000 + stream.attempt * 1_000;
    this.keysTaken = BigInt(stream.attempt * 100);
  }

  private key(column: Column): string | null {
    const top = KEY_TOPS[column.baseType];
    if (top === undefined) return null;
    this.keysTaken += 1n;
    // Below the range the seeder takes from the top of the type when the database is not ours.
    return String(top - (top > 100_000n ? 1_000_000n : 2_000n) - this.keysTaken);
  }

  private readonly planners = new Map<string, RowPlanner>();

  private planner(relation: Relation, fill: Column[]): RowPlanner {
    const key = `${relation.qualified}\u0000${fill.map((column) => column.name).join(',')}`;
    let planner = this.planners.get(key);
    if (!planner) {
      const bounds = partitionBounds(this.context.catalog, relation).find((leaf) => leaf.bounded);
      planner = new RowPlanner(relation, fill, uniqueColumns(relation), new Set(bounds?.keyColumns ?? []), bounds?.atoms ?? []);
      this.planners.set(key, planner);
    }
    return planner;
  }

  private readonly users = new Map<string, string[]>();

  /** Columns of `relation` that hold a user (see plan/owners.ts). */
  userColumns(relation: Relation): string[] {
    let columns = this.users.get(relation.qualified);
    if (!columns) {
      columns = userColumns(this.context.catalog, this.context.analysis, this.context.plan, relation);
      this.users.set(relation.qualified, columns);
    }
    return columns;
  }

  /** The parent row a foreign key of the tenant's new row points at, or null when there is none. */
  private parent(references: string, tenant: Tenant): Record<string, string | null> | null {
    const parentPlan = this.plans.get(references);
    const rows = parentPlan && parentPlan.tenancy !== 'shared' ? this.context.ledger.rows(references, tenant.id) : this.context.ledger.rows(references);
    return rows[0]?.values ?? null;
  }

  /**
   * One row of `tenant` for `relation`, with `overrides` (column -> text value) applied last; null when a
   * required parent has no seeded row to point at.
   */
  ownRow(relation: Relation, relationPlan: RelationPlan, tenant: Tenant, overrides: Record<string, string | null> = {}, options: { identity?: Tenant; stream?: Stream } = {}): RowInsert | null {
    // On a live database, an insert that would advance a sequence is never built (see sequences.ts).
    if (writeRisk(this.context.catalog, this.context.sequenceRisks ?? [], relation.qualified, ['INSERT'])) return null;
    if (options.stream) this.enter(options.stream);
    const values = new Map<string, string | null>();
    if (relationPlan.tenantColumn && relationPlan.tenancy !== 'tenant-table') values.set(relationPlan.tenantColumn, tenant.id);
    // In user tenancy, the row is the user's: its user columns hold the user of `identity` (by default the
    // tenant's own user), as the application writes them, never a user the seeder made.
    const user = actorOf(this.context, options.identity ?? tenant).user;
    if (user !== null) for (const column of this.userColumns(relation)) if (!values.has(column)) values.set(column, user);
    for (const foreignKey of relation.foreignKeys) {
      const nullable = foreignKey.columns.every((name) => !columnOf(relation, name)?.notNull);
      const parent = foreignKey.references === relation.qualified && nullable ? null : this.parent(foreignKey.references, tenant);
      if (!parent) {
        if (!nullable) return null;
        for (const name of foreignKey.columns) if (!values.has(name)) values.set(name, null);
        continue;
      }
      foreignKey.columns.forEach((name, position) => {
        if (!values.has(name)) values.set(name, parent[foreignKey.referencedColumns[position]!] ?? null);
      });
    }
    for (const column of relation.columns) {
      if (column.generated || values.has(column.name) || column.name in overrides || !sequenceFilled(column)) continue;
      const key = this.key(column);
      if (key !== null) values.set(column.name, key);
    }
    for (const [name, value] of Object.entries(overrides)) values.set(name, value);
    // The other columns come from the seeder's planner, which meets the CHECK constraints (also between
    // columns) and keeps a partitioned table's row inside a partition. A column with a default is left to it,
    // as the application leaves it, unless a CHECK reads it: then the planner fills it as it does for seeded
    // rows (`due_on >= issued_on` with issued_on defaulting to today), except where the default is what the
    // seeder tries first (a CHECK the planner cannot read).
    const checked = new Set(checksOf(relation).flatMap((check) => check.columns));
    const defaultFirst = defaultsFirst(relation);
    const planned = (column: Column) => !sequenceFilled(column) && (column.default === null || (checked.has(column.name) && !defaultFirst.has(column.name)));
    const fill = relation.columns.filter((column) => !column.generated && (values.has(column.name) || planned(column)));
    const row = this.planner(relation, fill).row(this.faker, { fixed: values, serial: () => ++this.serial, canary: tenant.canary });
    fill.forEach((column, index) => values.set(column.name, row[index] ?? null));
    const columns = relation.columns.filter((column) => values.has(column.name));
    const overriding = columns.some((column) => column.identity === 'always') ? ' overriding system value' : '';
    return {
      sql: `insert into ${relationIdent(relation)} (${columns.map((column) => ident(column.name)).join(', ')})${overriding} values (${columns.map((column, index) => `$${index + 1}::${column.type}`).join(', ')})`,
      params: columns.map((column) => values.get(column.name) ?? null),
      values: Object.fromEntries(columns.map((column) => [column.name, values.get(column.name) ?? null])),
    };
  }
}

/** The unique-violation and exclusion-violation SQLSTATEs. */
export const CONFLICT_CODES = new Set(['23505', '23P01']);
