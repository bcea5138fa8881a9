/** The HTML report's model: outcome and legend texts, the matrix families, the findings numbered and placed once. */
import { checksOf, objectSubject, type Finding, type FindingObject } from '../findings/finding.js';
import { matrixPlacements } from '../findings/checks.js';
import { MATRIX_FAMILIES, type MatrixFamily, type ProbeOutcome, type ProbeRecord } from '../probes/types.js';
import type { Severity } from '../findings/severity.js';
import type { Report } from './model.js';

export const SEVERITY_ORDER: Severity[] = ['critical', 'high', 'medium', 'low', 'info'];
export const NO_CONTEXT_STATES = ['never set', 'empty string', 'unknown tenant'] as const;
/** Worst first: the outcome a cell shows when several statements probed it. */
const OUTCOME_ORDER: ProbeOutcome[] = ['leak', 'error', 'hidden', 'denied', 'unreliable', 'inconclusive', 'pass', 'no-access', 'skipped'];
export const OUTCOME_TEXT: Record<ProbeOutcome, string> = {
  leak: 'leak', hidden: 'own rows hidden', error: 'error', denied: 'denied', unreliable: 'unreliable', inconclusive: 'inconclusive', pass: 'pass', 'no-access': 'no access', skipped: 'skipped',
};
/** Outcomes that prove nothing either way: the limitations section lists every statement that had one. */
export const UNPROVEN_OUTCOMES: ProbeOutcome[] = ['error', 'unreliable', 'inconclusive', 'no-access', 'skipped'];
export const BASELINE_TEXT: Record<NonNullable<Finding['baseline']>, string> = {
  new: 'new since the baseline', worse: 'worse than in the baseline', unchanged: 'in the baseline (not failing)',
};
export const LEGEND: [string, string, string][] = [
  ['leak', 'leak', 'rows of another tenant were visible or changed'],
  ['error', 'error', 'the statement failed unexpectedly'],
  ['hidden', 'own rows hidden', 'nothing leaked, but the tenant saw fewer of its own rows than it owns'],
  ['denied', 'denied', 'an error instead of an empty result'],
  ['unreliable', 'unreliable', 'the data it needed could not be seeded'],
  ['inconclusive', 'inconclusive', 'it ran, but its result proves nothing either way'],
  ['pass', 'pass', 'only the expected rows'],
  ['skipped', 'skipped / no access', 'not run, or the role has no privilege for it'],
  ['none', 'not probed', 'no probe of this family applies to the relation'],
];

const FAMILY_LABELS: Record<MatrixFamily, string> = { read: 'read', insert: 'insert', update: 'update', delete: 'delete', missing: 'missing context' };

/**
 * The command families of the matrix, each with the probe checks whose statements it shows: every probe module
 * declares the matrix place of each check it reports (`matrix` in defineProbe).
 */
export const FAMILIES: readonly { id: MatrixFamily; label: string; checks: readonly string[] }[] = MATRIX_FAMILIES.map((id) => ({
  id,
  label: FAMILY_LABELS[id],
  checks: matrixPlacements().filter((check) => check.matrix === id).map((check) => check.id),
}));
/**
 * Probe checks outside the matrix (`matrix: 'outside'`): they are not about one command on one tenant-owned
 * relation (the role itself, functions, triggers, application queries, the pooled connection, query plans).
 * Their statements are listed under "Probe statements", their findings in the matrix row of their relation.
 */
export const OUTSIDE_MATRIX: readonly string[] = matrixPlacements().filter((check) => check.matrix === 'outside').map((check) => check.id);

export function familyOf(check: string): MatrixFamily | null {
  return FAMILIES.find((family) => family.checks.includes(check))?.id ?? null;
}
export function formatMs(ms: number): string {
  return ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${Math.round(ms)} ms`;
}

export function title(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}

/** Outcome counts, worst first, as `2 leak · 10 pass`. */
export function outcomeCounts(counts: Partial<Record<ProbeOutcome, number>>): string {
  const parts = OUTCOME_ORDER.filter((outcome) => counts[outcome]).map((outcome) => `${counts[outcome]} ${OUTCOME_TEXT[outcome]}`);
  return parts.length ? parts.join(' · ') : 'none';
}

export function countOutcomes(records: ProbeRecord[]): Partial<Record<ProbeOutcome, number>> {
  const counts: Partial<Record<ProbeOutcome, number>> = {};
  for (const record of records) counts[record.outcome] = (counts[record.outcome] ?? 0) + 1;
  return counts;
}

export function worstOutcome(records: ProbeRecord[]): ProbeOutcome {
  return OUTCOME_ORDER.find((outcome) => records.some((record) => record.outcome === outcome)) ?? 'pass';
}

/** A finding as the report numbers it (F1, F2, ... in the order shown: most severe first). */
export interface NumberedFinding {
  finding: Finding;
  number: number;
  anchor: string;
  /** Index of each of its checks in the check filter. */
  checks: number[];
}

/** Everything the sections share, computed once. */
export interface Model {
  report: Report;
  findings: NumberedFinding[];
  /** Check ids that findings carry, in filter order. */
  findingChecks: string[];
  /** `relation\0family` to the findings that cover that cell. */
  cellFindings: Map<string, NumberedFinding[]>;
  /** Relation (subject) to every finding about it. */
  subjectFindings: Map<string, NumberedFinding[]>;
  /** Probe records per subject (relation, function, setting, role, query), in report order. */
  records: Map<string, ProbeRecord[]>;
}

export function pushTo<K, V>(map: Map<K, V[]>, key: K, value: V): void {
  const list = map.get(key);
  if (!list) map.set(key, [value]);
  else if (!list.includes(value)) list.push(value);
}

export function buildModel(report: Report): Model {
  const sorted = SEVERITY_ORDER.flatMap((severity) => report.findings.filter((finding) => finding.severity === severity));
  const findingChecks = [...new Set(sorted.flatMap((finding) => checksOf(finding)))].sort();
  const findings = sorted.map((finding, index) => ({
    finding,
    number: index + 1,
    anchor: `finding-${index + 1}`,
    checks: checksOf(finding).map((check) => findingChecks.indexOf(check)),
  }));
  const cellFindings = new Map<string, NumberedFinding[]>();
  const subjectFindings = new Map<string, NumberedFinding[]>();
  for (const numbered of findings) {
    const { finding } = numbered;
    const claims: { object: FindingObject; checks: string[] }[] = [
      { object: finding.object, checks: [finding.check] },
      ...[...(finding.confirmedBy ?? []), ...(finding.related ?? [])].map((entry) => ({ object: entry.object, checks: [entry.check] })),
      ...(finding.affected ?? []).map((object) => ({ object, checks: checksOf(finding) })),
    ];
    for (const claim of claims) {
      const subject = objectSubject(claim.object);
      pushTo(subjectFindings, subject, numbered);
      for (const check of claim.checks) {
        const family = familyOf(check);
        if (family) pushTo(cellFindings, `${subject}\u0000${family}`, numbered);
      }
    }
  }
  const records = new Map<string, ProbeRecord[]>();
  for (const record of report.probes) pushTo(records, record.relation, record);
  return { report, findings, findingChecks, cellFindings, subjectFindings, records };
}
