import type { Relation } from '../catalog/types.js';
import type { RelationPlan, TenancyPlan } from '../plan/tenancy.js';
import { PRESETS } from '../presets/index.js';
import { ident, literal, qualifiedIdent, relationIdent } from '../target/sql.js';
import { alterTable, enableRls, forceRls, grant, policyStatement, type FixStep } from './fix.js';

/** A JSON path as PostgreSQL's `#>>` takes it: `'{app_metadata,tenant_id}'`. */
function jsonPath(path: readonly string[]): string {
  return literal(`{${path.map((key) => (/^[A-Za-z0-9_]+$/.test(key) ? key : `"${key.replace(/(["\\])/g, '\\$1')}"`)).join(',')}}`);
}

/**
 * The tenant id of the current transaction, read once per statement, NULL (deny) when unset or '': from
 * the current role where each tenant has one, from the JWT claim that carries it when a claim does, else
 * from the setting.
 */
export function currentTenantExpression(plan: TenancyPlan): string {
  const template = plan.actors.kind === 'role' ? plan.actors.roleTemplate : null;
  if (template) {
    // One role per tenant: the tenant is the current role's name (or the part of it the template leaves).
    const [prefix = '', suffix = ''] = template.split('{tenant}');
    const name = prefix || suffix ? `substr(current_user, ${prefix.length + 1}, length(current_user) - ${prefix.length + suffix.length})` : 'current_user';
    return `(select ${name}::text${plan.tenantKey.type === 'text' ? '' : `::${plan.tenantKey.type}`})`;
  }
  const raw = `nullif(current_setting(${literal(plan.setting)}, true), '')`;
  if (plan.tenantClaim?.length) return `(select (${raw}::json #>> ${jsonPath(plan.tenantClaim)})::${plan.tenantKey.type})`;
  return `(select ${raw}::${plan.tenantKey.type})`;
}

/** The signed-in user of the current request, when the context carries a user: the preset's (auth.uid() on Supabase), else the JWT's sub. */
function currentUserExpression(plan: TenancyPlan): string | null {
  const users = plan.actors.users;
  if (plan.actors.kind !== 'user' || !users) return null;
  const platform = plan.preset ? PRESETS[plan.preset].currentUserSql : null;
  if (platform !== null) return platform;
  return `(select (nullif(current_setting(${literal(plan.setting)}, true), '')::json ->> 'sub')::${users.type})`;
}

/**
 * A predicate that is true for the current tenant's rows of a relation: the tenant column compared with the
 * current tenant; where users belong to tenants, with the tenants of the current user's memberships; where
 * each user is a tenant, with the current user.
 */
export function tenantPredicate(plan: TenancyPlan, relationPlan: RelationPlan): string {
  if (relationPlan.tenantColumn) {
    const user = currentUserExpression(plan);
    const membership = plan.actors.membership;
    if (user && membership) {
      // On the membership table itself a sub-select of it would recurse into its own policy: a user sees its own memberships.
      if (relationPlan.relation === membership.relation) return `${ident(membership.userColumn)} = ${user}`;
      return `${ident(relationPlan.tenantColumn)} in (select m.${ident(membership.tenantColumn)} from ${qualifiedIdent(membership.relation)} m where m.${ident(membership.userColumn)} = ${user})`;
    }
    return `${ident(relationPlan.tenantColumn)} = ${user ?? currentTenantExpression(plan)}`;
  }
  const hop = relationPlan.path?.[0];
  if (hop) {
    const join = hop.columns.map((column, index) => `parent.${ident(hop.referencedColumns[index]!)} = ${ident(column)}`).join(' and ');
    return `exists (select 1 from ${qualifiedIdent(hop.references)} parent where ${join})`;
  }
  return 'false';
}

/** Enable and force RLS, and add one policy for every command that fences rows to the current tenant. */
export function isolationPolicy(plan: TenancyPlan, relation: Relation, relationPlan: RelationPlan): FixStep[] {
  const target = relationIdent(relation);
  const predicate = tenantPredicate(plan, relationPlan);
  return [
    enableRls(target),
    forceRls(target),
    policyStatement(
      'create-policy',
      { name: 'tenant_isolation', table: relation.qualified },
      [`create policy tenant_isolation on ${target} for all to ${ident(plan.role)}`, `  using (${predicate})`, `  with check (${predicate});`].join('\n'),
      target,
    ),
  ];
}

/** A restrictive policy: ANDed with every permissive one, so a loose permissive policy can no longer widen access. */
export function restrictiveFence(plan: TenancyPlan, relation: Relation, relationPlan: RelationPlan): FixStep[] {
  const predicate = tenantPredicate(plan, relationPlan);
  const target = relationIdent(relation);
  return [
    policyStatement(
      'create-policy',
      { name: 'tenant_fence', table: relation.qualified },
      [`create policy tenant_fence on ${target} as restrictive for all to ${ident(plan.role)}`, `  using (${predicate})`, `  with check (${predicate});`].join('\n'),
      target,
    ),
  ];
}

/**
 * The fix for a tenant table the application role owns (or whose owner's rights it inherits): FORCE keeps the
 * policies on the owner, but only another owner takes away ALTER TABLE ... NO FORCE / DISABLE ROW LEVEL
 * SECURITY; the application keeps the privileges it uses through the policies. owner-without-force and
 * role-owns-table propose the same statements, so their findings are one defect.
 */
export function ownershipFix(plan: TenancyPlan, relation: Relation): FixStep[] {
  const table = relationIdent(relation);
  return [
    ...(relation.rlsForced ? [] : [forceRls(table)]),
    alterTable(table, 'owner to current_user', 'run as a role the application does not use (the one that runs migrations)'),
    grant('select, insert, update, delete', table, ident(plan.role)),
  ];
}
