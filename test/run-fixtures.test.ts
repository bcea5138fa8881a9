import path from 'node:path';
import { objectSubject } from '../src/findings/finding.js';
import { describe, expect, it } from 'vitest';
import { atLeast, type Severity } from '../src/findings/severity.js';
import { auditFixture, FIXTURES, findingsOf, runCli, TARGETS, type CliRun } from './helpers.js';

interface Expectation {
  fixture: string;
  /** Findings that must be present (check id and relation). */
  flags?: { check: string; table: string; severity?: Severity }[];
}

/** Vulnerable fixtures: exit 1 with a finding naming the right relation. */
const VULNERABLE: Expectation[] = [
  { fixture: 'rls-disabled', flags: [{ check: 'read-isolation', table: 'public.notes', severity: 'critical' }] },
  { fixture: 'using-true', flags: [{ check: 'read-isolation', table: 'public.documents', severity: 'critical' }] },
  { fixture: 'fail-open-null', flags: [{ check: 'missing-context', table: 'public.invoices', severity: 'high' }] },
  {
    fixture: 'owner-no-force',
    flags: [
      { check: 'role-owns-table', table: 'public.orders', severity: 'critical' },
      { check: 'read-isolation', table: 'public.orders', severity: 'critical' },
    ],
  },
  {
    fixture: 'bypassrls',
    flags: [
      { check: 'role-bypasses-rls', table: 'app_user', severity: 'critical' },
      { check: 'read-isolation', table: 'public.tickets', severity: 'critical' },
    ],
  },
  { fixture: 'definer-view', flags: [{ check: 'read-isolation', table: 'public.recent_messages', severity: 'high' }] },
  { fixture: 'matview', flags: [{ check: 'read-isolation', table: 'public.event_counts', severity: 'high' }] },
  {
    fixture: 'partition-direct',
    flags: [
      { check: 'read-isolation', table: 'public.measurements_p0', severity: 'high' },
      { check: 'read-isolation', table: 'public.measurements_p1', severity: 'high' },
    ],
  },
  { fixture: 'fk-path', flags: [{ check: 'read-isolation', table: 'public.attachments', severity: 'critical' }] },
];

/** Secure twins: exit 0, nothing above low. */
const SECURE: Expectation[] = [
  { fixture: 'uuid-tenants' },
  { fixture: 'restrictive-fence' },
  { fixture: 'invoker-view' },
  { fixture: 'shared-lookup' },
];

/**
 * The seed document's schema as written: nothing leaks on read, so it passes at the default --fail-on high,
 * but its defects are reported: the empty-string trap, a tenant that cannot read its own row, and foreign
 * keys that let a row reference another tenant's parent.
 */
const SEED_ORIGINAL: { check: string; table: string; severity: Severity }[] = [
  { check: 'missing-context-error', table: 'public.messages', severity: 'low' },
  { check: 'own-rows-hidden', table: 'public.tenants', severity: 'low' },
  { check: 'foreign-key-without-tenant', table: 'public.messages', severity: 'medium' },
];

/** The hardened chat scenario's run, one per target, shared by the tests that read it. */
const chatRuns = new Map<string, Promise<CliRun>>();
function auditChat(args: string[]): Promise<CliRun> {
  const key = args.join(' ');
  if (!chatRuns.has(key)) chatRuns.set(key, runCli(['run', 'scenarios/chat.yaml', '--quiet', ...args]));
  return chatRuns.get(key)!;
}

