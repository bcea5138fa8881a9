import { objectSubject, type Finding } from './findings.js';
import type { Acceptance } from './scenario/schema.js';

/** Mark findings the scenario accepts; an acceptance whose expiry date has passed no longer protects. */
export function applyAcceptances(findings: Finding[], acceptances: Acceptance[], today = new Date().toISOString().slice(0, 10)): Finding[] {
  return findings.map((finding) => {
    const acceptance = acceptances.find((entry) => entry.check === finding.check && entry.object === objectSubject(finding.object));
    if (!acceptance) return finding;
    return {
      ...finding,
      accepted: { reason: acceptance.reason, ...(acceptance.expires ? { expires: acceptance.expires } : {}), expired: Boolean(acceptance.expires && acceptance.expires < today) },
    };
  });
}
