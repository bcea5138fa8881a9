import { relationObject } from '../../findings/finding.js';
import { comment, createView, fix, grant, revoke } from '../../findings/fix.js';
import { cause } from '../../findings/cause.js';
import { commentText, ident, relationIdent } from '../../target/sql.js';
import { isTenantOwned, relationStateSql, rowCommandsOf, tenantFilterOf } from '../relation-facts.js';
import { defineRule } from '../types.js';

export const materializedViewExposed = defineRule({
  order: 50,
  meta: {
    id: 'materialized-view-exposed',
    title: 'Materialized view over tenant data readable by the application role',
    severity: 'high',
    objectKind: 'view',
    summary: 'A materialized view over tenant data is readable by the application role; no policy applies to it.',
    example: 'app_user may select from public.order_totals, a materialized view over public.orders: RLS does not apply to it.',
    explanation:
      'A materialized view stores the result of its query, computed with the rights of whoever refreshed it, and row-level ' +
      'security cannot be enabled on it: whoever may select from it reads every tenant\'s rows it holds, whatever the policies of ' +
      'the tables it was built from. Reported for materialized views that read tenant-owned relations (directly or through views) ' +
      'and that the application role may select. Fix: revoke SELECT and expose it through a view that filters by the current ' +
      'tenant (owned by a role that may read the materialized view), or replace it with a table that has row-level security.',
    precondition:
      'High: the role may select a materialized view that reads tenant-owned relations; row-level security cannot apply to it, so a ' +
      'select reads every tenant\'s rows it stores. read-isolation confirms it on data.',
    confirmedBy: ['read-isolation'],
  },
  evaluate({ catalog, plan, analysis }, report) {
    const scope = { catalog, plan, analysis };
    return catalog.relations
      .filter((relation) => relation.kind === 'materialized-view' && isTenantOwned(scope, relation) && rowCommandsOf(scope, relation).includes('SELECT'))
      .map((relation) => {
        const target = relationIdent(relation);
        const column = tenantFilterOf(scope, relation);
        const view = `${ident(relation.schema)}.${ident(`${relation.name}_for_tenant`)}`;
        const filtered = column
          ? [
              comment('a view owned by a role that may read the materialized view, filtering by the current tenant:'),
              createView(view, `with (security_barrier) as\n  select * from ${target} where ${ident(column.column)} = ${column.current}`),
              grant('select', view, ident(plan.role)),
            ]
          : [comment(`${commentText(relation.qualified)} has no tenant column: add one to its query, then expose it through a view that filters on it`)];
        return report({
          severity: 'high',
          object: relationObject(relation),
          cause: cause('materialized-view', relationObject(relation)),
          message: `${plan.role} may select from ${relation.qualified}, a materialized view over ${relation.dependsOn.join(', ')}: row-level security does not apply to materialized views, so it reads every tenant's rows stored in it.`,
          sql: relationStateSql(scope, relation),
          details: `materialized view reading ${relation.dependsOn.join(', ')}\n${relation.viewDefinition?.trim() ?? ''}`,
          fix: fix([revoke('select', target, ident(plan.role)), ...filtered]),
        });
      });
  },
});
