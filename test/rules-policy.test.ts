import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { objectSubject, type Finding } from '../src/findings/finding.js';
import { atLeast, type Severity } from '../src/findings/severity.js';
import { renderFixScript } from '../src/report/fix-script.js';
import { allFindings, FIXTURES, FixtureCluster, flatFinding, runCli, TARGETS, type CliRun, type FlatFinding } from './helpers.js';

/** The coverage and policy-logic rules: each vulnerable fixture must be flagged, each secure twin must not. */
interface Case {
  check: string;
  /** Findings the vulnerable fixture must yield for this check. */
  flags: { table: string; severity: Severity }[];
}

const CASES: Case[] = [
  {
    check: 'rls-disabled',
    flags: [
      { table: 'public.notes', severity: 'critical' },
      { table: 'public.drafts', severity: 'high' },
      { table: 'public.archive', severity: 'info' },
    ],
  },
  { check: 'rls-no-policy', flags: [{ table: 'public.audit_events', severity: 'info' }, { table: 'public.reminders', severity: 'info' }] },
  { check: 'policy-without-rls', flags: [{ table: 'public.invoices', severity: 'critical' }] },
  {
    check: 'partition-without-rls',
    flags: [
      { table: 'public.measurements_a', severity: 'high' },
      { table: 'public.measurements_b', severity: 'high' },
      { table: 'public.events_archive', severity: 'high' },
    ],
  },
  { check: 'materialized-view-exposed', flags: [{ table: 'public.order_totals', severity: 'high' }] },
  { check: 'foreign-table-exposed', flags: [{ table: 'public.shipments', severity: 'high' }] },
  { check: 'future-partitions', flags: [{ table: 'public.readings', severity: 'info' }] },
  {
    check: 'permissive-always-true',
    flags: [
      { table: 'public.documents', severity: 'critical' },
      { table: 'public.posts', severity: 'critical' },
      { table: 'public.tasks', severity: 'high' },
    ],
  },
  { check: 'command-coverage-gap', flags: [{ table: 'public.orders', severity: 'info' }, { table: 'public.labels', severity: 'info' }] },
  { check: 'with-check-missing-tenant', flags: [{ table: 'public.tasks', severity: 'high' }, { table: 'public.notes', severity: 'high' }] },
  {
    check: 'fail-open-context',
    flags: [
      { table: 'public.invoices', severity: 'high' },
      { table: 'public.payments', severity: 'high' },
      { table: 'public.refunds', severity: 'high' },
    ],
  },
  { check: 'setting-without-missing-ok', flags: [{ table: 'public.notes', severity: 'low' }] },
  { check: 'setting-without-nullif', flags: [{ table: 'public.notes', severity: 'low' }, { table: 'public.labels', severity: 'low' }] },
  { check: 'non-tenant-setting', flags: [{ table: 'public.tickets', severity: 'medium' }, { table: 'public.messages', severity: 'medium' }] },
  { check: 'policy-role-scope', flags: [{ table: 'public.tickets', severity: 'medium' }, { table: 'public.notes', severity: 'medium' }] },
];

/** Secure fixtures written by others that these rules must leave alone (nothing above low, from any check). */
const OTHER_SECURE = ['uuid-tenants/schema.sql', 'restrictive-fence/schema.sql', 'invoker-view/schema.sql', 'shared-lookup/schema.sql'];
const RULE_IDS = CASES.map((entry) => entry.check);

let scratch: string;

beforeAll(async () => {
  scratch = await mkdtemp(path.join(os.tmpdir(), 'rls-audit-rules-policy-'));
});

afterAll(async () => {
  await rm(scratch, { recursive: true, force: true });
});

let outputs = 0;

/** `rls-audit lint` (or `run`) on schema files; the report is written to a scratch directory and read back. */
/** The cluster `lint` audits run on, one per PostgreSQL version (see FixtureCluster). */
let cluster: FixtureCluster | undefined;

