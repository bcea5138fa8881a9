import { objectLabel, type Finding } from '../findings/finding.js';
import type { ProbeOutcome, ProbeRecord } from '../probes/types.js';
import { atLeast } from '../findings/severity.js';
import type { Report } from './model.js';

/**
 * JUnit XML for CI test dashboards (GitLab, Jenkins, GitHub test reporters): a pure function of the JSON
 * report. One <testsuite> per check that ran, one <testcase> per object (relation, function, role) it
 * covered. A finding fails its test case only when the run fails on it (at or above failOn and not accepted,
 * or accepted with an expired acceptance); milder and accepted findings are notes in <system-out>. A test case
 * whose probe statements all proved nothing (unreliable, inconclusive, skipped, errors) is <skipped>.
 * Valid against Jenkins' junit-10.xsd (xunit plugin), which GitLab and the GitHub test reporters also read.
 */

/** Outcomes that verify an object one way or the other; a test case with none of them verified nothing. */
const CONCLUSIVE: ReadonlySet<ProbeOutcome> = new Set(['pass', 'leak', 'hidden', 'denied', 'no-access']);

interface TestCase {
  object: string;
  records: ProbeRecord[];
  failing: Finding[];
  notes: Finding[];
}

interface TestSuite {
  check: string;
  cases: TestCase[];
  /** Milliseconds, when the report timed this check. */
  time?: number;
}

/** Characters XML 1.0 does not allow anywhere, not even escaped; also lone surrogates. */
const ILLEGAL_XML = /[^\t\n\r\u0020-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]/gu;

