import { readFileSync } from 'node:fs';
import { checkReadmeAnchor } from '../findings/checks.js';
import { fingerprintsOf, objectLabel, type CheckMeta, type Finding, type ObjectKind } from '../findings/finding.js';
import { worstSeverity, type Severity } from '../findings/severity.js';
import { findingLocation } from './locate.js';
import { fenced, fixGroups } from './markdown.js';
import type { Report } from './model.js';
import { commentText } from '../target/sql.js';

/**
 * SARIF 2.1.0 for code-scanning dashboards: a pure function of the JSON report. One run; one rule
 * (reportingDescriptor) per check id that has a finding, with help (what the check proves, the fixes of
 * this run's findings, a link to the check in the README); one result per finding. Findings concern
 * database objects: each result has a logical location (the table, function or role) and, when the audit
 * read schema files, the statement that creates the object (CREATE POLICY for a policy's defect), relative
 * to `%SRCROOT%`, the repository (or directory) the audit ran in.
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
  help: { text: string; markdown: string };
  helpUri?: string;
  defaultConfiguration: { level: SarifLevel };
  properties: { 'security-severity': string; severity: Severity; tags: string[] };
}

/** Paths are relative to the audit's working directory, which `originalUriBaseIds` gives as an absolute URI. */
export const SOURCE_ROOT_ID = '%SRCROOT%';