async function audit(command: 'lint' | 'run', schemas: string[], args: string[]): Promise<CliRun & { dir: string }> {
  if (command === 'lint' && cluster) {
    const run = await cluster.lint(schemas);
    expect(run.err).toBe('');
    expect(run.report).not.toBeNull();
    return run;
  }
  outputs += 1;
  const out = path.join(scratch, `out-${outputs}`);
  const run = await runCli([command, ...schemas.flatMap((schema) => ['--schema', schema]), '--role', 'app_user', '--quiet', '--out', out, ...(command === 'run' ? ['--seed', '7'] : []), ...args]);
  expect(run.err).toBe('');
  expect(run.report).not.toBeNull();
  return { ...run, dir: out };
}

const fixture = (check: string, variant: 'vulnerable' | 'secure') => path.join(FIXTURES, check, `${variant}.sql`);
const ofCheck = (run: CliRun, check: string): FlatFinding[] => allFindings(run.report!.findings).filter((finding) => finding.check === check).map(flatFinding);
const ours = (run: CliRun): Finding[] => run.report!.findings.filter((finding) => RULE_IDS.includes(finding.check));

describe.each(TARGETS)('coverage and policy-logic rules on $name', ({ args }) => {
  beforeAll(async () => {
    cluster = await FixtureCluster.start(args);
  });
  afterAll(async () => {
    await cluster?.close();
    cluster = undefined;
  });

  it('lint finds nothing in the hardened chat scenario', async () => {
    const out = path.join(scratch, `chat-${outputs++}`);
    const run = await runCli(['lint', 'scenarios/chat.yaml', '--quiet', '--out', out, ...args]);
    expect(run.err).toBe('');
    expect(run.code).toBe(0);
    expect(run.report!.findings).toEqual([]);
  });

  it.each(CASES)('lint flags $check in its vulnerable fixture, and its fix SQL clears it', async ({ check, flags }) => {
    const run = await audit('lint', [fixture(check, 'vulnerable')], args);
    const found = ofCheck(run, check);
    for (const flag of flags) expect(found).toContainEqual(expect.objectContaining({ check, ...flag, source: 'rule' }));
    expect(found).toHaveLength(flags.length);
    for (const finding of found) {
      expect(finding.evidence.context).toBe('static: catalog');
      expect(finding.evidence.sql).toMatch(/^select /);
      expect(finding.evidence.sql).toContain('::regclass');
      expect(finding.evidence.details?.length).toBeGreaterThan(0);
      expect(finding.message).toContain(objectSubject(finding.object));
      // Placeholders only ever appear in comments (alternatives); the SQL itself names the objects at hand.
      expect(finding.fix.replace(/--.*$/gm, '')).not.toMatch(/<[a-z_ ]+>/);
    }
    // The fix is SQL for the object at hand: fix.sql (every finding's fix, merged per object), applied after
    // the schema, applies cleanly and the check no longer fires.
    const fixFile = path.join(run.dir, 'fix.sql');
    expect(await readFile(fixFile, 'utf8')).toBe(renderFixScript(run.report!));
    const fixed = await audit('lint', [fixture(check, 'vulnerable'), fixFile], args);
    expect(ofCheck(fixed, check)).toEqual([]);
  });

  it.each(CASES)('lint does not flag $check in its secure twin, nor anything above low', async ({ check }) => {
    const run = await audit('lint', [fixture(check, 'secure')], args);
    expect(ofCheck(run, check)).toEqual([]);
    expect(run.report!.findings.filter((finding) => atLeast(finding.severity, 'medium'))).toEqual([]);
    expect(run.code).toBe(0);
  });

  it.each(OTHER_SECURE)('lint leaves the secure fixture %s alone', async (name) => {
    const run = await audit('lint', [path.join(FIXTURES, name)], args);
    expect(ours(run).filter((finding) => atLeast(finding.severity, 'low'))).toEqual([]);
    expect(run.code).toBe(0);
  });

  it('run confirms static findings with the probes that prove them', async () => {
    const run = await audit('run', [fixture('permissive-always-true', 'vulnerable')], args);
    const byTable = new Map(ofCheck(run, 'permissive-always-true').map((finding) => [objectSubject(finding.object), finding]));
    expect(byTable.get('public.documents')).toMatchObject({ severity: 'critical', confirmedBy: expect.arrayContaining([expect.objectContaining({ check: 'read-isolation', object: { kind: 'table', name: 'public.documents' } })]) });
    expect(byTable.get('public.tasks')?.confirmedBy).toContainEqual(expect.objectContaining({ check: 'blind-delete', object: { kind: 'table', name: 'public.tasks' } }));
    expect(byTable.get('public.tasks')?.severity).toBe('high');

    const failOpen = await audit('run', [fixture('fail-open-context', 'vulnerable')], args);
    for (const finding of ofCheck(failOpen, 'fail-open-context')) {
      expect(finding.severity).toBe('high');
      expect(finding.confirmedBy).toContainEqual(expect.objectContaining({ check: 'missing-context' }));
    }

    const nullif = await audit('run', [fixture('setting-without-nullif', 'vulnerable')], args);
    expect(ofCheck(nullif, 'setting-without-nullif')).toHaveLength(2);
    for (const finding of ofCheck(nullif, 'setting-without-nullif')) {
      expect(finding.confirmedBy).toContainEqual(expect.objectContaining({ check: 'missing-context-error' }));
    }
  });

  it('run confirms `or pinned` even when the column defaults to false: defaulted columns are seeded with varied values', async () => {
    const schema = (await readFile(fixture('permissive-always-true', 'vulnerable'), 'utf8')).replace('pinned boolean not null,', 'pinned boolean not null default false,');
    const file = path.join(scratch, `unpinned-${outputs}.sql`);
    await writeFile(file, schema);
    const run = await audit('run', [file], args);
    const posts = ofCheck(run, 'permissive-always-true').find((finding) => objectSubject(finding.object) === 'public.posts');
    expect(posts).toMatchObject({ severity: 'critical', confirmedBy: expect.arrayContaining([expect.objectContaining({ check: 'read-isolation', object: { kind: 'table', name: 'public.posts' } })]) });
  });

  it('run lowers a static finding the probes exercised without seeing a leak, and says why', async () => {
    // The permissive branch `status = 'archived'` reads as widening, but a CHECK allows no archived row: the probes
    // read posts as every tenant, see their own rows only, and the finding is lowered with the reason.
    const schema = (await readFile(fixture('permissive-always-true', 'vulnerable'), 'utf8'))
      .replace('pinned boolean not null,', "status text not null check (status in ('draft', 'live')),")
      .replace(' or pinned)', " or status = 'archived')");
    const file = path.join(scratch, `archived-${outputs}.sql`);
    await writeFile(file, schema);
    const run = await audit('run', [file], args);
    const posts = ofCheck(run, 'permissive-always-true').find((finding) => objectSubject(finding.object) === 'public.posts');
    expect(posts).toMatchObject({ severity: 'info', refutedBy: expect.stringMatching(/read-isolation.* ran \d+ statements on public\.posts .*lowered from critical to info/) });
    expect(posts?.confirmedBy).toBeUndefined();
  });

  it('run passes the secure twins of the probed rules with nothing above low', async () => {
    for (const check of ['permissive-always-true', 'fail-open-context', 'partition-without-rls', 'materialized-view-exposed']) {
      const run = await audit('run', [fixture(check, 'secure')], args);
      expect(run.report!.findings.filter((finding) => atLeast(finding.severity, 'medium')), check).toEqual([]);
      expect(ofCheck(run, check), check).toEqual([]);
    }
  });
});

describe('rls-audit checks', () => {
  it('lists every coverage and policy-logic rule', async () => {
    const run = await runCli(['checks']);
    for (const check of RULE_IDS) expect(run.out).toMatch(new RegExp(`^${check} +rule `, 'm'));
  });
});
