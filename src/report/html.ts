import { objectLabel, type Finding, type SampleRow } from '../findings/finding.js';
import { brokenContext } from '../findings/verdict.js';
import { plural } from './text.js';
import type { ProbeRecord } from '../probes/types.js';
import { atLeast } from '../findings/severity.js';
import type { RelationReport, Report } from './model.js';
import { CSS, html, SafeHtml, type Fragment } from './html-markup.js';
import { BASELINE_TEXT, buildModel, countOutcomes, FAMILIES, familyOf, formatMs, LEGEND, NO_CONTEXT_STATES, OUTCOME_TEXT, outcomeCounts, pushTo, SEVERITY_ORDER, title, UNPROVEN_OUTCOMES, worstOutcome, type Model, type NumberedFinding } from './html-model.js';

/**
 * The HTML report: one self-contained document (inline CSS, no script, no external requests), a pure
 * function of the JSON report, written for a reviewer who hands it on: a summary first (verdict, scope,
 * method, limitations), the matrix of relations by command family, the findings (grouped, collapsible,
 * filterable with CSS alone), the checks that found nothing, and every probe statement.
 *
 * Every value comes from the database or the user, so every value is escaped: the `html` template tag
 * escapes each interpolation unless it is markup this module built itself. No value reaches the CSS: the
 * filter rules name findings and checks by index.
 */

function findingLink(numbered: NumberedFinding, withSeverity = false): SafeHtml {
  return withSeverity
    ? html`<a class="badge sev-${numbered.finding.severity}" href="#${numbered.anchor}">F${numbered.number} ${numbered.finding.severity}</a>`
    : html`<a href="#${numbered.anchor}">F${numbered.number}</a>`;
}

function renderHeader(model: Model): SafeHtml {
  const { report } = model;
  return html`<header>
<h1>Tenant isolation report: ${report.scenario.name}</h1>
<p class="muted">${report.tool.name} ${report.tool.version} · ${report.command} · started <time datetime="${report.startedAt}">${report.startedAt}</time></p>
<nav class="sections" aria-label="Sections"><a href="#summary-heading">Summary</a><a href="#scope-heading">Scope</a><a href="#method-heading">Method</a><a href="#limitations-heading">Limitations</a><a href="#matrix-heading">Matrix</a><a href="#findings-heading">Findings</a><a href="#passed-heading">Checks without findings</a><a href="#statements-heading">Probe statements</a></nav>
</header>`;
}

function verdictSentence(report: Report): string {
  const { summary } = report;
  const failing = `${plural(summary.failing, 'finding')} at ${summary.failOn} or above`;
  const broken = brokenContext(summary.inconclusive ?? []);
  if (summary.verdict === 'fail' && summary.staticOnly && broken) {
    return `Static findings only: ${failing} ${summary.failing === 1 ? 'fails' : 'fail'} the run, but the context showed no tenant its rows (${broken.context}), so no probe proved anything.`;
  }
  if (summary.verdict === 'fail') return `Tenant isolation does not hold: ${failing} ${summary.failing === 1 ? 'fails' : 'fail'} the run.`;
  if (summary.verdict === 'inconclusive') {
    return `Part of the run proved nothing, so it is not a pass: ${plural(summary.inconclusive.length, 'reason')} below. ${summary.failing ? '' : `No finding at ${summary.failOn} or above.`}`.trim();
  }
  return report.command === 'lint'
    ? `No rule finding at ${summary.failOn} or above. Lint reads the catalog only: nothing was proved on data.`
    : `Tenant isolation held: no finding at ${summary.failOn} or above, and every probe that could leak ran on seeded rows of every tenant.`;
}

