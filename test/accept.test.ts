import { mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { applyAcceptances } from '../src/findings/accept.js';
import { objectSubject, type Finding } from '../src/findings/finding.js';
import { allFindings, FIXTURES, runCli } from './helpers.js';

const finding = (check: string, table: string): Finding => ({
  check, object: { kind: 'table', name: table }, severity: 'high', source: 'probe', message: 'm', fix: 'f', evidence: { sql: 'select 1', context: 'c' },
});

describe('applyAcceptances', () => {
  it('marks a matching finding, and an acceptance past its expiry as expired', () => {
    const [open, kept, lapsed] = applyAcceptances(
      [finding('truncate', 'public.a'), finding('truncate', 'public.b'), finding('truncate', 'public.c')],
      [
        { check: 'truncate', object: 'public.b', reason: 'nightly job', expires: '2030-01-01' },
        { check: 'truncate', object: 'public.c', reason: 'was temporary', expires: '2026-01-01' },
      ],
      '2026-11-27',
    );
    expect(open!.accepted).toBeUndefined();
    expect(kept!.accepted).toEqual({ reason: 'nightly job', expires: '2030-01-01', expired: false });
    expect(lapsed!.accepted).toEqual({ reason: 'was temporary', expires: '2026-01-01', expired: true });
  });
});

async function scenarioAccepting(expires: string): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'rls-audit-accept-'));
  const file = path.join(dir, 'scenario.yaml');
  await writeFile(
    file,
    [
      'name: accepted',
      `schema: [${path.join(FIXTURES, 'truncate', 'vulnerable.sql')}]`,
      'role: app_user',
      'seed: 3',
      'accept:',
      ...['truncate', 'dangerous-grant'].map((check) => `  - { check: ${check}, object: public.tasks, reason: the nightly reset job truncates it, expires: "${expires}" }`),
    ].join('\n'),
  );
  return file;
}

describe('accepting findings in the scenario', () => {
  it('keeps accepted findings in the report without failing the run; an expired acceptance fails it again', async () => {
    const accepted = await runCli(['run', await scenarioAccepting('2999-12-31'), '--quiet']);
    expect(accepted.err).toBe('');
    const truncate = allFindings(accepted.report!.findings).find((entry) => entry.check === 'truncate' && objectSubject(entry.object) === 'public.tasks')!;
    expect(truncate.accepted).toEqual({ reason: 'the nightly reset job truncates it', expires: '2999-12-31', expired: false });
    // The fixture's only defect at or above high is this one (dangerous-grant, proven by truncate: one finding):
    // accepted, it no longer fails the run.
    expect(accepted.report!.summary).toMatchObject({ accepted: 1, failing: 0, verdict: 'pass' });
    expect(accepted.code).toBe(0);

    const expired = await runCli(['run', await scenarioAccepting('2020-01-01'), '--quiet']);
    expect(expired.code).toBe(1);
    expect(allFindings(expired.report!.findings).find((entry) => entry.check === 'truncate')!.accepted!.expired).toBe(true);
    expect(expired.report!.summary).toMatchObject({ accepted: 0, failing: 1, verdict: 'fail' });
  });
});
