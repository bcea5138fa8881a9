import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Finding } from '../src/findings/finding.js';
import type { ProbeOutcome, ProbeRecord } from '../src/probes/types.js';
import { renderConsole } from '../src/report/console.js';
import type { Report } from '../src/report/model.js';
import type { Severity } from '../src/findings/severity.js';
import { colourEnabled, colourSummary, palette, progressEnabled, renderNotes } from '../src/report/terminal.js';
import { ROOT } from './helpers.js';

const ESC = '\u001b[';

function finding(severity: Severity, check: string, table: string): Finding {
  const kind = table.includes('(') ? 'function' : 'table';
  return { check, severity, object: { kind, name: table }, source: 'rule', evidence: { sql: 'select 1', context: 'As app_user.' }, message: 'the message.', fix: 'select 1;' };
}

function probe(check: string, relation: string, outcome: ProbeOutcome, error?: string): ProbeRecord {
  return { check, relation, context: 'tenant A', tenant: '1', sql: 'select 1', outcome, rows: 0, foreignRows: 0, missingOwnRows: 0, ...(error ? { error } : {}) };
}

/** A report with just what the terminal renderers read. */
function report(parts: Partial<Pick<Report, 'findings' | 'probes' | 'notes'>>): Report {
  const findings = parts.findings ?? [];
  const count = (severity: Severity) => findings.filter((entry) => entry.severity === severity).length;
  return {
    schemaVersion: 2,
    tool: { name: 'rls-audit', version: '0.1.0' },
    command: 'run',
    startedAt: '2026-01-01T00:00:00.000Z',
    scenario: { name: 'demo', role: 'app_user', setting: 'app.tenant', contextSql: '', tenantKey: 'public.tenants.id integer', tenantColumns: ['tenant_id'], rowsPerTenant: 20, seed: 1, failOn: 'high' },
    target: { kind: 'embedded', description: 'embedded PostgreSQL', serverVersion: '18', database: 'audit' },
    tenants: [{ id: '1', label: 'tenant A', canary: 'c1' }],
    relations: [],
    locations: {},
    notes: parts.notes ?? [],
    checks: [],
    probes: parts.probes ?? [],
    findings,
    summary: {
      verdict: 'fail', inconclusive: [], failOn: 'high',
      findings: { critical: count('critical'), high: count('high'), medium: count('medium'), low: count('low'), info: count('info') },
      failing: count('critical') + count('high'), accepted: 0, probes: {}, rowsSeeded: 0, queries: 0,
    },
    timings: { start: 0, schema: 0, introspection: 0, seeding: 0, probes: 0, report: 0, total: 0, perProbe: {} },
  };
}