function renderSummary(model: Model): SafeHtml {
  const { report } = model;
  const { summary } = report;
  const reasons = summary.inconclusive ?? [];
  return html`<section id="summary" aria-labelledby="summary-heading">
<h2 id="summary-heading">Summary</h2>
<p class="verdict-line"><span class="verdict ${summary.verdict}">${summary.verdict.toUpperCase()}</span> ${verdictSentence(report)}</p>
${reasons.length
    ? html`<p class="label">Why the run is inconclusive</p><ul class="inconclusive plain" aria-label="Why the run is inconclusive">${reasons.map(
        (entry) => html`<li>${entry.relation ? html`<code>${entry.relation}</code>: ` : ''}${entry.reason} <span class="muted">Try: ${entry.hint}</span></li>`,
      )}</ul>`
    : ''}
<ul class="counts" aria-label="Findings per severity">${SEVERITY_ORDER.map(
    (severity) => html`<li><a class="badge sev-${severity}" href="#group-${severity}">${title(severity)}: ${summary.findings[severity] ?? 0}</a></li>`,
  )}</ul>
<p>Fails on <strong>${summary.failOn}</strong> and above: ${plural(summary.failing, 'failing finding')}, ${summary.accepted} accepted.
${report.command === 'run' ? html` ${plural(report.probes.length, 'probe statement')} (${outcomeCounts(summary.probes)}) on ${plural(summary.rowsSeeded, 'seeded row')}.` : ''}</p>
${renderBaseline(report)}
</section>`;
}

/** The baseline comparison, when the run had one (`--baseline`): what is new, worse, unchanged, and what was fixed. */
function renderBaseline(report: Report): Fragment {
  const { baseline } = report;
  if (!baseline) return '';
  return html`<div class="baseline">
<p>Compared with the baseline <code>${baseline.source}</code>: <strong>${baseline.new} new</strong>, <strong>${baseline.worse} worse</strong>, ${baseline.unchanged} unchanged (known, not failing), ${baseline.fixed.length} fixed.</p>
${baseline.fixed.length
    ? html`<details class="fixed"><summary>Fixed since the baseline (${baseline.fixed.length})</summary><ul class="plain">${baseline.fixed.map(
        (entry) => html`<li><span class="badge sev-${entry.severity}">${entry.severity}</span><code>${entry.check}</code> on <code>${entry.object}</code>: ${entry.message}</li>`,
      )}</ul></details>`
    : ''}
</div>`;
}

function renderScope(model: Model): SafeHtml {
  const { report } = model;
  const { scenario, target, summary, timings } = report;
  const owned = report.relations.filter((relation) => relation.tenancy !== 'shared');
  const shared = report.relations.filter((relation) => relation.tenancy === 'shared');
  const seedCounts = new Map<string, number>();
  for (const relation of owned) {
    const status = relation.seeding?.status ?? 'not seeded';
    seedCounts.set(status, (seedCounts.get(status) ?? 0) + 1);
  }
  const rules = report.checks.filter((check) => check.source === 'rule').length;
  const probes = report.checks.filter((check) => check.source === 'probe').length;
  const phases: [string, number][] = [
    ['start', timings.start], ['schema', timings.schema], ['introspection', timings.introspection],
    ['seeding', timings.seeding], ['probes', timings.probes], ['report', timings.report],
  ];
  return html`<section id="scope" aria-labelledby="scope-heading">
<h2 id="scope-heading">What was tested</h2>
<dl class="facts">
<dt>Target</dt><dd>${target.description} <span class="muted">(${target.kind}, database ${target.database}, PostgreSQL ${target.serverVersion})</span></dd>
<dt>Application role</dt><dd><code>${scenario.role}</code></dd>
<dt>Tenant context</dt><dd>setting <code>${scenario.setting}</code>, set with <code>${scenario.contextSql}</code></dd>
<dt>Tenant key</dt><dd><code>${scenario.tenantKey}</code>${scenario.tenantColumns.length ? html`, tenant column ${scenario.tenantColumns.map((column, index) => html`${index ? ', ' : ''}<code>${column}</code>`)}` : ''}</dd>
<dt>Tenants</dt><dd>${report.tenants.length ? html`<ul class="plain tenants">${report.tenants.map(
    (tenant) => html`<li>${tenant.label} <span class="muted">(id <code>${tenant.id}</code>, canary <code>${tenant.canary}</code>)</span></li>`,
  )}</ul>` : 'none'}</dd>
<dt>Relations</dt><dd>${plural(owned.length, 'tenant-owned relation')}${owned.length ? html` <span class="muted">(${[...seedCounts].map(([status, count]) => `${count} ${status}`).join(', ')})</span>` : ''}, ${plural(shared.length, 'shared relation')}</dd>
<dt>Checks</dt><dd>${plural(rules, 'rule')}, ${plural(probes, 'probe')}</dd>
<dt>Probe statements</dt><dd>${report.probes.length}: ${outcomeCounts(summary.probes)}</dd>
<dt>Rows seeded</dt><dd>${summary.rowsSeeded}${scenario.seed !== null ? html` <span class="muted">(${scenario.rowsPerTenant} per tenant and relation, seed ${scenario.seed})</span>` : ''}</dd>
<dt>Queries</dt><dd>${summary.queries}</dd>
<dt>Duration</dt><dd>${formatMs(timings.total)} <span class="muted">(${phases.map(([phase, ms], index) => html`${index ? ' · ' : ''}${phase} ${formatMs(ms)}`)})</span></dd>
</dl>
</section>`;
}

