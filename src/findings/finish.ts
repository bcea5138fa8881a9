import { applyAcceptances } from './accept.js';
import { compareWithBaseline, type Baseline } from './baseline.js';
import { fingerprintFindings, objectLabel, type Finding } from './finding.js';
import { applyApiReach, type ApiReach } from '../plan/api-reach.js';
import type { ProbeRecord } from '../probes/types.js';
import type { SourceLocation } from '../report/locate.js';
import type { Report } from '../report/model.js';
import { reconcile } from '../rules/reconcile.js';
import { RULES } from '../rules/registry.js';
import type { Acceptance } from '../scenario/schema.js';
import { severityRank, type Severity } from './severity.js';
import { summarize, type InconclusiveReason } from './verdict.js';

/**
 * The end of every run, in one place and in one order, for `run`, `lint`, `merge` and a run stopped by its
 * time limit: the rule and probe findings become one finding per defect (reconcile), lowered to info where the
 * API reaches none of their objects, in report order, each
 * with its fingerprint, the scenario's acceptances, the baseline's comparison, its place in the schema files,
 * and the verdict. Renderers receive the report this builds and change nothing in it.
 */
export interface FinishInput {
  ruleFindings: readonly Finding[];
  probeFindings: readonly Finding[];
  /** Every probe statement recorded: what confirms or refutes a rule finding. */
  probes: readonly ProbeRecord[];
  /**
   * False when the run stopped before every probe ran (its time limit): the findings are still grouped into
   * defects, but no rule finding is lowered by probes that may not have run on all of it.
   */
  complete: boolean;
  /** What the API reaches (apiSchemas): findings on nothing it reaches are info (plan/api-reach.ts). */
  apiReach?: ApiReach | null;
  accept: readonly Acceptance[];
  baseline?: Baseline;
  failOn: Severity;
  rowsSeeded: number;
  queries: number;
  inconclusive: readonly InconclusiveReason[];
  /** Where in the schema files each finding's objects are created (run, lint), or the locations already known (merge). */
  locate: (findings: readonly Finding[]) => Record<string, SourceLocation>;
}

export interface Finished {
  findings: Finding[];
  locations: Record<string, SourceLocation>;
  summary: Report['summary'];
  baseline?: Report['baseline'];
}

export function finishFindings(input: FinishInput): Finished {
  const grouped = reconcile([...input.ruleFindings], [...input.probeFindings], [...input.probes], RULES, { refute: input.complete });
  const accepted = applyAcceptances(fingerprintFindings(sortFindings(applyApiReach(grouped, input.apiReach ?? null))), [...input.accept]);
  const compared = input.baseline ? compareWithBaseline(accepted, input.baseline) : null;
  const findings = compared?.findings ?? accepted;
  return {
    findings,
    locations: input.locate(findings),
    summary: summarize(findings, input.probes, input.failOn, input.rowsSeeded, input.queries, input.inconclusive),
    ...(compared ? { baseline: compared.section } : {}),
  };
}

/** Report order: most severe first, then by check and object; the same in every run (fingerprints rely on it). */
export function sortFindings(findings: readonly Finding[]): Finding[] {
  return [...findings].sort(
    (a, b) => severityRank(b.severity) - severityRank(a.severity) || a.check.localeCompare(b.check) || objectLabel(a.object).localeCompare(objectLabel(b.object)),
  );
}