function xmlText(value: string): string {
  return value.replace(ILLEGAL_XML, '').replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** For attribute values in double quotes; newlines and tabs as character references so parsers keep them. */
function xmlAttribute(value: string): string {
  return xmlText(value).replace(/"/g, '&quot;').replace(/'/g, '&apos;').replace(/\n/g, '&#10;').replace(/\r/g, '&#13;').replace(/\t/g, '&#9;');
}

function isFailing(finding: Finding, report: Report): boolean {
  return atLeast(finding.severity, report.scenario.failOn) && (!finding.accepted || finding.accepted.expired);
}

/** The probe that reports a check id and every check that probe reports: itself and its related checks. */
function probeGroup(report: Report, check: string): string[] | undefined {
  const meta = report.checks.find((entry) => entry.id === check);
  if (!meta || meta.source !== 'probe') return undefined;
  const probe = meta.reportedBy ?? meta.id;
  return report.checks.filter((entry) => entry.id === probe || entry.reportedBy === probe).map((entry) => entry.id);
}

function unique(values: string[]): string[] {
  return [...new Set(values)];
}

/** Check ids that ran, in the order they ran (the report's checks), then any id the report's checks lack. */
function checksThatRan(report: Report): string[] {
  return unique([...report.checks.map((check) => check.id), ...report.probes.map((record) => record.check), ...report.findings.map((finding) => finding.check)]);
}

/**
 * Each check's own findings: a defect is one finding in the report, but each check that saw it (the rule,
 * the probes folded into it as `confirmedBy`, other rules as `related`) fails its own test case. A folded
 * finding keeps its severity, what it said and its evidence, and shares the defect's acceptance.
 */
function reportedFindings(report: Report): Finding[] {
  return report.findings.flatMap((finding) => [
    finding,
    ...[...(finding.confirmedBy ?? []), ...(finding.related ?? [])].map((linked) => ({ ...finding, ...linked, confirmedBy: [], related: [] })),
  ]);
}

function suiteOf(report: Report, check: string): TestSuite {
  const own = report.probes.filter((record) => record.check === check);
  // A check reported along the way by another probe (own-rows-hidden by read-isolation) was evaluated on
  // that probe's statements: it covered the same objects.
  const group = probeGroup(report, check);
  const records = own.length || !group ? own : report.probes.filter((record) => group.includes(record.check));
  const findings = reportedFindings(report).filter((finding) => finding.check === check);
  const meta = report.checks.find((entry) => entry.id === check);
  let covered: string[] = records.map((record) => record.relation);
  if (meta?.source === 'rule') {
    const scope = meta.objectKind;
    if (scope === 'table' || scope === 'view' || scope === 'constraint' || scope === 'policy') covered = report.relations.map((relation) => relation.name);
    else if (scope === 'role') covered = [report.scenario.role];
    else {
      // Functions and sequences are known only where the report names them: probe statements (of checks about
      // that kind of object) and findings.
      const kindOf = new Map(report.checks.map((entry) => [entry.id, entry.objectKind]));
      covered = [
        ...report.probes.filter((record) => kindOf.get(record.check) === scope).map((record) => record.relation),
        ...report.findings.filter((finding) => finding.object.kind === scope).map((finding) => objectLabel(finding.object)),
      ];
    }
  }
  // A finding about a constraint or policy is a case of its table.
  const caseOf = (finding: Finding) => (finding.object.kind === 'constraint' || finding.object.kind === 'policy' ? finding.object.relation ?? finding.object.name : objectLabel(finding.object));
  const objects = unique([...covered, ...findings.map(caseOf)]);
  const cases = objects.map((object) => {
    const mine = findings.filter((finding) => caseOf(finding) === object);
    return {
      object,
      records: records.filter((record) => record.relation === object),
      failing: mine.filter((finding) => isFailing(finding, report)),
      notes: mine.filter((finding) => !isFailing(finding, report)),
    };
  });
  const time = report.timings.perProbe[check];
  return { check, cases, ...(time === undefined ? {} : { time }) };
}

function isSkipped(testCase: TestCase): boolean {
  return !testCase.failing.length && !testCase.notes.length && testCase.records.length > 0 && !testCase.records.some((record) => CONCLUSIVE.has(record.outcome));
}

function skipMessage(testCase: TestCase): string {
  const counts = new Map<ProbeOutcome, number>();
  for (const record of testCase.records) counts.set(record.outcome, (counts.get(record.outcome) ?? 0) + 1);
  const tally = [...counts].map(([outcome, count]) => `${count} ${outcome}`).join(', ');
  const reason = testCase.records.find((record) => record.error)?.error;
  return `not verified (${tally})${reason ? `: ${reason}` : ''}`;
}

function findingText(finding: Finding): string {
  const lines = [`[${finding.severity}] ${finding.check} on ${objectLabel(finding.object)} (${finding.source}): ${finding.message}`];
  if (finding.accepted) {
    const until = finding.accepted.expires ? ` until ${finding.accepted.expires}` : '';
    lines.push(finding.accepted.expired ? `acceptance expired${until}: ${finding.accepted.reason}` : `accepted${until}: ${finding.accepted.reason}`);
  }
  for (const entry of finding.confirmedBy ?? []) lines.push(`confirmed by ${entry.check} on ${objectLabel(entry.object)}: ${entry.message}`);
  for (const entry of finding.related ?? []) lines.push(`also ${entry.check} on ${objectLabel(entry.object)}: ${entry.message}`);
  if (finding.affected?.length) lines.push(`affects also: ${finding.affected.map(objectLabel).join(', ')}`);
  if (finding.refutedBy) lines.push(`refuted by ${finding.refutedBy}`);
  lines.push(`context: ${finding.evidence.context}`, '', '-- evidence', finding.evidence.sql, '', '-- fix', finding.fix);
  return lines.join('\n');
}

function seconds(ms: number): string {
  return (ms / 1000).toFixed(3);
}

function renderCase(check: string, testCase: TestCase): string {
  const open = `    <testcase classname="${xmlAttribute(`rls-audit.${check}`)}" name="${xmlAttribute(testCase.object)}"`;
  const body: string[] = [];
  if (testCase.failing.length) {
    const [first] = testCase.failing;
    const more = testCase.failing.length > 1 ? ` (and ${testCase.failing.length - 1} more)` : '';
    const type = testCase.failing.reduce((max, finding) => (atLeast(finding.severity, max) ? finding.severity : max), first!.severity);
    body.push(`      <failure message="${xmlAttribute(`${first!.message}${more}`)}" type="${type}">${xmlText(testCase.failing.map(findingText).join('\n\n'))}</failure>`);
  } else if (isSkipped(testCase)) {
    body.push(`      <skipped message="${xmlAttribute(skipMessage(testCase))}"/>`);
  }
  if (testCase.notes.length) {
    const why = (finding: Finding) => (finding.accepted && !finding.accepted.expired ? 'accepted' : 'below the fail-on threshold');
    const notes = testCase.notes.map((finding) => `note (${why(finding)}, does not fail the run)\n${findingText(finding)}`);
    body.push(`      <system-out>${xmlText(notes.join('\n\n'))}</system-out>`);
  }
  return body.length ? `${open}>\n${body.join('\n')}\n    </testcase>` : `${open}/>`;
}

function counts(cases: TestCase[]): { tests: number; failures: number; skipped: number } {
  return { tests: cases.length, failures: cases.filter((entry) => entry.failing.length).length, skipped: cases.filter(isSkipped).length };
}

export function renderJunit(report: Report): string {
  const suites = checksThatRan(report).map((check) => suiteOf(report, check));
  const total = counts(suites.flatMap((suite) => suite.cases));
  const timestamp = report.startedAt.replace(/(\.\d+)?Z$/, '');
  const lines = [
    '<?xml version="1.0" encoding="UTF-8"?>',
    // Jenkins' junit-10.xsd allows no `skipped` on <testsuites>: the skipped count is on each <testsuite>.
    `<testsuites name="${xmlAttribute(`rls-audit ${report.command}: ${report.scenario.name}`)}" tests="${total.tests}" failures="${total.failures}" errors="0" time="${seconds(report.timings.total)}">`,
  ];
  for (const suite of suites) {
    const count = counts(suite.cases);
    const time = suite.time === undefined ? '' : ` time="${seconds(suite.time)}"`;
    const open = `  <testsuite name="${xmlAttribute(suite.check)}" tests="${count.tests}" failures="${count.failures}" errors="0" skipped="${count.skipped}"${time} timestamp="${xmlAttribute(timestamp)}"`;
    if (!suite.cases.length) {
      lines.push(`${open}/>`);
      continue;
    }
    lines.push(`${open}>`, ...suite.cases.map((testCase) => renderCase(suite.check, testCase)), '  </testsuite>');
  }
  lines.push('</testsuites>');
  return `${lines.join('\n')}\n`;
}
