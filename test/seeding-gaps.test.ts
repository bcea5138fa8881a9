import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { FIXTURES, findingsOf, runCli, type CliRun } from './helpers.js';

/**
 * Clean schemas the seeder used to leave inconclusive (exit 2), each with a vulnerable twin that must still
 * fail: a generated column whose inputs overflowed it, array CHECKs, probe rows that broke a CHECK seeded rows
 * met, tenant ids beyond a helper's integer cast, an insert trigger that reads the tenant setting.
 */
const audit = (name: string) => runCli(['run', '--schema', path.join(FIXTURES, 'seeding-gaps', `${name}.sql`), '--role', 'app_user', '--seed', '7', '--quiet']);

/** A clean run: exit 0, verdict pass, nothing at medium or above, every listed relation seeded for every tenant. */
function expectClean(run: CliRun, relations: string[]): void {
  const report = run.report!;
  expect(report.summary.inconclusive).toEqual([]);
  expect(report.summary.verdict).toBe('pass');
  expect(run.code).toBe(0);
  expect(findingsOf(run).filter((finding) => ['critical', 'high', 'medium'].includes(finding.severity)).map((finding) => `${finding.check} ${finding.table}`)).toEqual([]);
  for (const name of relations) {
    const seeding = report.relations.find((relation) => relation.name === name)?.seeding;
    expect({ name, status: seeding?.status, reason: seeding?.reason }).toEqual({ name, status: 'seeded', reason: null });
    for (const tenant of report.tenants) expect({ name, tenant: tenant.id, rows: (seeding?.tenants[tenant.id] ?? 0) > 0 }).toEqual({ name, tenant: tenant.id, rows: true });
  }
}

/** A failing run whose leak on `relation` a probe proved (on seeded rows), not only a rule. */
function expectProvenLeak(run: CliRun, relation: string, probe: string): void {
  expect(run.report!.summary.verdict).toBe('fail');
  expect(run.code).toBe(1);
  expect(findingsOf(run, probe).filter((finding) => finding.table === relation && ['critical', 'high'].includes(finding.severity))).not.toEqual([]);
}

describe('seeding gaps: clean schemas pass, their vulnerable twins fail', () => {
  it('a generated column quantity * unit_price_cents gets inputs whose product fits bigint', async () => {
    const [secure, vulnerable] = await Promise.all([audit('generated-overflow-secure'), audit('generated-overflow-vulnerable')]);
    expectClean(secure, ['public.order_lines']);
    expectProvenLeak(vulnerable, 'public.order_lines', 'read-isolation');
  });

  it('array columns meet CHECKs with <@, @>, && and cardinality', async () => {
    const [secure, vulnerable] = await Promise.all([audit('array-check-secure'), audit('array-check-vulnerable')]);
    expectClean(secure, ['public.api_keys', 'public.webhooks']);
    expectProvenLeak(vulnerable, 'public.api_keys', 'read-isolation');
  });

  it("rows the write probes insert meet the table's CHECKs as seeded rows do, defaulted columns included", async () => {
    const [secure, vulnerable] = await Promise.all([audit('probe-check-secure'), audit('probe-check-vulnerable')]);
    expectClean(secure, ['public.invoices']);
    // The tenant's own row went in, and another tenant's row was refused by row-level security, not by the CHECK.
    const inserts = secure.report!.probes.filter((probe) => probe.check === 'foreign-insert' && probe.relation === 'public.invoices');
    expect(inserts.length).toBeGreaterThan(0);
    expect(inserts.every((probe) => probe.outcome === 'pass' && /row-level security/.test(probe.error ?? ''))).toBe(true);
    expect(inserts.every((probe) => probe.sql.includes('"issued_on"'))).toBe(true);
    // Without the tenant in its WITH CHECK, the insert of another tenant's invoice is proven by the probe.
    expectProvenLeak(vulnerable, 'public.invoices', 'foreign-insert');
  });

  it("tenant ids fit the integer a helper function casts the tenant setting to, though the keys are bigint", async () => {
    const [secure, vulnerable] = await Promise.all([audit('cast-range-secure'), audit('cast-range-vulnerable')]);
    expectClean(secure, ['public.tenants', 'public.projects']);
    for (const tenant of secure.report!.tenants) expect(BigInt(tenant.id) <= 2_147_483_647n).toBe(true);
    expectProvenLeak(vulnerable, 'public.projects', 'read-isolation');
  });

  it('a table whose insert trigger reads the tenant setting is seeded tenant by tenant with the context set', async () => {
    const [secure, vulnerable, failOpen] = await Promise.all([audit('trigger-context-secure'), audit('trigger-context-vulnerable'), audit('trigger-context-fail-open')]);
    expectClean(secure, ['public.documents']);
    expectProvenLeak(vulnerable, 'public.documents', 'read-isolation');
    // The context the seeder set does not hide the never-set state: it is observed on a fresh connection.
    const neverSet = failOpen.report!.probes.filter((probe) => probe.check === 'missing-context' && probe.relation === 'public.documents' && probe.context === 'never set');
    expect(neverSet.map((probe) => probe.outcome)).toEqual(['leak']);
    expect(failOpen.report!.summary.verdict).toBe('fail');
  });
});