interface SarifPhysicalLocation {
  artifactLocation: { uri: string; uriBaseId: typeof SOURCE_ROOT_ID };
  region: { startLine: number; startColumn?: number; endLine?: number; endColumn?: number };
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
    tool: { driver: { name: 'rls-audit'; version: string; informationUri?: string; rules: SarifRule[] } };
    originalUriBaseIds?: Record<typeof SOURCE_ROOT_ID, { uri: string; description: { text: string } }>;
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

/** Where the README is published: the package's repository (or homepage) as an absolute URL, if package.json names one. */
export interface SarifOptions {
  /** Absolute URL of the page that shows README.md (its check tables' anchors are appended); absent: a relative README.md link. */
  readmeUrl?: string;
}

/** Hosts of package.json's repository shorthands (`github:owner/repo`, or `owner/repo` alone). */
const SHORTHAND_HOSTS = { github: 'github.com', gitlab: 'gitlab.com', bitbucket: 'bitbucket.org' } as const;

/** `git+https://host/owner/repo.git`, `github:owner/repo`, `owner/repo` as the repository's web page. */
export function repositoryPage(repository: unknown): string | undefined {
  const url = typeof repository === 'string' ? repository : typeof repository === 'object' && repository ? (repository as { url?: unknown }).url : undefined;
  if (typeof url !== 'string' || !url) return undefined;
  const shorthand = /^(?:(github|gitlab|bitbucket):)?([\w.-]+\/[\w.-]+)$/.exec(url);
  if (shorthand) return `https://${SHORTHAND_HOSTS[(shorthand[1] ?? 'github') as keyof typeof SHORTHAND_HOSTS]}/${shorthand[2]}`;
  const page = url.replace(/^git\+/, '').replace(/^git:\/\//, 'https://').replace(/^ssh:\/\/git@/, 'https://').replace(/\.git$/, '');
  return /^https?:\/\//.test(page) ? page : undefined;
}

/** The README's web page from package.json (`repository`, else `homepage` without its fragment), read once. */
export const PACKAGE_README_URL: string | undefined = (() => {
  try {
    const manifest = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { repository?: unknown; homepage?: unknown };
    const homepage = typeof manifest.homepage === 'string' && /^https?:\/\//.test(manifest.homepage) ? manifest.homepage.replace(/#.*$/, '') : undefined;
    return repositoryPage(manifest.repository) ?? homepage;
  } catch {
    return undefined;
  }
})();

const SOURCE_WORDS: Record<CheckMeta['source'], string> = { probe: 'a probe: proved on seeded data, as the application role', rule: 'a rule: read from the catalog' };

/** How many distinct fixes a rule's help shows; the rest are in report.json and fix.sql. */
const HELP_FIXES = 5;

/** Inline code whose delimiters are longer than any backtick run inside it. */
function inlineCode(value: string): string {
  const longest = Math.max(0, ...(value.match(/`+/g) ?? []).map((run) => run.length));
  const ticks = '`'.repeat(longest + 1);
  const padded = value.startsWith('`') || value.endsWith('`') ? ` ${value} ` : value;
  return `${ticks}${padded.replace(/[\r\n]+/g, ' ')}${ticks}`;
}

/**
 * The rule's help, as GitHub shows it beside every alert of the check: what the check proves and why it
 * matters, an example, the fixes of this run's findings (SQL, per object), and the check's README section.
 */
function helpOf(id: string, check: CheckMeta | undefined, findings: Finding[], link: { uri?: string; markdown: string; text: string }): SarifRule['help'] {
  const byFix = fixGroups(findings);
  const fixes = [...byFix].slice(0, HELP_FIXES).map(([fix, sharing]) => [fix, sharing.map((finding) => objectLabel(finding.object))] as const);
  const more = byFix.size - fixes.length;
  const objects = (labels: readonly string[]) => [...new Set(labels)];
  const text = [
    check ? `${check.title}: ${check.summary} (${id}, ${SOURCE_WORDS[check.source]}; up to ${check.severity}.)` : `${id}: a check this version of rls-audit does not describe.`,
    ...(check ? ['', check.explanation, '', `Example: ${check.example}`] : []),
    '',
    'Fix:',
    ...fixes.flatMap(([fix, labels]) => [`-- ${commentText(objects(labels).join(', '))}`, fix, '']),
    ...(more > 0 ? [`(${more} more fix${more === 1 ? '' : 'es'} in report.json and fix.sql)`, ''] : []),
    `More: ${link.text}`,
  ];
  // The check's own texts are written in Markdown (as the README's check tables show them); names from the
  // database are not, and are escaped or put in code spans.
  const markdown = [
    check ? `**${check.title}** (${inlineCode(id)}, ${SOURCE_WORDS[check.source]}; up to ${check.severity}): ${check.summary}` : `${inlineCode(id)}: a check this version of rls-audit does not describe.`,
    ...(check ? ['', check.explanation, '', `Example: ${check.example}`] : []),
    '',
    '#### Fix',
    '',
    ...fixes.flatMap(([fix, labels]) => [`On ${objects(labels).map(inlineCode).join(', ')}:`, '', fenced(fix, 'sql'), '']),
    ...(more > 0 ? [`${more} more fix${more === 1 ? '' : 'es'} in \`report.json\` and \`fix.sql\`.`, ''] : []),
    link.markdown,
  ];
  return { text: text.join('\n'), markdown: markdown.join('\n') };
}

function ruleOf(id: string, check: CheckMeta | undefined, findings: Finding[], options: SarifOptions): SarifRule {
  // The rule's severity is that of its worst finding in this report: a rule finding refuted by the probes
  // (lowered to info) or a check's milder variant must not show up in a dashboard at the check's maximum.
  const severity = worstSeverity(findings.map((finding) => finding.severity));
  const anchor = checkReadmeAnchor(check ?? { source: 'rule' });
  const uri = options.readmeUrl ? `${options.readmeUrl}#${anchor}` : undefined;
  const section = check?.source === 'probe' ? 'Probes' : 'Rules';
  const link = uri
    ? { uri, text: `the rls-audit README, section ${section}: ${uri}`, markdown: `See [${inlineCode(id)} in the rls-audit README](${uri}).` }
    : { text: `the rls-audit README (README.md, section ${section}, #${anchor})`, markdown: `See [${inlineCode(id)} in the rls-audit README](README.md#${anchor}).` };
  return {
    id,
    name: id,
    shortDescription: { text: check?.title ?? id },
    ...(check ? { fullDescription: { text: check.explanation } } : {}),
    help: helpOf(id, check, findings, link),
    // helpUri must be an absolute URI: without a published README there is only the link in the help.
    ...(uri ? { helpUri: uri } : {}),
    defaultConfiguration: { level: sarifLevel(severity) },
    properties: { 'security-severity': SECURITY_SEVERITY[severity], severity, tags: ['security', 'rls'] },
  };
}

/** A relative path as a URI reference: each segment percent-encoded. */
function pathUri(file: string): string {
  return file.split('/').map(encodeURIComponent).join('/');
}

function resultOf(report: Report, finding: Finding, ruleIndex: number, fingerprint: string): SarifResult {
  const accepted = finding.accepted;
  const location = findingLocation(report.locations, finding);
  return {
    ruleId: finding.check,
    ruleIndex,
    level: sarifLevel(finding.severity),
    message: { text: finding.message },
    locations: [
      {
        // The schema statement that creates the object, when the audit read schema files: code scanning
        // (GitHub's upload) needs a file location on every result.
        ...(location
          ? {
              physicalLocation: {
                artifactLocation: { uri: pathUri(location.file), uriBaseId: SOURCE_ROOT_ID },
                region: {
                  startLine: location.line,
                  ...(location.column ? { startColumn: location.column } : {}),
                  ...(location.endLine && location.endColumn ? { endLine: location.endLine, endColumn: location.endColumn } : {}),
                },
              },
            }
          : {}),
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

export function toSarif(report: Report, options: SarifOptions = { ...(PACKAGE_README_URL ? { readmeUrl: PACKAGE_README_URL } : {}) }): SarifLog {
  const checks = report.checks;
  const known = new Map(checks.map((check) => [check.id, check]));
  const reported = new Set(report.findings.map((finding) => finding.check));
  // Rules in the order `rls-audit checks` lists them; a check id this version does not know goes last.
  const ruleIds = [...checks.map((check) => check.id).filter((id) => reported.has(id)), ...[...reported].filter((id) => !known.has(id)).sort()];
  const rules = ruleIds.map((id) => ruleOf(id, known.get(id), report.findings.filter((finding) => finding.check === id), options));
  const fingerprints = fingerprintsOf(report.findings);
  return {
    $schema: SARIF_SCHEMA,
    version: '2.1.0',
    runs: [
      {
        tool: { driver: { name: 'rls-audit', version: report.tool.version, ...(options.readmeUrl ? { informationUri: options.readmeUrl } : {}), rules } },
        ...(report.sourceRoot ? { originalUriBaseIds: { [SOURCE_ROOT_ID]: { uri: report.sourceRoot, description: { text: 'The repository (or, outside one, the directory) the audit ran in: schema file paths are relative to it.' } } } } : {}),
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

export function renderSarif(report: Report, options?: SarifOptions): string {
  return `${JSON.stringify(toSarif(report, options), null, 2)}\n`;
}
