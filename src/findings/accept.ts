import { objectLabel, objectSubject, type Finding } from './finding.js';
import type { Acceptance } from '../scenario/schema.js';

/**
 * Whether an acceptance names this finding: by its fingerprint, or by check and object. The check is the
 * finding's or one folded into it (one defect is one finding); the object is that check's object, by
 * relation (`public.notes`) or by full name (`notes_tenant_id_fkey on public.notes`), and with `columns`
 * only the one about exactly that set of columns (one foreign key of a table without the others).
 */
function accepts(entry: Acceptance, finding: Finding): boolean {
  if (entry.fingerprint !== undefined) return entry.fingerprint === finding.fingerprint;
  const reports = [finding, ...(finding.confirmedBy ?? []), ...(finding.related ?? [])];
  return reports.some(
    (report) =>
      report.check === entry.check &&
      (entry.object === objectSubject(report.object) || entry.object === objectLabel(report.object)) &&
      (entry.columns === undefined || sameColumns(entry.columns, report.object.columns ?? [])),
  );
}

function sameColumns(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((column) => b.includes(column));
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
