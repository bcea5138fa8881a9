import { relationObject } from '../../findings/finding.js';
import { appendFix, comment, fix, or } from '../../findings/fix.js';
import { commentText, ident, relationIdent } from '../../target/sql.js';
import { ALL_CLAUSES, openPolicies, type OpenPolicy } from '../../analysis/queries.js';
import { fence as fenceOf, fragment, isTenantOwned, listWords, policiesDetails, policiesSql, repairPolicy, rowCommandsOf } from '../relation-facts.js';
import { defineRule } from '../types.js';

function settingsOf(entry: OpenPolicy): string[] {
  return [...new Set(entry.branches.flatMap((branch) => branch.branch.settings))];
}

export const nonTenantSetting = defineRule({
  order: 150,
  meta: {
    id: 'non-tenant-setting',
    title: 'Policy that widens access on a setting other than the tenant',
    severity: 'medium',
    objectKind: 'table',
    summary: "A policy widens access on a setting other than the tenant's (an escape hatch).",
    example: "On public.tickets, policy tenant_or_admin admits rows when `current_setting('app.is_admin', true) = 'on'`.",
    explanation:
      'Custom settings (`app.is_admin`, `app.role`) can be set by any session with set_config or SET: PostgreSQL does not know ' +
      'who set them. A permissive branch that admits rows of every tenant when such a setting has some value ' +
      "(`current_setting('app.is_admin', true) = 'on' or ...`) is a master key: any code that can run SQL as the application " +
      'role reads across all tenants at once, without knowing any tenant id. (A setting compared with a column, such as ' +
      '`owner_id = current_setting(\'app.user_id\')::int`, scopes rows to a session identity like the tenant setting does and is ' +
      'not reported.) Not reported when a restrictive tenant policy applies. Fix: keep the tenant predicate in every branch (or ' +
      'fence with a restrictive tenant policy); give cross-tenant access to a separate role, not a setting.',
    precondition:
      'Medium: a permissive branch on a tenant-owned table admits every tenant\'s rows when a custom setting other than the tenant ' +
      'setting has some value, and no restrictive tenant policy applies; seen only in the policy text (unproven). In `run`, ' +
      'spoofable-setting sets the setting and, when other tenants\' rows then show, proves it (high).',
    confirmedBy: ['spoofable-setting'],
  },
  evaluate({ catalog, plan, analysis }, report) {
    const scope = { catalog, plan, analysis };
    return catalog.relations
      .filter((relation) => relation.rlsEnabled && isTenantOwned(scope, relation))
      .flatMap((relation) => {
        const open = openPolicies(analysis, relation, ALL_CLAUSES, ['escape-setting'], rowCommandsOf(scope, relation));
        if (!open.length) return [];
        const settings = [...new Set(open.flatMap(settingsOf))];
        const commands = [...new Set(open.flatMap((entry) => entry.uses.map((use) => use.command.toLowerCase())))];
        const fence = fenceOf(scope, relation);
        return [
          report({
            severity: 'medium',
            object: relationObject(relation),
            message:
              `On ${relation.qualified}, ${open.map((entry) => `policy ${entry.policy.name} admits rows without the tenant when ${entry.branches.map((branch) => fragment(branch.branch.reason)).join(' or ')}`).join('; ')}: ` +
              `any session can set ${listWords(settings)} (set_config) and ${listWords(commands)} other tenants' rows.`,
            sql: policiesSql(relation),
            details: policiesDetails(relation.policies),
            fix: appendFix(
              fix(
                open.map((entry) => repairPolicy(scope, relation, entry.policy, entry.uses)),
                fence ? [or(' fence every permissive policy with a restrictive one:', fence)] : [],
              ),
              fix([comment(`cross-tenant access belongs to a separate role, e.g. create policy admin_all on ${commentText(relationIdent(relation))} to ${commentText(ident('<admin role>'))} using (true);`)]),
            ),
          }),
        ];
      });
  },
});
