import { relationObject } from '../../findings/finding.js';
import { createView, fix, grant, revoke } from '../../findings/fix.js';
import { ident, relationIdent } from '../../target/sql.js';
import { isTenantOwned, listWords, relationStateSql, rowCommandsOf, tenantFilterOf } from '../relation-facts.js';
import { defineRule } from '../types.js';

export const foreignTableExposed = defineRule({
  order: 60,
  meta: {
    id: 'foreign-table-exposed',
    title: 'Foreign table over tenant data usable by the application role',
    severity: 'high',
    objectKind: 'table',
    summary: 'A foreign table over tenant data is usable by the application role; no policy applies to it.',
    example: 'app_user may select public.shipments, a foreign table with tenant data.',
    explanation:
      'Row-level security cannot be enabled on a foreign table: PostgreSQL applies no policy to it, and the remote side sees ' +
      'the user mapping\'s credentials, not the tenant. A foreign table with tenant data that the application role may read ' +
      '(or write) exposes every tenant\'s rows. Reported for tenant-owned foreign tables (they have a tenant column) the role may ' +
      'use. Fix: revoke the privileges and expose a security-barrier view that filters by the current tenant.',
    precondition:
      'High: a tenant-owned foreign table (it has a tenant column) that the role may use; no policy can apply to it, so every ' +
      'tenant\'s rows on the remote side are exposed. read-isolation confirms it on data.',
    confirmedBy: ['read-isolation'],
  },
  evaluate({ catalog, plan, analysis }, report) {
    const scope = { catalog, plan, analysis };
    return catalog.relations
      .filter((relation) => relation.kind === 'foreign-table' && isTenantOwned(scope, relation) && rowCommandsOf(scope, relation).length)
      .map((relation) => {
        const commands = rowCommandsOf(scope, relation);
        const target = relationIdent(relation);
        const column = tenantFilterOf(scope, relation);
        const view = `${ident(relation.schema)}.${ident(`${relation.name}_for_tenant`)}`;
        const filtered = column
          ? [createView(view, `with (security_barrier) as\n  select * from ${target} where ${ident(column.column)} = ${column.current}`), grant('select', view, ident(plan.role))]
          : [];
        return report({
          severity: 'high',
          object: relationObject(relation),
          message: `${plan.role} may ${listWords(commands.map((command) => command.toLowerCase()))} ${relation.qualified}, a foreign table with tenant data: row-level security cannot apply to foreign tables, so it reaches every tenant's rows.`,
          sql: relationStateSql(scope, relation),
          details: `foreign table; ${plan.role} may ${listWords(commands)}`,
          fix: fix([revoke('all', target, ident(plan.role)), ...filtered]),
        });
      });
  },
});
