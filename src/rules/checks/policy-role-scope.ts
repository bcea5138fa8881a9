import { relationObject } from '../../findings/finding.js';
import { comment, fix, policyStatement, renderFix, revoke } from '../../findings/fix.js';
import { commentText, ident, literal, relationIdent } from '../../target/sql.js';
import { ALL_CLAUSES, openPolicies, policyClause } from '../../analysis/queries.js';
import { inheritedBy, membershipPath, regclassLiteral } from '../privilege-helpers.js';
import { fence as fenceOf, fragment, isTenantOwned, policiesDetails, policiesSql, rowCommandsOf } from '../relation-facts.js';
import { defineRule } from '../types.js';

export const policyRoleScope = defineRule({
  order: 170,
  meta: {
    id: 'policy-role-scope',
    title: 'Widening policy that reaches the application role through PUBLIC or a role membership',
    severity: 'medium',
    objectKind: 'table',
    summary: 'A widening policy reaches the application role through PUBLIC or a role membership.',
    example: 'Policy support_reads is for support and reaches app_user through its membership, and admits rows without the tenant.',
    explanation:
      'A policy applies to the roles in its TO clause (PUBLIC, the default when TO is omitted, means every role) and to every ' +
      'role that inherits from them. A policy meant for support staff or an administrator (`to support using (true)`) also ' +
      'applies to the application role when it is a member of that role; one whose TO was forgotten applies to everyone. ' +
      'Reported for permissive policies on tenant-owned tables that never tie rows to the tenant (no branch compares the tenant) ' +
      'and let rows through for a command the application role may run, when they reach it through a role membership, or through ' +
      "PUBLIC on a table whose other policies name roles (so PUBLIC looks like a forgotten TO). A tenant policy scoped to PUBLIC " +
      'is fine, and a tenant policy with a flawed branch is a policy-logic finding, not this one. Fix: revoke the membership or ' +
      'scope the policy to the role it is meant for, and/or fence with a restrictive tenant policy.',
    precondition:
      'Medium: a permissive policy on a tenant-owned table that never ties rows to the tenant lets rows through for a command the ' +
      'role may run, and it reaches the role through a role membership, or through PUBLIC on a table whose other policies name roles ' +
      '(a forgotten TO); read from the catalog only.',
  },
  evaluate({ catalog, plan, analysis }, report) {
    const scope = { catalog, plan, analysis };
    const inherited = inheritedBy(catalog, plan.role);
    return catalog.relations
      .filter((relation) => relation.rlsEnabled && isTenantOwned(scope, relation))
      .flatMap((relation) => {
        // Tenant policies (a branch that ties rows to the tenant) are the policy-logic rules' business, and so is a
        // branch that fails open when the tenant is missing: this rule is about policies written for someone else.
        // A PUBLIC policy is "for someone else" when the table's other policies name roles: its TO was forgotten. On a
        // table whose policies are all PUBLIC, scope says nothing the policy-logic findings do not.
        const namesRoles = relation.policies.some((policy) => policy.roles.some((role) => role !== 'public'));
        const open = openPolicies(analysis, relation, ALL_CLAUSES, ['always-true', 'row-predicate', 'escape-setting', 'non-equality'], rowCommandsOf(scope, relation)).filter(
          (entry) =>
            !entry.policy.roles.includes(plan.role) &&
            (namesRoles || !entry.policy.roles.includes('public')) &&
            !(['using', 'check'] as const).some((clause) => policyClause(analysis, entry.policy, clause)?.branches.some((branch) => branch.kind === 'confined')),
        );
        if (!open.length) return [];
        const fence = fenceOf(scope, relation);
        const target = relationIdent(relation);
        const describe = open.map((entry) => {
          const via = entry.policy.roles.filter((role) => role !== 'public' && inherited.has(role));
          const reach = via.length
            ? `is for ${via.join(', ')} and reaches ${plan.role} through its membership (${via.map((role) => (membershipPath(catalog, plan.role, role) ?? [plan.role, role]).join(' -> ')).join('; ')})`
            : `has no TO clause (PUBLIC) while the other policies on ${relation.qualified} name their roles, so it applies to ${plan.role} too`;
          return `policy ${entry.policy.name} ${reach} and admits rows without the tenant ${entry.branches.map((branch) => fragment(branch.branch.reason)).join(' or ')}`;
        });
        // For a forgotten TO: the one role granted the table that no policy names is likely the audience.
        const named = new Set(relation.policies.flatMap((policy) => policy.roles));
        const audience = [...new Set(relation.grants.map((grant) => grant.grantee))].filter(
          (grantee) => grantee !== 'public' && grantee !== relation.owner && !inherited.has(grantee) && !named.has(grantee),
        );
        const fixes = open.map((entry) => {
          const via = entry.policy.roles.filter((role) => role !== 'public' && inherited.has(role));
          if (via.length) return revoke(via.map((role) => ident((membershipPath(catalog, plan.role, role) ?? [plan.role, role])[1]!)).join(', '), null, ident(plan.role));
          return audience.length === 1
            ? {
                ...policyStatement('alter-policy', { name: entry.policy.name, table: relation.qualified }, `alter policy ${ident(entry.policy.name)} on ${target} to ${ident(audience[0]!)};`, target),
                note: `the one role granted ${commentText(relation.qualified)} that no policy names`,
              }
            : comment(`scope it to the role it is meant for: alter policy ${commentText(ident(entry.policy.name))} on ${commentText(target)} to <that role>;`);
        });
        const distinct = [...new Map(fixes.map((step) => [renderFix(fix([step])), step])).values()];
        return [
          report({
            severity: 'medium',
            object: relationObject(relation),
            message: `On ${relation.qualified}, ${describe.join('; ')}.`,
            sql:
              `${policiesSql(relation)}\nselect r.rolname, pg_has_role(${literal(plan.role)}, r.oid, 'USAGE') as app_role_inherits from pg_roles r ` +
              `where r.oid in (select unnest(polroles) from pg_policy where polrelid = ${regclassLiteral(relation.qualified)});`,
            details: policiesDetails(relation.policies),
            fix: fix([...distinct, ...(fence ? [comment('and/or fence every permissive policy with a restrictive tenant policy:'), ...fence] : [])]),
          }),
        ];
      });
  },
});
