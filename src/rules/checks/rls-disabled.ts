import { relationObject } from '../../findings/finding.js';
import { fix } from '../../findings/fix.js';
import { cause } from '../../findings/cause.js';
import type { Severity } from '../../findings/severity.js';
import { isChild, isolation, isTenantOwned, listWords, relationStateSql, rowCommandsOf } from '../relation-facts.js';
import { defineRule } from '../types.js';

export const rlsDisabled = defineRule({
  order: 10,
  meta: {
    id: 'rls-disabled',
    title: 'Tenant-owned table without row-level security',
    severity: 'critical',
    objectKind: 'table',
    summary: 'A tenant-owned table has row-level security disabled.',
    example: 'Row-level security is disabled on public.notes, a tenant-owned table app_user may select, insert, update and delete.',
    explanation:
      'A tenant-owned table (it has a tenant column, is reached from one through a foreign key, or is the tenant table itself) on which ' +
      'row-level security was never enabled: every query the application role runs on it sees and changes every tenant\'s rows. ' +
      'Critical when the role may select, update or delete; high when it may only insert (rows can be written for any tenant); ' +
      'info when it holds no privilege yet (the next GRANT exposes every tenant). Tables that have policies but RLS disabled are ' +
      'policy-without-rls findings, partitions and inheritance children partition-without-rls findings. Fix: enable and force ' +
      'row-level security and add a tenant policy.',
    precondition:
      'Row-level security is off on a tenant-owned table (not a partition or child; no policies): critical when the role may select, ' +
      'update or delete (every ordinary query sees every tenant), high when it may only insert (it writes rows for any tenant), info ' +
      'when it holds no privilege yet. In `run`, read-isolation and missing-context confirm it on data.',
    confirmedBy: ['read-isolation', 'missing-context'],
  },
  evaluate({ catalog, plan, analysis }, report) {
    const scope = { catalog, plan, analysis };
    return catalog.relations
      .filter(
        (relation) =>
          (relation.kind === 'table' || relation.kind === 'partitioned-table') &&
          !isChild(relation) &&
          !relation.rlsEnabled &&
          !relation.policies.length &&
          isTenantOwned(scope, relation),
      )
      .map((relation) => {
        const commands = rowCommandsOf(scope, relation);
        const severity: Severity = commands.some((command) => command !== 'INSERT') ? 'critical' : commands.length ? 'high' : 'info';
        const tenantTable = plan.tenantKey.relation === relation.qualified;
        const what = tenantTable ? 'the tenant table' : 'a tenant-owned table';
        const message =
          severity === 'critical'
            ? `Row-level security is disabled on ${relation.qualified}, ${what} ${plan.role} may ${listWords(commands.map((command) => command.toLowerCase()))}: every query sees every tenant's rows.`
            : severity === 'high'
              ? `Row-level security is disabled on ${relation.qualified}, ${what} ${plan.role} may insert into: it can write rows for any tenant.`
              : `Row-level security is disabled on ${relation.qualified}, ${what}; ${plan.role} holds no privilege on it today, but the first GRANT would expose every tenant's rows.`;
        return report({
          severity,
          object: relationObject(relation),
          cause: cause('rls-disabled', relationObject(relation)),
          message,
          sql: relationStateSql(scope, relation),
          details: `relrowsecurity = false, no policies; ${plan.role} may ${commands.length ? listWords(commands) : 'nothing'}`,
          fix: fix(isolation(scope, relation)),
        });
      });
  },
});
