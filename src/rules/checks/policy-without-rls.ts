import { relationObject } from '../../findings/finding.js';
import { enableRls, fix, forceRls } from '../../findings/fix.js';
import { relationIdent } from '../../target/sql.js';
import type { Severity } from '../../findings/severity.js';
import { regclassLiteral } from '../privilege-helpers.js';
import { isChild, isTenantOwned, listWords, policiesDetails, policiesSql, rowCommandsOf } from '../relation-facts.js';
import { defineRule } from '../types.js';

export const policyWithoutRls = defineRule({
  order: 30,
  meta: {
    id: 'policy-without-rls',
    title: 'Policies defined while row-level security is disabled',
    severity: 'critical',
    objectKind: 'table',
    summary: 'A table has policies but row-level security is disabled, so none of them applies.',
    example: 'public.invoices has policy tenant_isolation, but RLS is disabled on it, so PostgreSQL ignores it.',
    explanation:
      'CREATE POLICY does not enable row-level security: until ALTER TABLE ... ENABLE ROW LEVEL SECURITY runs, PostgreSQL ignores ' +
      'the policies entirely, and the table reads like one without any. The policies make the table look protected in a review. ' +
      'On a tenant-owned table the role may use this is the same exposure as rls-disabled: critical when it may select, update or ' +
      'delete, high when it may only insert; info when it holds no privilege or the table is shared. Fix: enable and force ' +
      'row-level security (the policies then apply as written; the policy-logic rules check them).',
    precondition:
      'Policies exist but row-level security is disabled, so they do not apply: on a tenant-owned table, critical when the role may ' +
      'select, update or delete, high when it may only insert; info when it holds no privilege or the table is shared. In `run`, ' +
      'read-isolation and missing-context confirm it on data.',
    confirmedBy: ['read-isolation', 'missing-context'],
  },
  evaluate({ catalog, plan, analysis }, report) {
    const scope = { catalog, plan, analysis };
    return catalog.relations
      .filter((relation) => (relation.kind === 'table' || relation.kind === 'partitioned-table') && !isChild(relation) && !relation.rlsEnabled && relation.policies.length)
      .map((relation) => {
        const tenantOwned = isTenantOwned(scope, relation);
        const commands = rowCommandsOf(scope, relation);
        const severity: Severity = !tenantOwned || !commands.length ? 'info' : commands.some((command) => command !== 'INSERT') ? 'critical' : 'high';
        const names = relation.policies.map((policy) => policy.name);
        const policies = `${names.length === 1 ? 'policy' : 'policies'} ${listWords(names)}`;
        const consequence =
          severity === 'critical'
            ? `${plan.role} may ${listWords(commands.map((command) => command.toLowerCase()))} every tenant's rows.`
            : severity === 'high'
              ? `${plan.role} may insert rows for any tenant.`
              : tenantOwned
                ? `${plan.role} holds no privilege on it today.`
                : 'the table is shared, but the policies show an intent that is not in effect.';
        return report({
          severity,
          object: relationObject(relation),
          message: `${relation.qualified} has ${policies}, but row-level security is disabled on it, so PostgreSQL ignores ${names.length === 1 ? 'it' : 'them'}: ${consequence}`,
          sql: `select relrowsecurity, relforcerowsecurity from pg_class where oid = ${regclassLiteral(relation.qualified)};\n${policiesSql(relation)}`,
          details: policiesDetails(relation.policies),
          fix: fix([enableRls(relationIdent(relation)), forceRls(relationIdent(relation))]),
        });
      });
  },
});
