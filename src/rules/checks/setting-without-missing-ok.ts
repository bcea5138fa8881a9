import { relationObject } from '../../findings/finding.js';
import { fix } from '../../findings/fix.js';
import { alterPolicy } from '../privilege-helpers.js';
import { guardSettingCalls, listWords, offendingSettingReads, policiesDetails, policiesSql, settingOf } from '../relation-facts.js';
import { defineRule } from '../types.js';

export const settingWithoutMissingOk = defineRule({
  order: 130,
  meta: {
    id: 'setting-without-missing-ok',
    title: 'current_setting without missing_ok in a policy',
    severity: 'low',
    objectKind: 'table',
    summary: 'A policy reads the tenant with current_setting(name) without missing_ok, which errors when unset.',
    example: "Policy reads `current_setting('app.current_tenant')` without missing_ok: a fresh connection errors.",
    explanation:
      'current_setting(name) without its second argument raises "unrecognized configuration parameter" when the setting was ' +
      'never set on the connection: every query on the table then fails on a fresh connection (a new pool member, a job, psql), ' +
      'and works on a connection that set it once. Nothing leaks, but behaviour depends on connection history. Fix: ' +
      "current_setting(name, true), which returns NULL, with nullif(..., '') for the empty string a reset setting reads as.",
    precondition:
      'Low: a policy on a relation the role uses reads a setting with current_setting(name), without missing_ok, so a query on a ' +
      'connection where it was never set raises an error instead of leaking (missing context that raises errors).',
    confirmedBy: ['missing-context-error', 'missing-context'],
  },
  evaluate({ catalog, plan, analysis }, report) {
    const scope = { catalog, plan, analysis };
    return offendingSettingReads(scope, (use) => !use.missingOk && settingOf(use) !== null).flatMap(({ relation, offending: reads }) => {
      const offending = reads.map(({ policy, uses }) => ({ policy, settings: [...new Set(uses.map((use) => settingOf(use)!))] }));
      const settings = [...new Set(offending.flatMap((entry) => entry.settings))];
      return [
        report({
          severity: 'low',
          object: relationObject(relation),
          message:
            `On ${relation.qualified}, ${offending.map((entry) => `policy ${entry.policy.name} reads ${listWords(entry.settings.map((setting) => `current_setting('${setting}')`))} without missing_ok`).join('; ')}: ` +
            `on a connection where ${listWords(settings)} was never set, every query on ${relation.qualified} fails with "unrecognized configuration parameter".`,
          sql: policiesSql(relation),
          details: policiesDetails(offending.map((entry) => entry.policy)),
          fix: fix(offending.map((entry) => alterPolicy(entry.policy, (expression) => guardSettingCalls(scope, entry.policy, expression, entry.settings, 'strict')))),
        }),
      ];
    });
  },
});
