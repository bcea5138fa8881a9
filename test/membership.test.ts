import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { atLeast } from '../src/severity.js';
import { FIXTURES, findingsOf, runCli } from './helpers.js';

/**
 * Users are not tenants (issue 8): with a user context and a membership table, a user who belongs to two
 * tenants must see exactly both, and a user who belongs to none must see nothing. Each check has a
 * vulnerable fixture (a policy only such users expose) and a secure twin, audited with --preset supabase.
 */
const CASES = [
  { check: 'member-of-two-tenants', table: 'public.clients', severity: 'critical' },
  { check: 'no-membership-user', table: 'public.projects', severity: 'high' },
  { check: 'member-rows-hidden', table: 'public.documents', severity: 'low' },
] as const;

const audit = (check: string, variant: 'vulnerable' | 'secure') =>
  runCli(['run', '--schema', path.join(FIXTURES, check, `${variant}.sql`), '--preset', 'supabase', '--seed', '7', '--quiet']);

describe('the user in two tenants and the user in none', () => {
  it.each(CASES)('$check: flagged in the vulnerable fixture, not in its secure twin', async ({ check, table, severity }) => {
    const vulnerable = await audit(check, 'vulnerable');
    expect(vulnerable.err).not.toMatch(/unexpected error/);
    expect(vulnerable.report!.summary.inconclusive).toEqual([]);
    const found = findingsOf(vulnerable, check);
    expect(found.map((finding) => [finding.table, finding.severity])).toEqual([[table, severity]]);
    expect(found[0]!.evidence.sql).toContain('request.jwt.claims');
    // Single-tenant users see nothing wrong: only the extra actor exposes the policy.
    expect(findingsOf(vulnerable, 'read-isolation')).toEqual([]);

    const secure = await audit(check, 'secure');
    expect(secure.code).toBe(0);
    expect(secure.report!.summary.inconclusive).toEqual([]);
    expect(findingsOf(secure).filter((finding) => atLeast(finding.severity, 'low') || finding.check === check)).toEqual([]);
    // The user in two tenants saw every row of both on every relation; the user in none saw nothing.
    const multi = secure.report!.probes.filter((probe) => probe.check === 'member-of-two-tenants');
    const outsider = secure.report!.probes.filter((probe) => probe.check === 'no-membership-user');
    expect(multi.length).toBe(3);
    for (const probe of multi) expect([probe.relation, probe.outcome, probe.foreignRows, probe.missingOwnRows, probe.rows > 0]).toEqual([probe.relation, 'pass', 0, 0, true]);
    const clients = multi.find((probe) => probe.relation === table)!;
    const perTenant = secure.report!.relations.find((relation) => relation.name === table)!.seeding!.tenants;
    const [a, b] = secure.report!.tenants;
    expect(clients.rows).toBe(perTenant[a!.id]! + perTenant[b!.id]!);
    expect(outsider.map((probe) => [probe.relation, probe.outcome, probe.rows])).toEqual(multi.map((probe) => [probe.relation, 'pass', 0]));
  });
});

describe('a request without credentials runs as the platform\'s anonymous role', () => {
  it('finds tenant rows the anon role reads, and passes when anon reads nothing of a tenant', async () => {
    const file = path.join(FIXTURES, 'tenancy', 'supabase-anon.sql');
    const vulnerable = await runCli(['run', '--schema', file, '--preset', 'supabase', '--seed', '7', '--quiet']);
    const found = findingsOf(vulnerable, 'missing-context');
    expect(found.map((finding) => [finding.table, finding.severity])).toEqual([['public.posts', 'high']]);
    expect(found[0]!.message).toMatch(/anonymous \(anon\)/);
    expect(found[0]!.evidence.sql).toContain('set local role "anon"');
    expect(vulnerable.report!.probes.filter((probe) => probe.context === 'anonymous (anon)').length).toBe(3);

    const dir = await mkdtemp(path.join(os.tmpdir(), 'rls-audit-anon-'));
    try {
      const secureFile = path.join(dir, 'secure.sql');
      await writeFile(secureFile, (await readFile(file, 'utf8')).replace('for select to anon using (true);', 'for select to anon using (false);'));
      const secure = await runCli(['run', '--schema', secureFile, '--preset', 'supabase', '--seed', '7', '--quiet']);
      expect(secure.code).toBe(0);
      expect(findingsOf(secure, 'missing-context')).toEqual([]);
      expect(secure.report!.probes.filter((probe) => probe.context === 'anonymous (anon)').map((probe) => probe.outcome)).toEqual(['pass', 'pass', 'pass']);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
