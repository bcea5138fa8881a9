import { relationObject } from '../../findings/finding.js';
import { fix, or, revoke } from '../../findings/fix.js';
import { cause } from '../../findings/cause.js';
import { commentText, ident, relationIdent } from '../../target/sql.js';
import { isChild, isolation, isTenantOwned, listWords, relationStateSql, rowCommandsOf } from '../relation-facts.js';
import { defineRule } from '../types.js';

export const partitionWithoutRls = defineRule({
  order: 40,
  meta: {
    id: 'partition-without-rls',
    title: 'Partition or inheritance child without row-level security, reachable directly',
    severity: 'high',
    objectKind: 'table',
    summary: 'A partition or inheritance child without row-level security can be queried directly.',
    example: 'public.measurements_a is a partition without RLS of its own, and app_user may query it directly.',
    explanation:
      'Row-level security and policies belong to each relation. A query on a partitioned (or inheritance parent) table applies the ' +
      "parent's policies to the rows of every partition, but a query that names a partition or child directly applies that " +
      "relation's own, and a partition is created with row-level security disabled. When the application role holds privileges " +
      "on such a partition, `select * from measurements_p0` reads every tenant's rows in it. Reported only when the role may " +
      'use the partition directly (access through the parent alone is safe). Fix: revoke the direct grants (the parent is enough), ' +
      'or enable row-level security on the partition with a tenant policy.',
    precondition:
      'High: a tenant-owned partition or inheritance child has no row-level security of its own and the role holds a privilege on it ' +
      'directly, so a query that names it reads (or writes) every tenant\'s rows in it (a partition or child queried directly); not ' +
      'reported when the role reaches it only through the parent.',
    confirmedBy: ['read-isolation'],
  },
  evaluate({ catalog, plan, analysis }, report) {
    const scope = { catalog, plan, analysis };
    return catalog.relations
      .filter((relation) => isChild(relation) && !relation.rlsEnabled && isTenantOwned(scope, relation))
      .flatMap((relation) => {
        const commands = rowCommandsOf(scope, relation);
        if (!commands.length) return [];
        const parent = relation.partitionOf ?? relation.inheritsFrom[0]!;
        const kind = relation.partitionOf ? 'partition' : 'inheritance child';
        const target = relationIdent(relation);
        return [
          report({
            severity: 'high',
            object: relationObject(relation),
            cause: cause('partition-without-rls', relationObject(relation)),
            message:
              `${relation.qualified} is ${relation.partitionOf ? 'a' : 'an'} ${kind} of ${parent} without row-level security of its own, and ${plan.role} may ` +
              `${listWords(commands.map((command) => command.toLowerCase()))} it directly: the policies of ${parent} do not apply there, so every tenant's rows in it are exposed.`,
            sql: relationStateSql(scope, relation),
            details: `${kind} of ${parent}; relrowsecurity = false${relation.policies.length ? ` (its policies ${relation.policies.map((policy) => policy.name).join(', ')} are ignored)` : ''}; ${plan.role} may ${listWords(commands)}`,
            fix: fix([revoke('all', target, ident(plan.role), `query ${commentText(parent)} instead: its policies cover this ${kind}`)], [or(` protect the ${kind} itself:`, isolation(scope, relation))]),
          }),
        ];
      });
  },
});
