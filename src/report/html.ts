import { objectLabel, type Finding, type SampleRow } from '../findings.js';
import type { ProbeOutcome, ProbeRecord } from '../probes/types.js';
import type { Severity } from '../severity.js';
import type { RelationReport, Report } from './model.js';

/**
 * The HTML report: one self-contained document (inline CSS, no script, no external requests), a pure
 * function of the JSON report. Every value comes from the database or the user, so every value is escaped:
 * the `html` template tag escapes each interpolation unless it is markup this module built itself.
 */

const HTML_ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/** Escapes `& < > " '`, so the result is safe in element content and in quoted attribute values. */
export function escapeHtml(value: unknown): string {
  return String(value ?? '').replace(/[&<>"']/g, (character) => HTML_ESCAPES[character] ?? character);
}

/** Markup built by this module; the only thing `html` interpolates unescaped. */
class SafeHtml {
  constructor(readonly markup: string) {}
}

type Fragment = SafeHtml | string | number | null | undefined | false | Fragment[];

function fragment(value: Fragment): string {
  if (value === null || value === undefined || value === false) return '';
  if (value instanceof SafeHtml) return value.markup;
  if (Array.isArray(value)) return value.map(fragment).join('');
  return escapeHtml(value);
}

function html(strings: TemplateStringsArray, ...values: Fragment[]): SafeHtml {
  let markup = strings[0] ?? '';
  values.forEach((value, index) => {
    markup += fragment(value) + (strings[index + 1] ?? '');
  });
  return new SafeHtml(markup);
}

const SEVERITY_ORDER: Severity[] = ['critical', 'high', 'medium', 'low', 'info'];
const NO_CONTEXT_STATES = ['never set', 'empty string', 'unknown tenant'] as const;
/** Worst first: the outcome a cell shows when several statements probed it. */
const OUTCOME_ORDER: ProbeOutcome[] = ['leak', 'error', 'hidden', 'denied', 'unreliable', 'inconclusive', 'pass', 'no-access', 'skipped'];
const OUTCOME_TEXT: Record<ProbeOutcome, string> = {
  leak: 'leak', hidden: 'own rows hidden', error: 'error', denied: 'denied', unreliable: 'unreliable', inconclusive: 'inconclusive', pass: 'pass', 'no-access': 'no access', skipped: 'skipped',
};
const LEGEND: [string, string, string][] = [
  ['leak', 'leak', 'rows of another tenant were visible'],
  ['error', 'error', 'the statement failed unexpectedly'],
  ['hidden', 'own rows hidden', 'nothing leaked, but the tenant saw fewer of its own rows than it owns'],
  ['denied', 'denied', 'an error instead of an empty result'],
  ['unreliable', 'unreliable', 'the data it needed could not be seeded'],
  ['inconclusive', 'inconclusive', 'it ran, but its result proves nothing either way'],
  ['pass', 'pass', 'only the expected rows'],
  ['none', '', 'not probed'],
];

const CSS = `
:root{--fg:#1a1d21;--muted:#555d66;--line:#d5d9de;--bg:#fff;--panel:#f5f7f9;--accent:#0b57d0}
*{box-sizing:border-box}
body{margin:0;font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);background:var(--bg)}
main{max-width:1200px;margin:0 auto;padding:1.5rem}
h1{font-size:1.6rem;margin:0 0 .25rem}h2{font-size:1.3rem;margin:2rem 0 .75rem;border-bottom:2px solid var(--line);padding-bottom:.25rem}
h3{font-size:1.1rem;margin:1.5rem 0 .5rem}h4{font-size:1rem;margin:0 0 .4rem}
a{color:var(--accent)}
code,pre{font:13px/1.45 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
pre{background:var(--panel);border:1px solid var(--line);border-radius:4px;padding:.6rem .75rem;overflow-x:auto;white-space:pre-wrap;word-break:break-word;margin:.3rem 0}
.muted{color:var(--muted)}
dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:.2rem 1rem;margin:.75rem 0}
dl.facts dt{font-weight:600;color:var(--muted)}dl.facts dd{margin:0}
.verdict{display:inline-block;font-weight:700;padding:.2rem .7rem;border-radius:4px;color:#fff}
.verdict.pass{background:#1e6e32}.verdict.fail{background:#b3261e}.verdict.inconclusive{background:#8a5a00}
.counts{display:flex;flex-wrap:wrap;gap:.5rem;list-style:none;padding:0;margin:.5rem 0}
.badge{display:inline-block;font-size:.78rem;font-weight:600;padding:.05rem .5rem;border-radius:999px;border:1px solid var(--line);background:var(--panel);margin-right:.3rem}
.sev-critical{background:#7f0000;color:#fff;border-color:#7f0000}.sev-high{background:#c62828;color:#fff;border-color:#c62828}
.sev-medium{background:#ffb300;color:#000;border-color:#ffb300}.sev-low{background:#1565c0;color:#fff;border-color:#1565c0}
.sev-info{background:#e0e0e0;color:#000}
.badge.accepted{background:#e8f5e9;border-color:#2e7d32;color:#1b5e20}.badge.expired{background:#fdecea;border-color:#b3261e;color:#8c1d18}
table{border-collapse:collapse;font-size:.85rem}
th,td{border:1px solid var(--line);padding:.3rem .5rem;text-align:left;vertical-align:top}
thead th{background:var(--panel)}
.scroll{overflow-x:auto}
td.cell{text-align:center;min-width:5.5rem;font-weight:600;-webkit-print-color-adjust:exact;print-color-adjust:exact}
.cell.leak{background:#c62828;color:#fff}.cell.error{background:#ef6c00;color:#000}.cell.denied{background:#ffd54f;color:#000}
.cell.unreliable{background:repeating-linear-gradient(45deg,#cfd3d7 0 5px,#eef0f2 5px 10px);color:#000}
.cell.hidden{background:#b39ddb;color:#000}
.cell.inconclusive{background:#e3e7ec;color:#000;font-weight:400}
.cell.pass{background:#a5d6a7;color:#0d3b12}.cell.no-access,.cell.skipped{background:#f5f7f9;color:var(--muted);font-weight:400}
.cell.none{background:#fff}
.legend{display:flex;flex-wrap:wrap;gap:.4rem 1.2rem;list-style:none;padding:0;font-size:.85rem}
.legend .cell{display:inline-block;min-width:1.6rem;height:1.1rem;border:1px solid var(--line);vertical-align:middle;margin-right:.35rem}
article.finding{border:1px solid var(--line);border-left:6px solid var(--line);border-radius:4px;padding:.75rem 1rem;margin:.75rem 0;break-inside:avoid}
article.finding.critical{border-left-color:#7f0000}article.finding.high{border-left-color:#c62828}
article.finding.medium{border-left-color:#ffb300}article.finding.low{border-left-color:#1565c0}article.finding.info{border-left-color:#9e9e9e}
.label{font-weight:600;color:var(--muted);margin:.5rem 0 0}
@media print{main{max-width:none;padding:0}.scroll{overflow:visible}pre{white-space:pre-wrap}a{color:inherit;text-decoration:none}
.verdict,.badge,.cell,article.finding{-webkit-print-color-adjust:exact;print-color-adjust:exact}h2{break-after:avoid}}
`;

function formatMs(ms: number): string {
  return ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${Math.round(ms)} ms`;
}

function title(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}

function renderHeader(report: Report): SafeHtml {
  const { summary, scenario, target, timings } = report;
  const verdict = summary.verdict.toUpperCase();
  const phases: [string, number][] = [
    ['start', timings.start], ['schema', timings.schema], ['introspection', timings.introspection],
    ['seeding', timings.seeding], ['probes', timings.probes], ['report', timings.report], ['total', timings.total],
  ];
  return html`<header>
<h1>${report.tool.name} <span class="muted">${report.tool.version}</span></h1>
<p><span class="verdict ${summary.verdict}">${verdict}</span>
 <span class="muted">fail on ${summary.failOn} and above: ${summary.failing} failing, ${summary.accepted} accepted</span></p>
${(summary.inconclusive ?? []).length ? html`<ul class="inconclusive" aria-label="Why the run is inconclusive">${(summary.inconclusive ?? []).map((entry) => html`<li>${entry.reason} <span class="muted">Try: ${entry.hint}</span></li>`)}</ul>` : ''}
<ul class="counts" aria-label="Findings per severity">${SEVERITY_ORDER.map(
    (severity) => html`<li><a class="badge sev-${severity}" href="#severity-${severity}">${title(severity)}: ${summary.findings[severity] ?? 0}</a></li>`,
  )}</ul>
<dl class="facts">
<dt>Scenario</dt><dd>${scenario.name} <span class="muted">(${report.command}, role ${scenario.role}, setting ${scenario.setting})</span></dd>
<dt>Target</dt><dd>${target.description} <span class="muted">(${target.kind}, database ${target.database})</span></dd>
<dt>Server</dt><dd>${target.serverVersion}</dd>
<dt>Started</dt><dd><time datetime="${report.startedAt}">${report.startedAt}</time></dd>
<dt>Tenants</dt><dd>${report.tenants.length} · ${summary.rowsSeeded} rows seeded · ${summary.queries} queries</dd>
<dt>Timings</dt><dd>${phases.map(([phase, ms], index) => html`${index ? ' · ' : ''}${phase} ${formatMs(ms)}`)}</dd>
</dl>
</header>`;
}

function worstOutcome(records: ProbeRecord[]): ProbeOutcome {
  return OUTCOME_ORDER.find((outcome) => records.some((record) => record.outcome === outcome)) ?? 'pass';
}

function cellTooltip(records: ProbeRecord[]): string {
  return records
    .map((record) => {
      const parts = [`${OUTCOME_TEXT[record.outcome]}: ${record.rows} rows, ${record.foreignRows} foreign rows`];
      if (record.missingOwnRows) parts.push(`${record.missingOwnRows} own rows missing`);
      if (record.error) parts.push(`error: ${record.error}`);
      return parts.join(', ');
    })
    .join('\n');
}

function renderCell(records: ProbeRecord[] | undefined, columnName: string): SafeHtml {
  if (!records?.length) return html`<td class="cell none" title="${columnName}: not probed"></td>`;
  const outcome = worstOutcome(records);
  const foreignRows = records.reduce((sum, record) => sum + record.foreignRows, 0);
  const text = outcome === 'leak' ? `leak (${foreignRows})` : OUTCOME_TEXT[outcome];
  return html`<td class="cell ${outcome}" title="${`${columnName}\n${cellTooltip(records)}`}">${text}</td>`;
}

function tenancyDetail(relation: RelationReport): Fragment {
  if (relation.tenantColumn) return html`column <code>${relation.tenantColumn}</code>`;
  if (relation.path) return html`<code>${relation.path}</code>`;
  return html`<span class="muted">${relation.reason}</span>`;
}

function seedingDetail(relation: RelationReport): Fragment {
  const seeding = relation.seeding;
  if (!seeding) return html`<span class="muted">not seeded</span>`;
  const repairs = seeding.repairs ? `, ${seeding.repairs} repairs` : '';
  return html`<span title="${seeding.reason ?? ''}">${seeding.status} (${seeding.rows} rows${repairs})</span>${
    seeding.reason ? html`<br><span class="muted">${seeding.reason}</span>` : ''
  }`;
}

function renderMatrix(report: Report): SafeHtml {
  const cells = new Map<string, ProbeRecord[]>();
  const add = (key: string, record: ProbeRecord) => cells.set(key, [...(cells.get(key) ?? []), record]);
  for (const probe of report.probes) {
    if (probe.check === 'read-isolation' && probe.tenant !== null) add(`${probe.relation}\u0000tenant\u0000${probe.tenant}`, probe);
    if (probe.check === 'missing-context') add(`${probe.relation}\u0000state\u0000${probe.context}`, probe);
  }
  const owned = report.relations.filter((relation) => relation.tenancy !== 'shared');
  const shared = report.relations.filter((relation) => relation.tenancy === 'shared');
  return html`<section aria-labelledby="matrix-heading">
<h2 id="matrix-heading">Tenant isolation matrix</h2>
<p class="muted">Each cell is what one context saw when it read the relation as role ${report.scenario.role}. Hover a cell for rows, foreign rows and errors.</p>
<ul class="legend" aria-label="Legend">${LEGEND.map(
    ([outcome, label, meaning]) => html`<li><span class="cell ${outcome}" aria-hidden="true"></span><strong>${label || 'blank'}</strong> ${meaning}</li>`,
  )}</ul>
<div class="scroll" role="region" aria-labelledby="matrix-heading" tabindex="0">
<table id="matrix" class="matrix">
<thead><tr><th scope="col">Relation</th><th scope="col">Tenancy</th><th scope="col">Tenant column / path</th><th scope="col">RLS</th><th scope="col">Seeding</th>
${report.tenants.map((tenant) => html`<th scope="col" title="${tenant.id}">${tenant.label}</th>`)}
${NO_CONTEXT_STATES.map((state) => html`<th scope="col" class="muted">${state}</th>`)}</tr></thead>
<tbody>${owned.map(
    (relation) => html`<tr><th scope="row"><code>${relation.name}</code> <span class="muted">${relation.kind}</span></th>
<td>${relation.tenancy}</td><td>${tenancyDetail(relation)}</td>
<td>${relation.rlsEnabled ? 'enabled' : html`<strong>disabled</strong>`}${relation.rlsForced ? ', forced' : ', not forced'}</td>
<td>${seedingDetail(relation)}</td>
${report.tenants.map((tenant) => renderCell(cells.get(`${relation.name}\u0000tenant\u0000${tenant.id}`), tenant.label))}
${NO_CONTEXT_STATES.map((state) => renderCell(cells.get(`${relation.name}\u0000state\u0000${state}`), state))}</tr>`,
  )}</tbody>
</table>
</div>
${owned.length ? '' : html`<p>No tenant-owned relations were found.</p>`}
${shared.length
    ? html`<h3 id="shared-heading">Shared relations</h3>
<p class="muted">Not tenant-owned: every tenant sees the same rows by design. These are not leaks.</p>
<ul class="shared">${shared.map(
        (relation) => html`<li><code>${relation.name}</code> <span class="badge">shared</span><span class="muted">${relation.kind}: ${relation.reason}</span></li>`,
      )}</ul>`
    : ''}
</section>`;
}

function renderSampleRows(rows: SampleRow[]): SafeHtml {
  const columns = [...new Set(rows.flatMap((row) => Object.keys(row)))];
  return html`<div class="scroll"><table class="samples">
<thead><tr>${columns.map((column) => html`<th scope="col">${column}</th>`)}</tr></thead>
<tbody>${rows.map(
    (row) => html`<tr>${columns.map((column) => {
      const value = row[column];
      return value === null || value === undefined ? html`<td><em class="muted">null</em></td>` : html`<td>${value}</td>`;
    })}</tr>`,
  )}</tbody></table></div>`;
}

function renderBadges(finding: Finding): SafeHtml {
  const accepted = finding.accepted;
  return html`<p class="badges">
<span class="badge sev-${finding.severity}">${finding.severity}</span><span class="badge">${finding.source}</span>
${accepted
    ? html`<span class="badge ${accepted.expired ? 'expired' : 'accepted'}">${accepted.expired ? 'acceptance expired' : 'accepted'}${
        accepted.expires ? ` (until ${accepted.expires})` : ''
      }: ${accepted.reason}</span>`
    : ''}
${finding.confirmedBy?.length ? html`<span class="badge">confirmed by ${[...new Set(finding.confirmedBy.map((entry) => `${entry.check} on ${objectLabel(entry.object)}`))].join(', ')}</span>` : ''}
${finding.affected?.length ? html`<span class="badge">also affects ${finding.affected.map(objectLabel).join(', ')}</span>` : ''}
${finding.refutedBy ? html`<span class="badge">refuted by ${finding.refutedBy}</span>` : ''}
</p>`;
}

function renderFinding(finding: Finding, id: string): SafeHtml {
  const { evidence } = finding;
  return html`<article class="finding ${finding.severity}" id="${id}" aria-labelledby="${id}-heading">
<h4 id="${id}-heading"><code>${finding.check}</code> on <code>${objectLabel(finding.object)}</code></h4>
${renderBadges(finding)}
<p>${finding.message}</p>
${finding.tenant || finding.foreignTenant
    ? html`<dl class="facts">${finding.tenant ? html`<dt>Tenant</dt><dd>${finding.tenant}</dd>` : ''}${
        finding.foreignTenant ? html`<dt>Foreign tenant</dt><dd>${finding.foreignTenant}</dd>` : ''
      }</dl>`
    : ''}
<p class="label">Evidence</p>
<p>${evidence.context}${evidence.rowCount !== undefined ? html` <span class="muted">(${evidence.rowCount} rows)</span>` : ''}</p>
<pre><code>${evidence.sql}</code></pre>
${evidence.sampleRows?.length ? renderSampleRows(evidence.sampleRows) : ''}
${evidence.error ? html`<p class="label">Error</p><pre>${evidence.error}</pre>` : ''}
${evidence.details ? html`<p class="label">Details</p><pre>${evidence.details}</pre>` : ''}
<p class="label">Fix</p>
<pre><code>${finding.fix}</code></pre>
</article>`;
}

function renderFindings(report: Report): SafeHtml {
  const groups = SEVERITY_ORDER.map((severity) => ({ severity, findings: report.findings.filter((finding) => finding.severity === severity) }));
  let counter = 0;
  return html`<section aria-labelledby="findings-heading">
<h2 id="findings-heading">Findings</h2>
${report.findings.length ? '' : html`<p>No findings.</p>`}
${groups
    .filter((group) => group.findings.length)
    .map(
      (group) => html`<section class="severity-group" aria-labelledby="severity-${group.severity}">
<h3 id="severity-${group.severity}">${title(group.severity)} <span class="muted">(${group.findings.length})</span></h3>
${group.findings.map((finding) => renderFinding(finding, `finding-${++counter}`))}
</section>`,
    )}
</section>`;
}

function renderNotes(report: Report): SafeHtml {
  return html`<section aria-labelledby="notes-heading">
<h2 id="notes-heading">Notes</h2>
${report.notes.length ? html`<ul>${report.notes.map((note) => html`<li>${note}</li>`)}</ul>` : html`<p class="muted">None.</p>`}
</section>`;
}

/** Renders the report as one self-contained HTML document. */
export function renderHtml(report: Report): string {
  const document = html`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'">
<meta name="referrer" content="no-referrer">
<title>${report.tool.name} ${report.summary.verdict.toUpperCase()}: ${report.scenario.name}</title>
<style>${new SafeHtml(CSS)}</style>
</head>
<body>
<main>
${renderHeader(report)}
<nav aria-label="Sections"><a href="#matrix-heading">Matrix</a> · <a href="#findings-heading">Findings</a> · <a href="#notes-heading">Notes</a></nav>
${renderMatrix(report)}
${renderFindings(report)}
${renderNotes(report)}
</main>
</body>
</html>
`;
  return document.markup;
}
