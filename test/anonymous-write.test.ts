import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { atLeast } from '../src/findings/severity.js';
import { PRESETS } from '../src/presets/index.js';
import { allFindings, applySql, expectNoFalseAlarm, FIXTURES, FixtureCluster, runCli } from './helpers.js';

/**
 * The blind UPDATE and DELETE as the platform's anonymous role (issue 18, "also as the anonymous role where it holds
 * privileges"): a request without credentials that changes or deletes tenant rows is critical. Supabase grants anon
 * UPDATE and DELETE on every new table, in the vulnerable fixtures and their secure twins alike: only the policies differ.
 */
const CASES = [
  {
    check: 'anonymous-update',
    table: 'public.bookings',
    policy: 'guests confirm bookings',
    statement: /update "public"\."bookings" set "\w+" = '[^']*'::\w+;/,
    message: /^Without credentials, as anon, update "public"\."bookings" set "\w+" = <constant> \(no WHERE\) updates 60 rows: \d+ rows of tenant A, \d+ of tenant B, \d+ of tenant C: the permissive policy guests confirm bookings \(for update to anon, authenticated using true\) applies to anon/,
    details: /^Changed \(rows now holding the constant, counted by the administrator before and after in the same rolled-back savepoint\): \d+ rows of tenant A, \d+ of tenant B, \d+ of tenant C\./,
  },
  {
    check: 'anonymous-delete',
    table: 'public.subscribers',
    policy: 'readers unsubscribe',
    statement: /delete from "public"\."subscribers";/,
    message: /^Without credentials, as anon, delete from "public"\."subscribers" \(no WHERE\) deletes 60 rows: 20 rows of tenant A, 20 of tenant B, 20 of tenant C: the permissive policy readers unsubscribe \(for delete to public using true\) applies to anon/,
    details: /^Deleted \(counted by the administrator before and after in the same rolled-back savepoint\): 20 rows of tenant A, 20 of tenant B, 20 of tenant C\./,
  },
];

const audit = (folder: string, file: string) => runCli(['run', '--schema', path.join(FIXTURES, folder, file), '--preset', 'supabase', '--seed', '7', '--quiet']);

describe('writes without credentials', () => {
  it.each(CASES)('$check: anon rewrites every tenant\'s $table (critical); the twin whose policy is to authenticated passes', async (entry) => {
    const vulnerable = await audit(entry.check, 'vulnerable.sql');
    expect(vulnerable.err).not.toMatch(/unexpected error/);
    expect(vulnerable.report!.summary.inconclusive).toEqual([]);
    expect(vulnerable.code).toBe(1);
    const found = allFindings(vulnerable.report!.findings).filter((finding) => finding.check === entry.check);
    expect(found.map((finding) => finding.table)).toEqual([entry.table]);
    const finding = found[0]!;
    expect(finding.severity).toBe('critical');
    expect(finding.message).toMatch(entry.message);
    // The statement as anon, nothing set (no claims, no tenant), rolled back.
    expect(finding.evidence.sql).toMatch(new RegExp(`^-- a request without credentials, on a new connection\\nbegin;\\nset local role "anon";\\n${entry.statement.source}\\nrollback;$`));
    expect(finding.evidence.sql).not.toMatch(/set_config|request\.jwt/);
    expect(finding.evidence.context).toBe("role anon (the platform's anonymous role), nothing set: a request without credentials");
    expect(finding.evidence.rowCount).toBe(60);
    expect(finding.evidence.details).toMatch(entry.details);
    // The defect is the policy: the finding speaking for it is critical.
    const defect = vulnerable.report!.findings.find((candidate) => candidate === finding || [...(candidate.confirmedBy ?? [])].some((linked) => linked.check === entry.check));
    expect(defect!.severity).toBe('critical');
    const record = vulnerable.report!.probes.find((probe) => probe.check === entry.check && probe.relation === entry.table)!;
    expect(record).toMatchObject({ context: 'anonymous (anon)', tenant: null, outcome: 'leak', rows: 60 });
    // No insert is made as anon.
    expect(vulnerable.report!.probes.some((probe) => probe.context === 'anonymous (anon)' && /^insert/i.test(probe.sql))).toBe(false);

    const secure = await audit(entry.check, 'secure.sql');
    // secure-fixtures.test.ts's assertions, on this audit (its expect.yaml: auditedBy).
    expectNoFalseAlarm(secure);
    expect(secure.report!.summary.inconclusive).toEqual([]);
    expect(allFindings(secure.report!.findings).filter((candidate) => atLeast(candidate.severity, 'medium')).map((candidate) => `${candidate.check}: ${candidate.message}`)).toEqual([]);
    expect(secure.code).toBe(0);
    // anon still holds the privilege, so the statement ran as anon, and changed nothing.
    const probed = secure.report!.probes.filter((probe) => probe.check === entry.check && probe.relation === entry.table);
    expect(probed.length).toBe(1);
    expect(probed[0]).toMatchObject({ context: 'anonymous (anon)', outcome: 'pass', rows: 0, foreignRows: 0 });
  });
});

