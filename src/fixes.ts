import type { Relation } from './catalog/types.js';
import type { RelationPlan, TenancyPlan } from './plan/tenancy.js';
import { ident, literal, qualifiedIdent, relationIdent } from './sql.js';

/** The tenant id of the current transaction, read once per statement, NULL (deny) when unset or ''. */
export function currentTenantExpression(plan: TenancyPlan): string {
  return `(select nullif(current_setting(${literal(plan.setting)}, true), '')::${plan.tenantKey.type})`;
}

/** A predicate that is true for the current tenant's rows of a relation. */
export function tenantPredicate(plan: TenancyPlan, relationPlan: RelationPlan): string {
  if (relationPlan.tenantColumn) return `${ident(relationPlan.tenantColumn)} = ${currentTenantExpression(plan)}`;
  const hop = relationPlan.path?.[0];
  if (hop) {
    const join = hop.columns.map((column, index) => `parent.${ident(hop.referencedColumns[index]!)} = ${ident(column)}`).join(' and ');
    return `exists (select 1 from ${qualifiedIdent(hop.references)} parent where ${join})`;
  }
  return 'false';
}

/** Enable and force RLS, and add one policy for every command that fences rows to the current tenant. */
export function isolationPolicySql(plan: TenancyPlan, relation: Relation, relationPlan: RelationPlan): string {
  const target = relationIdent(relation);
  const predicate = tenantPredicate(plan, relationPlan);
  return [
    `alter table ${target} enable row level security;`,
    `alter table ${target} force row level security;`,
    `create policy tenant_isolation on ${target} for all to ${ident(plan.role)}`,
    `  using (${predicate})`,
    `  with check (${predicate});`,
  ].join('\n');
}

/** A restrictive policy: ANDed with every permissive one, so a loose permissive policy can no longer widen access. */
export function restrictiveFenceSql(plan: TenancyPlan, relation: Relation, relationPlan: RelationPlan): string {
  const predicate = tenantPredicate(plan, relationPlan);
  return [
    `create policy tenant_fence on ${relationIdent(relation)} as restrictive for all to ${ident(plan.role)}`,
    `  using (${predicate})`,
    `  with check (${predicate});`,
  ].join('\n');
}
