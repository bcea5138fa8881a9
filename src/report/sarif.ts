import { fingerprintFindings, objectLabel, objectSubject, type CheckMeta, type Finding, type ObjectKind } from '../findings.js';
import { severityRank, type Severity } from '../severity.js';
import type { Report } from './model.js';

/**
 * SARIF 2.1.0 for code-scanning dashboards: a pure function of the JSON report. One run; one rule
 * (reportingDescriptor) per check id that has a finding; one result per finding. Findings concern database
 * objects, not lines of a file, so each result has a logical location (the table, function or role).
 */

export const SARIF_SCHEMA = 'https://json.schemastore.org/sarif-2.1.0.json';

type SarifLevel = 'error' | 'warning' | 'note';

interface SarifLogicalLocation {
  fullyQualifiedName: string;
  kind: ObjectKind;
}

interface SarifRule {
  id: string;
  name: string;
  shortDescription: { text: string };
  fullDescription?: { text: string };
  defaultConfiguration: { level: SarifLevel };
  properties: { 'security-severity': string; severity: Severity; tags: string[] };
}

interface SarifPhysicalLocation {
  artifactLocation: { uri: string };
  region: { startLine: number };
}

interface SarifResult {
  ruleId: string;
  ruleIndex: number;
  level: SarifLevel;
  message: { text: string };
  locations: { physicalLocation?: SarifPhysicalLocation; logicalLocations: SarifLogicalLocation[] }[];
  partialFingerprints: { 'rlsAudit/v1': string };
  /** Against a baseline (`--baseline`); a finding of the baseline that is gone is listed in the JSON report. */
  baselineState?: 'new' | 'updated' | 'unchanged';
  suppressions?: { kind: 'external'; justification: string }[];
  properties: {
    severity: Severity;
    source: Finding['source'];
    evidenceSql: string;
    fix: string;
    /** `check on object: message` of each probe finding that proves it. */
    confirmedBy?: string[];
    affected?: string[];
    refutedBy?: string;
    acceptance?: NonNullable<Finding['accepted']>;
  };
}

export interface SarifLog {
  $schema: typeof SARIF_SCHEMA;
  version: '2.1.0';
  runs: {
    tool: { driver: { name: 'rls-audit'; version: string; rules: SarifRule[] } };
    automationDetails: { id: string };
    invocations: { executionSuccessful: true; startTimeUtc: string; properties: { command: Report['command']; verdict: Report['summary']['verdict']; failOn: Severity } }[];
    results: SarifResult[];
  }[];
}

/** `security-severity` as GitHub code scanning reads it (a number in a string, 0.0-10.0). */
const SECURITY_SEVERITY: Record<Severity, string> = { critical: '9.5', high: '8.0', medium: '5.5', low: '3.0', info: '0.0' };

function sarifLevel(severity: Severity): SarifLevel {
  if (severity === 'critical' || severity === 'high') return 'error';
  return severity === 'medium' ? 'warning' : 'note';
}

function worst(severities: Severity[]): Severity {
  return severities.reduce((max, severity) => (severityRank(severity) > severityRank(max) ? severity : max), 'info');
}

function ruleOf(id: string, check: CheckMeta | undefined, findings: Finding[]): SarifRule {
  // The rule's severity is that of its worst finding in this report: a rule finding refuted by the probes
  // (lowered to info) or a check's milder variant must not show up in a dashboard at the check's maximum.
  const severity = worst(findings.map((finding) => finding.severity));
  return {
    id,
    name: id,
    shortDescription: { text: check?.title ?? id },
    ...(check ? { fullDescription: { text: check.explanation } } : {}),
    defaultConfiguration: { level: sarifLevel(severity) },
    properties: { 'security-severity': SECURITY_SEVERITY[severity], severity, tags: ['security', 'rls'] },
  };
}

function resultOf(report: Report, finding: Finding, ruleIndex: number, fingerprint: string): SarifResult {
  const accepted = finding.accepted;
  const location = report.locations[objectSubject(finding.object)];
  return {
    ruleId: finding.check,
    ruleIndex,
    level: sarifLevel(finding.severity),
    message: { text: finding.message },
    locations: [
      {
        // The schema file line that creates the object, when the audit applied schema files: code scanning
        // (GitHub's upload) needs a file location on every result.
        ...(location ? { physicalLocation: { artifactLocation: { uri: location.file }, region: { startLine: location.line } } } : {}),
        logicalLocations: [{ fullyQualifiedName: objectLabel(finding.object), kind: finding.object.kind }],
      },
    ],
    partialFingerprints: { 'rlsAudit/v1': fingerprint },
    ...(finding.baseline ? { baselineState: finding.baseline === 'worse' ? ('updated' as const) : finding.baseline } : {}),
    ...(accepted && !accepted.expired ? { suppressions: [{ kind: 'external' as const, justification: accepted.reason }] } : {}),
    properties: {
      severity: finding.severity,
      source: finding.source,
      evidenceSql: finding.evidence.sql,
      fix: finding.fix,
      ...(finding.confirmedBy?.length ? { confirmedBy: finding.confirmedBy.map((entry) => `${entry.check} on ${objectLabel(entry.object)}: ${entry.message}`) } : {}),
      ...(finding.affected?.length ? { affected: finding.affected.map(objectLabel) } : {}),
      ...(finding.refutedBy ? { refutedBy: finding.refutedBy } : {}),
      // An expired acceptance is no suppression: the finding is open again. Say why it is not suppressed.
      ...(accepted?.expired ? { acceptance: accepted } : {}),
    },
  };
}

export function toSarif(report: Report): SarifLog {
  const checks = report.checks;
  const known = new Map(checks.map((check) => [check.id, check]));
  const reported = new Set(report.findings.map((finding) => finding.check));
  // Rules in the order `rls-audit checks` lists them; a check id this version does not know goes last.
  const ruleIds = [...checks.map((check) => check.id).filter((id) => reported.has(id)), ...[...reported].filter((id) => !known.has(id)).sort()];
  const rules = ruleIds.map((id) => ruleOf(id, known.get(id), report.findings.filter((finding) => finding.check === id)));
  // Reports carry their fingerprints; one written before they did gets them here, computed the same way.
  const fingerprints = fingerprintFindings(report.findings).map((finding, index) => report.findings[index]!.fingerprint ?? finding.fingerprint!);
  return {
    $schema: SARIF_SCHEMA,
    version: '2.1.0',
    runs: [
      {
        tool: { driver: { name: 'rls-audit', version: report.tool.version, rules } },
        automationDetails: { id: `rls-audit/${report.scenario.name}/` },
        invocations: [
          {
            executionSuccessful: true,
            startTimeUtc: report.startedAt,
            properties: { command: report.command, verdict: report.summary.verdict, failOn: report.summary.failOn },
          },
        ],
        results: report.findings.map((finding, index) => resultOf(report, finding, ruleIds.indexOf(finding.check), fingerprints[index]!)),
      },
    ],
  };
}

export function renderSarif(report: Report): string {
  return `${JSON.stringify(toSarif(report), null, 2)}\n`;
}
