import { objectLabel, type Finding } from '../findings.js';
import type { ProbeOutcome, ProbeRecord } from '../probes/types.js';
import { SEVERITIES, type Severity } from '../severity.js';
import type { Report } from './model.js';
import { baselineLine } from './console.js';

/**
 * A compact Markdown summary for a pull-request comment or $GITHUB_STEP_SUMMARY: a pure function of the
 * JSON report. Every value from the database or the user is escaped: HTML is neutralised, and Markdown
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

function plural(count: number, word: string): string {
  return `${count} ${word}${count === 1 ? '' : 's'}`;
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

/** One collapsed fenced block per distinct fix; findings that share a fix (one cause, several checks) share it. */
function fixes(findings: Finding[]): string[] {
  const byFix = new Map<string, Finding[]>();
  for (const finding of findings) byFix.set(finding.fix, [...(byFix.get(finding.fix) ?? []), finding]);
  return [...byFix].flatMap(([fix, sharing]) => {
    const objects = [...new Set(sharing.map((finding) => objectLabel(finding.object)))];
    const checks = [...new Set(sharing.map((finding) => finding.check))];
    return [`<details><summary>Fix: ${escapeHtmlText(`${checks.join(', ')} on ${objects.join(', ')}`)}</summary>`, '', fenced(fix, 'sql'), '', '</details>', ''];
  });
}

function worstOutcome(records: ProbeRecord[]): ProbeOutcome {
  return OUTCOME_ORDER.find((outcome) => records.some((record) => record.outcome === outcome)) ?? 'pass';
}

/** The tenant x relation matrix, as in the HTML report: outcome counts, and the relations with a cell that is not a pass. */
function matrix(report: Report): string[] {
  const columns = [...report.tenants.map((tenant) => ({ key: `tenant\u0000${tenant.id}`, label: tenant.label })), ...NO_CONTEXT_STATES.map((state) => ({ key: `state\u0000${state}`, label: state }))];
  const cells = new Map<string, ProbeRecord[]>();
  const add = (key: string, record: ProbeRecord) => cells.set(key, [...(cells.get(key) ?? []), record]);
  for (const record of report.probes) {
    if (record.check === 'read-isolation' && record.tenant !== null) add(`${record.relation}\u0000tenant\u0000${record.tenant}`, record);
    if (record.check === 'missing-context') add(`${record.relation}\u0000state\u0000${record.context}`, record);
  }
  if (!cells.size) return [];
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
  const lines = [
    '### Tenant x relation isolation',
    '',
    `${plural(owned.length, 'tenant-owned relation')} x ${plural(columns.length, 'context')} (${report.tenants.length} tenants, 3 no-tenant states): ` +
      `${OUTCOME_ORDER.filter((outcome) => tally.has(outcome)).map((outcome) => `${tally.get(outcome)} ${outcome}`).join(', ') || 'nothing probed'}.`,
    '',
  ];
  if (!flagged.length) return [...lines, 'Every probed cell passed.', ''];
  const text = (cell: (typeof rows)[number]['outcomes'][number]) => (!cell ? '' : cell.outcome === 'leak' ? `**leak (${cell.foreignRows})**` : cell.outcome);
  lines.push(
    `| Relation | ${columns.map((column) => escapeMarkdown(column.label)).join(' | ')} |`,
    `|---|${columns.map(() => '---').join('|')}|`,
    ...flagged.map((row) => `| ${escapeMarkdown(row.relation)} | ${row.outcomes.map(text).join(' | ')} |`),
    '',
  );
  if (flagged.length < rows.length) lines.push(`${plural(rows.length - flagged.length, 'other relation')}: every cell passed.`, '');
  return lines;
}

export function renderMarkdown(report: Report): string {
  const { summary, scenario } = report;
  const verdict = summary.verdict.toUpperCase();
  const lines: string[] = [
    `## rls-audit: ${verdict}`,
    '',
    `**${verdict}**: ${summary.failing ? `${plural(summary.failing, 'finding')} at or above ${summary.failOn} ${summary.failing === 1 ? 'fails' : 'fail'} the run` : `no finding at or above ${summary.failOn} fails the run`}` +
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
  const shown = report.findings.filter((finding) => finding.severity !== 'info');
  const info = report.findings.filter((finding) => finding.severity === 'info');
  if (shown.length) lines.push('### Findings', '', ...findingsTable(shown), '', ...fixes(shown));
  else lines.push(report.findings.length ? 'No finding above info.' : 'No findings.', '');
  if (info.length) {
    lines.push(`<details><summary>${plural(info.length, 'info finding')} (performance and hygiene)</summary>`, '', ...findingsTable(info), '', ...fixes(info), '</details>', '');
  }
  lines.push(...matrix(report));
  return `${lines.join('\n').trimEnd()}\n`;
}