/** The no-context states the run probed (a preset adds the anonymous role), or those it probes by default. */
function noContextStates(report: Report): string[] {
  const probed = [...new Set(report.probes.filter((record) => record.check === 'missing-context').map((record) => record.context))];
  return probed.length ? probed : [...NO_CONTEXT_STATES];
}

function renderMethod(model: Model): SafeHtml {
  const { report } = model;
  const { scenario } = report;
  const rules = report.checks.filter((check) => check.source === 'rule').length;
  const probes = report.checks.filter((check) => check.source === 'probe').length;
  const coverage = report.coverage ?? [];
  return html`<section id="method" aria-labelledby="method-heading">
<h2 id="method-heading">Method</h2>
<ul class="plain">
<li><strong>Static rules</strong> (${rules}): the catalog, the policies, views and functions, read with PostgreSQL's own parser, for what each policy lets the application role do per command.</li>
${report.command === 'run'
    ? html`<li><strong>Probes</strong> (${probes}): SQL statements run as the application role <code>${scenario.role}</code> (not a superuser, owner or BYPASSRLS role), with each tenant's context set as the application sets it, inside a transaction that was rolled back: nothing they wrote was kept.</li>
<li><strong>Seeded data and canaries</strong>: ${plural(report.tenants.length, 'tenant')}, each with its own rows and a canary value in its text (${report.tenants.map((tenant, index) => html`${index ? ', ' : ''}<code>${tenant.canary}</code>`)}); every seeded row is in a ledger, so a row returned or changed through any table, view or function is attributed to its tenant.</li>
<li><strong>No context</strong>: reads with no tenant in the context: ${noContextStates(report).map((state, index) => html`${index ? ', ' : ''}<em>${state}</em>`)}, as those states occur in a pooled application.</li>
<li><strong>Evidence</strong>: a rule finding is confirmed only by a probe on the same object and refuted only by a probe that ran on seeded rows of both tenants; silence is not evidence.</li>
${coverage.length ? html`<li><strong>Write coverage</strong>: <ul class="plain">${coverage.map((entry) => html`<li><code>${entry.check}</code>: ${entry.reason}</li>`)}</ul></li>` : ''}`
    : html`<li><strong>No probes</strong>: <code>lint</code> seeds nothing and runs no statement as the application role, so no finding is proved on data and nothing is proved safe. Run <code>rls-audit run</code> for that.</li>`}
</ul>
</section>`;
}

