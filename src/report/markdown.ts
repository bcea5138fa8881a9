import { objectLabel, type Finding } from '../findings/finding.js';
import { brokenContext } from '../findings/verdict.js';
import { plural } from './text.js';
import type { ProbeOutcome, ProbeRecord } from '../probes/types.js';
import { SEVERITIES, severityRank, worstSeverity, type Severity } from '../findings/severity.js';
import type { Report } from './model.js';
import { baselineLine } from './console.js';

/**
 * A compact Markdown summary for a pull-request comment or $GITHUB_STEP_SUMMARY: a pure function of the
 * JSON report, at most `MARKDOWN_LIMIT` characters (a GitHub comment holds 65,536): when the full summary
 * is longer, detail goes in a fixed order, least severe first (fixes, then the matrix's rows, then
 * findings' rows), and a last line says what was left out and where the full report is. Every value from the database or the user is escaped: HTML is neutralised, and Markdown
 * punctuation (including the table's `|`) is backslash-escaped; fixes go in fenced blocks longer than any
 * backtick run they contain.
 */

const WORST_FIRST: Severity[] = [...SEVERITIES].reverse();
const NO_CONTEXT_STATES = ['never set', 'empty string', 'unknown tenant'] as const;
/** Worst first: the outcome a matrix cell shows when several statements probed it. */
const OUTCOME_ORDER: ProbeOutcome[] = ['leak', 'error', 'hidden', 'denied', 'unreliable', 'inconclusive', 'pass', 'no-access', 'skipped'];
/** Control characters other than tab and newline: never meaningful in a summary. */
const CONTROL = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F]/g;

/** One line of text, safe in a table cell, a list item or a heading. */
function escapeMarkdown(value: string): string {
  return value
    .replace(CONTROL, '')
    .replace(/\s*[\r\n]+\s*/g, ' ')
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/[\\`*_[\]|~]/g, (character) => `\\${character}`);
}

/** Text inside an HTML element such as <summary>, where Markdown is not parsed. */
function escapeHtmlText(value: string): string {
  return value.replace(CONTROL, '').replace(/\s*[\r\n]+\s*/g, ' ').replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** A fenced block: the fence is longer than the longest run of backticks in the code. */
export function fenced(code: string, language: string): string {
  const longest = Math.max(0, ...(code.match(/`+/g) ?? []).map((run) => run.length));
  const fence = '`'.repeat(Math.max(3, longest + 1));
  return `${fence}${language}\n${code.replace(CONTROL, '').replace(/\r\n?/g, '\n')}\n${fence}`;
}

function status(finding: Finding): string {
  if (!finding.accepted) return '';
  return finding.accepted.expired ? ' (acceptance expired)' : ' (accepted)';
}

function findingsTable(findings: Finding[]): string[] {
  return [
    '| Severity | Check | Object | Finding |',
    '|---|---|---|---|',
    ...findings.map((finding) => `| ${finding.severity}${status(finding)} | ${escapeMarkdown(finding.check)} | ${escapeMarkdown(objectLabel(finding.object))} | ${escapeMarkdown(finding.message)} |`),
  ];
}

/** The findings that share each fix (one cause, several checks), in report order. */
export function fixGroups(findings: readonly Finding[]): Map<string, Finding[]> {
  const byFix = new Map<string, Finding[]>();
  for (const finding of findings) {
    const sharing = byFix.get(finding.fix);
    if (sharing) sharing.push(finding);
    else byFix.set(finding.fix, [finding]);
  }
  return byFix;
}

/** One collapsed fenced block per distinct fix, but those left out; findings that share a fix share it. */
function fixes(findings: Finding[], leftOut: ReadonlySet<string> = new Set()): string[] {
  return [...fixGroups(findings)].flatMap(([fix, sharing]) => (leftOut.has(fix) ? [] : fixBlock(fix, sharing)));
}

function fixBlock(fix: string, sharing: Finding[]): string[] {
  const objects = [...new Set(sharing.map((finding) => objectLabel(finding.object)))];
  const checks = [...new Set(sharing.map((finding) => finding.check))];
  return [`<details><summary>Fix: ${escapeHtmlText(`${checks.join(', ')} on ${objects.join(', ')}`)}</summary>`, '', fenced(fix, 'sql'), '', '</details>', ''];
}

