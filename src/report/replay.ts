import type { Catalog } from '../catalog/types.js';
import type { ContextParameter } from '../analysis/context-sql.js';
import type { TenancyPlan } from '../plan/tenancy.js';
import type { Actors } from '../seed/actors.js';
import type { Ledger } from '../seed/ledger.js';
import { relationOf } from '../catalog/lookup.js';

/** The seeded rows of one relation, in the order they were inserted, with the tenant of each. */
export interface ReplayRelation {
  relation: string;
  /** The columns written: every column but generated ones. */
  columns: string[];
  /** An identity column GENERATED ALWAYS is among them: the insert says OVERRIDING SYSTEM VALUE. */
  overridingSystemValue: boolean;
  /** The primary key, by which a test finds the seeded rows among others; null without one. */
  key: string[] | null;
  /** A column a no-op UPDATE may set to itself (not generated, not an identity GENERATED ALWAYS), a key column last; null without one. */
  updatable: string | null;
  /** Tenant-owned (not shared): its rows belong to the tenant beside them. */
  tenantOwned: boolean;
  rows: { tenant: string | null; values: (string | null)[] }[];
}

/**
 * What a test needs to recreate the audit's tenants and actors outside it (`--format pgtap`): the seeded
 * rows, the context the application sets and who sets it. Only in a report of `run --format pgtap`.
 */
export interface Replay {
  role: string;
  /** The context is `set local role` to the tenant's own role (a role per tenant). */
  roleSwitch: boolean;
  contextSql: string;
  contextParameters: ContextParameter[];
  /** The setting the context lives in, emptied for the "no context" state; null for a role switch. */
  setting: string | null;
  anonymousRole: string | null;
  relations: ReplayRelation[];
  /**
   * The actor of each tenant: the user (`$user`) or role (`$role`) the context carries, and the key of its row
   * in the table the policies read the identity through (a session id), which `$tenant` carries instead.
   */
  actors: { tenant: string; label: string; user: string | null; role: string | null; key?: string | null }[];
}

/**
 * The replay of a run, or the reason it cannot be had: the ledger keeps every value of the first rows of a
 * tenant only, and a row the seeder changed after inserting it (a cycle of foreign keys) replays as it ended.
 */
export function buildReplay(catalog: Catalog, plan: TenancyPlan, ledger: Ledger, actors: Actors): Replay | string {
  const owned = new Set(plan.relations.filter((relation) => relation.tenancy !== 'shared').map((relation) => relation.relation));
  const relations: ReplayRelation[] = [];
  for (const name of ledger.relations()) {
    const relation = relationOf(catalog, name);
    if (!relation) continue;
    // Rows of a tenant the platform made for an actor (a personal account) are made again by the same trigger when the replay creates the actor.
    const rows = ledger.rows(name).filter((row) => !ledger.isPersonal(row.tenant));
    if (!rows.length) continue;
    const columns = relation.columns.filter((column) => !column.generated && rows.every((row) => column.name in row.values)).map((column) => column.name);
    const written = relation.columns.filter((column) => !column.generated && rows.some((row) => column.name in row.values));
    if (written.length !== columns.length) return `the audit kept every value of the first rows of each tenant only, and ${name} has more: use --rows 20 or fewer with --format pgtap`;
    relations.push({
      relation: name,
      columns,
      overridingSystemValue: relation.columns.some((column) => column.identity === 'always' && columns.includes(column.name)),
      key: relation.primaryKey,
      updatable:
        relation.columns
          .filter((column) => columns.includes(column.name) && column.identity !== 'always')
          .sort((a, b) => Number(relation.primaryKey?.includes(a.name) ?? false) - Number(relation.primaryKey?.includes(b.name) ?? false))[0]?.name ?? null,
      tenantOwned: owned.has(name),
      rows: rows.map((row) => ({ tenant: row.tenant, values: columns.map((column) => row.values[column] ?? null) })),
    });
  }
  return {
    role: plan.role,
    roleSwitch: plan.roleSwitch,
    contextSql: plan.contextSql,
    contextParameters: plan.contextParameters,
    setting: plan.roleSwitch || !plan.setting.includes('.') ? null : plan.setting,
    anonymousRole: plan.anonymousRole,
    relations,
    actors: [...actors.primary.entries()].map(([tenant, actor]) => ({
      tenant,
      label: actor.tenants[0]?.label ?? actor.label,
      user: actor.user,
      role: actor.role,
      ...(plan.actors.lookup && actor.key !== undefined ? { key: actor.key } : {}),
    })),
  };
}
