import { relationObject, type Finding } from '../../findings/finding.js';
import { fix } from '../../findings/fix.js';
import { wrapCallsInSubselect } from '../../analysis/sql-text.js';
import { alterPolicy, describePolicy, policyEvidenceSql } from '../privilege-helpers.js';
import { expressionCalls } from '../relation-facts.js';
import { defineRule } from '../types.js';

const SETTING_FUNCTIONS = new Set(['current_setting']);

export const policyPerRowSetting = defineRule({
  order: 310,
  meta: {
    id: 'policy-per-row-setting',
    title: 'A policy evaluates current_setting once per row instead of once per statement',
    severity: 'info',
    objectKind: 'table',
    summary: 'A policy evaluates current_setting once per row instead of once per statement.',
    example: 'Policy tenant_isolation on public.notes calls current_setting outside a sub-select: evaluated per row, not once (use the `(select ...)` form).',
    explanation:
      'A policy predicate such as `tenant_id = current_setting(\'app.current_tenant\')::int` calls current_setting, and casts its ' +
      'result, for every row the query looks at when PostgreSQL cannot turn it into an index condition. Written as a sub-select, ' +
      '`tenant_id = (select current_setting(\'app.current_tenant\')::int)`, it becomes an initplan: evaluated once per statement, ' +
      'and its value usable for an index scan. The result is the same; only the cost differs, and it grows with table size.',
    precondition:
      'Info: performance: a policy calls current_setting (and casts it) per row instead of once in a sub-select; nothing leaks.',
  },
  evaluate({ catalog, plan, analysis }, report) {
    const scope = { catalog, plan, analysis };
    const findings: Finding[] = [];
    for (const relation of catalog.relations) {
      for (const policy of relation.policies) {
        const expressions = [policy.using, policy.withCheck].filter((expression): expression is string => expression !== null);
        const perRowCalls = (expression: string) => expressionCalls(scope, policy, expression).filter((call) => SETTING_FUNCTIONS.has(call.name) && !call.inSubselect);
        const perRow = expressions.flatMap(perRowCalls);
        if (!perRow.length) continue;
        findings.push(
          report({
            severity: 'info',
            object: relationObject(relation),
            message: `The policy ${policy.name} on ${relation.qualified} calls current_setting outside a sub-select, so it is evaluated for each row rather than once per statement.`,
            sql: policyEvidenceSql(policy),
            details: describePolicy(policy),
            fix: fix([alterPolicy(policy, (expression) => wrapCallsInSubselect(expression, perRowCalls(expression)))]),
          }),
        );
      }
    }
    return findings;
  },
});
