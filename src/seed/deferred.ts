import { relationOf, requireColumn } from '../catalog/lookup.js';
import type { ForeignKey, Relation } from '../catalog/types.js';
import { errorMessage } from '../errors.js';
import { ident, relationIdent } from '../target/sql.js';
import type { Tenant } from './ledger.js';
import type { SeedResult } from './outcome.js';
import { parentRows } from './rows.js';
import { nullableKey } from './shapes.js';
import { stopOn, type SeedState } from './state.js';

/**
 * The foreign keys of cycles (the plan's deferred references): left NULL, or with a DEFERRABLE constraint
 * deferred, while the rows of the cycle go in, then pointed at same-tenant parents once those exist.
 */
export class DeferredReferences {
  /** Foreign keys left NULL (or deferred) while seeding a cycle, set once their parents exist. */
  private readonly pending: { relation: Relation; foreignKey: ForeignKey; deferred: boolean }[] = [];

  constructor(private readonly state: SeedState) {}

  /** Whether the foreign key closes a cycle, and is set only once its parents exist. */
  isDeferred(relation: Relation, foreignKey: ForeignKey): boolean {
    return this.state.plan.deferredReferences.some((edge) => edge.from === relation.qualified && edge.to === foreignKey.references);
  }

  /** Keep a deferred foreign key whose rows went in pointing nowhere yet, for `settle`. */
  leave(relation: Relation, foreignKey: ForeignKey): void {
    if (!this.pending.some((entry) => entry.relation === relation && entry.foreignKey === foreignKey)) {
      this.pending.push({ relation, foreignKey, deferred: !nullableKey(relation, foreignKey) });
    }
  }

  /**
   * A cycle whose deferred edge is NOT NULL is seeded with that constraint deferred (when it is DEFERRABLE):
   * rows go in pointing nowhere yet, and `settle` points them at parents and checks them at once.
   */
  async defer(): Promise<void> {
    const { catalog, plan, session } = this.state;
    for (const edge of plan.deferredReferences) {
      const relation = relationOf(catalog, edge.from);
      if (!relation) continue;
      for (const foreignKey of relation.foreignKeys) {
        if (foreignKey.references !== edge.to || nullableKey(relation, foreignKey)) continue;
        if (foreignKey.deferrable) await session.query(`set constraints ${ident(relation.schema)}.${ident(foreignKey.name)} deferred`);
      }
    }
  }

  /**
   * Point the foreign keys left NULL (or deferred) while seeding a cycle at same-tenant parents, now that
   * they exist; a deferred constraint is then checked at once.
   */
  async settle(results: SeedResult[]): Promise<void> {
    const { session, ledger, faker } = this.state;
    for (const { relation, foreignKey, deferred } of this.pending) {
      const result = results.find((candidate) => candidate.relation === relation.qualified);
      const key = relation.primaryKey;
      const relationPlan = this.state.plans.get(relation.qualified)!;
      if (!key?.length) continue;
      const blocked = this.state.blocked(relation.qualified, 'UPDATE');
      if (blocked) {
        if (result) {
          result.status = 'partial';
          result.reason ??= `the cycle through ${foreignKey.name} was not closed: ${blocked.reason}`;
          result.hint ??= blocked.hint;
        }
        continue;
      }
      const assignments: { key: string[]; values: string[] }[] = [];
      const tenants: (Tenant | null)[] = relationPlan.tenancy === 'shared' ? [null] : ledger.tenants;
      const columns = foreignKey.columns.filter((column) => column !== relationPlan.tenantColumn || relationPlan.tenancy === 'shared');
      for (const tenant of tenants) {
        const parents = parentRows(this.state, foreignKey, tenant);
        if (!parents.length) continue;
        ledger.rows(relation.qualified, tenant?.id ?? null).forEach((row, index) => {
          const parent = faker.helpers.arrayElement(parents);
          const values = columns.map((column) => parent.values[foreignKey.referencedColumns[foreignKey.columns.indexOf(column)]!] ?? '');
          assignments.push({ key: key.map((column) => row.values[column] ?? ''), values });
          ledger.update(relation.qualified, tenant?.id ?? null, index, Object.fromEntries(columns.map((column, position) => [column, values[position]!])));
        });
      }
      if (!assignments.length) continue;
      const sql =
        `update ${relationIdent(relation)} as t set ${columns.map((column, index) => `${ident(column)} = v.s${index}::${requireColumn(relation, column).type}`).join(', ')} ` +
        `from unnest(${[...key, ...columns].map((_, index) => `$${index + 1}::text[]`).join(', ')}) as v(${[...key.map((_, index) => `k${index}`), ...columns.map((_, index) => `s${index}`)].join(', ')}) ` +
        `where ${key.map((column, index) => `t.${ident(column)} = v.k${index}::${requireColumn(relation, column).type}`).join(' and ')}`;
      const params = [...key.map((_, index) => assignments.map((entry) => entry.key[index]!)), ...columns.map((_, index) => assignments.map((entry) => entry.values[index]!))];
      try {
        this.state.statements += 1;
        await session.savepoint(async () => {
          await session.query(sql, params);
          if (deferred) await session.query(`set constraints ${ident(relation.schema)}.${ident(foreignKey.name)} immediate`);
        }, true);
      } catch (error) {
        stopOn(session, error);
        if (result) {
          result.status = 'partial';
          result.reason ??= `the cycle through ${foreignKey.name} could not be closed: ${errorMessage(error)}`;
        }
      }
    }
  }
}
