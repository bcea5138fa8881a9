import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import type { Finding } from '../src/findings.js';
import type { ProbeRecord } from '../src/probes/types.js';
import { escapeHtml, renderHtml } from '../src/report/html.js';
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

  it('colours the matrix by probe outcome', () => {
    expect(matrixCells(html, 'public.notes')).toEqual(['leak', 'pass', 'denied', 'pass', 'unreliable']);
    expect(matrixCells(html, EVIL_TABLE)).toEqual(['error', 'none', 'none', 'none', 'none']);
    expect(html).toMatch(/<td class="cell leak" title="acme\n[^"]*2 foreign rows[^"]*">leak \(2\)<\/td>/);
    expect(html).toContain('unrecognized &lt;script&gt;alert(1)&lt;/script&gt;');
    for (const state of ['never set', 'empty string', 'unknown tenant']) expect(html).toContain(`<th scope="col" class="muted">${state}</th>`);
    expect(html).toContain('class="legend"');
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

  it('renders an empty report', () => {
    const empty = renderHtml({ ...report, relations: [], probes: [], findings: [], notes: [] });
    expect(empty).toContain('No findings.');
    expect(empty).toContain('No tenant-owned relations were found.');
  });
});

const chromiumPath = '/usr/bin/chromium';

describe('renderHtml in a browser', () => {
  it.skipIf(!existsSync(chromiumPath))('opens offline with no requests, no dialogs, and visible sections', { timeout: 60_000 }, async () => {
    const { chromium } = await import('playwright-core');
    const directory = await mkdtemp(join(tmpdir(), 'rls-audit-html-'));
    const file = join(directory, 'report.html');
    await writeFile(file, renderHtml(report));
    const fileUrl = pathToFileURL(file).href;
    const browser = await chromium.launch({
      executablePath: chromiumPath,
      args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
    });
    try {
      const page = await browser.newPage();
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
      await page.goto(fileUrl, { waitUntil: 'load' });

      await expect(page.locator('#matrix').isVisible()).resolves.toBe(true);
      await expect(page.getByRole('heading', { level: 2, name: 'Findings' }).isVisible()).resolves.toBe(true);
      for (const name of [/^Critical/, /^High/, /^Low/, /^Info/]) {
        await expect(page.getByRole('heading', { level: 3, name }).isVisible()).resolves.toBe(true);
      }
      // The payload shows as text, and hovering the attribute-injection attempt does nothing.
      await expect(page.getByText('Tenant acme reads 2 rows of globex: <script>alert(1)</script> "quotes"').isVisible()).resolves.toBe(true);
      await page.locator('#matrix td.cell.leak').first().hover();
      await page.locator('#matrix thead th', { hasText: 'globex' }).hover();
      await page.waitForTimeout(200);

      expect(requests).toEqual([fileUrl]);
      expect(dialogs).toEqual([]);
      expect(consoleErrors).toEqual([]);
    } finally {
      await browser.close();
      await rm(directory, { recursive: true, force: true });
    }
  });
});
