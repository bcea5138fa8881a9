import { relationObject } from '../../findings/finding.js';
import { comment, fix, or, policyStatement } from '../../findings/fix.js';
import { commentText, ident, relationIdent } from '../../target/sql.js';
import { openPolicies, WRITE_CLAUSES, type OpenPolicy } from '../../analysis/queries.js';
import { fence as fenceOf, fragment, isTenantOwned, policiesDetails, policiesSql, rowCommandsOf, tenantPredicateFor } from '../relation-facts.js';
import { defineRule } from '../types.js';

function describeCheck(entry: OpenPolicy): string {
  const check = entry.policy.withCheck === null ? `has no WITH CHECK, so its USING ${fragment(entry.policy.using ?? '')} is the check, and it` : `checks ${fragment(entry.policy.withCheck)}, which`;
  const always = entry.branches.some((branch) => branch.kind === 'always-true');
  return `policy ${entry.policy.name} ${check} ${always ? 'is always true' : 'does not constrain the tenant'}`;
}

export const withCheckMissingTenant = defineRule({
  order: 110,
  meta: {
    id: 'with-check-missing-tenant',
    title: 'INSERT or UPDATE allowed with a check that does not constrain the tenant',
    severity: 'high',
    objectKind: 'table',
    summary: 'An INSERT or UPDATE check does not confine written rows to the current tenant.',
    example: 'On public.tasks, policy tenant_isolation checks (char_length(title) > 0), which does not constrain the tenant.',
    explanation:
      'The WITH CHECK expression of INSERT, UPDATE and ALL policies decides which rows a statement may write (a policy without ' +
      'WITH CHECK uses its USING expression). When the check that applies to the application role does not compare the tenant ' +
      'column with the current tenant, the role can insert rows into another tenant, or UPDATE one of its rows to another ' +
      "tenant's id, moving it out of reach (and into the other tenant's view). Not reported when a restrictive tenant policy " +
      'applies. Fix: a WITH CHECK that repeats the tenant predicate.',
    precondition:
      'High: the WITH CHECK (or USING, when there is none) of an INSERT or UPDATE policy that applies to the role does not confine ' +
      'written rows to the tenant, and no restrictive tenant policy applies: the role can insert rows into another tenant or move ' +
      'its rows there with UPDATE. In `run`, foreign-insert (critical on a table) and tenant-reassignment prove it on data.',
    confirmedBy: ['foreign-insert', 'tenant-reassignment'],
  },
  evaluate({ catalog, plan, analysis }, report) {
    const scope = { catalog, plan, analysis };
    return catalog.relations
      .filter((relation) => relation.rlsEnabled && isTenantOwned(scope, relation))
      .flatMap((relation) => {
        const open = openPolicies(analysis, relation, WRITE_CLAUSES, ['always-true', 'row-predicate', 'non-equality'], rowCommandsOf(scope, relation));
        if (!open.length) return [];
        const commands = new Set(open.flatMap((entry) => entry.uses.map((use) => use.command)));
        const effects = [
          ...(commands.has('INSERT') ? [`insert rows for any tenant into ${relation.qualified}`] : []),
          ...(commands.has('UPDATE') ? [`move its rows to another tenant with UPDATE`] : []),
        ];
        const predicate = tenantPredicateFor(scope, relation);
        const fence = fenceOf(scope, relation);
        const fixes = open.map((entry) =>
          predicate
            ? policyStatement('alter-policy', { name: entry.policy.name, table: relation.qualified }, `alter policy ${ident(entry.policy.name)} on ${relationIdent(relation)}\n  with check (${predicate});`, relationIdent(relation))
            : comment(`give policy ${commentText(entry.policy.name)} a WITH CHECK that compares the tenant column with the current tenant`),
        );
        return [
          report({
            severity: 'high',
            object: relationObject(relation),
            message: `On ${relation.qualified}, ${open.map(describeCheck).join('; ')}: ${plan.role} can ${effects.join(' and ')}.`,
            sql: policiesSql(relation),
            details: policiesDetails(relation.policies),
            fix: fix(fixes, fence ? [or(' fence every permissive policy with a restrictive one:', fence)] : []),
          }),
        ];
      });
  },
});