describe('writes without credentials on a live database', () => {
  it('are bounded to one row the audit inserted (WHERE CURRENT OF), proven there, and leave the application\'s rows alone', async () => {
    const cluster = await FixtureCluster.start();
    try {
      await cluster.withDatabase([], async ({ target, client }) => {
        await applySql(client, PRESETS.supabase.setupSql!);
        await applySql(
          client,
          `create table public.organisations (id bigint generated always as identity primary key, name text not null);
           create table public.org_members (
             org_id bigint not null references public.organisations (id) on delete cascade,
             user_id uuid not null references auth.users (id) on delete cascade,
             primary key (org_id, user_id));
           create table public.notes (id bigint generated always as identity primary key, org_id bigint not null references public.organisations (id), body text not null);
           create function public.in_org(_org bigint) returns boolean language sql stable security definer set search_path = '' as $$
             select exists (select 1 from public.org_members m where m.org_id = _org and m.user_id = (select auth.uid())) $$;
           alter table public.organisations enable row level security;
           alter table public.org_members enable row level security;
           alter table public.notes enable row level security;
           create policy "members see their organisations" on public.organisations for select to authenticated using (public.in_org(id));
           create policy "members see co-members" on public.org_members for select to authenticated using (public.in_org(org_id));
           create policy "members use notes" on public.notes for select to authenticated using (public.in_org(org_id));
           create policy "members add notes" on public.notes for insert to authenticated with check (public.in_org(org_id));
           create policy "anyone edits notes" on public.notes for update using (true);
           revoke truncate, trigger, references on all tables in schema public from anon, authenticated;
           insert into public.organisations (name) values ('the application''s own');
           insert into public.notes (org_id, body) values (1, 'an application row');`,
        );
        const run = await runCli(['run', '--database-url', target.connectionString, '--preset', 'supabase', '--seed', '7', '--quiet', '--allow-sequence-gaps']);
        expect(run.err).not.toMatch(/unexpected error/);
        const finding = allFindings(run.report!.findings).find((candidate) => candidate.check === 'anonymous-update' && candidate.table === 'public.notes')!;
        expect(finding.severity).toBe('critical');
        expect(finding.message).toMatch(/^Without credentials, as anon, update "public"\."notes" set "body" = <constant> \(no WHERE\) updates 1 row: 1 row of tenant A: the permissive policy anyone edits notes \(for update to public using true\) applies to anon/);
        // The cursor over one row of tenant A is declared as the superuser, before the role changes to anon.
        expect(finding.evidence.sql).toMatch(
          /^-- a request without credentials, on a new connection\nbegin;\ndeclare rls_audit_row cursor for select \* from "public"\."notes" where ctid = '[^']+'::tid and tableoid = '\d+'::oid;\nfetch rls_audit_row;  -- as the superuser: one row of a tenant, which the statement names with CURRENT OF\nset local role "anon";\nupdate "public"\."notes" set "body" = '[^']*'::text where current of rls_audit_row;\nrollback;$/,
        );
        expect(finding.evidence.details).toContain('bounded to one row of tenant A');
        expect((await client.query(`select body from public.notes order by id`)).rows).toEqual([{ body: 'an application row' }]);
      });
    } finally {
      await cluster.close();
    }
  }, 300_000);
});
