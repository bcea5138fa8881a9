import { objectLabel, objectSubject, type Finding } from '../findings.js';
import type { ProbeRecord } from '../probes/types.js';
import type { Rule } from './types.js';

/**
 * Tie static findings to dynamic evidence. A rule finding whose object a confirming probe flagged is
 * confirmed (and links that evidence); one whose object the confirming probes exercised without finding
 * anything is refuted and lowered to info, with the reason; otherwise it stands as it is.
 */
export function reconcile(ruleFindings: Finding[], probeFindings: Finding[], probes: ProbeRecord[], rules: readonly Rule[]): Finding[] {
  const byId = new Map(rules.map((rule) => [rule.meta.id, rule.meta]));
  return ruleFindings.map((finding) => {
    const confirmers = byId.get(finding.check)?.confirmedBy ?? [];
    if (!confirmers.length) return finding;
    const object = objectLabel(finding.object);
    const subject = objectSubject(finding.object);
    const confirming = probeFindings.filter((probe) => confirmers.includes(probe.check) && objectLabel(probe.object) === object);
    if (confirming.length) {
      return { ...finding, confirmedBy: confirming.map((probe) => `${probe.check} on ${objectLabel(probe.object)}: ${probe.message}`) };
    }
    const exercised = probes.filter((probe) => confirmers.includes(probe.check) && probe.relation === subject && probe.outcome === 'pass');
    // Refute only on conclusive evidence: every statement that exercised the object passed (none was
    // unreliable or inconclusive), and there is something left to lower.
    const doubtful = probes.some((probe) => confirmers.includes(probe.check) && probe.relation === subject && probe.outcome !== 'pass');
    // And data was there to exercise: some statement on the object returned rows (an empty partition, or a
    // relation whose seeded rows were all filtered away, proves nothing).
    const sawData = probes.some((probe) => probe.relation === subject && probe.rows > 0);
    if (!exercised.length || doubtful || !sawData || finding.severity === 'info') return finding;
    return {
      ...finding,
      severity: 'info',
      refutedBy: `${[...new Set(exercised.map((probe) => probe.check))].join(', ')} ran ${exercised.length} statement${exercised.length === 1 ? '' : 's'} on ${subject} (${[...new Set(exercised.map((probe) => probe.context))].join(', ')}) and saw nothing cross a tenant boundary; lowered from ${finding.severity} to info`,
    };
  });
}
