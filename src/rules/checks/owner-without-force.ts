import { relationObject } from '../../findings/finding.js';
import { cause } from '../../findings/cause.js';
import { ownershipFix } from '../../findings/fixes.js';
import { fix as makeFix } from '../../findings/fix.js';
import { literal } from '../../target/sql.js';
import { apiBarrier, inheritedBy, regclassLiteral, tenantTables } from '../privilege-helpers.js';
import { defineRule } from '../types.js';

export const ownerWithoutForce = defineRule({
  order: 200,
  meta: {
    id: 'owner-without-force',
    title: 'The application role owns a tenant table (and so is exempt from its policies, or can make itself so)',
    severity: 'critical',
    objectKind: 'table',
    summary: 'The application role owns a tenant table: without FORCE it is exempt from the policies; with FORCE it can turn FORCE off.',
    example: 'app_user inherits the rights of app_owner, owner of public.projects, which does not force RLS.',
    explanation:
      "A table's owner, and every role that inherits the owner's rights, is exempt from the table's policies unless the table has FORCE " +
      'ROW LEVEL SECURITY, and may ALTER the table: NO FORCE ROW LEVEL SECURITY or DISABLE ROW LEVEL SECURITY undoes the fence in one ' +
      'statement. An application that connects as the role that ran the migrations therefore sees every tenant, or can. This rule ' +
      'flags tenant-owned tables with row-level security enabled whose owner is the application role or a role it inherits from ' +
      '(tables without row-level security at all are rls-disabled findings). Fix: give the tables to a role the application does not ' +
      'use (FORCE alone stops only the first case).',
    precondition:
      'Not forced: critical (the policies do not apply to the role). Forced: high when the role can run DDL (ALTER TABLE ... NO FORCE ' +
      'ROW LEVEL SECURITY, then read), proven by role-owns-table on the run\'s own cluster; info when it is reached only through an API ' +
      'layer (--preset, or `api: true`) and no function it may call runs dynamic SQL.',
    confirmedBy: ['role-owns-table', 'read-isolation'],
  },
  evaluate({ catalog, plan, analysis }, report) {
    const roles = inheritedBy(catalog, plan.role);
    const barrier = apiBarrier(catalog, analysis, plan);
    return tenantTables(catalog, plan)
      .filter(({ relation }) => relation.rlsEnabled && roles.has(relation.owner))
      .map(({ relation }) => {
        const direct = relation.owner === plan.role;
        const who = direct ? `The application role ${plan.role} owns ${relation.qualified}` : `The application role ${plan.role} inherits the rights of ${relation.owner}, owner of ${relation.qualified}`;
        const sql =
          `select c.oid::regclass as relation, pg_get_userbyid(c.relowner) as owner, c.relrowsecurity, c.relforcerowsecurity, ` +
          `pg_has_role(${literal(plan.role)}, c.relowner, 'USAGE') as app_role_acts_as_owner from pg_class c where c.oid = ${regclassLiteral(relation.qualified)};`;
        if (!relation.rlsForced) {
          return report({
            severity: 'critical',
            object: relationObject(relation),
            cause: cause('owner-bypass', relationObject(relation)),
            message: `${who}, which does not force row-level security: its policies do not apply to the application.`,
            sql,
            details: `owner ${relation.owner}; row-level security enabled, not forced${direct ? '' : `; ${plan.role} inherits from ${relation.owner}`}`,
            fix: makeFix(ownershipFix(plan, relation)),
          });
        }
        return report({
          severity: barrier ? 'info' : 'high',
          object: relationObject(relation),
          cause: cause('owner-bypass', relationObject(relation)),
          message: barrier
            ? `${who}, which forces row-level security; as owner it could turn that off, but ${barrier}.`
            : `${who}, which forces row-level security, but as owner it may run ALTER TABLE ${relation.qualified} NO FORCE ROW LEVEL SECURITY (or DISABLE it) and then read every tenant's rows.`,
          sql,
          details: `owner ${relation.owner}; row-level security enabled and forced${direct ? '' : `; ${plan.role} inherits from ${relation.owner}`}`,
          fix: makeFix(ownershipFix(plan, relation)),
        });
      });
  },
});
