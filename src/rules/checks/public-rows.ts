import { relationObject } from '../../findings/finding.js';
import { comment, fix } from '../../findings/fix.js';
import { commentText } from '../../target/sql.js';
import { commandAnalysis } from '../../analysis/index.js';
import { policiesDetails, policiesSql, isTenantOwned, listWords, rowCommandsOf } from '../relation-facts.js';
import { defineRule } from '../types.js';

export const publicRows = defineRule({
  order: 90,
  meta: {
    id: 'public-rows',
    title: 'Rows visible to every tenant by a row flag',
    severity: 'info',
    objectKind: 'table',
    summary: 'A permissive SELECT policy shows every tenant the rows a flag of the row publishes (`or is_public`): visibility by design, stated once.',
    example: 'On public.documents, policy documents_read shows rows with is_public = true to every tenant by design.',
    explanation:
      'A policy such as `using (tenant_id = <tenant> or is_public)`, `private = false` or `visibility = \'public\'` lets every tenant ' +
      'read the rows their owner published: that is what the application means, not a leak, and the probes count such rows ' +
      'as public rather than as another tenant\'s (the seed gives the flag both values). Reported once per table, as info, so that ' +
      'a reviewer sees which rows are public. Writes are not covered: a flag that opens UPDATE, DELETE or a WITH CHECK is reported ' +
      'by permissive-always-true and with-check-missing-tenant. Fix: none needed if the rows are meant to be public.',
    precondition:
      'Info: a permissive SELECT policy shows rows a flag of the row publishes (`or is_public`) to every tenant: visibility by ' +
      'design, stated once per table the role may select; a flag that opens writes is another rule\'s finding.',
  },
  evaluate({ catalog, plan, analysis }, report) {
    const scope = { catalog, plan, analysis };
    return catalog.relations
      .filter((relation) => relation.rlsEnabled && isTenantOwned(scope, relation) && rowCommandsOf(scope, relation).includes('SELECT'))
      .flatMap((relation) => {
        const published = commandAnalysis(analysis, relation.qualified, 'SELECT', 'using')?.published ?? [];
        if (!published.length) return [];
        const conditions = [...new Set(published.map((entry) => entry.branch.publicFlags!.map((flag) => `${flag.column} = ${flag.value}`).join(' and ')))];
        const policies = [...new Set(published.map((entry) => entry.policy.name))];
        return [
          report({
            severity: 'info',
            object: relationObject(relation),
            message: `On ${relation.qualified}, rows with ${conditions.join(' or ')} are visible to every tenant by design (policy ${listWords(policies)}).`,
            sql: policiesSql(relation),
            details: policiesDetails(relation.policies),
            fix: fix([comment(`nothing to fix if these rows are meant to be public; otherwise drop the flag branch from ${commentText(listWords(policies))}`)]),
          }),
        ];
      });
  },
});