function renderLimitations(model: Model): SafeHtml {
  const { report } = model;
  const probed = report.command === 'run';
  const unproven = report.probes.filter((record) => UNPROVEN_OUTCOMES.includes(record.outcome));
  const unseeded = probed ? report.relations.filter((relation) => relation.tenancy !== 'shared' && relation.seeding?.status !== 'seeded' && relation.seeding?.status !== 'existing') : [];
  const accepted = model.findings.filter((numbered) => numbered.finding.accepted);
  const reasons = report.summary.inconclusive ?? [];
  const items: SafeHtml[] = [];
  if (reasons.length) items.push(html`${plural(reasons.length, 'part')} of the run proved nothing: see <a href="#summary-heading">why the run is inconclusive</a>.`);
  if (!probed) items.push(html`Static rules only (<code>lint</code>): nothing was seeded and no probe ran.`);
  else if (unseeded.length) {
    items.push(html`${plural(unseeded.length, 'tenant-owned relation')} not fully seeded, so probes on ${unseeded.length === 1 ? 'it' : 'them'} prove less: <ul class="plain unseeded">${unseeded.map(
      (relation) => html`<li><code>${relation.name}</code>: ${relation.seeding ? relation.seeding.status : 'not seeded'}${relation.seeding?.reason ? html` (${relation.seeding.reason})` : ''}</li>`,
    )}</ul>`);
  } else items.push(html`Every tenant-owned relation was seeded for every tenant.`);
  if (unproven.length) {
    items.push(html`${plural(unproven.length, 'probe statement')} proved nothing either way (${outcomeCounts(countOutcomes(unproven))}):
<div class="scroll"><table class="log unproven"><thead><tr><th scope="col">Check</th><th scope="col">Object</th><th scope="col">Context</th><th scope="col">Outcome</th><th scope="col">Why</th></tr></thead>
<tbody>${unproven.map(
      (record) => html`<tr><td><code>${record.check}</code></td><td><code>${record.relation}</code></td><td>${record.context}</td><td>${OUTCOME_TEXT[record.outcome]}</td><td>${record.error ?? ''}</td></tr>`,
    )}</tbody></table></div>`);
  } else if (probed) items.push(html`Every probe statement ran and proved its point (pass or leak).`);
  if (accepted.length) items.push(html`${plural(accepted.length, 'finding')} accepted by the scenario: ${accepted.map((numbered, index) => html`${index ? ', ' : ''}${findingLink(numbered)}`)}.`);
  return html`<section id="limitations" aria-labelledby="limitations-heading">
<h2 id="limitations-heading">Limitations</h2>
<ul class="plain limitations">${items.map((item) => html`<li>${item}</li>`)}</ul>
<h3 id="notes-heading">Notes</h3>
${report.notes.length ? html`<ul class="notes plain">${report.notes.map((note) => html`<li>${note}</li>`)}</ul>` : html`<p class="muted">None.</p>`}
</section>`;
}

function tenancyDetail(relation: RelationReport): Fragment {
  if (relation.tenantColumn) return html`column <code>${relation.tenantColumn}</code>`;
  if (relation.path) return html`<code>${relation.path}</code>`;
  return relation.reason;
}

function seedingDetail(relation: RelationReport): Fragment {
  const seeding = relation.seeding;
  if (!seeding) return 'not seeded';
  const repairs = seeding.repairs ? `, ${seeding.repairs} repairs` : '';
  return html`${seeding.status} (${seeding.rows} rows${repairs})${seeding.reason ? html`: ${seeding.reason}` : ''}`;
}

function renderCell(model: Model, relation: string, family: (typeof FAMILIES)[number]): SafeHtml {
  const records = (model.records.get(relation) ?? []).filter((record) => familyOf(record.check) === family.id);
  const covering = model.cellFindings.get(`${relation}\u0000${family.id}`) ?? [];
  const links = covering.length ? html` ${covering.map((numbered, index) => html`${index ? ' ' : ''}${findingLink(numbered)}`)}` : '';
  if (!records.length) return html`<td class="cell none" data-family="${family.id}">not probed${links}</td>`;
  const outcome = worstOutcome(records);
  const worst = records.filter((record) => record.outcome === outcome);
  const foreignRows = worst.reduce((sum, record) => sum + record.foreignRows, 0);
  const text = outcome === 'leak' ? `leak (${foreignRows})` : OUTCOME_TEXT[outcome];
  return html`<td class="cell ${outcome}" data-family="${family.id}">${text}${links}<span class="count">${worst.length}/${records.length} statements</span></td>`;
}

