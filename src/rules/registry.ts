import { discoverChecks } from '../findings/discover.js';
import { isRule, type Rule } from './types.js';

/**
 * Every static rule, in the order they are evaluated: each module of rules/checks/ is read at load and every
 * rule it exports (defineRule) taken, sorted by the `order` it declares (by family: coverage, policy logic,
 * privilege, integrity, performance), ties broken by id.
 */
export const RULES: readonly Rule[] = await discoverChecks({
  registry: import.meta.url,
  kind: 'rule',
  isCheck: isRule,
  ids: (rule) => [rule.meta.id],
  order: (rule) => rule.order,
});