describe.each(TARGETS)('rls-audit run on $name', ({ args }) => {
  it('passes the hardened chat scenario', async () => {
    const run = await auditChat(args);
    expect(run.err).toBe('');
    expect(run.code).toBe(0);
    expect(run.report!.findings).toEqual([]);
    expect(run.report!.summary.probes.pass).toBeGreaterThan(20);
    expect(run.report!.relations.map((relation) => relation.seeding?.status)).toEqual(['seeded', 'seeded', 'seeded', 'seeded']);
  });

  // (Moved from write-probes.test.ts, which audited the same scenario with the same arguments.)
  it('the hardened chat scenario passes every write probe', async () => {
    const run = await auditChat(args);
    const writes = ['foreign-insert', 'foreign-update', 'foreign-delete', 'blind-update', 'blind-delete', 'tenant-reassignment', 'cross-tenant-reference'];
    const records = run.report!.probes.filter((probe) => writes.includes(probe.check));
    expect(new Set(records.map((probe) => probe.check))).toEqual(new Set(writes));
    expect(records.map((probe) => probe.outcome)).toEqual(records.map(() => 'pass'));
    expect(run.report!.findings).toEqual([]);
  });

  it.each(VULNERABLE)('flags $fixture', async ({ fixture, flags }) => {
    const run = await auditFixture(fixture, args);
    expect(run.err).toBe('');
    expect(run.code).toBe(1);
    for (const flag of flags ?? []) {
      expect(findingsOf(run)).toContainEqual(expect.objectContaining(flag));
    }
    for (const finding of run.report!.findings) {
      if (finding.source === 'probe' && objectSubject(finding.object) !== 'app_user') expect(finding.evidence.sql).toMatch(/set local role "app_user"/);
      expect(finding.evidence.sql.length).toBeGreaterThan(10);
      expect(finding.fix.length).toBeGreaterThan(10);
    }
  });

  it.each(SECURE)('does not flag $fixture', async ({ fixture, flags }) => {
    const run = await auditFixture(fixture, args);
    expect(run.err).toBe('');
    expect(findingsOf(run).filter((finding) => atLeast(finding.severity as Severity, 'medium'))).toEqual([]);
    expect(run.code).toBe(0);
    for (const flag of flags ?? []) expect(findingsOf(run)).toContainEqual(expect.objectContaining(flag));
    expect(run.report!.summary.probes.pass).toBeGreaterThan(0);
  });

  it('follows a context set through a JSON setting read by a function (Supabase style), and finds nothing to report', async () => {
    const run = await runCli([
      'run', '--schema', path.join(FIXTURES, 'jwt-claims', 'schema.sql'), '--role', 'authenticated', '--seed', '7', '--quiet', ...args,
      '--setting', 'request.jwt.claims', '--context-sql', "select set_config('request.jwt.claims', json_build_object('tenant_id', $1)::text, true)",
    ]);
    expect(run.err).toBe('');
    expect(run.code).toBe(0);
    expect(findingsOf(run).filter((finding) => atLeast(finding.severity as Severity, 'low'))).toEqual([]);
    expect(run.report!.relations.find((relation) => relation.name === 'public.tasks')!.tenancy).toBe('fk-path');
    expect(run.report!.scenario.contextSql).toBe("select set_config('request.jwt.claims', json_build_object('tenant_id', $1::text)::text, true)");
    // Every tenant read its 20 tasks two foreign-key hops from the tenant, and nothing else.
    const tasks = run.report!.probes.filter((probe) => probe.check === 'read-isolation' && probe.relation === 'public.tasks');
    expect(tasks.map((probe) => [probe.outcome, probe.rows])).toEqual([['pass', 20], ['pass', 20], ['pass', 20]]);
  });

  it("reports the seed document's own schema without failing it at the default threshold", async () => {
    const run = await auditFixture('seed-original', args);
    expect(run.code).toBe(0);
    expect(findingsOf(run).filter((finding) => atLeast(finding.severity as Severity, 'high'))).toEqual([]);
    for (const flag of SEED_ORIGINAL) expect(findingsOf(run)).toContainEqual(expect.objectContaining(flag));
    // The same findings fail the run once the threshold comes down to them.
    const strict = await auditFixture('seed-original', [...args, '--fail-on', 'medium']);
    expect(strict.code).toBe(1);
    expect(strict.report!.summary).toMatchObject({ verdict: 'fail', failOn: 'medium' });
    expect(strict.report!.summary.failing).toBe(strict.report!.findings.filter((finding) => atLeast(finding.severity as Severity, 'medium')).length);
  });
});
