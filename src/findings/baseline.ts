import { readFile } from 'node:fs/promises';
import { AuditError, errorMessage } from '../errors.js';
import { fingerprintsOf, objectLabel, type Finding, type FindingObject } from './finding.js';
import type { Report } from '../report/model.js';
import { isSeverity, severityRank, type Severity } from './severity.js';
import { summarize } from './verdict.js';

/** What a baseline knew of one finding. */
export interface BaselineEntry {
  fingerprint: string;
  check: string;
  severity: Severity;
  /** `notes_tenant_fkey on public.notes`, as reports name objects. */
  object: string;
  message: string;
}

export interface Baseline {
  /** The file it was read from, as given. */
  source: string;
  entries: BaselineEntry[];
}

/**
 * Read a baseline: a report.json of rls-audit (any run, lint or merge) or a SARIF log it wrote. A finding
 * the baseline accepted counts as known, like any other of its findings.
 */
export async function readBaseline(file: string): Promise<Baseline> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    throw new AuditError(`cannot read the baseline ${file}: ${errorMessage(error)}`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new AuditError(`the baseline ${file} is not JSON (${errorMessage(error)}): give a report.json or a SARIF file that rls-audit wrote`);
  }
  const entries = fromReport(value) ?? fromSarif(value);
  if (!entries) throw new AuditError(`the baseline ${file} is neither a report.json nor a SARIF log of rls-audit`);
  return { source: file, entries };
}

function fromReport(value: unknown): BaselineEntry[] | null {
  const report = value as Partial<Report>;
  if (report?.tool?.name !== 'rls-audit' || !Array.isArray(report.findings)) return null;
  const fingerprints = fingerprintsOf(report.findings);
  return report.findings.map((finding, index) => ({ fingerprint: fingerprints[index]!, check: finding.check, severity: finding.severity, object: objectLabel(finding.object as FindingObject), message: finding.message }));
}

interface SarifLike {
  runs?: { tool?: { driver?: { name?: string } }; results?: { ruleId?: string; message?: { text?: string }; partialFingerprints?: Record<string, string>; properties?: { severity?: string }; locations?: { logicalLocations?: { fullyQualifiedName?: string }[] }[] }[] }[];
}

function fromSarif(value: unknown): BaselineEntry[] | null {
  const runs = (value as SarifLike)?.runs;
  if (!Array.isArray(runs) || !runs.some((run) => run.tool?.driver?.name === 'rls-audit')) return null;
  return runs
    .filter((run) => run.tool?.driver?.name === 'rls-audit')
    .flatMap((run) => run.results ?? [])
    .filter((result) => result.partialFingerprints?.['rlsAudit/v1'])
    .map((result) => ({
      fingerprint: result.partialFingerprints!['rlsAudit/v1']!,
      check: result.ruleId ?? '',
      severity: isSeverity(result.properties?.severity) ? result.properties.severity : 'critical',
      object: result.locations?.[0]?.logicalLocations?.[0]?.fullyQualifiedName ?? '',
      message: result.message?.text ?? '',
    }));
}

/**
 * Compare findings with a baseline: each finding is `new`, `worse` (its fingerprint was there at a milder
 * severity) or `unchanged`; the baseline's findings that are gone are listed as fixed. Only new and worse
 * findings fail the run: a ratchet that lets a gate go green on an old schema and keeps it from getting worse.
 */
export function compareWithBaseline(findings: readonly Finding[], baseline: Baseline): { findings: Finding[]; section: NonNullable<Report['baseline']> } {
  const known = new Map(baseline.entries.map((entry) => [entry.fingerprint, entry]));
  const fingerprints = fingerprintsOf(findings);
  const compared = findings.map((finding, index) => {
    const before = known.get(fingerprints[index]!);
    const status: Finding['baseline'] = !before ? 'new' : severityRank(finding.severity) > severityRank(before.severity) ? 'worse' : 'unchanged';
    return { ...finding, fingerprint: fingerprints[index]!, baseline: status };
  });
  const present = new Set(fingerprints);
  const fixed = baseline.entries.filter((entry) => !present.has(entry.fingerprint));
  const count = (status: Finding['baseline']) => compared.filter((finding) => finding.baseline === status).length;
  return { findings: compared, section: { source: baseline.source, new: count('new'), worse: count('worse'), unchanged: count('unchanged'), fixed } };
}

/** A finished report (one read back from report.json) compared with a baseline: its findings marked, its verdict decided again. */
export function applyBaseline(report: Report, baseline: Baseline): Report {
  const { findings, section } = compareWithBaseline(report.findings, baseline);
  const { summary } = report;
  return { ...report, findings, baseline: section, summary: summarize(findings, report.probes, summary.failOn, summary.rowsSeeded, summary.queries, summary.inconclusive ?? []) };
}
