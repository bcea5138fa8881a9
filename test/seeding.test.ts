import { describe, expect, it } from 'vitest';
import path from 'node:path';
import { auditFixture, FIXTURES, runCli, TARGETS } from './helpers.js';

describe.each(TARGETS)('seeding on $name', ({ args }) => {
  it('satisfies types, domains, enums, regex and length checks, FK paths; reports what it cannot seed as unreliable', async () => {
    const run = await auditFixture('seeding', args);
    // A tenant-owned table nothing can be inserted into proves nothing: inconclusive (exit 2), never a pass.
    expect(run.code).toBe(2);
    expect(run.report!.summary.verdict).toBe('inconclusive');
    expect(run.report!.summary.inconclusive.map((reason) => reason.relation)).toContain('public.impossible');
    const report = run.report!;
    const status = Object.fromEntries(report.relations.map((relation) => [relation.name, relation.seeding?.status]));
    expect(status).toEqual({
      'public.accounts': 'seeded',
      'public.accounts_notes': 'seeded',
      'public.comments': 'seeded',
      'public.impossible': 'failed',
      'public.tenants': 'seeded',
    });
    expect(report.relations.find((relation) => relation.name === 'public.comments')!.path).toBe(
      'public.comments(note_id) -> public.accounts_notes, public.accounts_notes(account_id) -> public.accounts',
    );
    expect(report.notes.join('\n')).toMatch(/public\.impossible was not seeded: .*impossible_check/);
    const impossible = report.probes.filter((probe) => probe.relation === 'public.impossible' && ['read-isolation', 'missing-context'].includes(probe.check));
    expect(impossible.length).toBeGreaterThan(0);
    expect(impossible.every((probe) => probe.outcome === 'unreliable')).toBe(true);
    // Every tenant sees exactly its own rows, two foreign-key hops away from the tenant column.
    const comments = report.probes.filter((probe) => probe.relation === 'public.comments' && probe.check === 'read-isolation');
    expect(comments.map((probe) => [probe.outcome, probe.rows, probe.missingOwnRows])).toEqual([['pass', 20, 0], ['pass', 20, 0], ['pass', 20, 0]]);
  });

  it('is reproducible from --seed', async () => {
    const [first, second] = await Promise.all([auditFixture('seeding', args), auditFixture('seeding', args)]);
    expect(first.report!.tenants).toEqual(second.report!.tenants);
  });
});

describe('a relation the scenario accepts as unseeded', () => {
  it('is reported as accepted, with its reason, and does not make the run inconclusive', async () => {
    const run = await runCli(['run', path.join(FIXTURES, 'seeding', 'accepted.yaml'), '--quiet']);
    expect(run.code).toBe(0);
    expect(run.report!.notes).toContain('public.impossible not seeded for tenant A, tenant B, tenant C, accepted by the scenario: its CHECK contradicts itself, so no row can exist and there is nothing to audit');
    expect(run.report!.summary.verdict).toBe('pass');
  });
});
