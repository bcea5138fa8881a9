import type { CheckMeta } from './finding.js';
import { PROBES } from '../probes/registry.js';
import type { MatrixPlacement } from '../probes/types.js';
import { RULES } from '../rules/registry.js';

/** The metadata of every probe and of the checks each reports along the way, in the order they run. */
export function probeChecks(): CheckMeta[] {
  return PROBES.flatMap((probe) => [probe.meta, ...probe.related]);
}

/** Every probe check (in registry order) with its place in the HTML matrix, as its module declares it. */
export function matrixPlacements(): { id: string; matrix: MatrixPlacement }[] {
  return PROBES.flatMap((probe) => [probe.meta, ...probe.related].map((meta) => ({ id: meta.id, matrix: probe.matrix.get(meta.id)! })));
}

/** The metadata of every rule, in the order they are evaluated. */
export function ruleChecks(): CheckMeta[] {
  return RULES.map((rule) => rule.meta);
}

/** Every check id the tool can report: probes, what they report along the way, and rules. */
export function allChecks(): CheckMeta[] {
  return [...probeChecks(), ...ruleChecks()];
}

export function renderChecks(checks: CheckMeta[]): string {
  const width = Math.max(...checks.map((check) => check.id.length));
  return `${checks.map((check) => `${check.id.padEnd(width)}  ${check.source.padEnd(5)}  ${check.severity.padEnd(8)}  ${check.title}`).join('\n')}\n`;
}

export const README_CHECKS_START = '<!-- checks:start: generated from the checks\' metadata by `npm run readme:checks`; edit the checks, not this table -->';
export const README_CHECKS_END = '<!-- checks:end -->';

function cell(text: string): string {
  return text.replace(/\\/g, '\\\\').replace(/\|/g, '\\|').replace(/\s*\n\s*/g, ' ');
}

function checkTable(checks: CheckMeta[]): string[] {
  return [
    '| id | about | max severity | what it finds | example finding |',
    '|---|---|---|---|---|',
    ...checks.map((check) => `| \`${check.id}\` | ${check.objectKind} | ${check.severity} | ${cell(check.summary)} | ${cell(check.example)} |`),
  ];
}

/** The headings of the README's check tables. */
export const README_PROBES_HEADING = 'Probes (`run`)';
export const README_RULES_HEADING = 'Rules (`lint` and `run`)';

/** A heading's anchor as GitHub (and GitLab) make it: lower case, punctuation other than `-` and `_` dropped, spaces as `-`. */
export function headingAnchor(heading: string): string {
  return heading.toLowerCase().replace(/[^\p{L}\p{M}\p{N}\p{Pc} -]/gu, '').replace(/ /g, '-');
}

/** The anchor of the README section that lists a check: the probes' table or the rules' table. */
export function checkReadmeAnchor(check: Pick<CheckMeta, 'source'>): string {
  return headingAnchor(check.source === 'probe' ? README_PROBES_HEADING : README_RULES_HEADING);
}

export const README_PRECONDITIONS_HEADING = 'What sets the severity';

/** Per check, the precondition of its exploit that sets a finding's severity. */
function preconditionList(checks: CheckMeta[]): string[] {
  return ['', `### ${README_PRECONDITIONS_HEADING}`, '', ...checks.map((check) => `- \`${check.id}\`: ${cell(check.precondition)}`)];
}

/** The README's check tables (probes, then rules), and what sets the severity of each check, between their markers. */
export function renderCheckTables(probes: CheckMeta[] = probeChecks(), rules: CheckMeta[] = ruleChecks()): string {
  return [
    README_CHECKS_START,
    `### ${README_PROBES_HEADING}`,
    '',
    ...checkTable(probes),
    '',
    `### ${README_RULES_HEADING}`,
    '',
    ...checkTable(rules),
    ...preconditionList([...probes, ...rules]),
    README_CHECKS_END,
  ].join('\n');
}

/** README text with its check tables replaced by `tables`; throws when the markers are missing. */
export function replaceCheckTables(readme: string, tables: string = renderCheckTables()): string {
  const start = readme.indexOf(README_CHECKS_START);
  const end = readme.indexOf(README_CHECKS_END);
  if (start < 0 || end < start) throw new Error(`README.md has no ${README_CHECKS_START} ... ${README_CHECKS_END} section`);
  return `${readme.slice(0, start)}${tables}${readme.slice(end + README_CHECKS_END.length)}`;
}
