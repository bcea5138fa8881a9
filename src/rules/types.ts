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
  evaluate(context: RuleContext): Finding[];
}

export interface RuleDefinition {
  meta: CheckMetaInput;
  evaluate(context: RuleContext, report: RuleReport): Finding[];
}

/** Declare a rule, ESLint style: its metadata, and an evaluate() that reports findings through report(). */
export function defineRule(definition: RuleDefinition): Rule {
  const meta: RuleMeta = { ...definition.meta, source: 'rule' };
  const build = findingBuilder([meta]);
  const report: RuleReport = ({ sql, details, ...rest }) => build({ ...rest, evidence: { sql, context: STATIC_CONTEXT, ...(details ? { details } : {}) } });
  return { meta, evaluate: (context) => definition.evaluate(context, report) };
}
