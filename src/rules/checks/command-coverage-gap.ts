import { relationObject } from '../../findings/finding.js';
import { comment, fix, orInline, policyStatement, revoke } from '../../findings/fix.js';
import { commentText, ident, relationIdent } from '../../target/sql.js';
import { clauseText } from '../../analysis/index.js';
import type { Command } from '../../analysis/model.js';
import { applyingPolicies, rlsApplies } from '../../analysis/queries.js';
import { isTenantOwned, listWords, policiesDetails, policiesSql, rowCommandsOf, tenantPredicateFor } from '../relation-facts.js';
import { defineRule } from '../types.js';

const CONSEQUENCE: Record<Command, string> = {
  SELECT: 'reads return no rows',
  INSERT: 'inserts fail with "new row violates row-level security policy"',
  UPDATE: 'updates change no rows',
  DELETE: 'deletes remove no rows',
};

export const commandCoverageGap = defineRule({
  order: 100,
  meta: {
    id: 'command-coverage-gap',
    title: 'A granted command has no policy for the application role',
    severity: 'info',
    objectKind: 'table',
    summary: 'The application role holds a privilege for a command that no policy covers.',
    example: 'app_user is granted INSERT, UPDATE and DELETE on public.orders but no policy covers them: those commands silently do nothing or fail.',
    explanation:
      'Policies are per command (FOR SELECT, INSERT, UPDATE, DELETE or ALL). For a command the application role is granted but ' +
      'no permissive policy covers, row-level security denies every row: SELECT returns nothing, INSERT raises an error, UPDATE ' +
      'and DELETE silently touch nothing. Restrictive policies alone never grant access. This is a gap in what the application ' +
      'can do, not a leak (hence info), and often the sign of a policy written FOR SELECT where FOR ALL was meant. Reported ' +
      'for tenant-owned relations that have at least one policy for the role (none at all is rls-no-policy). Fix: add a tenant ' +
      'policy for the command, or revoke the privilege.',
    precondition:
      'Info: the role is granted a command on a tenant-owned table that has policies for it, but no permissive policy covers that ' +
      'command: rows are denied (default deny), nothing leaks, the application cannot do what it was granted.',
  },
  evaluate({ catalog, plan, analysis }, report) {
    const scope = { catalog, plan, analysis };
    return catalog.relations
      .filter((relation) => rlsApplies(analysis, relation) && isTenantOwned(scope, relation))
      .flatMap((relation) => {
        const commands = rowCommandsOf(scope, relation);
        if (!commands.some((command) => applyingPolicies(analysis, relation, command).length)) return [];
        const gaps = commands
          .map((command) => {
            const applying = applyingPolicies(analysis, relation, command);
            const clause = command === 'INSERT' ? 'check' : 'using';
            const permissive = applying.filter((policy) => policy.permissive && clauseText(policy, clause) !== null);
            return { command, restrictiveOnly: applying.some((policy) => !policy.permissive), covered: permissive.length > 0 };
          })
          .filter((gap) => !gap.covered);
        if (!gaps.length) return [];
        const target = relationIdent(relation);
        const predicate = tenantPredicateFor(scope, relation) ?? '<tenant predicate>';
        const restrictiveOnly = gaps.filter((gap) => gap.restrictiveOnly).map((gap) => gap.command);
        const policySql = gaps.map(({ command }) => {
          const name = ident(`tenant_${command.toLowerCase()}`);
          const clauses = command === 'INSERT' ? `with check (${predicate})` : command === 'UPDATE' ? `using (${predicate}) with check (${predicate})` : `using (${predicate})`;
          return policyStatement('create-policy', { name: `tenant_${command.toLowerCase()}`, table: relation.qualified }, `create policy ${name} on ${target} for ${command.toLowerCase()} to ${ident(plan.role)} ${clauses};`, target);
        });
        return [
          report({
            severity: 'info',
            object: relationObject(relation),
            message:
              `${plan.role} is granted ${listWords(gaps.map((gap) => gap.command))} on ${relation.qualified} but no permissive policy covers ${gaps.length === 1 ? 'it' : 'them'} for ${plan.role}` +
              `${restrictiveOnly.length ? ` (only restrictive policies apply to ${listWords(restrictiveOnly)}, and they never grant access alone)` : ''}: ${listWords(gaps.map((gap) => CONSEQUENCE[gap.command]))}.`,
            sql: policiesSql(relation),
            details: policiesDetails(relation.policies),
            fix:
              plan.actors.membership?.relation === relation.qualified
                ? // Memberships decide who belongs to which tenant: a policy such as user_id = auth.uid() would let anyone join any tenant.
                  fix([
                    revoke(gaps.map((gap) => gap.command.toLowerCase()).join(', '), target, ident(plan.role)),
                    comment(`${commentText(relation.qualified)} decides who belongs to which tenant: change it through a SECURITY DEFINER function that checks the caller may (an owner inviting), not through a policy on the user alone`),
                  ])
                : fix(policySql, [
                    orInline(`, if ${commentText(plan.role)} does not need ${gaps.length === 1 ? 'it' : 'them'}:`, revoke(gaps.map((gap) => gap.command.toLowerCase()).join(', '), target, ident(plan.role))),
                  ]),
          }),
        ];
      });
  },
});