function renderMatrix(model: Model): SafeHtml {
  const { report } = model;
  const owned = report.relations.filter((relation) => relation.tenancy !== 'shared');
  const shared = report.relations.filter((relation) => relation.tenancy === 'shared');
  return html`<section id="matrix-section" aria-labelledby="matrix-heading">
<h2 id="matrix-heading">Tenant isolation matrix</h2>
<p>One row per tenant-owned relation, one column per command family. A cell shows the worst outcome of that family's probe statements on the relation as role <code>${report.scenario.role}</code> (for a leak, the foreign rows seen or changed), how many statements had it, and links (F1, F2, ...) to the findings that cover it. The Findings column lists every finding about the relation, whatever the command.</p>
<ul class="legend" aria-label="Legend">${LEGEND.map(
    ([outcome, label, meaning]) => html`<li><span class="cell ${outcome}" aria-hidden="true"></span><strong>${label}</strong>: ${meaning}</li>`,
  )}</ul>
<div class="scroll" role="region" aria-labelledby="matrix-heading" tabindex="0">
<table id="matrix" class="matrix">
<thead><tr><th scope="col">Relation</th><th scope="col">Findings</th>${FAMILIES.map((family) => html`<th scope="col" data-family="${family.id}">${family.label}</th>`)}</tr></thead>
<tbody>${owned.map((relation) => {
    const about = model.subjectFindings.get(relation.name) ?? [];
    return html`<tr><th scope="row"><code>${relation.name}</code> <span class="muted">${relation.kind}</span>
<span class="relation-facts">${relation.tenancy}: ${tenancyDetail(relation)} · RLS ${relation.rlsEnabled ? 'enabled' : html`<strong>disabled</strong>`}${relation.rlsForced ? ', forced' : ', not forced'} · ${seedingDetail(relation)}</span></th>
<td class="findings">${about.length ? about.map((numbered) => findingLink(numbered, true)) : html`<span class="muted">none</span>`}</td>
${FAMILIES.map((family) => renderCell(model, relation.name, family))}</tr>`;
  })}</tbody>
</table>
</div>
${owned.length ? '' : html`<p>No tenant-owned relations were found.</p>`}
<p class="families muted">Families: ${FAMILIES.map((family, index) => html`${index ? '; ' : ''}<strong>${family.label}</strong> ${family.checks.join(', ')}`)}. Other probes (functions, settings, roles, queries, plans) are listed under <a href="#statements-heading">probe statements</a>.</p>
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
  const { baseline } = finding;
  return html`<p class="badges">
<span class="badge sev-${finding.severity}">${finding.severity}</span><span class="badge">${finding.source}</span>
${baseline ? html`<span class="badge baseline-${baseline}">${BASELINE_TEXT[baseline]}</span>` : ''}
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

function renderEvidence(evidence: Finding['evidence']): SafeHtml {
  return html`<p>${evidence.context}${evidence.rowCount !== undefined ? html` <span class="muted">(${evidence.rowCount} rows)</span>` : ''}</p>
<pre><code>${evidence.sql}</code></pre>
${evidence.sampleRows?.length ? renderSampleRows(evidence.sampleRows) : ''}
${evidence.error ? html`<p class="label">Error</p><pre>${evidence.error}</pre>` : ''}
${evidence.details ? html`<p class="label">Details</p><pre>${evidence.details}</pre>` : ''}`;
}

function renderFinding(numbered: NumberedFinding, report: Report): SafeHtml {
  const { finding, anchor } = numbered;
  // Findings that fail the run are open; the rest show their one-line message and open on demand (all print open).
  const open = atLeast(finding.severity, report.summary.failOn) && !(finding.accepted && !finding.accepted.expired) && finding.baseline !== 'unchanged';
  const proofs = finding.confirmedBy ?? [];
  return html`<details class="finding ${numbered.checks.map((index) => `check-${index}`).join(' ')}" data-severity="${finding.severity}" id="${anchor}"${open ? new SafeHtml(' open') : ''}>
<summary><span class="finding-title">F${numbered.number} <span class="badge sev-${finding.severity}">${finding.severity}</span><code>${finding.check}</code> on <code>${objectLabel(finding.object)}</code></span>
${finding.baseline && finding.baseline !== 'unchanged' ? html` <span class="badge baseline-${finding.baseline}">${finding.baseline}</span>` : ''}
<span class="finding-message">${finding.message}</span></summary>
${renderBadges(finding)}
${finding.tenant || finding.foreignTenant
    ? html`<dl class="facts">${finding.tenant ? html`<dt>Tenant</dt><dd>${finding.tenant}</dd>` : ''}${
        finding.foreignTenant ? html`<dt>Foreign tenant</dt><dd>${finding.foreignTenant}</dd>` : ''
      }</dl>`
    : ''}
${finding.fingerprint ? html`<p class="muted fingerprint">Fingerprint <code>${finding.fingerprint}</code></p>` : ''}
<p class="label">Evidence</p>
${renderEvidence(finding.evidence)}
${proofs.map(
    (entry) => html`<p class="label">Proof: <code>${entry.check}</code> on <code>${objectLabel(entry.object)}</code> (${entry.severity})</p>
<p>${entry.message}</p>
${renderEvidence(entry.evidence)}`,
  )}
${(finding.related ?? []).length ? html`<p class="label">Same defect, also reported by</p><ul class="plain">${(finding.related ?? []).map(
    (entry) => html`<li><code>${entry.check}</code> on <code>${objectLabel(entry.object)}</code>: ${entry.message}</li>`,
  )}</ul>` : ''}
<p class="label">Fix</p>
<pre><code>${finding.fix}</code></pre>
</details>`;
}

/**
 * The CSS that makes the filters work without a script: a checked radio hides the findings (and the
 * severity groups) that do not match. It names only indexes and severities, never a value from the report.
 * Screen only: print shows every finding. Without :has() support nothing is hidden.
 */
function filterCss(model: Model): string {
  const rules: string[] = [];
  for (const severity of SEVERITY_ORDER) {
    rules.push(`body:has(#filter-severity-${severity}:checked) details.finding:not([data-severity=${severity}]):not(:target){display:none}`);
    rules.push(`body:has(#filter-severity-${severity}:checked) details.severity-group:not(#group-${severity}):not(:has(:target)){display:none}`);
  }
  model.findingChecks.forEach((_, index) => {
    rules.push(`body:has(#filter-check-${index}:checked) details.finding:not(.check-${index}):not(:target){display:none}`);
    rules.push(`body:has(#filter-check-${index}:checked) details.severity-group:not(:has(.check-${index})):not(:has(:target)){display:none}`);
    for (const severity of SEVERITY_ORDER) {
      const matches = model.findings.some((numbered) => numbered.finding.severity === severity && numbered.checks.includes(index));
      if (!matches) rules.push(`body:has(#filter-check-${index}:checked):has(#filter-severity-${severity}:checked) .no-match{display:block}`);
    }
  });
  return `@media screen{${rules.join('\n')}}`;
}

function renderFilters(model: Model): SafeHtml {
  const checkCounts = model.findingChecks.map((_, index) => model.findings.filter((numbered) => numbered.checks.includes(index)).length);
  return html`<div class="filters" aria-label="Filter findings">
<fieldset class="filter severity-filter"><legend>Severity</legend>
<input type="radio" name="filter-severity" id="filter-severity-all" checked><label for="filter-severity-all">all (${model.findings.length})</label>
${SEVERITY_ORDER.map((severity) => {
    const count = model.findings.filter((numbered) => numbered.finding.severity === severity).length;
    return html`<input type="radio" name="filter-severity" id="filter-severity-${severity}"${count ? '' : new SafeHtml(' disabled')}><label for="filter-severity-${severity}">${severity} (${count})</label>`;
  })}
</fieldset>
<fieldset class="filter check-filter"><legend>Check</legend>
<input type="radio" name="filter-check" id="filter-check-all" checked><label for="filter-check-all">all checks</label>
${model.findingChecks.map(
    (check, index) => html`<input type="radio" name="filter-check" id="filter-check-${index}"><label for="filter-check-${index}">${check} (${checkCounts[index]})</label>`,
  )}
</fieldset>
</div>`;
}

function renderFindings(model: Model): SafeHtml {
  const { report } = model;
  return html`<section id="findings" aria-labelledby="findings-heading">
<h2 id="findings-heading">Findings</h2>
${report.findings.length
    ? html`${renderFilters(model)}
<p class="no-match">No finding has both the severity and the check selected.</p>
${SEVERITY_ORDER.map((severity) => {
        const group = model.findings.filter((numbered) => numbered.finding.severity === severity);
        if (!group.length) return '';
        return html`<details class="severity-group" id="group-${severity}" open>
<summary><h3 id="severity-${severity}">${title(severity)} <span class="muted">(${group.length})</span></h3></summary>
${group.map((numbered) => renderFinding(numbered, report))}
</details>`;
      })}`
    : html`<p>No findings.</p>`}
</section>`;
}

function renderPassed(model: Model): SafeHtml {
  const { report } = model;
  const reported = new Set(model.findingChecks);
  const passed = report.checks.filter((check) => !reported.has(check.id));
  const byCheck = new Map<string, ProbeRecord[]>();
  for (const record of report.probes) pushTo(byCheck, record.check, record);
  return html`<section id="passed" aria-labelledby="passed-heading">
<h2 id="passed-heading">Checks without findings</h2>
${passed.length
    ? html`<p>${plural(passed.length, 'check')} of ${report.checks.length} reported nothing. For a probe, its statements say whether that is a pass: a check with no statement had nothing to probe.</p>
<div class="scroll"><table class="log passed-checks"><thead><tr><th scope="col">Check</th><th scope="col">Kind</th><th scope="col">What it finds</th><th scope="col">Statements</th></tr></thead>
<tbody>${passed.map((check) => {
        // A check reported along the way by another probe runs no statement of its own: that probe's are its evidence.
        const records = byCheck.get(check.id) ?? (check.reportedBy ? byCheck.get(check.reportedBy) : undefined) ?? [];
        const statements = check.source === 'rule' ? 'rule: read from the catalog' : records.length ? outcomeCounts(countOutcomes(records)) : 'none: nothing to probe';
        return html`<tr id="check-${check.id}"><td><code>${check.id}</code></td><td>${check.source}</td><td>${check.summary}</td><td>${statements}${
          check.reportedBy && records.length ? html` <span class="muted">(statements of <code>${check.reportedBy}</code>)</span>` : ''
        }</td></tr>`;
      })}</tbody></table></div>`
    : html`<p class="muted">${report.checks.length ? 'Every check evaluated reported a finding.' : 'The report lists no checks.'}</p>`}
</section>`;
}

function renderStatements(model: Model): SafeHtml {
  const { report } = model;
  return html`<section id="statements" aria-labelledby="statements-heading">
<h2 id="statements-heading">Probe statements</h2>
${report.probes.length
    ? html`<p>Every statement a probe ran, per object: its outcome, the rows it returned or changed and of those the rows of another tenant.</p>
${[...model.records].map(
        ([subject, records]) => html`<details class="statements"><summary><code>${subject}</code>: ${plural(records.length, 'statement')} (${outcomeCounts(countOutcomes(records))})</summary>
<div class="scroll"><table class="log"><thead><tr><th scope="col">Check</th><th scope="col">Family</th><th scope="col">Context</th><th scope="col">Outcome</th><th scope="col">Rows</th><th scope="col">Foreign rows</th><th scope="col">Error</th></tr></thead>
<tbody>${records.map(
          (record) => html`<tr><td><code>${record.check}</code></td><td>${FAMILIES.find((family) => family.id === familyOf(record.check))?.label ?? ''}</td><td>${record.context}</td><td class="cell ${record.outcome}">${OUTCOME_TEXT[record.outcome]}</td><td>${record.rows}${record.missingOwnRows ? html` <span class="muted">(${record.missingOwnRows} own rows missing)</span>` : ''}</td><td>${record.foreignRows}</td><td>${record.error ?? ''}</td></tr>`,
        )}</tbody></table></div>
</details>`,
      )}`
    : html`<p class="muted">No probe ran.</p>`}
</section>`;
}

/** Renders the report as one self-contained HTML document. */
export function renderHtml(report: Report): string {
  const model = buildModel(report);
  const document = html`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'">
<meta name="referrer" content="no-referrer">
<title>${report.tool.name} ${report.summary.verdict.toUpperCase()}: ${report.scenario.name}</title>
<style>${new SafeHtml(CSS)}${new SafeHtml(filterCss(model))}</style>
</head>
<body>
<main>
${renderHeader(model)}
${renderSummary(model)}
${renderScope(model)}
${renderMethod(model)}
${renderLimitations(model)}
${renderMatrix(model)}
${renderFindings(model)}
${renderPassed(model)}
${renderStatements(model)}
</main>
</body>
</html>
`;
  return document.markup;
}