function worstOutcome(records: ProbeRecord[]): ProbeOutcome {
  return OUTCOME_ORDER.find((outcome) => records.some((record) => record.outcome === outcome)) ?? 'pass';
}

interface MatrixCell {
  outcome: ProbeOutcome;
  foreignRows: number;
}

/** The tenant x relation matrix, as in the HTML report: a row per tenant-owned relation, a column per tenant and no-tenant state. */
interface IsolationMatrix {
  columns: { key: string; label: string }[];
  owned: number;
  tally: Map<ProbeOutcome, number>;
  /** Rows with a cell that is not a pass, in relation order. */
  flagged: { relation: string; outcomes: (MatrixCell | null)[] }[];
  passed: number;
}

function isolationMatrix(report: Report): IsolationMatrix | null {
  const columns = [...report.tenants.map((tenant) => ({ key: `tenant\u0000${tenant.id}`, label: tenant.label })), ...NO_CONTEXT_STATES.map((state) => ({ key: `state\u0000${state}`, label: state }))];
  const cells = new Map<string, ProbeRecord[]>();
  const add = (key: string, record: ProbeRecord) => {
    const records = cells.get(key);
    if (records) records.push(record);
    else cells.set(key, [record]);
  };
  for (const record of report.probes) {
    if (record.check === 'read-isolation' && record.tenant !== null) add(`${record.relation}\u0000tenant\u0000${record.tenant}`, record);
    if (record.check === 'missing-context') add(`${record.relation}\u0000state\u0000${record.context}`, record);
  }
  if (!cells.size) return null;
  const owned = report.relations.filter((relation) => relation.tenancy !== 'shared');
  const rows = owned.map((relation) => ({
    relation: relation.name,
    outcomes: columns.map((column) => {
      const records = cells.get(`${relation.name}\u0000${column.key}`);
      return records?.length ? { outcome: worstOutcome(records), foreignRows: records.reduce((sum, record) => sum + record.foreignRows, 0) } : null;
    }),
  }));
  const tally = new Map<ProbeOutcome, number>();
  for (const row of rows) for (const cell of row.outcomes) if (cell) tally.set(cell.outcome, (tally.get(cell.outcome) ?? 0) + 1);
  const flagged = rows.filter((row) => row.outcomes.some((cell) => cell && cell.outcome !== 'pass'));
  return { columns, owned: owned.length, tally, flagged, passed: rows.length - flagged.length };
}

function matrixRow(row: IsolationMatrix['flagged'][number]): string {
  const text = (cell: MatrixCell | null) => (!cell ? '' : cell.outcome === 'leak' ? `**leak (${cell.foreignRows})**` : cell.outcome);
  return `| ${escapeMarkdown(row.relation)} | ${row.outcomes.map(text).join(' | ')} |`;
}

/** The matrix as Markdown: outcome counts, and the first `maxRows` relations with a cell that is not a pass. */
function matrix(model: IsolationMatrix | null, reportTenants: number, maxRows = Infinity): string[] {
  if (!model) return [];
  const { columns, tally, flagged } = model;
  const lines = [
    '### Tenant x relation isolation',
    '',
    `${plural(model.owned, 'tenant-owned relation')} x ${plural(columns.length, 'context')} (${reportTenants} tenants, 3 no-tenant states): ` +
      `${OUTCOME_ORDER.filter((outcome) => tally.has(outcome)).map((outcome) => `${tally.get(outcome)} ${outcome}`).join(', ') || 'nothing probed'}.`,
    '',
  ];
  if (!flagged.length) return [...lines, 'Every probed cell passed.', ''];
  if (maxRows > 0) {
    lines.push(
      `| Relation | ${columns.map((column) => escapeMarkdown(column.label)).join(' | ')} |`,
      `|---|${columns.map(() => '---').join('|')}|`,
      ...flagged.slice(0, maxRows).map(matrixRow),
      '',
    );
  }
  if (flagged.length > maxRows) lines.push(`${plural(flagged.length - maxRows, maxRows > 0 ? 'more relation' : 'relation')} with a cell that did not pass: see the full report.`, '');
  if (model.passed) lines.push(`${plural(model.passed, 'other relation')}: every cell passed.`, '');
  return lines;
}

