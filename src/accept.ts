import { objectLabel, objectSubject, type Finding } from './findings.js';
import type { Acceptance } from './scenario/schema.js';

/**
 * Whether an acceptance names this finding: its check is the finding's or one folded into it (one defect is
 * one finding), and its object is that check's object, by relation (`public.notes`) or by its full name
 * (`notes_tenant_id_fkey on public.notes`: one foreign key of a table without the others).
 */
function accepts(entry: Acceptance, finding: Finding): boolean {
  const reports = [finding, ...(finding.confirmedBy ?? []), ...(finding.related ?? [])];
  return reports.some((report) => report.check === entry.check && (entry.object === objectSubject(report.object) || entry.object === objectLabel(report.object)));
}

/** Mark findings the scenario accepts; an acceptance whose expiry date has passed no longer protects. */
export function applyAcceptances(findings: Finding[], acceptances: Acceptance[], today = new Date().toISOString().slice(0, 10)): Finding[] {
  return findings.map((finding) => {
    const acceptance = acceptances.find((entry) => accepts(entry, finding));
    if (!acceptance) return finding;
    return {
      ...finding,
      accepted: { reason: acceptance.reason, ...(acceptance.expires ? { expires: acceptance.expires } : {}), expired: Boolean(acceptance.expires && acceptance.expires < today) },
    };
  });
}
