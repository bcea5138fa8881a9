import type { Analysis } from '../analysis/model.js';
import type { Catalog } from '../catalog/types.js';
import { findingBuilder, type CheckMeta, type CheckMetaInput, type Finding, type FindingInput } from '../findings/finding.js';
import type { TenancyPlan } from '../plan/tenancy.js';

export interface RuleContext {
  catalog: Catalog;
  /** What the policies, views and functions mean for the application role (src/analysis). */
  analysis: Analysis;
  plan: TenancyPlan;
}

/** Who ran a rule's "statement": nobody; it was read from the catalog. */
export const STATIC_CONTEXT = 'static: catalog';

/** A rule finding: the catalog query that shows it (`sql`) and what it returned, in words (`details`). */
export type RuleFindingInput = Omit<FindingInput, 'evidence' | 'tenant' | 'foreignTenant'> & { sql: string; details?: string };

/** Fills a rule finding's id, source, object kind and static evidence. */
export type RuleReport = (input: RuleFindingInput) => Finding;

export interface RuleMeta extends CheckMeta {
  source: 'rule';
}

/** A static check: reads only the catalog (and the plan), never the database. */
export interface Rule {
  meta: RuleMeta;
  /** Where it is evaluated among the rules: ascending, ties broken by id (the registry sorts by it). */
  order: number;
  evaluate(context: RuleContext): Finding[];
}

export interface RuleDefinition {
  /**
   * Its place in the evaluation order, ascending (ties broken by id): the shipped rules are spaced by 10, in
   * their families (coverage 10-70, policy logic 80-170, privilege 180-250, integrity 260-280, performance
   * 290-310), so that a new one can state a place between two.
   */
  order: number;
  meta: CheckMetaInput;
  evaluate(context: RuleContext, report: RuleReport): Finding[];
}

/** Marks what defineRule returned, so that the registry takes no other export of a check module for a rule. */
const RULE_BRAND = Symbol.for('rls-audit.rule');

/** A value defineRule made. */
export function isRule(value: unknown): value is Rule {
  return typeof value === 'object' && value !== null && (value as { [RULE_BRAND]?: unknown })[RULE_BRAND] === true;
}

/**
 * Declare a rule, ESLint style: its place in the evaluation order, its metadata, and an evaluate() that
 * reports findings through report(). A module in rules/checks/ that exports one is a rule: the registry finds
 * it there.
 */
export function defineRule(definition: RuleDefinition): Rule {
  const meta: RuleMeta = { ...definition.meta, source: 'rule' };
  const build = findingBuilder([meta]);
  const report: RuleReport = ({ sql, details, ...rest }) => build({ ...rest, evidence: { sql, context: STATIC_CONTEXT, ...(details ? { details } : {}) } });
  const rule: Rule = { meta, order: definition.order, evaluate: (context) => definition.evaluate(context, report) };
  Object.defineProperty(rule, RULE_BRAND, { value: true });
  return rule;
}
