import { linkedFinding, objectSubject, sameObject, type Finding, type FindingObject } from '../findings/finding.js';
import { causeKey } from '../findings/cause.js';
import type { ProbeRecord } from '../probes/types.js';
import { severityRank, worstSeverity } from '../findings/severity.js';
import type { Rule } from './types.js';

/**
 * Tie static findings to dynamic evidence, and make one finding of each defect.
 *
 * - Confirmed: a rule finding whose object (the same table, view, function, role, or the same foreign key;
 *   never another key of the same table) a probe of the rule's `confirmedBy` flagged. The probe findings
 *   become its `confirmedBy` evidence; its severity is the worst of them.
 * - Refuted, and lowered to info, only on positive evidence: the confirming probes ran on the object for at
 *   least two tenants, each of which saw (or changed) rows of its own, and every one of those statements ran
 *   without error and showed nothing of another tenant. A probe that did not run, ran on no data, or failed
 *   proves nothing: the rule finding stands. Findings about a key or a policy are never refuted (probe
 *   statements name only the table, not which key or policy they exercised).
 * - One defect, one finding: findings with the same cause (findings/cause.ts) are the same defect (a BYPASSRLS
 *   role seen by a rule and proven on every table, read and missing-context leaks with one policy to blame). They
 *   become one finding: the rule finding if there is one, else the most severe; the others are its
 *   `confirmedBy` (probes) or `related` (rules), and their objects its `affected` objects.
 * With `refute: false` (a run stopped before every probe ran) findings are grouped and confirmed, never lowered.
 */
export function reconcile(ruleFindings: Finding[], probeFindings: Finding[], probes: ProbeRecord[], rules: readonly Rule[], options: { refute: boolean } = { refute: true }): Finding[] {
  const confirmersOf = new Map(rules.map((rule) => [rule.meta.id, rule.meta.confirmedBy ?? []]));
  const findings = [...ruleFindings, ...probeFindings];
  // Union-find over findings: one component per defect.
  const parent = findings.map((_, index) => index);
  const root = (index: number): number => (parent[index] === index ? index : (parent[index] = root(parent[index]!)));
  const join = (a: number, b: number) => {
    parent[root(a)] = root(b);
  };
  const confirmed = new Set<number>();
  ruleFindings.forEach((finding, ruleIndex) => {
    const confirmers = confirmersOf.get(finding.check) ?? [];
    probeFindings.forEach((probe, probeIndex) => {
      if (confirmers.includes(probe.check) && sameObject(probe.object, finding.object)) {
        join(ruleFindings.length + probeIndex, ruleIndex);
        confirmed.add(ruleIndex);
      }
    });
  });
  const byCause = new Map<string, number>();
  findings.forEach((finding, index) => {
    if (!finding.cause) return;
    const key = causeKey(finding.cause);
    const first = byCause.get(key);
    if (first === undefined) byCause.set(key, index);
    else join(index, first);
  });
  const components = new Map<number, number[]>();
  findings.forEach((_, index) => components.set(root(index), [...(components.get(root(index)) ?? []), index]));
  const merged: Finding[] = [];
  for (const members of components.values()) {
    const rulesIn = members.filter((index) => index < ruleFindings.length);
    // The finding that speaks for the defect: a confirmed rule finding, any rule finding, else the worst probe finding.
    const primaryIndex =
      rulesIn.find((index) => confirmed.has(index)) ?? rulesIn.sort((a, b) => severityRank(findings[b]!.severity) - severityRank(findings[a]!.severity))[0] ?? worstOf(members, findings);
    const primary = findings[primaryIndex]!;
    const others = members.filter((index) => index !== primaryIndex).map((index) => findings[index]!);
    if (!others.length) {
      merged.push(primary.source === 'rule' && options.refute ? refute(primary, confirmersOf.get(primary.check) ?? [], probes) : primary);
      continue;
    }
    const proofs = others.filter((finding) => finding.source === 'probe');
    const related = others.filter((finding) => finding.source === 'rule');
    const affected: FindingObject[] = [];
    for (const finding of others) {
      if (!sameObject(finding.object, primary.object) && !affected.some((object) => sameObject(object, finding.object))) affected.push(finding.object);
    }
    merged.push({
      ...primary,
      severity: worstSeverity([primary.severity, ...others.map((finding) => finding.severity)]),
      ...(proofs.length ? { confirmedBy: proofs.map(linkedFinding) } : {}),
      ...(related.length ? { related: related.map(linkedFinding) } : {}),
      ...(affected.length ? { affected } : {}),
    });
  }
  return merged;
}

