import type { Finding } from './finding.js';
import type { ProbeRecord } from '../probes/types.js';
import type { Report } from '../report/model.js';
import { atLeast, SEVERITIES, type Severity } from './severity.js';

/**
 * Why a run proved nothing about part of the database: the verdict is then `inconclusive` (exit 2), never
 * `pass`. Every stage adds its reasons through `Inconclusive.add`; the CLI prints them.
 */
export interface InconclusiveReason {
  /** The relation (or other object) the reason is about, when it is about one. */
  relation?: string;
  /** What failed, in a sentence: which relation, which context SQL, what was seen. */
  reason: string;
  /** What to try next: the flag or scenario key that most likely fixes it. */
  hint: string;
  /**
   * Set when the reason is the context itself: no tenant saw its own rows, so the dynamic half of the run proved
   * nothing. A short account of what was seen (`no tenant saw its own rows on public.a, public.b`).
   */
  context?: string;
}

export type Verdict = 'pass' | 'fail' | 'inconclusive';

/** The reasons collected during one run; one entry per distinct (relation, reason). */
export class Inconclusive {
  readonly reasons: InconclusiveReason[] = [];

  add(reason: InconclusiveReason): void {
    if (this.reasons.some((entry) => entry.relation === reason.relation && entry.reason === reason.reason)) return;
    this.reasons.push(reason);
  }
}

/**
 * A proven leak fails the run even when another part of it was inconclusive; otherwise any reason makes it
 * inconclusive; only a run with neither passes.
 */
export function verdictOf(failing: number, reasons: readonly InconclusiveReason[]): Verdict {
  if (failing) return 'fail';
  return reasons.length ? 'inconclusive' : 'pass';
}

/** The reason that says the context showed no tenant its rows, if any: it comes first wherever the verdict is shown. */
export function brokenContext(reasons: readonly InconclusiveReason[]): InconclusiveReason | undefined {
  return reasons.find((reason) => reason.context !== undefined);
}

/**
 * The verdict as a reader must take it: a run that fails on findings no probe proved while the context showed no
 * tenant its rows says so (`FAIL (static findings only; the context showed no tenant its rows: ...)`), never a bare FAIL.
 */
export function verdictLabel(summary: { verdict: Verdict; failOn: string; failing: number; inconclusive?: readonly InconclusiveReason[]; staticOnly?: boolean }): string {
  const broken = brokenContext(summary.inconclusive ?? []);
  if (summary.verdict === 'fail' && broken && summary.staticOnly) return `FAIL (static findings only; the context showed no tenant its rows: ${broken.context})`;
  const counted = `fail on ${summary.failOn} and above: ${summary.failing} finding${summary.failing === 1 ? '' : 's'}`;
  if (summary.verdict === 'inconclusive' && broken) return `INCONCLUSIVE (the context showed no tenant its rows: ${broken.context}; ${counted})`;
  return `${summary.verdict.toUpperCase()} (${counted})`;
}

/** True when findings fail the run, the context showed no tenant its rows, and no failing finding was proved by a probe. */
export function restsOnStaticFindings(failing: readonly Finding[], reasons: readonly InconclusiveReason[]): boolean {
  return failing.length > 0 && brokenContext(reasons) !== undefined && failing.every((finding) => finding.source === 'rule' && !finding.confirmedBy?.length);
}

/** A finding fails the run: at or above `failOn`, not accepted (or its acceptance expired), not already in the baseline. */
export function isFailing(finding: Finding, failOn: Severity): boolean {
  return atLeast(finding.severity, failOn) && (!finding.accepted || finding.accepted.expired) && finding.baseline !== 'unchanged';
}

/** The counts and the verdict of a report's findings. */
export function summarize(
  findings: readonly Finding[],
  probes: readonly ProbeRecord[],
  failOn: Severity,
  rowsSeeded: number,
  queries: number,
  inconclusive: readonly InconclusiveReason[] = [],
): Report['summary'] {
  const counts = Object.fromEntries(SEVERITIES.map((severity) => [severity, 0])) as Record<Severity, number>;
  for (const finding of findings) counts[finding.severity] += 1;
  const outcomes: Report['summary']['probes'] = {};
  for (const probe of probes) outcomes[probe.outcome] = (outcomes[probe.outcome] ?? 0) + 1;
  const failingFindings = findings.filter((finding) => isFailing(finding, failOn));
  const failing = failingFindings.length;
  const staticOnly = restsOnStaticFindings(failingFindings, inconclusive);
  return {
    verdict: verdictOf(failing, inconclusive),
    ...(staticOnly ? { staticOnly } : {}),
    inconclusive: [...inconclusive],
    failOn,
    findings: counts,
    failing,
    accepted: findings.filter((finding) => finding.accepted && !finding.accepted.expired).length,
    probes: outcomes,
    rowsSeeded,
    queries,
  };
}
