import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { atLeast } from '../src/findings/severity.js';
import { allFindings, FIXTURES, PG15_BIN, runCli } from './helpers.js';

/**
 * Issue 17, classes 1 and 2: privileges nobody can use and SECURITY DEFINER functions that check their caller
 * are not reported at medium or above; their vulnerable twins keep failing the run. Each pair is audited on the
 * run's own cluster (embedded), where functions are called and ownership is proven with DDL.
 */
interface Pair {
  name: string;
  args: string[];
  vulnerable: string;
  secure: string;
  /** The finding (check, object) that must fail the vulnerable run. */
  flagged: { check: string; object: string; confirmedBy?: string };
  /** The same check on the secure twin, lowered (info) with this in its message or refutation. */
  lowered?: RegExp;
}

const PAIRS: Pair[] = [
  {
    name: 'Supabase default grants (TRUNCATE, TRIGGER, REFERENCES to anon and authenticated)',
    args: ['--preset', 'supabase'],
    vulnerable: 'dangerous-grant/supabase-dynamic-sql.sql',
    secure: 'dangerous-grant/supabase-default-grants.sql',
    flagged: { check: 'dangerous-grant', object: 'public.tasks', confirmedBy: 'truncate' },
    lowered: /out of reach: authenticated is reached only through Supabase's REST API/,
  },
  {
    name: 'the application role owns a FORCEd table that a foreign key references',
    args: ['--role', 'app_user'],
    vulnerable: 'role-owns-table/owner-forced-referenced.sql',
    secure: 'role-owns-table/not-owner-referenced.sql',
    flagged: { check: 'owner-without-force', object: 'public.projects', confirmedBy: 'role-owns-table' },
  },
  {
    name: 'a definer RPC with a membership check',
    args: ['--preset', 'supabase'],
    vulnerable: 'definer-function/rpc-unchecked.sql',
    secure: 'definer-function/rpc-membership-checked.sql',
    flagged: { check: 'definer-function', object: 'team_tasks(uuid)', confirmedBy: 'function-leak' },
    lowered: /returned nothing of the other tenant, changed nothing of it/,
  },
  {
    name: 'an invitation accept that checks the invitee',
    args: ['--preset', 'supabase'],
    vulnerable: 'definer-function/accept-invitation-unchecked.sql',
    secure: 'definer-function/accept-invitation-checked.sql',
    flagged: { check: 'definer-function', object: 'accept_invitation(uuid)', confirmedBy: 'function-leak' },
    lowered: /refused: no invitation .* for you/,
  },
];

describe('trusted verdicts: privileges and definer functions', () => {
  let scratch: string;
  let runs = 0;
  beforeAll(async () => {
    scratch = await mkdtemp(path.join(os.tmpdir(), 'rls-audit-trusted-'));
  });
  afterAll(async () => {
    await rm(scratch, { recursive: true, force: true });
  });
  const audit = (fixture: string, args: string[]) => {
    runs += 1;
    return runCli(['run', '--schema', path.join(FIXTURES, fixture), ...args, '--pg-bin', PG15_BIN, '--seed', '7', '--tenants', '2', '--rows', '5', '--jobs', '1', '--quiet', '--out', path.join(scratch, `run-${runs}`)]);
  };

  it.each(PAIRS)('$name: the vulnerable twin fails, the secure twin passes with nothing at medium or above', async ({ args, vulnerable, secure, flagged, lowered }) => {
    const bad = await audit(vulnerable, args);
    expect(bad.code).toBe(1);
    const finding = bad.report!.findings.find((candidate) => candidate.check === flagged.check && candidate.object.name === flagged.object);
    expect(finding?.severity).toBe('high');
    if (flagged.confirmedBy) expect(finding!.confirmedBy?.map((entry) => entry.check)).toContain(flagged.confirmedBy);

    const good = await audit(secure, args);
    expect(good.err).toBe('');
    expect(good.code).toBe(0);
    expect(good.report!.summary.verdict).toBe('pass');
    expect(allFindings(good.report!.findings).filter((candidate) => atLeast(candidate.severity, 'medium'))).toEqual([]);
    if (lowered) {
      const kept = good.report!.findings.filter((candidate) => candidate.check === flagged.check && candidate.severity === 'info');
      expect(kept.map((candidate) => `${candidate.message} ${candidate.refutedBy ?? ''}`).join('\n')).toMatch(lowered);
    }
  });

  it('create_team(name), which only creates a team for its caller, is refuted by calls', async () => {
    const run = await audit('definer-function/create-team.sql', ['--preset', 'supabase']);
    expect(run.code).toBe(0);
    const finding = run.report!.findings.find((candidate) => candidate.check === 'definer-function' && candidate.object.name === 'create_team(text)');
    expect(finding).toMatchObject({ severity: 'info' });
    expect(finding!.refutedBy).toMatch(/tenant A with tenant B's keys; tenant B with tenant A's keys: returned nothing/);
    expect(run.report!.findings.filter((candidate) => atLeast(candidate.severity, 'medium'))).toEqual([]);
  });

  it('lint alone cannot call a definer function: it names it as a medium, unproven candidate', async () => {
    runs += 1;
    const run = await runCli(['lint', '--schema', path.join(FIXTURES, 'definer-function/rpc-membership-checked.sql'), '--preset', 'supabase', '--pg-bin', PG15_BIN, '--quiet', '--out', path.join(scratch, `run-${runs}`)]);
    expect(run.code).toBe(0);
    expect(run.report!.findings.find((candidate) => candidate.check === 'definer-function' && candidate.object.name === 'team_tasks(uuid)')?.severity).toBe('medium');
  });
});