describe('colour and progress are for people at a terminal', () => {
  it('colour on a TTY only, NO_COLOR turns it off whatever else is set, FORCE_COLOR forces it on a pipe', () => {
    expect(colourEnabled({ isTTY: true }, {})).toBe(true);
    expect(colourEnabled({ isTTY: false }, {})).toBe(false);
    expect(colourEnabled({ isTTY: true }, { NO_COLOR: '1' })).toBe(false);
    expect(colourEnabled({ isTTY: true }, { NO_COLOR: '' })).toBe(true);
    expect(colourEnabled({ isTTY: true }, { TERM: 'dumb' })).toBe(false);
    expect(colourEnabled({ isTTY: false }, { FORCE_COLOR: '1' })).toBe(true);
    expect(colourEnabled({ isTTY: true }, { FORCE_COLOR: '0', NO_COLOR: '' })).toBe(false);
    // NO_COLOR is never overridden (no-color.org): not even by FORCE_COLOR.
    expect(colourEnabled({ isTTY: true }, { FORCE_COLOR: '1', NO_COLOR: '1' })).toBe(false);
    expect(colourEnabled({ isTTY: false }, { FORCE_COLOR: 'true', NO_COLOR: 'yes' })).toBe(false);
    expect(progressEnabled({ isTTY: true }, {})).toBe(true);
    expect(progressEnabled({ isTTY: true }, { CI: 'true' })).toBe(false);
    expect(progressEnabled({ isTTY: false }, {})).toBe(false);
  });

  it('colours severity labels and the verdict, and nothing when colour is off', () => {
    const summary = '  HIGH  read-isolation  public.messages: As tenant A, ...\n  verdict: FAIL (fail on high and above: 1 finding)\n';
    expect(colourSummary(summary, palette(false))).toBe(summary);
    const coloured = colourSummary(summary, palette(true));
    expect(coloured).toContain(`  ${ESC}31mHIGH${ESC}39m  read-isolation`);
    expect(coloured).toContain(`verdict: ${ESC}1m${ESC}31mFAIL${ESC}39m${ESC}22m (fail on`);
    expect(coloured.replace(/\u001b\[\d+m/g, '')).toBe(summary);
  });

  it('aligns the summary\'s columns to the widest severity and check id, however long', () => {
    const findings = [
      finding('critical', 'read-isolation', 'public.notes'),
      finding('high', 'definer-function-search-path', 'public.search(text)'),
      finding('low', 'setting-without-missing-ok-and-a-longer-id', 'public.tasks'),
      finding('info', 'missing-tenant-index-with-an-even-longer-check-id', 'public.tasks'),
    ];
    const text = renderConsole(report({ findings }));
    const rows = text.split('\n').filter((line) => /^ {2}(CRITICAL|HIGH|MEDIUM|LOW) /.test(line));
    // Info findings are counted, not listed, and do not widen the columns.
    expect(rows).toHaveLength(3);
    const objectColumn = (line: string, object: string) => line.indexOf(` ${object}`) + 1;
    const columns = rows.map((line, index) => objectColumn(line, findings[index]!.object.name));
    expect(new Set(columns).size).toBe(1);
    expect(columns[0]).toBe(2 + 'CRITICAL'.length + 2 + 'setting-without-missing-ok-and-a-longer-id'.length + 2);
    expect(rows[1]).toBe(`  HIGH${' '.repeat(6)}definer-function-search-path${' '.repeat(16)}public.search(text): the message.`);
    // Severity labels still lead each line, so colouring finds them.
    expect(colourSummary(text, palette(true))).toContain(`  ${ESC}31mCRITICAL${ESC}39m  read-isolation`);
  });

  it('prints the notes that matter: what was assumed, and the probe statements that proved nothing', () => {
    const probes: ProbeRecord[] = [
      probe('read-isolation', 'public.notes', 'pass'),
      probe('read-isolation', 'public.tasks', 'skipped', 'no seeded row'),
      probe('missing-context', 'public.tasks', 'inconclusive'),
      probe('missing-context', 'public.notes', 'inconclusive'),
      probe('foreign-insert', 'public.tasks', 'error', 'permission denied for table tasks'),
    ];
    const notes = renderNotes(report({ probes, notes: ['tenant column tenant_id (discovered)', 'public.tasks: not seeded (no grant)'] }));
    expect(notes).toEqual([
      'note: tenant column tenant_id (discovered)',
      'note: 1 probe statement was skipped, e.g. read-isolation on public.tasks (tenant A): no seeded row',
      'note: 2 probe statements were inconclusive, e.g. missing-context on public.tasks (tenant A); missing-context on public.notes (tenant A)',
      'note: 1 probe statement failed, e.g. foreign-insert on public.tasks (tenant A): permission denied for table tasks',
    ]);
    // Seeding notes are in the summary itself, beside the verdict.
    expect(renderConsole(report({ notes: ['public.tasks: not seeded (no grant)'] }))).toContain('  note: public.tasks: not seeded (no grant)\n');
  });

  const script = ['/usr/bin/script', '/bin/script'].find((candidate) => existsSync(candidate));
  const cli = path.join(ROOT, 'dist', 'cli.js');

  /** Run the built CLI on a pseudo-terminal (util-linux `script`), as a person would see it. */
  async function onTerminal(env: Record<string, string>): Promise<string> {
    const out = await mkdtemp(path.join(os.tmpdir(), 'rls-audit-tty-'));
    const { CI: _ci, NO_COLOR: _noColour, FORCE_COLOR: _force, ...base } = process.env;
    const command = `${JSON.stringify(process.execPath)} ${JSON.stringify(cli)} lint scenarios/chat.yaml --out ${JSON.stringify(out)}`;
    const result = spawnSync(script!, ['-q', '-e', '-c', command, '/dev/null'], { cwd: ROOT, env: { ...base, TERM: 'xterm-256color', ...env }, encoding: 'utf8' });
    expect(result.status).toBe(0);
    return result.stdout;
  }

  it.skipIf(!script || !existsSync(cli))('on a TTY: a bar per phase and a coloured verdict; with CI and NO_COLOR set: neither', async () => {
    const tty = await onTerminal({});
    for (const phase of ['database', 'schema', 'catalog']) expect(tty).toMatch(new RegExp(`${phase}.*\u2588+ 1/1`));
    expect(tty).toContain(`verdict: ${ESC}1m${ESC}32mPASS`);

    const plain = await onTerminal({ CI: 'true', NO_COLOR: '1' });
    expect(plain).not.toContain('\u2588');
    expect(plain).not.toMatch(/\u001b\[3\dm/);
    expect(plain).toMatch(/verdict: PASS/);
  }, 240_000);
});
