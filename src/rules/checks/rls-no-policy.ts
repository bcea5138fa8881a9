import { relationObject } from '../../findings/finding.js';
import { fix, orInline, policyStatement, revoke } from '../../findings/fix.js';
import { currentTenantExpression } from '../../findings/fixes.js';
import { commentText, ident, relationIdent } from '../../target/sql.js';
import { applyingPolicies, rlsApplies } from '../../analysis/queries.js';
import { isTenantOwned, listWords, relationStateSql, ROW_COMMANDS, rowCommandsOf, tenantPredicateFor } from '../relation-facts.js';
import { defineRule } from '../types.js';

export const rlsNoPolicy = defineRule({
  order: 20,
  meta: {
    id: 'rls-no-policy',
    title: 'Row-level security enabled without a policy for the application role',
    severity: 'info',
    objectKind: 'table',
    summary: 'Row-level security is enabled but no policy applies to the application role.',
    example: 'public.audit_events has RLS enabled and no policy: default deny, the application cannot use it.',
    explanation:
      'With row-level security enabled and no policy that applies to a role, PostgreSQL denies that role every row (default deny): ' +
      'reads return nothing and writes are rejected. Nothing leaks, but the application cannot use a table it was granted, which ' +
      'usually means a policy was forgotten (or was written for another role). Reported only when the role holds a privilege on ' +
      'the relation and row-level security applies to it. Fix: add the policy the application needs, or revoke the grant.',
    precondition:
      'Info: row-level security applies to a relation the role holds a privilege on, and no policy applies to the role: default ' +
      'deny, nothing leaks, the application cannot use the table.',
  },
  evaluate({ catalog, plan, analysis }, report) {
    const scope = { catalog, plan, analysis };
    return catalog.relations
      .filter((relation) => rlsApplies(analysis, relation) && rowCommandsOf(scope, relation).length && !ROW_COMMANDS.some((command) => applyingPolicies(analysis, relation, command).length))
      .map((relation) => {
        const commands = rowCommandsOf(scope, relation);
        const others = relation.policies.length;
        const target = relationIdent(relation);
        const role = ident(plan.role);
        const tenantOwned = isTenantOwned(scope, relation);
        const predicate = tenantOwned ? (tenantPredicateFor(scope, relation) ?? `<tenant column> = ${currentTenantExpression(plan)}`) : null;
        const policy = predicate
          ? policyStatement('create-policy', { name: 'tenant_isolation', table: relation.qualified }, `create policy tenant_isolation on ${target} for all to ${role}\n  using (${predicate})\n  with check (${predicate});`, target)
          : { ...policyStatement('create-policy', { name: 'shared_read', table: relation.qualified }, `create policy shared_read on ${target} for select to ${role} using (true);`, target), note: 'a shared table every tenant may read' };
        return report({
          severity: 'info',
          object: relationObject(relation),
          message:
            `${relation.qualified} has row-level security enabled and ${others ? `${others} ${others === 1 ? 'policy' : 'policies'}, none for ${plan.role}` : 'no policy'}: ` +
            `${plan.role} is granted ${listWords(commands)} but every read, update and delete sees no rows and every insert is rejected (default deny).`,
          sql: relationStateSql(scope, relation),
          details: `policies: ${relation.policies.map((entry) => `${entry.name} (to ${entry.roles.join(', ')})`).join(', ') || 'none'}`,
          fix: fix([policy], [orInline(`, if ${commentText(plan.role)} should not use it:`, revoke('all', target, role))]),
        });
      });
  },
});
