import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyAcceptances } from '../src/findings/accept.js';
import { applyBaseline, readBaseline } from '../src/findings/baseline.js';
import type { Report } from '../src/report/model.js';
import { FIXTURES, runCli, type CliRun } from './helpers.js';

/**
 * The ratchet (--baseline): an existing schema's findings are recorded once; later runs fail only on what
 * is new or got worse, list what was fixed, and stay green on the old findings whatever the seed.
 */
describe('--baseline and acceptances by fingerprint and columns', () => {
  let dir: string;
  let schema: string;
  let baselineRun: CliRun;
  const out = (name: string) => path.join(dir, name);
  const write = async (name: string, sql: string) => {
    const file = path.join(dir, name);
    await writeFile(file, sql);
    return file;
  };
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'rls-audit-baseline-'));
    // Two foreign keys of messages reach into another tenant's conversations: two findings of one check on one table.
    const base = (await readFile(path.join(FIXTURES, 'foreign-key-without-tenant', 'vulnerable.sql'), 'utf8')).replace(
      'conversation_id bigint not null references conversations (id) on delete cascade,',
      'conversation_id bigint not null references conversations (id) on delete cascade,\n  moved_from bigint references conversations (id),',
    );
    schema = await write('schema.sql', base);
    baselineRun = await runCli(['lint', '--schema', schema, '--role', 'app_user', '--quiet', '--out', out('baseline'), '--format', 'json,sarif']);
  }, 120_000);
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('gives every finding a stable fingerprint; two keys of one table get two', () => {
    const findings = baselineRun.report!.findings.filter((finding) => finding.check === 'foreign-key-without-tenant');
    expect(findings.map((finding) => finding.object.columns)).toEqual(expect.arrayContaining([['conversation_id'], ['moved_from']]));
    const fingerprints = baselineRun.report!.findings.map((finding) => finding.fingerprint);
    expect(fingerprints.every((fingerprint) => /^[0-9a-f]{32}$/.test(fingerprint ?? ''))).toBe(true);
    expect(new Set(fingerprints).size).toBe(fingerprints.length);
  });

  it('passes on the old findings, fails on a new one, and lists what was fixed', async () => {
    const same = await runCli(['lint', '--schema', schema, '--role', 'app_user', '--out', out('same'), '--baseline', out('baseline/report.json')]);
    expect(same.code).toBe(0);
    expect(same.report!.summary).toMatchObject({ verdict: 'pass', failing: 0 });
    expect(same.report!.baseline).toMatchObject({ new: 0, worse: 0, unchanged: baselineRun.report!.findings.length, fixed: [] });
    expect(same.out).toMatch(/baseline .*report\.json: 0 new, 0 worse, \d+ unchanged \(not failing\), 0 fixed/);

    // One key fixed, one new table without RLS: the new finding fails the run, the fixed one is listed.
    const changed = await write(
      'changed.sql',
      `${(await readFile(schema, 'utf8')).replace('moved_from bigint references conversations (id),', 'moved_from bigint,')}
create table notes (tenant_id integer not null references tenants (id), body text);
grant select on notes to app_user;
`,
    );
    const worse = await runCli(['lint', '--schema', changed, '--role', 'app_user', '--out', out('changed'), '--format', 'json,markdown,sarif', '--baseline', out('baseline/report.json')]);
    expect(worse.code).toBe(1);
    const fresh = worse.report!.findings.filter((finding) => finding.baseline === 'new');
    expect(fresh.map((finding) => [finding.check, finding.object.name])).toContainEqual(['rls-disabled', 'public.notes']);
    expect(fresh.every((finding) => finding.object.name === 'public.notes')).toBe(true);
    expect(worse.report!.summary.failing).toBe(fresh.filter((finding) => ['high', 'critical'].includes(finding.severity)).length);
    expect(worse.report!.baseline!.fixed).toEqual([expect.objectContaining({ check: 'foreign-key-without-tenant', object: expect.stringContaining('moved_from') })]);
    expect(worse.out).toMatch(/\[new\]/);
    const sarif = JSON.parse(await readFile(out('changed/report.sarif'), 'utf8'));
    expect(new Set(sarif.runs[0].results.map((result: { baselineState: string }) => result.baselineState))).toEqual(new Set(['new', 'unchanged']));
    expect(await readFile(out('changed/report.md'), 'utf8')).toContain('fixed: foreign-key-without-tenant on');

    // A SARIF log of the same run serves as the baseline as well.
    const fromSarif = await runCli(['lint', '--schema', schema, '--role', 'app_user', '--quiet', '--out', out('sarif'), '--baseline', out('baseline/report.sarif')]);
    expect(fromSarif.code).toBe(0);
    expect(fromSarif.report!.baseline).toMatchObject({ new: 0, fixed: [] });
  });

  it('counts a finding that got worse as failing', async () => {
    const baseline = await readBaseline(out('baseline/report.json'));
    const milder = { ...baseline, entries: baseline.entries.map((entry) => ({ ...entry, severity: 'info' as const })) };
    const strict = { ...baselineRun.report!, summary: { ...baselineRun.report!.summary, failOn: 'medium' as const } } as Report;
    const report = applyBaseline(strict, milder);
    const medium = report.findings.filter((finding) => ['medium', 'high', 'critical'].includes(finding.severity));
    expect(medium.length).toBeGreaterThan(0);
    expect(medium.every((finding) => finding.baseline === 'worse')).toBe(true);
    expect(report.findings.filter((finding) => finding.severity === 'info').every((finding) => finding.baseline === 'unchanged')).toBe(true);
    expect(report.summary).toMatchObject({ verdict: 'fail', failing: medium.length });
  });

  it('refuses a baseline that is not a report of rls-audit, before starting anything', async () => {
    const bogus = await write('bogus.json', '{"findings": []}');
    const run = await runCli(['lint', '--schema', schema, '--role', 'app_user', '--quiet', '--out', out('bogus'), '--baseline', bogus]);
    expect(run.code).toBe(2);
    expect(run.err).toMatch(/neither a report\.json nor a SARIF log of rls-audit/);
    const missing = await runCli(['lint', '--schema', schema, '--role', 'app_user', '--quiet', '--out', out('missing'), '--baseline', path.join(dir, 'nope.json')]);
    expect(missing.code).toBe(2);
    expect(missing.err).toMatch(/cannot read the baseline .*nope\.json/);
  });

  it('accepts one foreign key by its columns, or a finding by its fingerprint, without the other key', () => {
    const findings = baselineRun.report!.findings;
    const keys = findings.filter((finding) => finding.check === 'foreign-key-without-tenant');
    const byColumns = applyAcceptances(findings, [{ check: 'foreign-key-without-tenant', object: 'public.messages', columns: ['moved_from'], reason: 'archived link, read by admins only' }]);
    expect(byColumns.filter((finding) => finding.accepted).map((finding) => finding.object.columns)).toEqual([['moved_from']]);
    const target = keys.find((finding) => finding.object.columns?.[0] === 'conversation_id')!;
    const byFingerprint = applyAcceptances(findings, [{ fingerprint: target.fingerprint!, reason: 'fixed in the next release' }]);
    expect(byFingerprint.filter((finding) => finding.accepted).map((finding) => finding.fingerprint)).toEqual([target.fingerprint]);
  });

  it('rejects an acceptance that names no finding', async () => {
    const scenario = await write('bad.yaml', `schema: [schema.sql]\nrole: app_user\naccept:\n  - { reason: no finding named }\n  - { check: rls-disabled, columns: [a], reason: columns without object }\n`);
    const run = await runCli(['lint', scenario, '--quiet', '--out', out('bad')]);
    expect(run.code).toBe(2);
    expect(run.err).toMatch(/name the finding by check and object \(optionally columns\), or by fingerprint/);
    expect(run.err).toMatch(/columns narrow a check and object/);
  });
});

describe('fingerprints do not depend on the seed', () => {
  it('a run with another seed is unchanged against the first', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'rls-audit-baseline-seed-'));
    try {
      const schema = path.join(FIXTURES, 'permissive-always-true', 'vulnerable.sql');
      const first = await runCli(['run', '--schema', schema, '--role', 'app_user', '--seed', '1', '--quiet', '--out', path.join(dir, 'first')]);
      expect(first.code).toBe(1);
      const second = await runCli(['run', '--schema', schema, '--role', 'app_user', '--seed', '2', '--quiet', '--out', path.join(dir, 'second'), '--baseline', path.join(dir, 'first', 'report.json')]);
      expect(second.err).toBe('');
      expect(second.report!.baseline).toMatchObject({ new: 0, worse: 0, fixed: [] });
      expect(second.code).toBe(0);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, 120_000);
});