/** GitHub's limit is 65,536 characters per comment; the margin leaves room for text around the summary. */
export const MARKDOWN_LIMIT = 60_000;

/** What a summary cut to the limit leaves out: fixes (by their text), findings' rows, matrix rows past a number. */
interface Cut {
  fixes: Set<string>;
  rows: Set<Finding>;
  matrixRows: number;
}

export interface MarkdownOptions {
  /** The most characters the summary may have (default MARKDOWN_LIMIT). */
  limit?: number;
}

export function renderMarkdown(report: Report, options: MarkdownOptions = {}): string {
  const limit = options.limit ?? MARKDOWN_LIMIT;
  const model = isolationMatrix(report);
  const cut: Cut = { fixes: new Set(), rows: new Set(), matrixRows: Infinity };
  let text = compose(report, model, cut);
  if (text.length <= limit) return text;
  // Detail to leave out, in order: each piece with the characters it takes, least important first.
  const pieces = cuttablePieces(report, model);
  let next = 0;
  while (text.length > limit && next < pieces.length) {
    // Leave out pieces until they cover the excess (and the closing line), then render and measure again.
    let excess = text.length - limit + CLOSING_RESERVE;
    while (excess > 0 && next < pieces.length) {
      const piece = pieces[next++]!;
      piece.apply(cut);
      excess -= piece.size;
    }
    text = compose(report, model, cut);
  }
  // Whatever cannot go (verdict, counts, inconclusive reasons) stays whole; past that, the text is cut at a line.
  if (text.length > limit) text = `${text.slice(0, text.lastIndexOf('\n', limit - CLOSING_RESERVE))}\n\n${closingLine(report, model, cut, true)}\n`;
  return text;
}

/** Room kept for the closing line when deciding how much to leave out. */
const CLOSING_RESERVE = 600;

interface Piece {
  size: number;
  apply: (cut: Cut) => void;
}

/** Findings least severe first; among equals the last in the report first (it is the least important there). */
function leastSevereFirst(findings: readonly Finding[]): Finding[] {
  return findings
    .map((finding, index) => ({ finding, index }))
    .sort((a, b) => severityRank(a.finding.severity) - severityRank(b.finding.severity) || b.index - a.index)
    .map(({ finding }) => finding);
}

/**
 * The detail a long summary can do without, in the order it goes: fix blocks (a fix shared by several
 * findings goes with the worst of them), then the matrix's rows from the bottom, then findings' rows, each
 * least severe first.
 */
function cuttablePieces(report: Report, model: IsolationMatrix | null): Piece[] {
  const size = (lines: string[]) => lines.reduce((sum, line) => sum + line.length + 1, 0);
  const groups = [...fixGroups(report.findings)].map(([fix, sharing], index) => ({ fix, sharing, index, severity: worstSeverity(sharing.map((finding) => finding.severity)) }));
  groups.sort((a, b) => severityRank(a.severity) - severityRank(b.severity) || b.index - a.index);
  const pieces: Piece[] = groups.map(({ fix, sharing }) => ({ size: size(fixBlock(fix, sharing)), apply: (cut) => void cut.fixes.add(fix) }));
  const rows = model?.flagged ?? [];
  for (let shown = rows.length - 1; shown >= 0; shown--) pieces.push({ size: matrixRow(rows[shown]!).length + 1, apply: (cut) => void (cut.matrixRows = shown) });
  for (const finding of leastSevereFirst(report.findings)) pieces.push({ size: size(findingsTable([finding]).slice(2)), apply: (cut) => void cut.rows.add(finding) });
  return pieces;
}

