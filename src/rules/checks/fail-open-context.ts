import { relationObject } from '../../findings/finding.js';
import { fix } from '../../findings/fix.js';
import { ALL_CLAUSES, openPolicies, policyClause } from '../../analysis/queries.js';
import { fragment, isTenantOwned, listWords, policiesDetails, policiesSql, rowCommandsOf, tenantPolicyRewrite } from '../relation-facts.js';
import type { Policy } from '../../catalog/types.js';
import { defineRule } from '../types.js';

export const failOpenContext = defineRule({
  order: 120,
  meta: {
    id: 'fail-open-context',
    title: 'Policy that lets rows through when the tenant is not set',
    severity: 'high',
    objectKind: 'table',
    summary: 'A policy lets rows through when the tenant setting is not set.',
    example: 'On public.invoices, policy tenant_isolation is true whenever app.current_tenant is not set (`current_setting(...) IS NULL`).',
    explanation:
      'A policy branch that is true when the tenant setting is missing turns "no tenant" into "every tenant": ' +
      '`current_setting(...) is null or ...` (a fresh connection), `= \'\'` or `coalesce(current_setting(...), \'\') = \'\'` ' +
      '(a pooled connection after the transaction that set it ended: the setting then reads the empty string), ' +
      '`tenant_id = coalesce(<setting>, tenant_id)` (compares the column with itself). Any request that reaches the database ' +
      'without a tenant (a background job, a code path that forgot to set it, a pool) reads or writes every tenant\'s rows. ' +
      'Not reported when a restrictive tenant policy without such a branch applies. Fix: compare with ' +
      "`(select nullif(current_setting(name, true), '')::type)`, which is NULL, and so matches nothing, when the tenant is missing.",
    precondition:
      'High: a policy branch that applies to the role is true when the tenant setting is missing (is null, = \'\', coalesce, a column ' +
      'compared with itself) and no restrictive tenant policy without such a branch applies: any request without a tenant reads or ' +
      'writes every tenant\'s rows (missing context that fails open). missing-context confirms it on data.',
    confirmedBy: ['missing-context'],
  },
  evaluate({ catalog, plan, analysis }, report) {
    const scope = { catalog, plan, analysis };
    return catalog.relations
      .filter((relation) => relation.rlsEnabled && isTenantOwned(scope, relation))
      .flatMap((relation) => {
        const open = openPolicies(analysis, relation, ALL_CLAUSES, ['fail-open'], rowCommandsOf(scope, relation));
        if (!open.length) return [];
        // The fail-open fragment sits in the permissive policy, or in a restrictive one that narrowed an open permissive policy.
        const culprits = new Map<string, { policy: Policy; fragments: Set<string> }>();
        const blame = (policy: Policy, fragment: string) => {
          const entry = culprits.get(policy.name) ?? { policy, fragments: new Set<string>() };
          entry.fragments.add(fragment);
          culprits.set(policy.name, entry);
        };
        for (const entry of open) {
          for (const { branch } of entry.branches) {
            if (branch.kind === 'fail-open') {
              blame(entry.policy, branch.reason);
              continue;
            }
            for (const restrictive of entry.restrictive) {
              for (const use of entry.uses) {
                for (const fenceBranch of policyClause(analysis, restrictive, use.clause)?.open ?? []) {
                  if (fenceBranch.kind === 'fail-open') blame(restrictive, fenceBranch.reason);
                }
              }
            }
          }
        }
        const commands = [...new Set(open.flatMap((entry) => entry.uses.map((use) => use.command.toLowerCase())))];
        const list = [...culprits.values()];
        return [
          report({
            severity: 'high',
            object: relationObject(relation),
            message:
              `On ${relation.qualified}, ${list.map((entry) => `policy ${entry.policy.name} is true whenever ${plan.setting} is not set ${[...entry.fragments].map(fragment).join(', ')}`).join('; ')}, ` +
              `so a request without a tenant can ${listWords(commands)} every tenant's rows.`,
            sql: policiesSql(relation),
            details: policiesDetails(relation.policies),
            fix: fix(list.map((entry) => tenantPolicyRewrite(scope, relation, entry.policy))),
          }),
        ];
      });
  },
});
