import { relationOf } from '../catalog/lookup.js';
import type { Relation } from '../catalog/types.js';
import type { RelationPlan } from '../plan/tenancy.js';
import type { RawRow } from '../target/session.js';
import type { Inserts } from './inserts.js';
import type { Tenant } from './ledger.js';
import type { SeedResult } from './outcome.js';
import type { Partitions } from './partitions.js';
import type { Lessons } from './repairs.js';
import type { BuiltRows, RowBuilder } from './rows.js';
import { selfReferences, type ColumnSpec } from './shapes.js';
import { stopOn, type SeedState } from './state.js';
import type { TenantContext } from './triggers.js';

/** Rows one seeding statement carries at most when it seeds several tenants at once. */
export const BATCH_ROWS = 5000;

/** Rows of several tenants for one insert. */
export interface PlannedGroup {
  columns: ColumnSpec[];
  tenants: { tenant: Tenant; rows: (string | null)[][] }[];
  /** The insert, when it was sent ahead (see ahead). */
  sent?: () => Promise<RawRow[]>;
}

/**
 * Rows of several tenants in one insert, and the inserts of the next relation planned and sent while the
 * last one runs (pipelining).
 */
export class Batches {
  /** Batches of the next relation, planned while the last insert ran (see ahead). */
  private planned: { relation: string; groups: PlannedGroup[] } | null = null;

  constructor(
    private readonly state: SeedState,
    private readonly partitions: Partitions,
    private readonly context: TenantContext,
    private readonly rows: RowBuilder,
    private readonly lessons: Lessons,
    private readonly inserts: Inserts,
    /** Whether a seeded relation has an enabled trigger (which may add rows: nothing is planned ahead). */
    private readonly withTriggers: boolean,
  ) {}

  /** Whether a relation's rows can go in for several tenants at once (see plan). */
  batchable(relation: Relation, relationPlan: RelationPlan): boolean {
    return relationPlan.tenancy !== 'tenant-table' && relationPlan.tenancy !== 'shared' && !this.partitions.leaves(relation).length && !selfReferences(relation).length && !this.context.triggers(relation).length;
  }

  /** The groups of the relation: those planned (and sent) ahead, or planned now when it is batchable. */
  async take(relation: Relation, relationPlan: RelationPlan, wanted: { tenant: Tenant; count: number }[]): Promise<PlannedGroup[]> {
    const planned = this.planned?.relation === relation.qualified ? this.planned.groups : this.batchable(relation, relationPlan) ? await this.plan(relation, relationPlan, wanted) : [];
    this.planned = null;
    return planned;
  }

  /**
   * The common case in one statement per group of tenants instead of one per tenant (round trips, not rows,
   * are what seeding spends its time on): rows planned for every tenant, to be inserted together and
   * attributed in the order they went in. A group whose rows need PostgreSQL to judge a check or lack a
   * parent is not planned; seedTenant does those one tenant at a time.
   *
   * Between tenants it gives way to the event loop: an insert of thousands of rows may not fit in the
   * socket's buffer, and while this side plans without pause the server waits for the rest of it (and for
   * the answers before it to be read). Nothing else of the seeder runs meanwhile, so the rows planned do not
   * depend on timing.
   */
  private async plan(relation: Relation, relationPlan: RelationPlan, wanted: { tenant: Tenant; count: number }[]): Promise<PlannedGroup[]> {
    const groups: { tenant: Tenant; count: number }[][] = [[]];
    let size = 0;
    for (const entry of wanted.filter(({ count }) => count > 0)) {
      if (size + entry.count > BATCH_ROWS && groups.at(-1)!.length) {
        groups.push([]);
        size = 0;
      }
      groups.at(-1)!.push(entry);
      size += entry.count;
    }
    const planned: PlannedGroup[] = [];
    for (const group of groups.filter((candidate) => candidate.length > 1)) {
      const built: ({ tenant: Tenant } & BuiltRows)[] = [];
      for (const { tenant, count } of group) {
        await new Promise((resolve) => setImmediate(resolve));
        this.state.session.checkExpired();
        built.push({ tenant, ...this.rows.build(relation, relationPlan, tenant, count, false, {}) });
      }
      const shape = (columns: ColumnSpec[]) => columns.map(({ column }) => column.name).join('\u0000');
      if (built.some((entry) => entry.problem || shape(entry.columns) !== shape(built[0]!.columns) || this.lessons.checksToJudge(relation, entry.planner).length)) continue;
      planned.push({ columns: built[0]!.columns, tenants: built.map(({ tenant, rows }) => ({ tenant, rows })) });
    }
    return planned;
  }

  /**
   * Insert the planned groups. While the last insert runs on the server, `meanwhile` plans the next
   * relation here and sends its inserts behind it: both cores work, and the server goes from one insert to
   * the next without waiting for this side. A group that fails is left to seedTenant, which learns from the
   * error and retries. Returns the tenants whose rows went in.
   */
  async seed(relation: Relation, planned: PlannedGroup[], result: SeedResult, meanwhile: () => Promise<void>): Promise<Set<Tenant>> {
    const done = new Set<Tenant>();
    for (const [index, group] of planned.entries()) {
      const rows = () => group.tenants.flatMap((entry) => entry.rows);
      const read = group.sent ?? this.inserts.send(relation, group.columns, rows());
      if (index === planned.length - 1) await meanwhile();
      let inserted: RawRow[];
      try {
        inserted = await read().catch((error: { code?: string }) => {
          // Sent ahead behind an insert that failed: it never ran. Send it again.
          if (error.code === '25P02' && group.sent) return this.inserts.insert(relation, group.columns, rows());
          throw error;
        });
      } catch (error) {
        stopOn(this.state.session, error);
        this.lessons.learn(relation, error);
        continue;
      }
      // INSERT ... SELECT FROM unnest returns its rows in the order they went in.
      let offset = 0;
      for (const { tenant, rows } of group.tenants) {
        this.inserts.record(relation, tenant, inserted.slice(offset, offset + rows.length), result);
        offset += rows.length;
        done.add(tenant);
      }
    }
    return done;
  }

  /**
   * Plan the batches of the relation after `position` in the seed order and send their inserts, when
   * nothing about them waits on the relation being inserted now: none of its foreign keys points there, no
   * trigger can add rows first, and it takes no part in a deferred cycle. Whatever the seeder sends next
   * waits until they have answered (AuditSession.sendKept), so none of it meets a transaction they aborted.
   */
  async ahead(position: number, current: Relation): Promise<void> {
    const { catalog, plan, plans } = this.state;
    const name = plan.seedOrder[position + 1];
    const relation = name ? relationOf(catalog, name) : undefined;
    const relationPlan = name ? plans.get(name) : undefined;
    if (!relation || !relationPlan || this.withTriggers || !this.batchable(relation, relationPlan) || this.state.blocked(relation.qualified, 'INSERT')) return;
    if (relation.foreignKeys.some((foreignKey) => foreignKey.references === current.qualified)) return;
    if (plan.deferredReferences.some((edge) => edge.from === relation.qualified || edge.to === relation.qualified)) return;
    const groups = await this.plan(relation, relationPlan, this.rows.wanted(relation, relationPlan));
    for (const group of groups) group.sent = this.inserts.send(relation, group.columns, group.tenants.flatMap((entry) => entry.rows));
    this.planned = { relation: relation.qualified, groups };
  }
}