function worstOf(members: number[], findings: Finding[]): number {
  return members.reduce((best, index) => (severityRank(findings[index]!.severity) > severityRank(findings[best]!.severity) ? index : best));
}

/** Lower a rule finding to info when its confirming probes positively showed the object isolated. */
function refute(finding: Finding, confirmers: string[], probes: ProbeRecord[]): Finding {
  if (!confirmers.length || finding.severity === 'info' || finding.object.kind === 'constraint' || finding.object.kind === 'policy') return finding;
  const subject = objectSubject(finding.object);
  const exercised = probes.filter((probe) => confirmers.includes(probe.check) && probe.relation === subject);
  if (finding.object.kind === 'function') return refuteByCalls(finding, exercised);
  if (!exercised.length || exercised.some((probe) => probe.outcome !== 'pass' || probe.error)) return finding;
  // At least two tenants saw (or changed) rows of their own: the data was there and the policies let it through.
  const ownRows = exercised.filter((probe) => probe.tenant !== null && probe.rows - probe.foreignRows > 0);
  const tenants = new Set(ownRows.map((probe) => probe.tenant));
  if (tenants.size < 2) return finding;
  return {
    ...finding,
    severity: 'info',
    refutedBy:
      `${[...new Set(exercised.map((probe) => probe.check))].join(', ')} ran ${exercised.length} statement${exercised.length === 1 ? '' : 's'} on ${subject} ` +
      `(${[...new Set(exercised.map((probe) => probe.context))].join(', ')}): ${tenants.size} tenants saw their own rows, no statement failed, and nothing crossed a tenant boundary; ` +
      `lowered from ${finding.severity} to info`,
  };
}

/**
 * A function is judged by calls made with another tenant's keys (function-leak's `keysOf` records): refuted
 * when calls as at least two tenants, each with the other's keys, ran (or were refused by the function) and
 * neither returned nor changed anything of that tenant, and no call of the probe on it leaked. Otherwise the
 * finding stands, unproven, with the reason the calls could not decide.
 */
function refuteByCalls(finding: Finding, exercised: ProbeRecord[]): Finding {
  const keyed = exercised.filter((probe) => probe.keysOf !== undefined);
  const callers = new Set(keyed.filter((probe) => probe.outcome === 'pass' && !probe.error).map((probe) => probe.tenant));
  const undecided = keyed.filter((probe) => probe.outcome !== 'pass' || probe.error);
  if (keyed.length && !undecided.length && callers.size >= 2 && !exercised.some((probe) => probe.outcome === 'leak')) {
    return {
      ...finding,
      severity: 'info',
      refutedBy:
        `${[...new Set(keyed.map((probe) => probe.check))].join(', ')} called it as ${keyed.map((probe) => probe.context).join('; ')}: ` +
        `returned nothing of the other tenant, changed nothing of it; lowered from ${finding.severity} to info`,
    };
  }
  const reasons = [...new Set([...undecided, ...exercised.filter((probe) => probe.outcome === 'skipped' && probe.keysOf === undefined)].map((probe) => `${probe.context}: ${probe.error ?? probe.outcome}`))];
  const why = reasons.length ? reasons.slice(0, 3).join('; ') : keyed.length ? 'too few calls decided' : 'it was not called';
  return { ...finding, message: `${finding.message.replace(/\.$/, '')}; unproven by calls (${why}).` };
}
