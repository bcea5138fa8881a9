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
