import { relationObject } from '../findings.js';
import { commentText, literal, relationIdent } from '../sql.js';
import { inheritedBy, regclassLiteral, tenantTables } from './privilege-helpers.js';
import { defineRule } from './types.js';

export const ownerWithoutForce = defineRule({
  meta: {
    id: 'owner-without-force',
    title: 'The application role owns a tenant table that does not force row-level security',
    severity: 'critical',
    objectKind: 'table',
    summary: 'The application role owns a tenant table that does not force row-level security.',
    example: 'app_user inherits the rights of app_owner, owner of public.projects, which does not force RLS.',
    explanation:
      "A table's owner, and every role that inherits the owner's rights, is exempt from the table's policies unless the table has FORCE " +
      'ROW LEVEL SECURITY. An application that connects as the role that ran the migrations therefore sees every tenant. This rule ' +
      'flags tenant-owned tables with row-level security enabled but not forced whose owner is the application role or a role it ' +
      'inherits from (tables without row-level security at all are rls-disabled findings). Fix: FORCE row-level security, and better, ' +
      'give the tables to a role the application does not use.',
    confirmedBy: ['role-owns-table', 'read-isolation'],
  },
  evaluate({ catalog, plan }, report) {
    const roles = inheritedBy(catalog, plan.role);
    return tenantTables(catalog, plan)
      .filter(({ relation }) => relation.rlsEnabled && !relation.rlsForced && roles.has(relation.owner))
      .map(({ relation }) => {
        const direct = relation.owner === plan.role;
        return report({
          severity: 'critical',
          object: relationObject(relation),
          message: direct
            ? `The application role ${plan.role} owns ${relation.qualified}, which does not force row-level security: its policies do not apply to the application.`
            : `The application role ${plan.role} inherits the rights of ${relation.owner}, owner of ${relation.qualified}, which does not force row-level security: its policies do not apply to the application.`,
          sql:
            `select c.oid::regclass as relation, pg_get_userbyid(c.relowner) as owner, c.relrowsecurity, c.relforcerowsecurity, ` +
            `pg_has_role(${literal(plan.role)}, c.relowner, 'USAGE') as app_role_acts_as_owner from pg_class c where c.oid = ${regclassLiteral(relation.qualified)};`,
          details: `owner ${relation.owner}; row-level security enabled, not forced${direct ? '' : `; ${plan.role} inherits from ${relation.owner}`}`,
          fix:
            `alter table ${relationIdent(relation)} force row level security;\n` +
            `-- better still: alter table ${commentText(relationIdent(relation))} owner to <a role the application does not use>;`,
        });
      });
  },
});