/** The last line of a cut summary: how much was left out, and where the whole report is. */
function closingLine(report: Report, model: IsolationMatrix | null, cut: Cut, truncated = false): string {
  const flagged = model?.flagged.length ?? 0;
  const leftOut = report.findings.filter((finding) => cut.rows.has(finding));
  const bySeverity = WORST_FIRST.map((severity) => ({ severity, count: leftOut.filter((finding) => finding.severity === severity).length })).filter((entry) => entry.count);
  const withoutFix = report.findings.filter((finding) => !cut.rows.has(finding) && cut.fixes.has(finding.fix)).length;
  const parts = [
    ...(leftOut.length ? [`${plural(leftOut.length, 'finding')} of ${report.findings.length} left out (${bySeverity.map((entry) => `${entry.count} ${entry.severity}`).join(', ')})`] : []),
    ...(withoutFix ? [`the fixes of ${plural(withoutFix, leftOut.length ? 'other finding' : 'finding')}`] : []),
    ...(cut.matrixRows < flagged ? [`${plural(flagged - cut.matrixRows, 'relation')} of the matrix`] : []),
    ...(truncated ? ['the end of the summary'] : []),
  ];
  return `**Cut to fit a GitHub comment:** ${parts.join('; ')}. The full report: [report.html](report.html) and [report.json](report.json), next to this report.md.`;
}

function compose(report: Report, model: IsolationMatrix | null, cut: Cut): string {
  const { summary, scenario } = report;
  const verdict = summary.verdict.toUpperCase();
  const lines: string[] = [
    `## rls-audit: ${verdict}`,
    '',
    `**${verdict}**: ${summary.staticOnly ? `static findings only (the context showed no tenant its rows: ${escapeMarkdown(brokenContext(summary.inconclusive)?.context ?? '')}); ` : ''}${summary.failing ? `${plural(summary.failing, 'finding')} at or above ${summary.failOn} ${summary.failing === 1 ? 'fails' : 'fail'} the run` : `no finding at or above ${summary.failOn} fails the run`}` +
      `${summary.accepted ? `, ${summary.accepted} accepted` : ''}. ` +
      `Scenario ${escapeMarkdown(scenario.name)} (${report.command}, role ${escapeMarkdown(scenario.role)}), ${escapeMarkdown(report.target.description)}, PostgreSQL ${escapeMarkdown(report.target.serverVersion)}.`,
    '',
    `| ${WORST_FIRST.join(' | ')} |`,
    `|${WORST_FIRST.map(() => '---:').join('|')}|`,
    `| ${WORST_FIRST.map((severity) => summary.findings[severity] ?? 0).join(' | ')} |`,
    '',
  ];
  if (report.baseline) {
    const { fixed } = report.baseline;
    lines.push(`Compared with ${escapeMarkdown(baselineLine(report.baseline))}.`, '', ...fixed.slice(0, 20).map((entry) => `- fixed: ${escapeMarkdown(`${entry.check} on ${entry.object}`)}`), ...(fixed.length > 20 ? [`- and ${fixed.length - 20} more fixed`] : []), ...(fixed.length ? [''] : []));
  }
  if ((summary.inconclusive ?? []).length) {
    lines.push('### Inconclusive', '', ...(summary.inconclusive ?? []).map((entry) => `- ${escapeMarkdown(entry.reason)} Try: ${escapeMarkdown(entry.hint)}`), '');
  }
  const listed = report.findings.filter((finding) => !cut.rows.has(finding));
  const shown = listed.filter((finding) => finding.severity !== 'info');
  const info = listed.filter((finding) => finding.severity === 'info');
  if (shown.length) lines.push('### Findings', '', ...findingsTable(shown), '', ...fixes(shown, cut.fixes));
  else if (report.findings.some((finding) => finding.severity !== 'info')) lines.push('### Findings', '', 'Every finding is left out here: see the full report.', '');
  else lines.push(report.findings.length ? 'No finding above info.' : 'No findings.', '');
  if (info.length) {
    lines.push(`<details><summary>${plural(info.length, 'info finding')} (performance and hygiene)</summary>`, '', ...findingsTable(info), '', ...fixes(info, cut.fixes), '</details>', '');
  }
  lines.push(...matrix(model, report.tenants.length, cut.matrixRows));
  const cutAnything = cut.rows.size > 0 || cut.fixes.size > 0 || cut.matrixRows !== Infinity;
  if (cutAnything) lines.push(...(lines[lines.length - 1] === '' ? [] : ['']), closingLine(report, model, cut));
  return `${lines.join('\n').trimEnd()}\n`;
}
