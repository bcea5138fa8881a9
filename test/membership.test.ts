import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import pg from 'pg';
import { atLeast } from '../src/findings/severity.js';
import { startEmbedded } from '../src/target/embedded.js';
import { expectNoFalseAlarm, FIXTURES, findingsOf, runCli } from './helpers.js';

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
    // secure-fixtures.test.ts's assertions, on this audit (its expect.yaml: auditedBy).
    expectNoFalseAlarm(secure);
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
    expect(vulnerable.report!.probes.filter((probe) => probe.check === 'missing-context' && probe.context === 'anonymous (anon)').length).toBe(3);

    const dir = await mkdtemp(path.join(os.tmpdir(), 'rls-audit-anon-'));
    try {
      const secureFile = path.join(dir, 'secure.sql');
      await writeFile(secureFile, (await readFile(file, 'utf8')).replace('for select to anon using (true);', 'for select to anon using (false);'));
      const secure = await runCli(['run', '--schema', secureFile, '--preset', 'supabase', '--seed', '7', '--quiet']);
      expect(secure.code).toBe(0);
      expect(findingsOf(secure, 'missing-context')).toEqual([]);
      expect(secure.report!.probes.filter((probe) => probe.check === 'missing-context' && probe.context === 'anonymous (anon)').map((probe) => probe.outcome)).toEqual(['pass', 'pass', 'pass']);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('on a live database, the users and memberships the audit creates take no value from a sequence', () => {
  it('leaves every sequence where it was', async () => {
    const target = await startEmbedded();
    const dir = await mkdtemp(path.join(os.tmpdir(), 'rls-audit-live-members-'));
    const client = new pg.Client({ connectionString: target.connectionString });
    await client.connect();
    try {
      const user = "nullif(current_setting('app.user_id', true), '')::bigint";
      await client.query(`
        create role app_user nologin;
        create table orgs (id bigint generated always as identity primary key, name text not null);
        create table users (id bigint generated always as identity primary key, email text not null);
        create table memberships (id bigint generated always as identity primary key, org_id bigint not null references orgs (id), user_id bigint not null references users (id), unique (org_id, user_id));
        create table docs (id bigint generated always as identity primary key, org_id bigint not null references orgs (id), title text not null);
        alter table orgs enable row level security;
        alter table memberships enable row level security;
        alter table docs enable row level security;
        create policy own on memberships for select using (user_id = ${user});
        create policy member on orgs for select using (id in (select org_id from memberships where user_id = ${user}));
        create policy member on docs using (org_id in (select org_id from memberships where user_id = ${user})) with check (org_id in (select org_id from memberships where user_id = ${user}));
        grant select on orgs, users, memberships to app_user;
        grant select, insert, update, delete on docs to app_user;
        insert into orgs (name) values ('existing');
        insert into users (email) values ('someone@example.com');
        insert into memberships (org_id, user_id) values (1, 1);
        insert into docs (org_id, title) values (1, 'existing');`);
      const sequences = async () => (await client.query(`select sequencename, last_value::text from pg_sequences order by 1`)).rows;
      const before = await sequences();
      const scenario = path.join(dir, 'rls-audit.yaml');
      await writeFile(
        scenario,
        ['role: app_user', `contextSql: "select set_config('app.user_id', $user, true)"`, 'tenantTable: public.orgs', 'actor: { kind: user, usersTable: public.users, membershipTable: public.memberships }', 'seed: 3', ''].join('\n'),
      );
      const run = await runCli(['run', scenario, '--database-url', target.connectionString, '--quiet', '--out', path.join(dir, 'out')]);
      expect(run.err).not.toMatch(/unexpected error/);
      expect(run.report!.notes.join('\n')).toMatch(/actors: users of public\.users, members of tenants through public\.memberships/);
      expect(run.report!.probes.filter((probe) => probe.check === 'member-of-two-tenants').length).toBeGreaterThan(0);
      expect(run.report!.summary.inconclusive).toEqual([]);
      expect(await sequences()).toEqual(before);
    } finally {
      await client.end();
      await target.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
