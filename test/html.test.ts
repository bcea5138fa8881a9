import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { audit } from '../src/audit.js';
import type { Finding } from '../src/findings/finding.js';
import type { ProbeRecord } from '../src/probes/types.js';
import { PROBES } from '../src/probes/registry.js';
import { renderHtml } from '../src/report/html.js';
import { escapeHtml } from '../src/report/html-markup.js';
import { FAMILIES, OUTSIDE_MATRIX } from '../src/report/html-model.js';
import type { Report } from '../src/report/model.js';

const XSS = '<script>alert(1)</script>';
const QUOTES = '"quotes"';
const EVIL_TABLE = `public."${XSS}"`;
/** A tenant id that tries to break out of an attribute. */
const EVIL_TENANT_ID = `" onmouseover="alert(2)`;

function probe(overrides: Partial<ProbeRecord> & Pick<ProbeRecord, 'check' | 'relation' | 'context' | 'outcome'>): ProbeRecord {
  return { tenant: null, sql: 'select * from t', rows: 0, foreignRows: 0, missingOwnRows: 0, ...overrides };
}

const findings: Finding[] = [
  {
    check: 'timing-oracle', severity: 'low', object: { kind: 'table', name: 'public.notes' }, source: 'rule',
    evidence: { sql: 'select 1', context: 'As app_user.' },
    message: 'Low-severity side channel.', fix: '-- nothing',
  },
  {
    check: 'read-isolation', severity: 'critical', object: { kind: 'table', name: EVIL_TABLE }, tenant: 'acme', foreignTenant: `globex ${XSS}`, source: 'probe',
    evidence: {
      sql: `select * from ${EVIL_TABLE} where body = '${XSS}' and note = ${QUOTES};`,
      context: `As app_user with app.tenant = 'acme' ${XSS}.`,
      rowCount: 2,
      sampleRows: [{ id: '1', body: `${XSS} ${QUOTES}`, tenant_id: 'globex' }, { id: '2', body: null, tenant_id: 'globex' }],
      error: `ERROR: ${XSS}`,
      details: `policy: ${QUOTES} ${XSS}`,
    },
    message: `Tenant acme reads 2 rows of globex: ${XSS} ${QUOTES}`,
    fix: `alter table ${EVIL_TABLE} force row level security; -- ${QUOTES}`,
  },
  {
    check: 'definer-view', severity: 'info', object: { kind: 'table', name: 'public.report_view' }, source: 'rule', refutedBy: 'read-isolation',
    evidence: { sql: 'select * from public.report_view', context: 'Catalog.' },
    message: 'A definer view was exercised and did not leak.', fix: 'alter view public.report_view set (security_invoker = true);',
    accepted: { reason: `legacy ${XSS}`, expires: '2020-01-01', expired: true },
  },
  {
    check: 'missing-context', severity: 'high', object: { kind: 'table', name: 'public.notes' }, source: 'rule',
    confirmedBy: [{ check: 'read-isolation', source: 'probe', severity: 'critical', object: { kind: 'table', name: 'public.notes' }, message: 'As acme, notes leaks.', evidence: { sql: 'select 1', context: 'As acme.' } }],
    evidence: { sql: 'select * from public.notes', context: 'As app_user with no tenant set.', rowCount: 4 },
    message: 'With no tenant set, public.notes returns every tenant\'s rows.', fix: "alter policy p on public.notes using (tenant_id = current_setting('app.tenant', true));",
  },
];

