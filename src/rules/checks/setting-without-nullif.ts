import { relationObject } from '../../findings/finding.js';
import { fix } from '../../findings/fix.js';
import { alterPolicy } from '../privilege-helpers.js';
import { guardSettingCalls, listWords, offendingSettingReads, policiesDetails, policiesSql, settingOf } from '../relation-facts.js';
import { defineRule } from '../types.js';

export const settingWithoutNullif = defineRule({
  order: 140,
  meta: {
    id: 'setting-without-nullif',
    title: "current_setting(name, true) cast without nullif(..., '')",
    severity: 'low',
    objectKind: 'table',
    summary: "A policy casts current_setting(name, true) without nullif(..., ''), which errors on an ended context.",
    example: "Policy casts `current_setting('app.current_tenant', true)` to integer without `nullif(..., '')`: errors after a reset.",
    explanation:
      'A setting set with set_config(name, value, true) (SET LOCAL) does not go back to NULL when its transaction ends: it reads ' +
      "as the empty string for the rest of the connection. current_setting(name, true)::integer (or ::uuid, ::bigint) then " +
      "raises invalid input syntax for '' on every query of a pooled connection that once served a tenant, while a fresh " +
      'connection gets NULL and an empty result. Nothing leaks. Checked for the tenant setting (the one the missing-context probe ' +
      "resets). Fix: nullif(current_setting(name, true), '')::type, best inside (select ...) so it is evaluated once per statement.",
    precondition:
      'Low: a policy casts current_setting(tenant setting, true) without nullif(..., \'\'), so after a transaction-local setting ends ' +
      'every query on that pooled connection raises an error instead of leaking (missing context that raises errors).',
    confirmedBy: ['missing-context-error', 'missing-context'],
  },
  evaluate({ catalog, plan, analysis }, report) {
    const scope = { catalog, plan, analysis };
    return offendingSettingReads(scope, (use) => settingOf(use) === plan.setting && use.missingOk === true && !use.nullif && use.castTo !== null).flatMap(({ relation, offending }) => {
      const casts = [...new Set(offending.flatMap((entry) => entry.uses.map((use) => `''::${use.castTo}`)))];
      return [
        report({
          severity: 'low',
          object: relationObject(relation),
          message:
            `On ${relation.qualified}, ${offending.map((entry) => `policy ${entry.policy.name} casts ${listWords([...new Set(entry.uses.map((use) => `current_setting('${settingOf(use)}', true)`))])} to ${listWords([...new Set(entry.uses.map((use) => use.castTo!))])} without nullif(..., '')`).join('; ')}: ` +
            `after a transaction that set it ends the setting reads '', and ${listWords(casts)} makes every query on ${relation.qualified} fail.`,
          sql: policiesSql(relation),
          details: policiesDetails(offending.map((entry) => entry.policy)),
          fix: fix(offending.map((entry) => alterPolicy(entry.policy, (expression) => guardSettingCalls(scope, entry.policy, expression, [plan.setting], 'unguarded')))),
        }),
      ];
    });
  },
});
