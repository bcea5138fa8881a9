import type { Analysis, ContextReference } from '../analysis/model.js';
import type { Catalog, Column, Relation } from '../catalog/types.js';
import { columnRules } from '../seed/column-rules.js';
import { checksOf } from '../seed/values.js';
import type { TenancyPlan } from './tenancy.js';
import { columnOf } from '../catalog/lookup.js';

/**
 * Where a row says which user it is of: the columns that reference the users table (`author_id`,
 * `user_id`, `owner_id`), and the columns the policies compare with the user's identity (`auth.uid()`, the
 * `sub` claim, a setting the context fills from `$user`). Only in user tenancy (the context carries a user).
 */

/** A context reference that stands for the signed-in user, not for the tenant. */
export function isUserReference(plan: TenancyPlan, reference: ContextReference): boolean {
  const { source } = reference;
  if (source.kind === 'jwt-claim') return source.path.length === 1 && source.path[0] === 'sub';
  if (source.kind === 'function') return /(^|\.)uid$/.test(source.function);
  if (source.kind === 'setting') return plan.contextParameters.includes('user') && /user|uid|sub|member|account_id$/i.test(source.setting) && !/tenant|org|team|workspace|company/i.test(source.setting);
  return false;
}

/** Columns of `relation` holding a user: single-column foreign keys to the users table, and columns the policies compare with the user. */
export function userColumns(catalog: Catalog, analysis: Analysis, plan: TenancyPlan, relation: Relation): string[] {
  const users = plan.actors.kind === 'user' ? plan.actors.users : null;
  if (!users || users.relation === plan.tenantKey.relation) return [];
  const columns = new Set<string>();
  for (const foreignKey of relation.foreignKeys) {
    if (foreignKey.references === users.relation && foreignKey.columns.length === 1 && foreignKey.referencedColumns[0] === users.column) columns.add(foreignKey.columns[0]!);
  }
  for (const reference of analysis.contextReferences) {
    if (reference.use.kind !== 'equality' || reference.use.membership || reference.use.relation !== relation.qualified) continue;
    if (!isUserReference(plan, reference)) continue;
    const column = columnOf(relation, (reference.use as { column: string }).column);
    if (column && column.baseType === users.baseType && !plan.tenantColumns.includes(column.name)) columns.add(column.name);
  }
  void catalog;
  return [...columns];
}

/** Words of a role value, most privileged first. */
const PRIVILEGED = ['owner', 'superadmin', 'super_admin', 'super-admin', 'admin', 'administrator', 'manager', 'maintainer', 'billing', 'editor', 'moderator', 'writer'];

function rank(value: string): number {
  const index = PRIVILEGED.indexOf(value.toLowerCase());
  return index < 0 ? PRIVILEGED.length : index;
}

export interface RoleColumn {
  column: Column;
  /** The most privileged value the column may hold. */
  top: string;
  /** The least privileged: a value that is not a privileged word (member, viewer), else the lowest ranked. */
  bottom: string;
}

/**
 * Columns of a membership-like row that grade the user (`role text check (role in ('owner', 'member'))`,
 * an enum `member_role`, a foreign key to a `roles` table): with their most privileged value, by name
 * (owner over admin over member). Null values and columns without a recognisable privileged value are not roles.
 */
export function roleColumns(relation: Relation, referenced: (relation: string, column: string) => readonly string[]): RoleColumn[] {
  const found: RoleColumn[] = [];
  for (const column of relation.columns) {
    let values: readonly string[] = column.enumValues ?? columnRules(column, checksOf(relation)).allowed ?? [];
    if (!values.length) {
      // A foreign key to a roles table: the values are its seeded keys.
      const foreignKey = relation.foreignKeys.find((candidate) => candidate.columns.length === 1 && candidate.columns[0] === column.name);
      if (foreignKey && /role|permission|level/i.test(foreignKey.references.split('.').pop()!)) values = referenced(foreignKey.references, foreignKey.referencedColumns[0]!);
    }
    const ranked = [...values].sort((a, b) => rank(a) - rank(b));
    if (ranked.length > 1 && rank(ranked[0]!) < PRIVILEGED.length) found.push({ column, top: ranked[0]!, bottom: ranked[ranked.length - 1]! });
  }
  return found;
}