const report: Report = {
  schemaVersion: 2,
  tool: { name: 'rls-audit', version: '0.1.0' },
  command: 'run',
  startedAt: '2025-01-02T03:04:05.000Z',
  scenario: {
    name: `demo ${XSS}`, role: 'app_user', setting: 'app.tenant', contextSql: "select set_config('app.tenant', $1, true)",
    tenantKey: 'public.tenants(id)', tenantColumns: ['tenant_id'], rowsPerTenant: 3, seed: 1, failOn: 'high',
  },
  target: { kind: 'embedded', description: `embedded cluster ${QUOTES}`, serverVersion: '17.2', database: 'audit' },
  tenants: [
    { id: 'acme', label: 'acme', canary: 'cnr-acme' },
    { id: EVIL_TENANT_ID, label: `globex ${XSS}`, canary: 'cnr-globex' },
  ],
  relations: [
    {
      name: 'public.notes', kind: 'table', tenancy: 'direct', tenantColumn: 'tenant_id', path: null, reason: 'has tenant_id',
      rlsEnabled: true, rlsForced: false, seeding: { status: 'seeded', rows: 6, reason: null, repairs: 0, tenants: { '1': 3, '2': 3 }, adopted: 0, partitions: [] },
    },
    {
      name: EVIL_TABLE, kind: 'table', tenancy: 'fk-path', tenantColumn: null, path: `${EVIL_TABLE}(note_id) -> public.notes`, reason: 'fk',
      rlsEnabled: false, rlsForced: false, seeding: { status: 'partial', rows: 2, reason: `check failed ${XSS}`, repairs: 1, tenants: { '1': 2, '2': 0 }, adopted: 0, partitions: [] },
    },
    {
      name: 'public.countries', kind: 'table', tenancy: 'shared', tenantColumn: null, path: null, reason: 'no tenant column',
      rlsEnabled: false, rlsForced: false, seeding: { status: 'existing', rows: 5, reason: null, repairs: 0, tenants: {}, adopted: 0, partitions: [] },
    },
  ],
  locations: { "public.notes": { file: "schema.sql", line: 3 } },
  notes: [`Tenancy read from policies ${XSS}`, 'Second note.'],
  checks: [],
  probes: [
    probe({ check: 'read-isolation', relation: 'public.notes', context: 'acme', tenant: 'acme', outcome: 'leak', rows: 5, foreignRows: 2 }),
    probe({ check: 'read-isolation', relation: 'public.notes', context: `globex ${XSS}`, tenant: EVIL_TENANT_ID, outcome: 'pass', rows: 3 }),
    probe({ check: 'missing-context', relation: 'public.notes', context: 'never set', outcome: 'denied', error: `unrecognized ${XSS}` }),
    probe({ check: 'missing-context', relation: 'public.notes', context: 'empty string', outcome: 'pass' }),
    probe({ check: 'missing-context', relation: 'public.notes', context: 'unknown tenant', outcome: 'unreliable' }),
    probe({ check: 'read-isolation', relation: EVIL_TABLE, context: 'acme', tenant: 'acme', outcome: 'error', error: `boom ${XSS}` }),
    // Shared relations never appear in the matrix, even if probed.
    probe({ check: 'read-isolation', relation: 'public.countries', context: 'acme', tenant: 'acme', outcome: 'leak', foreignRows: 5 }),
  ],
  findings,
  summary: {
    verdict: 'fail', inconclusive: [], failOn: 'high', findings: { critical: 1, high: 1, medium: 0, low: 1, info: 1 }, failing: 2, accepted: 1,
    probes: { leak: 2, pass: 2, denied: 1, unreliable: 1, error: 1 }, rowsSeeded: 13, queries: 42,
  },
  timings: { start: 900, schema: 12, introspection: 40, seeding: 1500, probes: 2300, report: 3, total: 4755, perProbe: { 'read-isolation': 2000 } },
};

/** The cell classes of a matrix row, in column order. */
function matrixCells(html: string, relationName: string): string[] {
  const table = html.slice(html.indexOf('<table id="matrix"'), html.indexOf('</table>', html.indexOf('<table id="matrix"')));
  const row = table.split('<tr>').find((part) => part.includes(`<code>${escapeHtml(relationName)}</code>`));
  if (!row) throw new Error(`no matrix row for ${relationName}`);
  return [...row.matchAll(/<td class="cell ([a-z-]+)"/g)].map((match) => match[1]!);
}

describe('escapeHtml', () => {
  it('escapes the five HTML metacharacters', () => {
    expect(escapeHtml(`<a href="x" title='y'>&</a>`)).toBe('&lt;a href=&quot;x&quot; title=&#39;y&#39;&gt;&amp;&lt;/a&gt;');
    expect(escapeHtml(null)).toBe('');
    expect(escapeHtml(3)).toBe('3');
  });
});

describe('the matrix families', () => {
  it('place every probe check in one command family, or outside the matrix on purpose', () => {
    const placed = [...FAMILIES.flatMap((family) => family.checks as readonly string[]), ...OUTSIDE_MATRIX];
    expect(new Set(placed).size).toBe(placed.length);
    const probeChecks = PROBES.flatMap((probe) => [probe.meta.id, ...probe.related.map((related) => related.id)]);
    expect(probeChecks.filter((id) => !placed.includes(id))).toEqual([]);
    expect(placed.filter((id) => !probeChecks.includes(id))).toEqual([]);
  });
});

