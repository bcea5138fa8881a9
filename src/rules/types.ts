import type { Catalog } from '../catalog/types.js';
import type { Check, Finding } from '../findings.js';
import type { TenancyPlan } from '../plan/tenancy.js';

export interface RuleContext {
  catalog: Catalog;
  plan: TenancyPlan;
}

/** A static check: reads only the catalog value from the introspection stage. */
export interface Rule extends Check {
  kind: 'rule';
  /**
   * Probe check ids that prove this rule's findings on data. When one of them reports a finding for the
   * same object, the rule's finding is confirmed; when they ran on that object and found nothing, it is
   * refuted and lowered to info, with the reason.
   */
  confirmedBy?: string[];
  evaluate(context: RuleContext): Finding[];
}
