import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { atLeast, type Severity } from '../src/findings/severity.js';
import { FIXTURES, findingsOf, runCli, TARGETS } from './helpers.js';

/**
 * Real-world tenancy patterns, one schema each with a planted leak beside secure tables (the secure twin):
 * discovery needs at most --preset and --role, the leak is found, the secure tables have nothing at or above
 * medium, and every tenant's actor saw its own rows (no inconclusive reason).
 */
interface Pattern {
  fixture: string;
  args: string[];
  /** What discovery must have chosen, as report.scenario fields. */
  plan: Record<string, unknown>;
  leak: { check: string; table: string };
  secure: string[];
  /** Users belong to tenants through memberships: the user in two tenants and the user in none read too. */
  members?: true;
}

const PATTERNS: Pattern[] = [
  {
    fixture: 'supabase-teams',
    args: ['--preset', 'supabase'],
    plan: { role: 'authenticated', tenantKey: 'public.teams.id uuid', tenantColumns: ['team_id'] },
    leak: { check: 'read-isolation', table: 'public.documents' },
    secure: ['public.teams', 'public.team_members', 'public.projects'],
    members: true,
  },
  {
    fixture: 'supabase-per-user',
    args: ['--preset', 'supabase'],
    plan: { role: 'authenticated', tenantKey: 'auth.users.id uuid' },
    leak: { check: 'read-isolation', table: 'public.notes' },
    secure: ['public.profiles', 'public.todos'],
  },
  {
    fixture: 'jwt-app-metadata',
    args: ['--preset', 'supabase'],
    plan: { role: 'authenticated', tenantKey: 'public.tenants.id uuid' },
    leak: { check: 'read-isolation', table: 'public.payments' },
    secure: ['public.tenants', 'public.invoices'],
  },
  {
    fixture: 'postgrest',
    args: ['--preset', 'postgrest'],
    plan: { role: 'api_user', tenantKey: 'data.tenants.id integer' },
    leak: { check: 'blind-update', table: 'api.tags' },
    secure: ['api.todos', 'data.todos'],
  },
  {
    fixture: 'role-per-tenant',
    args: ['--role', 'app_tenants'],
    plan: { setting: 'role', tenantKey: 'public.tenants.name text' },
    leak: { check: 'read-isolation', table: 'public.reports' },
    secure: ['public.accounts'],
  },
  {
    fixture: 'tenant-key-not-pk',
    args: ['--role', 'app_user'],
    plan: { setting: 'app.tenant_id', tenantKey: 'public.tenants.tenant_id uuid' },
    leak: { check: 'read-isolation', table: 'public.milestones' },
    secure: ['public.tenants', 'public.projects'],
  },
  {
    fixture: 'escape-hatch',
    args: ['--role', 'app_user'],
    plan: { setting: 'app.current_company_id' },
    leak: { check: 'spoofable-setting', table: 'public.payslips' },
    secure: [],
  },
  {
    fixture: 'escape-hatch-secure',
    args: ['--role', 'app_user'],
    plan: { setting: 'app.current_company_id' },
    leak: { check: '', table: '' },
    secure: ['public.companies', 'public.employees', 'public.payslips'],
  },
  {
    fixture: 'django-int-cast',
    args: ['--role', 'app_user'],
    plan: { setting: 'app.tenant_id', tenantKey: 'public.tenants_tenant.id integer' },
    leak: { check: 'read-isolation', table: 'public.orders_invoice' },
    secure: ['public.tenants_tenant', 'public.orders_order'],
  },
];

describe.each(TARGETS)('tenancy patterns on $name', ({ args: targetArgs }) => {
  it.each(PATTERNS)('$fixture: discovered, leak found, secure tables clean', async ({ fixture, args, plan, leak, secure, members }) => {
    const out = await mkdtemp(path.join(os.tmpdir(), 'rls-audit-pattern-'));
    const schema = path.join(FIXTURES, 'tenancy', `${fixture}.sql`);
    const run = await runCli(['run', '--schema', schema, '--seed', '7', '--quiet', '--out', out, ...args, ...targetArgs]);
    expect(run.err).not.toMatch(/unexpected error/);
    expect(run.report, run.err).not.toBeNull();
    const report = run.report!;
    expect(report.scenario).toMatchObject(plan);
    expect(report.summary.inconclusive).toEqual([]);
    if (leak.check) {
      expect(run.code).toBe(1);
      expect(findingsOf(run).map((finding) => [finding.check, finding.table])).toContainEqual([leak.check, leak.table]);
    } else {
      expect(run.code).toBe(0);
    }
    const onSecure = findingsOf(run).filter((finding) => secure.includes(finding.table) && atLeast(finding.severity as Severity, 'medium'));
    expect(onSecure.map((finding) => `${finding.check} ${finding.table}: ${finding.message}`)).toEqual([]);
    // Every tenant read its own rows of every secure table it may read, and nothing else.
    const reads = report.probes.filter((probe) => probe.check === 'read-isolation' && secure.includes(probe.relation));
    for (const probe of reads) expect([probe.relation, probe.context, probe.foreignRows, probe.rows > 0]).toEqual([probe.relation, probe.context, 0, true]);
    // The user in two tenants sees exactly both tenants' rows of every secure table; the user in none sees none.
    const extra = (check: string) => report.probes.filter((probe) => probe.check === check && secure.includes(probe.relation));
    expect(extra('member-of-two-tenants').length).toBe(members ? secure.length : 0);
    for (const probe of extra('member-of-two-tenants')) expect([probe.relation, probe.outcome, probe.foreignRows, probe.missingOwnRows]).toEqual([probe.relation, 'pass', 0, 0]);
    for (const probe of extra('no-membership-user')) expect([probe.relation, probe.outcome, probe.rows]).toEqual([probe.relation, 'pass', 0]);
    // fix.sql speaks the pattern's own context (claims, memberships, roles), applies after the schema, and
    // leaves nothing at or above low, nor a context that proves nothing.
    if (leak.check && !targetArgs.length) {
      const fixed = await runCli(['run', '--schema', schema, path.join(out, 'fix.sql'), '--seed', '7', '--quiet', '--out', path.join(out, 'fixed'), ...args]);
      expect(fixed.err).toBe('');
      expect(findingsOf(fixed).filter((finding) => atLeast(finding.severity as Severity, 'low')).map((finding) => `${finding.check} ${finding.table}: ${finding.message}`)).toEqual([]);
      expect(fixed.code).toBe(0);
    }
    await rm(out, { recursive: true, force: true });
  });
});