describe('renderHtml', () => {
  const html = renderHtml(report);

  it('is a complete document', () => {
    expect(html.startsWith('<!DOCTYPE html>')).toBe(true);
    expect(html).toContain('</html>');
    expect(html).toContain('rls-audit');
    expect(html).toContain('0.1.0');
    expect(html).toContain('FAIL');
    expect(html).toContain('17.2');
    expect(html).toContain('2025-01-02T03:04:05.000Z');
  });

  it('escapes every value from the database or the user', () => {
    expect(html).not.toContain('<script>alert');
    expect(html).not.toMatch(/<script/i);
    expect(html).not.toContain('onmouseover="');
    expect(html).toContain('&lt;script&gt;alert(1)&lt;/script&gt;');
    expect(html).toContain('&quot;quotes&quot;');
    expect(html).toContain('&quot; onmouseover=&quot;alert(2)');
    // The finding's message, table, SQL, sample row, fix and note all arrive escaped.
    expect(html).toContain(`Tenant acme reads 2 rows of globex: &lt;script&gt;alert(1)&lt;/script&gt; &quot;quotes&quot;`);
    expect(html).toContain(`<code>public.&quot;&lt;script&gt;alert(1)&lt;/script&gt;&quot;</code>`);
    expect(html).toContain(`<td>&lt;script&gt;alert(1)&lt;/script&gt; &quot;quotes&quot;</td>`);
    expect(html).toContain(`<li>Tenancy read from policies &lt;script&gt;alert(1)&lt;/script&gt;</li>`);
  });

  it('makes no external requests', () => {
    expect(html).not.toMatch(/https?:\/\//i);
    expect(html).not.toMatch(/url\(|@import/i);
    const references = [...html.matchAll(/\b(?:src|href|srcset|action|poster|data)\s*=\s*(["']?)([^"'\s>]*)\1/gi)].map((match) => match[2]!);
    expect(references.length).toBeGreaterThan(0);
    for (const reference of references) expect(reference).toMatch(/^#/);
    expect(html).toContain("default-src 'none'");
  });

  it('shows a column per command family, each cell the worst outcome of its probes with links to the findings', () => {
    // Reads: a leak beside a pass; missing context: denied beside pass and unreliable (denied is worse).
    expect(matrixCells(html, 'public.notes')).toEqual(['leak', 'none', 'none', 'none', 'denied']);
    expect(matrixCells(html, EVIL_TABLE)).toEqual(['error', 'none', 'none', 'none', 'none']);
    const headers = [...html.matchAll(/<th scope="col" data-family="[a-z]+">([a-z ]+)<\/th>/g)].map((match) => match[1]);
    expect(headers).toEqual(['read', 'insert', 'update', 'delete', 'missing context']);
    // The leak shows its foreign rows as text (no tooltip) and links to the finding proved by it: F2, the
    // high missing-context finding confirmed by read-isolation on public.notes.
    expect(html).toMatch(/<td class="cell leak" data-family="read">leak \(2\) <a href="#finding-2">F2<\/a><span class="count">1\/2 statements<\/span><\/td>/);
    expect(html).not.toMatch(/<td[^>]* title=/);
    // The error of the probe statement is printed in the limitations and the statement log.
    expect(html).toContain('unrecognized &lt;script&gt;alert(1)&lt;/script&gt;');
    expect(html).toContain('boom &lt;script&gt;alert(1)&lt;/script&gt;');
    expect(html).toContain('class="legend"');
  });

  it('builds the filter rules from indexes only, never from a value of the report', () => {
    const style = html.slice(html.indexOf('<style>') + '<style>'.length, html.indexOf('</style>'));
    expect(style).toContain('#filter-severity-high:checked');
    expect(style).toContain('#filter-check-0:checked');
    for (const value of ['read-isolation', 'timing-oracle', 'public.notes', 'acme', '<']) expect(style).not.toContain(value);
  });

  it('lists shared relations apart from the matrix', () => {
    expect(() => matrixCells(html, 'public.countries')).toThrow(/no matrix row/);
    const sharedList = html.slice(html.indexOf('<ul class="shared">'));
    expect(sharedList).toContain('<code>public.countries</code>');
    expect(sharedList.slice(0, sharedList.indexOf('</ul>'))).toContain('shared');
    expect(html).toContain('These are not leaks.');
  });

  it('groups findings by severity, most severe first', () => {
    const headings = ['critical', 'high', 'low', 'info'].map((severity) => html.indexOf(`<h3 id="severity-${severity}">`));
    for (const position of headings) expect(position).toBeGreaterThan(0);
    expect([...headings].sort((a, b) => a - b)).toEqual(headings);
    expect(html).not.toContain('<h3 id="severity-medium">');
    const [critical, high, low, info] = headings as [number, number, number, number];
    const at = (text: string) => html.indexOf(text);
    expect(at('Tenant acme reads 2 rows')).toBeGreaterThan(critical);
    expect(at('Tenant acme reads 2 rows')).toBeLessThan(high);
    expect(at('returns every tenant&#39;s rows')).toBeGreaterThan(high);
    expect(at('returns every tenant&#39;s rows')).toBeLessThan(low);
    expect(at('Low-severity side channel.')).toBeGreaterThan(low);
    expect(at('Low-severity side channel.')).toBeLessThan(info);
    expect(at('did not leak')).toBeGreaterThan(info);
  });

  it('shows acceptance, confirmation, refutation and source badges', () => {
    expect(html).toContain('acceptance expired (until 2020-01-01): legacy &lt;script&gt;');
    expect(html).toContain('confirmed by read-isolation');
    expect(html).toContain('refuted by read-isolation');
    expect(html).toMatch(/<span class="badge">probe<\/span>/);
    expect(html).toMatch(/<span class="badge">rule<\/span>/);
    expect(html).toContain('Foreign tenant');
  });

  it('shows the baseline comparison, and each finding\'s fingerprint and state against it', () => {
    const compared = renderHtml({
      ...report,
      baseline: { source: `base ${XSS}.json`, new: 1, worse: 0, unchanged: 1, fixed: [{ fingerprint: 'f'.repeat(32), check: 'rls-disabled', severity: 'high', object: 'public.gone', message: `Fixed ${XSS}` }] },
      findings: report.findings.map((finding, index) => ({ ...finding, fingerprint: String(index).padStart(32, '0'), baseline: index === 1 ? ('new' as const) : ('unchanged' as const) })),
    });
    const summary = section(compared, 'summary');
    expect(summary).toContain('Compared with the baseline <code>base &lt;script&gt;alert(1)&lt;/script&gt;.json</code>: <strong>1 new</strong>, <strong>0 worse</strong>, 1 unchanged');
    expect(summary).toContain('<code>rls-disabled</code> on <code>public.gone</code>: Fixed &lt;script&gt;alert(1)&lt;/script&gt;');
    expect(compared).toContain('new since the baseline');
    expect(compared).toContain(`Fingerprint <code>${'1'.padStart(32, '0')}</code>`);
    // The critical finding is new and open; the high one is in the baseline, does not fail the run, and is collapsed.
    expect(compared).toMatch(/<details class="finding [^"]*" data-severity="critical" id="finding-1" open>/);
    expect(compared).toMatch(/<details class="finding [^"]*" data-severity="high" id="finding-2">/);
    expect(html).not.toContain('Compared with the baseline');
    expect(html).not.toContain('since the baseline');
  });

  it('says what the run could not prove: unseeded relations, statements that proved nothing, accepted findings', () => {
    const limitations = section(html, 'limitations');
    expect(limitations).toContain(`<li><code>public.&quot;&lt;script&gt;alert(1)&lt;/script&gt;&quot;</code>: partial (check failed &lt;script&gt;alert(1)&lt;/script&gt;)</li>`);
    expect(limitations).toContain('2 probe statements proved nothing either way (1 error · 1 unreliable)');
    expect(limitations).toContain('<td>boom &lt;script&gt;alert(1)&lt;/script&gt;</td>');
    expect(limitations).toMatch(/1 finding accepted by the scenario: <a href="#finding-4">F4<\/a>/);
    expect(limitations).not.toContain('<li></li>');
  });

  it('gives the reasons of an inconclusive run in the summary, and never calls it a pass', () => {
    const inconclusive = renderHtml({
      ...report,
      findings: [],
      summary: { ...report.summary, verdict: 'inconclusive', failing: 0, inconclusive: [{ relation: 'public.notes', reason: `tenant A saw none of its rows ${XSS}`, hint: 'check contextSql' }] },
    });
    const summary = section(inconclusive, 'summary');
    expect(summary).toContain('<span class="verdict inconclusive">INCONCLUSIVE</span>');
    expect(summary).toContain('<li><code>public.notes</code>: tenant A saw none of its rows &lt;script&gt;alert(1)&lt;/script&gt; <span class="muted">Try: check contextSql</span></li>');
    expect(summary).not.toMatch(/PASS|isolation held/);
    expect(section(inconclusive, 'limitations')).toContain('1 part of the run proved nothing');
  });

  it('says a lint report proved nothing on data', () => {
    const linted = renderHtml({ ...report, command: 'lint', probes: [], tenants: [], scenario: { ...report.scenario, seed: null }, relations: report.relations.map((relation) => ({ ...relation, seeding: null })) });
    expect(section(linted, 'method')).toContain('<code>lint</code> seeds nothing and runs no statement as the application role');
    expect(section(linted, 'limitations')).toContain('Static rules only (<code>lint</code>): nothing was seeded and no probe ran.');
    expect(section(linted, 'limitations')).not.toContain('not fully seeded');
    expect(matrixCells(linted, 'public.notes')).toEqual(['none', 'none', 'none', 'none', 'none']);
    // The row still shows the findings about the relation.
    expect(linted).toContain('<td class="findings"><a class="badge sev-high" href="#finding-2">F2 high</a><a class="badge sev-low" href="#finding-3">F3 low</a></td>');
    expect(section(linted, 'statements')).toContain('No probe ran.');
  });

  it('renders an empty report', () => {
    const empty = renderHtml({ ...report, relations: [], probes: [], findings: [], notes: [] });
    expect(empty).toContain('No findings.');
    expect(empty).toContain('No tenant-owned relations were found.');
  });
});


/**
 * A real run: the audit of a schema with a defect in each command family beside secure tables
 * (test/fixtures/html-report), made once for this file.
 */
let realRun: Promise<Report> | undefined;
function realReport(): Promise<Report> {
  realRun ??= audit({
    name: 'html-report',
    schema: [fileURLToPath(new URL('./fixtures/html-report/schema.sql', import.meta.url))],
    role: 'app_user',
    tenants: 2,
    rows: 5,
    seed: 7,
  });
  return realRun;
}

/** The markup of one of the report's top-level sections. */
function section(html: string, id: string): string {
  const start = html.indexOf(`<section id="${id}"`);
  if (start < 0) throw new Error(`no section ${id}`);
  return html.slice(start, html.indexOf('\n</section>', start));
}

const SECTION_HEADINGS = ['summary-heading', 'scope-heading', 'method-heading', 'limitations-heading', 'matrix-heading', 'findings-heading', 'passed-heading', 'statements-heading'];

describe('renderHtml on a real run', () => {
  let report: Report;
  let html: string;
  beforeAll(async () => {
    report = await realReport();
    html = renderHtml(report);
  });

  it('opens with the summary, scope, method and limitations, then the matrix, findings, passed checks and statements', () => {
    const positions = SECTION_HEADINGS.map((id) => html.indexOf(`<h2 id="${id}">`));
    for (const position of positions) expect(position).toBeGreaterThan(0);
    expect([...positions].sort((a, b) => a - b)).toEqual(positions);

    expect(report.summary.verdict).toBe('fail');
    expect(section(html, 'summary')).toContain('<span class="verdict fail">FAIL</span>');
    expect(section(html, 'summary')).toContain(`${report.summary.failing} findings at high or above fail the run`);
    const scope = section(html, 'scope');
    expect(scope).toContain('<code>app_user</code>');
    for (const tenant of report.tenants) expect(scope).toContain(`canary <code>${escapeHtml(tenant.canary)}</code>`);
    expect(scope).toContain(`<dt>Probe statements</dt><dd>${report.probes.length}: ${report.summary.probes.leak} leak · ${report.summary.probes.pass} pass</dd>`);
    expect(scope).toContain(`<dt>Rows seeded</dt><dd>${report.summary.rowsSeeded} `);
    expect(scope).toMatch(/6 tenant-owned relations <span class="muted">\(6 seeded\)<\/span>, 1 shared relation/);
    const method = section(html, 'method');
    expect(method).toContain('rolled back');
    expect(method).toContain('canary');
    expect(method).toContain('<em>never set</em>');
    expect(section(html, 'limitations')).toContain('Every tenant-owned relation was seeded for every tenant.');
    expect(section(html, 'limitations')).toContain('tenant column tenant_id (discovered)');
  });

  it('shows a write leak behind a clean read column, and links every leak to its finding', () => {
    const [read, insert, update, remove, missing] = matrixCells(html, 'public.tasks');
    expect([read, update]).toEqual(['pass', 'leak']);
    expect([insert, remove, missing]).not.toContain('leak');
    expect(matrixCells(html, 'public.invoices')[0]).toBe('pass');
    expect(matrixCells(html, 'public.invoices')[3]).toBe('leak');
    expect(matrixCells(html, 'public.notes')[4]).toBe('leak');
    expect(matrixCells(html, 'public.documents')[0]).toBe('leak');
    expect(matrixCells(html, 'public.projects')).not.toContain('leak');

    const matrix = html.slice(html.indexOf('<table id="matrix"'), html.indexOf('</table>', html.indexOf('<table id="matrix"')));
    const rows = matrix.split('<tr>').slice(2);
    for (const row of rows) {
      const relation = /<code>([^<]+)<\/code>/.exec(row)![1]!;
      for (const cell of row.match(/<td class="cell leak"[^]*?<\/td>/g) ?? []) {
        const anchors = [...cell.matchAll(/href="#(finding-\d+)"/g)].map((match) => match[1]!);
        expect(anchors.length, `${relation}: ${cell}`).toBeGreaterThan(0);
        for (const anchor of anchors) {
          const start = html.indexOf(` id="${anchor}"`);
          expect(start, anchor).toBeGreaterThan(0);
          expect(html.slice(start, html.indexOf('</summary>', start))).toContain(relation);
        }
      }
      // A relation with a finding says so in its row, with the finding's severity, whatever the cells show.
      if (relation === 'public.tasks') expect(row).toMatch(/<a class="badge sev-high" href="#finding-\d+">F\d+ high<\/a>/);
    }
  });

  it('groups the findings, opens those that fail the run and collapses the rest', () => {
    const findings = [...html.matchAll(/<details class="finding [^"]*" data-severity="([a-z]+)" id="finding-(\d+)"( open)?>/g)];
    expect(findings.length).toBe(report.findings.length);
    for (const [, severity, , open] of findings) expect(Boolean(open), severity).toBe(severity === 'critical' || severity === 'high');
    expect(findings.map((match) => match[2])).toEqual(findings.map((_, index) => String(index + 1)));
  });

  it('lists the checks that reported nothing, with what their probes saw', () => {
    const passed = section(html, 'passed');
    expect(passed).toMatch(/<tr id="check-foreign-insert"><td><code>foreign-insert<\/code><\/td><td>probe<\/td><td>[^<]+<\/td><td>\d+ pass<\/td><\/tr>/);
    expect(passed).toContain('<tr id="check-rls-disabled">');
    // own-rows-hidden runs no statement of its own: read-isolation's statements are what it checked.
    expect(passed).toMatch(/<tr id="check-own-rows-hidden">.*<td>\d+ leak · \d+ pass <span class="muted">\(statements of <code>read-isolation<\/code>\)<\/span><\/td><\/tr>/);
    expect(passed).not.toContain('<tr id="check-permissive-always-true">');
    expect(passed).not.toContain('<tr id="check-missing-context">');
  });
});

const chromiumPath = '/usr/bin/chromium';

/** Widths the report must read at: a desktop, a phone, and A4 portrait in print (210 mm less the 12 mm margins of @page: 186 mm = 703 px). */
const VIEWPORTS = [
  { name: 'desktop', width: 1280, height: 900, print: false, mobile: false },
  { name: 'phone', width: 375, height: 740, print: false, mobile: true },
  { name: 'print', width: 703, height: 1000, print: true, mobile: false },
] as const;

/**
 * What breaks the layout at the current width: the page scrolls sideways, or an element reaches past the
 * viewport without a box of its own that scrolls it (the matrix and sample tables may scroll inside theirs).
 */
function layoutProblems(page: Page): Promise<string[]> {
  return page.evaluate(() => {
    const width = document.documentElement.clientWidth;
    const problems: string[] = [];
    const scrollWidth = document.scrollingElement!.scrollWidth;
    if (scrollWidth > window.innerWidth) problems.push(`the page scrolls sideways: ${scrollWidth} > ${window.innerWidth}`);
    const scrolledInside = (element: Element): boolean => {
      for (let box = element.parentElement; box && box !== document.body; box = box.parentElement) {
        if (getComputedStyle(box).overflowX !== 'visible') return box.getBoundingClientRect().right <= width + 1;
      }
      return false;
    };
    for (const element of document.body.querySelectorAll('*')) {
      const rect = element.getBoundingClientRect();
      if (!rect.width && !rect.height) continue;
      if (rect.right <= width + 1 && rect.left >= -1) continue;
      if (scrolledInside(element)) continue;
      problems.push(`${element.tagName.toLowerCase()}${element.id ? `#${element.id}` : ''}.${String(element.className)} spans ${Math.round(rect.left)}..${Math.round(rect.right)} of ${width}`);
    }
    return problems.slice(0, 10);
  });
}

/** Ids of the findings a reader sees. */
function visibleFindings(page: Page): Promise<string[]> {
  return page.$$eval('details.finding', (list) => list.filter((element) => element.checkVisibility()).map((element) => `${element.id} ${(element as HTMLElement).dataset.severity}`));
}

describe.skipIf(!existsSync(chromiumPath))('renderHtml in headless Chromium', () => {
  let browser: Browser;
  let directory: string;
  let real: Report;
  const keep = process.env.RLS_AUDIT_SCREENSHOTS;

  beforeAll(async () => {
    const { chromium } = await import('playwright-core');
    [browser, real, directory] = await Promise.all([
      chromium.launch({
        executablePath: chromiumPath,
        args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
      }),
      realReport(),
      keep ? mkdir(keep, { recursive: true }).then(() => keep) : mkdtemp(join(tmpdir(), 'rls-audit-html-')),
    ]);
  });
  afterAll(async () => {
    await browser?.close();
    if (!keep && directory) await rm(directory, { recursive: true, force: true });
  });

  /** Writes the report, opens it at a viewport, and records every request, dialog and console error. */
  async function open(name: string, report: Report, viewport: (typeof VIEWPORTS)[number]) {
    const file = join(directory, `${name}.html`);
    await writeFile(file, renderHtml(report));
    const url = pathToFileURL(file).href;
    const context = await browser.newContext({
      viewport: { width: viewport.width, height: viewport.height },
      isMobile: viewport.mobile,
      hasTouch: viewport.mobile,
    });
    const page = await context.newPage();
    const requests: string[] = [];
    const dialogs: string[] = [];
    const consoleErrors: string[] = [];
    page.on('request', (request) => requests.push(request.url()));
    page.on('dialog', (dialog) => {
      dialogs.push(dialog.message());
      void dialog.dismiss();
    });
    page.on('console', (message) => {
      if (message.type() === 'error') consoleErrors.push(message.text());
    });
    if (viewport.print) await page.emulateMedia({ media: 'print' });
    await page.goto(url, { waitUntil: 'load' });
    return { page, url, requests, dialogs, consoleErrors, close: () => context.close() };
  }

  for (const viewport of VIEWPORTS) {
    it(`lays the report of a real run out at ${viewport.name} width (${viewport.width} px)`, async () => {
      const { page, url, requests, close } = await open(`real-${viewport.name}`, real, viewport);
      try {
        expect(await layoutProblems(page)).toEqual([]);

        // The sections are there, visible, in reading order.
        const tops: number[] = [];
        for (const id of SECTION_HEADINGS) {
          const heading = page.locator(`#${id}`);
          await expect(heading.isVisible(), id).resolves.toBe(true);
          tops.push((await heading.boundingBox())!.y);
        }
        expect([...tops].sort((a, b) => a - b)).toEqual(tops);

        // Every link in the matrix reaches a finding; every leak cell has one.
        const links = await page.$$eval('#matrix a[href^="#"]', (anchors) =>
          anchors.map((anchor) => ({ href: anchor.getAttribute('href')!, target: document.getElementById(anchor.getAttribute('href')!.slice(1))?.matches('details.finding') ?? false })),
        );
        expect(links.length).toBeGreaterThanOrEqual(5);
        expect(links.filter((link) => !link.target)).toEqual([]);
        expect(await page.$$eval('#matrix td.cell.leak', (cells) => cells.filter((cell) => !cell.querySelector('a[href^="#finding-"]')).length)).toBe(0);

        // Evidence: on screen the findings below the threshold are collapsed; in print every one is shown.
        const evidence = await page.$$eval('details.finding pre', (blocks) => blocks.map((block) => block.checkVisibility()));
        expect(evidence.length).toBeGreaterThan(real.findings.length);
        if (viewport.print) expect(evidence.every(Boolean)).toBe(true);
        else {
          expect(evidence.some((visible) => !visible)).toBe(true);
          expect(evidence.some(Boolean)).toBe(true);
        }
        if (viewport.print) {
          await expect(page.locator('details.statements table').first().isVisible()).resolves.toBe(true);
          await expect(page.locator('.filters').isVisible()).resolves.toBe(false);
        }

        await page.screenshot({ path: join(directory, `real-${viewport.name}.png`), fullPage: true });
        if (viewport.print) {
          const pdf = join(directory, 'real-a4.pdf');
          await page.pdf({ path: pdf, format: 'A4', preferCSSPageSize: true, printBackground: true });
          const bytes = await readFile(pdf, 'latin1');
          expect(bytes.startsWith('%PDF-')).toBe(true);
          expect((bytes.match(/\/Type\s*\/Page\b/g) ?? []).length).toBeGreaterThan(1);
        }
        expect(requests).toEqual([url]);
      } finally {
        await close();
      }
    });
  }

  it('filters findings by severity and by check with CSS alone, and a link to a filtered finding still shows it', async () => {
    const { page, url, requests, close } = await open('real-filter', real, VIEWPORTS[0]);
    try {
      const all = await visibleFindings(page);
      expect(all).toHaveLength(real.findings.length);

      await page.locator('label[for="filter-severity-high"]').click();
      const high = await visibleFindings(page);
      expect(high).toHaveLength(real.summary.findings.high);
      expect(high.every((entry) => entry.endsWith(' high'))).toBe(true);
      await expect(page.locator('#group-critical').isVisible()).resolves.toBe(false);
      await expect(page.locator('#group-high').isVisible()).resolves.toBe(true);

      await page.locator('.check-filter label', { hasText: /^permissive-always-true \(/ }).click();
      const highPermissive = await visibleFindings(page);
      expect(highPermissive).toHaveLength(real.findings.filter((finding) => finding.severity === 'high' && finding.check === 'permissive-always-true').length);
      expect(highPermissive.length).toBeLessThan(high.length);
      await expect(page.locator('.no-match').isVisible()).resolves.toBe(false);

      await page.locator('label[for="filter-severity-info"]').click();
      expect(await visibleFindings(page)).toEqual([]);
      await expect(page.locator('.no-match').isVisible()).resolves.toBe(true);

      // A matrix link to a finding the filter hides: the finding it names is shown.
      const link = page.locator('#matrix td.cell.leak a').first();
      const anchor = (await link.getAttribute('href'))!.slice(1);
      await link.click();
      await expect(page.locator(`#${anchor}`).isVisible()).resolves.toBe(true);

      await page.locator('label[for="filter-severity-all"]').click();
      await page.locator('label[for="filter-check-all"]').click();
      expect(await visibleFindings(page)).toHaveLength(real.findings.length);
      await expect(page.locator('.no-match').isVisible()).resolves.toBe(false);
      expect(requests).toEqual([url]);
    } finally {
      await close();
    }
  });

  it('on a phone, a matrix cell takes the reader to its finding', async () => {
    const { page, close } = await open('real-phone-link', real, VIEWPORTS[1]);
    try {
      const link = page.locator('#matrix td.cell.leak a').last();
      const anchor = (await link.getAttribute('href'))!.slice(1);
      await link.tap();
      await expect.poll(() => page.evaluate((id) => {
        const top = document.getElementById(id)!.getBoundingClientRect().top;
        return top >= -1 && top < window.innerHeight;
      }, anchor)).toBe(true);
    } finally {
      await close();
    }
  });

  /** The hand-made report with hostile values, plus values with no place to break a line. */
  const hostile: Report = {
    ...report,
    notes: [...report.notes, `unbroken ${'x'.repeat(300)}`],
    target: { ...report.target, description: `/${'very-long-socket-directory-name'.repeat(8)}` },
    findings: report.findings.map((finding) =>
      finding.severity === 'critical' ? { ...finding, evidence: { ...finding.evidence, sql: `${finding.evidence.sql} -- ${'y'.repeat(300)}` } } : finding,
    ),
  };

  for (const viewport of VIEWPORTS) {
    it(`shows hostile values as text, with no request, dialog or broken layout, at ${viewport.name} width`, async () => {
      const { page, url, requests, dialogs, consoleErrors, close } = await open(`hostile-${viewport.name}`, hostile, viewport);
      try {
        expect(await layoutProblems(page)).toEqual([]);
        await expect(page.locator('#matrix').isVisible()).resolves.toBe(true);
        await expect(page.getByRole('heading', { level: 2, name: 'Findings', exact: true }).isVisible()).resolves.toBe(true);
        for (const name of [/^Critical/, /^High/, /^Low/, /^Info/]) {
          await expect(page.getByRole('heading', { level: 3, name }).isVisible()).resolves.toBe(true);
        }
        // The payload shows as text, and hovering what tried to inject an attribute does nothing.
        await expect(page.getByText('Tenant acme reads 2 rows of globex: <script>alert(1)</script> "quotes"').first().isVisible()).resolves.toBe(true);
        if (!viewport.print) {
          await page.locator('#matrix td.cell.leak').first().hover();
          await page.locator('ul.tenants li', { hasText: 'globex' }).hover();
          await page.waitForTimeout(100);
        }
        await page.screenshot({ path: join(directory, `hostile-${viewport.name}.png`), fullPage: true });
        expect(requests).toEqual([url]);
        expect(dialogs).toEqual([]);
        expect(consoleErrors).toEqual([]);
      } finally {
        await close();
      }
    });
  }
});
