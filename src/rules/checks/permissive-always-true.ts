import { relationObject } from '../../findings/finding.js';
import { fix, or } from '../../findings/fix.js';
import type { Severity } from '../../findings/severity.js';
import { openPolicies, READ_CLAUSES, type OpenPolicy } from '../../analysis/queries.js';
import { commandVerb, fence as fenceOf, fragment, isTenantOwned, listWords, policiesDetails, policiesSql, repairPolicy, rowCommandsOf } from '../relation-facts.js';
import { defineRule } from '../types.js';

function describeOpen(entry: OpenPolicy): string {
  const always = entry.branches.find((branch) => branch.kind === 'always-true');
  const how = always
    ? `is always true ${fragment(always.branch.reason)}`
    : `admits any row where ${entry.branches.map((branch) => fragment(branch.branch.reason)).join(' or ')}, whatever its tenant`;
  return `permissive policy ${entry.policy.name} (for ${entry.policy.command.toLowerCase()}) ${how}`;
}

export const permissiveAlwaysTrue = defineRule({
  order: 80,
  meta: {
    id: 'permissive-always-true',
    title: 'Permissive policy that lets other tenants\' rows through',
    severity: 'critical',
    objectKind: 'table',
    summary: 'A permissive policy has a branch that does not confine rows to the current tenant.',
    example: 'On public.documents, permissive policy support_can_read (for select) is always true; not reported when a restrictive tenant policy fences it.',
    explanation:
      'Permissive policies are ORed: one that is always true (`using (true)`, `1 = 1`, `... or true`, ' +
      '`length(current_setting(...)) > 0`, which only checks that a tenant is set), that admits rows by a condition unrelated ' +
      'to the tenant (`or is_public`, `or size_bytes > 0`, a foreign-key sub-select over a table without row-level security), ' +
      'or that compares the row with the tenant by anything but equality (`tenant_id >= <tenant>`) opens the table to other ' +
      'tenants, whatever the tenant policy next to it says. Not reported when a ' +
      'restrictive tenant policy applies to the same commands (restrictive policies are ANDed, so the permissive one cannot ' +
      'widen access). Critical when it opens reads, high when it opens only UPDATE or DELETE (blind writes). Fix: drop or ' +
      'rewrite the policy, or fence it with a restrictive tenant policy.',
    precondition:
      'A permissive policy that applies to the role on a tenant-owned table has a branch that does not confine rows to the tenant ' +
      '(always true, a row condition unrelated to the tenant, a non-equality comparison), and no restrictive tenant policy fences ' +
      'it: critical when it opens SELECT (ordinary reads), high when it opens only UPDATE or DELETE (blind writes). read-isolation, ' +
      'blind-update, blind-delete, foreign-update and foreign-delete confirm it on data.',
    confirmedBy: ['read-isolation', 'blind-update', 'blind-delete', 'foreign-update', 'foreign-delete'],
  },
  evaluate({ catalog, plan, analysis }, report) {
    const scope = { catalog, plan, analysis };
    return catalog.relations
      .filter((relation) => relation.rlsEnabled && isTenantOwned(scope, relation))
      .flatMap((relation) => {
        const open = openPolicies(analysis, relation, READ_CLAUSES, ['always-true', 'row-predicate', 'non-equality'], rowCommandsOf(scope, relation));
        if (!open.length) return [];
        const commands = [...new Set(open.flatMap((entry) => entry.uses.map((use) => use.command)))];
        const severity: Severity = commands.includes('SELECT') ? 'critical' : 'high';
        const fence = fenceOf(scope, relation);
        return [
          report({
            severity,
            object: relationObject(relation),
            message:
              `On ${relation.qualified}, ${open.map(describeOpen).join('; ')}: permissive policies are ORed, so ${plan.role} ` +
              `${listWords(commands.map(commandVerb))} every tenant's rows.`,
            sql: policiesSql(relation),
            details: policiesDetails(relation.policies),
            fix: fix(
              open.map((entry) => repairPolicy(scope, relation, entry.policy, entry.uses)),
              fence ? [or(` keep ${open.length === 1 ? 'it' : 'them'} and fence every permissive policy with a restrictive one:`, fence)] : [],
            ),
          }),
        ];
      });
  },
});
