import { relationObject, type Finding } from '../../findings/finding.js';
import { fix, grant, revoke } from '../../findings/fix.js';
import { ident, relationIdent } from '../../target/sql.js';
import { regclassLiteral, relationPlanOf } from '../privilege-helpers.js';
import { defineRule } from '../types.js';

export const publicGrant = defineRule({
  order: 220,
  meta: {
    id: 'public-grant',
    title: 'Privileges on tenant data are granted to PUBLIC',
    severity: 'medium',
    objectKind: 'table',
    summary: 'Privileges on tenant data are granted to PUBLIC.',
    example: 'PUBLIC holds SELECT on the tenant-owned table public.projects.',
    explanation:
      'A privilege granted to PUBLIC belongs to every role in the cluster, present and future: reporting users, extension roles, a ' +
      'role created for a one-off script. Whether they see other tenants then depends only on every policy being written for every ' +
      "role, and on none of them owning the table or bypassing RLS. Tenant data should be granted to the application's roles by name. " +
      'This rule reads the ACL of every tenant-owned table, view, materialized view and foreign table. Fix: REVOKE ... FROM PUBLIC and ' +
      'GRANT to the roles that need it.',
    precondition:
      'Medium: a privilege on a tenant-owned table, view, materialized view or foreign table is granted to PUBLIC, so every role in ' +
      'the cluster, present and future, holds it; whether they see other tenants rests on every policy being written for every role.',
  },
  evaluate({ catalog, plan }, report) {
    const findings: Finding[] = [];
    for (const relation of catalog.relations) {
      const relationPlan = relationPlanOf(plan, relation.qualified);
      if (!relationPlan || relationPlan.tenancy === 'shared') continue;
      const privileges = [...new Set(relation.grants.filter((grant) => grant.grantee === 'public').map((grant) => grant.privilege))];
      if (!privileges.length) continue;
      const list = privileges.map((privilege) => privilege.toLowerCase()).join(', ');
      findings.push(
        report({
          severity: 'medium',
          object: relationObject(relation),
          message: `PUBLIC, that is every role in the cluster, holds ${privileges.join(', ')} on the tenant-owned ${relation.kind.replace('-', ' ')} ${relation.qualified}.`,
          sql: `select a.privilege_type from pg_class c, aclexplode(c.relacl) a where c.oid = ${regclassLiteral(relation.qualified)} and a.grantee = 0;`,
          details: `granted to PUBLIC: ${privileges.join(', ')}`,
          fix: fix([revoke(list, relationIdent(relation), 'public'), grant(list, relationIdent(relation), ident(plan.role))]),
        }),
      );
    }
    return findings;
  },
});
