import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { atLeast } from '../src/findings/severity.js';
import { expectNoFalseAlarm, FIXTURES, findingsOf, runCli, type CliRun } from './helpers.js';

/**
 * Trusted verdicts (issue 17): a correct app gets no finding at medium or above and exits 0; its vulnerable
 * twin keeps failing. Each pair is written for one class of false alarm.
 */
const fixture = (name: string) => path.join(FIXTURES, 'trusted-verdicts', `${name}.sql`);
const run = (name: string, extra: string[]) => runCli(['run', '--schema', fixture(name), '--seed', '7', '--quiet', ...extra]);

function expectClean(secure: CliRun): void {
  expect(secure.err).not.toMatch(/unexpected error/);
  expect(secure.report!.summary.inconclusive).toEqual([]);
  expect(findingsOf(secure).filter((finding) => atLeast(finding.severity, 'medium')).map((finding) => `${finding.check} ${finding.table}`)).toEqual([]);
  expect(secure.code).toBe(0);
}

describe('trusted verdicts', () => {
  it('class 3: the membership table is the one the policies join with the user, not any table with foreign keys to both', async () => {
    const secure = await run('membership-table-secure', ['--preset', 'supabase']);
    expectClean(secure);
    // secure-fixtures.test.ts's assertions, on this audit (its expect.yaml: auditedBy).
    expectNoFalseAlarm(secure);
    expect(secure.report!.notes.join('\n')).toMatch(/members of tenants through public\.team_members\(user_id, team_id\) \(discovered: the policies join it with the user identity/);
    expect(secure.report!.notes.join('\n')).toMatch(/public\.documents, public\.profiles also have foreign keys to both but are not the policies' membership/);
    expect(secure.report!.scenario.tenantKey).toBe('public.teams.id uuid');

    const vulnerable = await run('membership-table-vulnerable', ['--preset', 'supabase']);
    expect(vulnerable.code).toBe(1);
    expect(findingsOf(vulnerable, 'read-isolation').map((finding) => finding.table)).toContain('public.documents');
  });

  it("class 4: rows the platform makes for an actor (a personal account) are that actor's, and every other actor's foreign rows", async () => {
    const secure = await run('personal-accounts-secure', ['--preset', 'supabase']);
    expectClean(secure);
    // secure-fixtures.test.ts's assertions, on this audit (its expect.yaml: auditedBy).
    expectNoFalseAlarm(secure);
    // Each user sees its tenant's rows and the personal workspace, project and task the trigger made for it alone.
    const reads = (check: string, relation: string) => secure.report!.probes.filter((probe) => probe.check === check && probe.relation === relation);
    for (const [relation, rows] of [['public.workspaces', 2], ['public.projects', 21], ['public.tasks', 21]] as const) {
      expect(reads('read-isolation', relation).map((probe) => [probe.context, probe.outcome, probe.rows, probe.foreignRows])).toEqual(
        ['tenant A', 'tenant B', 'tenant C'].map((tenant) => [tenant, 'pass', rows, 0]),
      );
      expect(reads('no-membership-user', relation).map((probe) => [probe.outcome, probe.rows])).toEqual([['pass', 1]]);
    }

    // Personal workspaces readable by every user: the other actors' personal workspaces are other tenants' rows.
    const vulnerable = await run('personal-accounts-vulnerable', ['--preset', 'supabase']);
    expect(vulnerable.code).toBe(1);
    const leak = findingsOf(vulnerable, 'read-isolation').find((finding) => finding.table === 'public.workspaces' && finding.tenant === vulnerable.report!.tenants[0]!.id);
    expect(leak?.severity).toBe('critical');
    const seenByA = leak!.evidence.details!.split('; ').find((entry) => entry.startsWith('tenant A sees '))!;
    for (const user of ['tenant B', 'tenant C', 'tenant A and tenant B', 'no tenant']) expect(seenByA).toContain(`(made for the user of ${user})`);
    expect(seenByA).not.toContain('(made for the user of tenant A)');
    expect(findingsOf(vulnerable).filter((finding) => finding.table !== 'public.workspaces' && atLeast(finding.severity, 'medium'))).toEqual([]);

    // A trigger that makes every new user a member of every workspace: its memberships are adopted (the users are
    // created, not refused), and the access they give is the finding.
    const joined = await run('personal-accounts-join-all-vulnerable', ['--preset', 'supabase']);
    expect(joined.code).toBe(1);
    expect(findingsOf(joined, 'read-isolation').filter((finding) => finding.severity === 'critical').map((finding) => finding.table)).toEqual(expect.arrayContaining(['public.projects', 'public.tasks', 'public.workspaces']));
  });

  it('class 5: membership helpers in policies are tenant checks, never settings', async () => {
    const secure = await run('membership-helper-secure', ['--preset', 'supabase']);
    expectClean(secure);
    // secure-fixtures.test.ts's assertions, on this audit (its expect.yaml: auditedBy).
    expectNoFalseAlarm(secure);
    expect(findingsOf(secure, 'non-tenant-setting')).toEqual([]);
    expect(findingsOf(secure, 'with-check-missing-tenant')).toEqual([]);

    const vulnerable = await run('membership-helper-vulnerable', ['--preset', 'supabase']);
    expect(vulnerable.code).toBe(1);
    expect(findingsOf(vulnerable).filter((finding) => finding.severity === 'critical').map((finding) => finding.table).sort()).toEqual(expect.arrayContaining(['public.comments', 'public.tasks']));
    expect(findingsOf(vulnerable).some((finding) => ['public.projects', 'public.accounts'].includes(finding.table) && atLeast(finding.severity, 'medium') && finding.check !== 'definer-function')).toBe(false);
  });

  it('class 6: rows public by a row flag are stated once as info and counted as public by the probes', async () => {
    const secure = await run('public-rows-secure', ['--role', 'app_user']);
    expectClean(secure);
    expect(findingsOf(secure, 'public-rows').map((finding) => [finding.table, finding.severity, finding.message.replace(/^On \S+, /, '')]).sort()).toEqual([
      ['public.documents', 'info', 'rows with is_public = true are visible to every tenant by design (policy documents_read).'],
      ['public.pages', 'info', 'rows with visibility = public are visible to every tenant by design (policy pages_read).'],
      ['public.projects', 'info', 'rows with private = false are visible to every tenant by design (policy projects_read).'],
    ]);
    // Both values of each flag were seeded: every tenant saw other tenants' public rows, and none of their other rows.
    const reads = secure.report!.probes.filter((probe) => probe.check === 'read-isolation' && probe.relation !== 'public.tenants');
    expect(reads.length).toBe(9);
    for (const probe of reads) {
      expect(probe.outcome).toBe('pass');
      expect(probe.publicRows).toBeGreaterThan(0);
      expect(probe.rows).toBe(20 + probe.publicRows!);
    }

    const vulnerable = await run('public-rows-vulnerable', ['--role', 'app_user']);
    expect(vulnerable.code).toBe(1);
    expect(findingsOf(vulnerable, 'read-isolation').map((finding) => [finding.table, finding.severity])).toEqual([['public.documents', 'critical']]);
    expect(findingsOf(vulnerable, 'public-rows').map((finding) => finding.table).sort()).toEqual(['public.pages', 'public.projects']);
  });

  it('class 8: a broken context comes first, and a run failing on static findings alone says so', async () => {
    const context = ['--role', 'app_user', '--context-sql', "select set_config('app.tenant_id', $tenant, true)", '--fail-on', 'medium'];
    const secure = await run('broken-context-secure', context);
    expectClean(secure);
    expect(secure.report!.summary.staticOnly).toBeUndefined();

    const vulnerable = await runCli(['run', '--schema', fixture('broken-context-vulnerable'), '--seed', '7', ...context]);
    expect(vulnerable.code).toBe(1);
    expect(vulnerable.report!.summary.staticOnly).toBe(true);
    const lines = vulnerable.out.split('\n');
    const verdict = lines.find((line) => line.includes('verdict:'))!;
    expect(verdict).toMatch(/verdict: FAIL \(static findings only; the context showed no tenant its rows: no tenant saw its own rows on public\.invoices, public\.payments, public\.tenants\)/);
    const contextLine = lines.findIndex((line) => line.startsWith('  context: no tenant sees its own rows'));
    const firstFinding = lines.findIndex((line) => /^\s+MEDIUM\s/.test(line));
    expect(contextLine).toBeGreaterThan(0);
    expect(contextLine).toBeLessThan(firstFinding);

    // Without a failing static finding the same run is inconclusive, and says why.
    const inconclusive = await runCli(['run', '--schema', fixture('broken-context-vulnerable'), '--seed', '7', ...context.slice(0, -2)]);
    expect(inconclusive.code).toBe(2);
    expect(inconclusive.out).toMatch(/verdict: INCONCLUSIVE \(the context showed no tenant its rows: no tenant saw its own rows on /);
  });
});
