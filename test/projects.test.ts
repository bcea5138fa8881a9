import { existsSync } from 'node:fs';
import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { main } from '../src/cli.js';
import type { Report } from '../src/report/model.js';
import { FIXTURES } from './helpers.js';

/**
 * Projects audited with no arguments: the CLI, run in a copy of test/fixtures/projects/<layout>, finds the
 * project's migrations (and its platform) in the working directory, says what it used, and audits it.
 */
const PROJECTS = path.join(FIXTURES, 'projects');
const copies: string[] = [];

async function project(layout: string): Promise<string> {
  const parent = await mkdtemp(path.join(os.tmpdir(), 'rls-audit-project-'));
  copies.push(parent);
  const dir = path.join(parent, layout);
  await cp(path.join(PROJECTS, layout), dir, { recursive: true });
  return dir;
}

async function cli(args: string[], cwd: string): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await main(args, { out: (text) => (out += text), err: (text) => (err += text), cwd });
  return { code, out, err };
}

const reportOf = async (dir: string, name: string) => JSON.parse(await readFile(path.join(dir, 'reports', name, 'report.json'), 'utf8')) as Report;

afterAll(async () => {
  await Promise.all(copies.map((dir) => rm(dir, { recursive: true, force: true })));
});

describe('projects audited with no arguments', () => {
  it('supabase: the platform before the migrations (extensions, auth, storage, realtime), then supabase/migrations in order', async () => {
    const dir = await project('supabase');
    const run = await cli(['run'], dir);
    expect(run.err).toMatch(/^project: supabase\/ \(config\.toml, API schemas public, graphql_public, 2 migrations in supabase\/migrations\)\n/);
    expect(run.code, run.err).toBe(0);
    const report = await reportOf(dir, 'supabase');
    expect(report.scenario).toMatchObject({ name: 'supabase', role: 'authenticated', setting: 'request.jwt.claims', tenantKey: 'public.organizations.id uuid' });
    expect(report.summary.inconclusive).toEqual([]);
    const read = report.probes.filter((probe) => probe.check === 'read-isolation');
    expect(new Set(read.map((probe) => probe.relation))).toEqual(new Set(['public.organizations', 'public.org_members', 'public.tasks', 'public.api_keys']));
    for (const probe of read.filter((entry) => entry.context.startsWith('tenant '))) expect([probe.relation, probe.foreignRows, probe.rows > 0]).toEqual([probe.relation, 0, true]);

    const init = await cli(['init'], dir);
    expect(init.code, init.err).toBe(0);
    expect(init.err).toMatch(/^project: supabase\/ \(config\.toml, API schemas public, graphql_public, 2 migrations in supabase\/migrations\)\nwrote rls-audit\.yaml/);
    const text = await readFile(path.join(dir, 'rls-audit.yaml'), 'utf8');
    expect(text).toMatch(/^schema: .*\n {2}- supabase\/migrations\npreset: supabase +#/m);
    expect(text).toMatch(/^role: authenticated /m);
    expect(text).toMatch(/^apiSchemas: \[public, graphql_public\]|^apiSchemas:\n  - public\n  - graphql_public/m);
  });

  it('postgrest: postgrest.conf gives the preset, the anonymous role and the authenticator; migrations/ the SQL', async () => {
    const dir = await project('postgrest');
    const run = await cli(['run'], dir);
    expect(run.err).toMatch(/^project: postgrest\.conf \(preset postgrest; anonymous role api_anonymous, authenticator api_login, schemas api\) with migrations\/ \(2 migrations, by name\)\n/);
    expect(run.code, run.err).toBe(0);
    const report = await reportOf(dir, 'postgrest');
    // api_member: the role api_login switches to that is not the anonymous one (neither is a common name).
    expect(report.scenario).toMatchObject({ role: 'api_member', setting: 'request.jwt.claims', tenantKey: 'data.clinics.id bigint' });
    expect(report.scenario.contextSql).toContain("set_config('request.jwt.claim.role', current_user, true)");
    expect(report.scenario.contextSql).toContain("set_config('request.jwt.claim.clinic_id', $1::text, true)");
    expect(report.probes.some((probe) => probe.context === 'anonymous (api_anonymous)')).toBe(true);
    expect(report.summary.inconclusive).toEqual([]);

    const init = await cli(['init'], dir);
    expect(init.code, init.err).toBe(0);
    const text = await readFile(path.join(dir, 'rls-audit.yaml'), 'utf8');
    expect(text).toMatch(/^ {2}- migrations\npreset: postgrest +#.*\nanonymousRole: api_anonymous +# .*\nauthenticator: api_login +# .*\n/m);
    expect(text).toMatch(/^role: api_member /m);
    expect(text).toMatch(/^apiSchemas: \[api\] +# what the API exposes/m);
  });

  it('prisma: lint finds prisma/migrations/*/migration.sql in order', async () => {
    const dir = await project('prisma');
    const lint = await cli(['lint'], dir);
    expect(lint.err).toMatch(/^project: prisma\/migrations \(2 migrations\)\n/);
    expect(lint.code, lint.err).toBe(0);
    expect((await reportOf(dir, 'prisma')).scenario).toMatchObject({ role: 'app_user', setting: 'app.workspace_id', tenantKey: 'public.workspaces.id integer' });
  });

  it.each([
    { layout: 'prisma', found: 'prisma/migrations (2 migrations)', schema: ['prisma/migrations/20240105101500_init/migration.sql', 'prisma/migrations/20240112093000_row_level_security/migration.sql'], role: 'app_user' },
    { layout: 'drizzle', found: 'drizzle/ (2 migrations in the order of drizzle/meta/_journal.json)', schema: ['drizzle/0000_steady_falcon.sql', 'drizzle/0001_quiet_otter.sql'], role: 'app_user' },
    { layout: 'rails', found: 'db/structure.sql', schema: ['db/structure.sql'], role: 'rails_app' },
    // The .down.sql beside each migration are left out, so the files are listed one by one.
    { layout: 'migrations', found: 'migrations/ (2 migrations, by name)', schema: ['migrations/001_stores.up.sql', 'migrations/002_row_level_security.up.sql'], role: 'shop_app' },
  ])('$layout: init writes what it found into rls-audit.yaml, which run then uses', async ({ layout, found, schema, role }) => {
    const dir = await project(layout);
    const init = await cli(['init'], dir);
    expect(init.err.split('\n')[0]).toBe(`project: ${found}`);
    expect(init.code, init.err).toBe(0);
    const text = await readFile(path.join(dir, 'rls-audit.yaml'), 'utf8');
    expect(text).toContain(`schema:${' '.repeat(38)}# applied in order, as the superuser, on a throwaway PostgreSQL\n${schema.map((file) => `  - ${file}\n`).join('')}role: ${role} `);
    expect(text).toMatch(new RegExp(`^name: ${layout} `, 'm'));
    expect(text).not.toMatch(/^preset:/m);

    const run = await cli(['run', '--tenants', '2', '--rows', '5'], dir);
    expect(run.err).toMatch(/^config: rls-audit\.yaml\n/);
    expect(run.err).not.toMatch(/^project:/m);
    expect(run.code, run.err).toBe(0);
    const report = await reportOf(dir, layout);
    expect(report.summary.verdict).toBe('pass');
    expect(report.scenario.role).toBe(role);
  });

  /**
   * Each layout with one more migration, written the way its tool lays it out, that adds a table whose rows leak
   * across tenants: `rls-audit run` with no argument finds the project, discovers the role, proves the leak
   * (exit 1), and finds nothing at medium or above on the project's own (correct) tables.
   */
  const LEAKS: { layout: string; leaking: string; role: string; add(dir: string): Promise<void>; also?(report: Report): void }[] = [
    {
      layout: 'supabase',
      leaking: 'public.invoices',
      role: 'authenticated',
      // A policy that lets in every signed-in user, on a table whose id comes from extensions.uuid_generate_v4().
      add: (dir) =>
        writeFile(
          path.join(dir, 'supabase', 'migrations', '20240401090000_invoices.sql'),
          'create table public.invoices (id uuid primary key default extensions.uuid_generate_v4(), org_id uuid not null references public.organizations (id) on delete cascade, total_cents integer not null);\n' +
            'create index invoices_org_id_idx on public.invoices (org_id);\n' +
            'alter table public.invoices enable row level security;\n' +
            'create policy "signed-in users read invoices" on public.invoices for select to authenticated using ((select auth.role()) = \'authenticated\');\n' +
            'alter publication supabase_realtime add table public.invoices;\n',
        ),
    },
    {
      layout: 'postgrest',
      leaking: 'data.prescriptions',
      role: 'api_member',
      // Row-level security never enabled; the API reaches the table through a view in api. The same mistake on
      // data.staff_notes, which no view or function in api (postgrest.conf's db-schemas) reaches: info, said why.
      add: (dir) =>
        writeFile(
          path.join(dir, 'migrations', '0003_prescriptions.sql'),
          'create table data.prescriptions (id bigint generated always as identity primary key, clinic_id bigint not null references data.clinics (id), drug text not null);\n' +
            'create index prescriptions_clinic_id_idx on data.prescriptions (clinic_id);\n' +
            'create view api.prescriptions with (security_invoker = true) as select id, clinic_id, drug from data.prescriptions;\n' +
            'grant select, insert, update, delete on data.prescriptions, api.prescriptions to api_member;\n' +
            'create table data.staff_notes (id bigint generated always as identity primary key, clinic_id bigint not null references data.clinics (id), note text not null);\n' +
            'create index staff_notes_clinic_id_idx on data.staff_notes (clinic_id);\n' +
            'grant select, insert, update, delete on data.staff_notes to api_member;\n',
        ),
      also: (report) => {
        expect(report.notes).toContainEqual(expect.stringMatching(/^the API exposes api \(apiSchemas\): data\.clinics, data\.staff_notes are reached by nothing exposed there, so findings on them are info$/));
        const onNotes = report.findings.filter((finding) => finding.object.name === 'data.staff_notes');
        expect(onNotes.map((finding) => finding.check)).toContain('rls-disabled');
        for (const finding of onNotes) {
          expect(finding.severity).toBe('info');
          expect(finding.message).toMatch(/Info here: data\.staff_notes is not reachable through the API: it exposes only schema api, and no view, function or trigger reached from there reads it \(apiSchemas\)\.$/);
        }
        // Proved on data all the same: the evidence stays.
        expect(report.probes.some((probe) => probe.check === 'read-isolation' && probe.relation === 'data.staff_notes' && probe.foreignRows > 0)).toBe(true);
      },
    },
    {
      layout: 'prisma',
      leaking: 'public.payments',
      role: 'app_user',
      // prisma migrate dev's own migration, granted by hand, row-level security forgotten.
      add: async (dir) => {
        const migration = path.join(dir, 'prisma', 'migrations', '20240201120000_payments');
        await mkdir(migration);
        await writeFile(
          path.join(migration, 'migration.sql'),
          '-- CreateTable\nCREATE TABLE "payments" (\n    "id" SERIAL NOT NULL,\n    "workspace_id" INTEGER NOT NULL,\n    "amount_cents" INTEGER NOT NULL,\n\n    CONSTRAINT "payments_pkey" PRIMARY KEY ("id")\n);\n\n' +
            'CREATE INDEX "payments_workspace_id_idx" ON "payments"("workspace_id");\n\n' +
            'ALTER TABLE "payments" ADD CONSTRAINT "payments_workspace_id_fkey" FOREIGN KEY ("workspace_id") REFERENCES "workspaces"("id") ON DELETE RESTRICT ON UPDATE CASCADE;\n\n' +
            'GRANT SELECT, INSERT, UPDATE, DELETE ON "payments" TO app_user;\nGRANT USAGE ON SEQUENCE "payments_id_seq" TO app_user;\n',
        );
      },
    },
    {
      layout: 'drizzle',
      leaking: 'public.attachments',
      role: 'app_user',
      // A new journal entry whose policy checks that a tenant is set, not which one.
      add: async (dir) => {
        const journalFile = path.join(dir, 'drizzle', 'meta', '_journal.json');
        const journal = JSON.parse(await readFile(journalFile, 'utf8')) as { entries: { idx: number; version: string; when: number; tag: string; breakpoints: boolean }[] };
        journal.entries.push({ idx: 2, version: '7', when: 1714200000000, tag: '0002_brave_heron', breakpoints: true });
        await writeFile(journalFile, JSON.stringify(journal, null, 2));
        await writeFile(
          path.join(dir, 'drizzle', '0002_brave_heron.sql'),
          'CREATE TABLE IF NOT EXISTS "attachments" (\n\t"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,\n\t"account_id" uuid NOT NULL,\n\t"file_name" text NOT NULL\n);\n--> statement-breakpoint\n' +
            'ALTER TABLE "attachments" ADD CONSTRAINT "attachments_account_id_accounts_id_fk" FOREIGN KEY ("account_id") REFERENCES "public"."accounts"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint\n' +
            'CREATE INDEX IF NOT EXISTS "attachments_account_id_idx" ON "attachments" USING btree ("account_id");--> statement-breakpoint\n' +
            'GRANT SELECT, INSERT, UPDATE, DELETE ON "attachments" TO "app_user";--> statement-breakpoint\n' +
            'ALTER TABLE "attachments" ENABLE ROW LEVEL SECURITY;--> statement-breakpoint\n' +
            'CREATE POLICY "account_isolation" ON "attachments" AS PERMISSIVE FOR ALL TO "app_user" USING (nullif(current_setting(\'app.account_id\', true), \'\') IS NOT NULL);\n',
        );
      },
    },
    {
      layout: 'rails',
      leaking: 'public.ticket_comments',
      role: 'rails_app',
      // db:structure:dump after a migration that added a table reached through tickets, with a policy open to all.
      add: async (dir) => {
        const file = path.join(dir, 'db', 'structure.sql');
        const dump = await readFile(file, 'utf8');
        const added =
          'CREATE TABLE public.ticket_comments (\n    id bigint NOT NULL,\n    ticket_id bigint NOT NULL,\n    body text NOT NULL\n);\n\n' +
          'CREATE SEQUENCE public.ticket_comments_id_seq START WITH 1 INCREMENT BY 1 NO MINVALUE NO MAXVALUE CACHE 1;\nALTER SEQUENCE public.ticket_comments_id_seq OWNED BY public.ticket_comments.id;\n' +
          "ALTER TABLE ONLY public.ticket_comments ALTER COLUMN id SET DEFAULT nextval('public.ticket_comments_id_seq'::regclass);\n" +
          'ALTER TABLE ONLY public.ticket_comments ADD CONSTRAINT ticket_comments_pkey PRIMARY KEY (id);\n' +
          'CREATE INDEX index_ticket_comments_on_ticket_id ON public.ticket_comments USING btree (ticket_id);\n' +
          'ALTER TABLE ONLY public.ticket_comments ADD CONSTRAINT fk_rails_9c1d2e3f4a FOREIGN KEY (ticket_id) REFERENCES public.tickets(id);\n' +
          'ALTER TABLE public.ticket_comments ENABLE ROW LEVEL SECURITY;\n' +
          'CREATE POLICY comments_visible ON public.ticket_comments USING (true);\n' +
          'GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE public.ticket_comments TO rails_app;\n' +
          'GRANT SELECT, USAGE ON SEQUENCE public.ticket_comments_id_seq TO rails_app;\n\n';
        await writeFile(file, dump.replace('SET search_path TO "$user", public;', `${added}SET search_path TO "$user", public;`));
      },
    },
    {
      layout: 'migrations',
      leaking: 'public.refunds',
      role: 'shop_app',
      // golang-migrate's pair: the way up creates the table with a policy open to all, the way down drops it.
      add: async (dir) => {
        await writeFile(
          path.join(dir, 'migrations', '003_refunds.up.sql'),
          'CREATE TABLE refunds (\n  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,\n  store_id bigint NOT NULL REFERENCES stores (id),\n  amount_cents integer NOT NULL\n);\n' +
            'CREATE INDEX refunds_store_id_idx ON refunds (store_id);\n' +
            'GRANT SELECT, INSERT, UPDATE, DELETE ON refunds TO shop_app;\n' +
            'ALTER TABLE refunds ENABLE ROW LEVEL SECURITY;\n' +
            'CREATE POLICY refunds_visible ON refunds USING (true);\n',
        );
        await writeFile(path.join(dir, 'migrations', '003_refunds.down.sql'), 'DROP TABLE refunds;\n');
      },
    },
  ];

  it.each(LEAKS)('$layout: run with no argument proves the leak a new migration adds ($leaking), and nothing else', async ({ layout, leaking, role, add, also }) => {
    const dir = await project(layout);
    await add(dir);
    const run = await cli(['run', '--tenants', '2', '--rows', '4'], dir);
    expect(run.err).toMatch(/^project: /);
    expect(run.code, run.err).toBe(1);
    const report = await reportOf(dir, layout);
    expect(report.scenario.role).toBe(role);
    if (layout !== 'supabase' && layout !== 'postgrest') expect(report.notes).toContainEqual(expect.stringMatching(new RegExp(`^application role ${role}: the only role granted access to tenant data`)));
    expect(report.summary.inconclusive).toEqual([]);
    expect(report.summary.verdict).toBe('fail');
    const serious = report.findings.filter((finding) => ['critical', 'high', 'medium'].includes(finding.severity));
    const objects = (finding: (typeof serious)[number]) => [finding.object.name, ...(finding.affected ?? []).map((object) => object.name)];
    // Every serious finding concerns the leaking table (or the API's view of it); one of them is the read leak, proved on data.
    for (const finding of serious) expect(objects(finding).some((name) => name === leaking || name === leaking.replace(/^data\./, 'api.')), `${finding.check} on ${finding.object.name}`).toBe(true);
    const provedRead = (finding: (typeof serious)[number]) =>
      [finding, ...(finding.confirmedBy ?? [])].some((proof) => proof.check === 'read-isolation' && proof.object.name === leaking);
    expect(serious.some((finding) => finding.severity === 'critical' && finding.object.name === leaking && provedRead(finding)), JSON.stringify(serious.map((finding) => [finding.severity, finding.check, finding.object.name]))).toBe(true);
    // The actors saw their own rows everywhere: the pass on the other tables is proved, not assumed.
    const read = report.probes.filter((probe) => probe.check === 'read-isolation' && probe.context.startsWith('tenant ') && probe.relation !== leaking && !probe.relation.startsWith('api.'));
    expect(read.length).toBeGreaterThan(0);
    for (const probe of read.filter((entry) => entry.relation !== 'data.staff_notes')) expect([probe.relation, probe.foreignRows, probe.rows > 0]).toEqual([probe.relation, 0, true]);
    also?.(report);
  });

  it('several roles granted tenant data: the one granted the most without BYPASSRLS is audited, the others are named', async () => {
    const dir = await project('migrations');
    await writeFile(
      path.join(dir, 'migrations', '003_more_roles.up.sql'),
      'CREATE ROLE reporting NOLOGIN;\nGRANT SELECT ON stores, orders TO reporting;\nCREATE ROLE shop_admin NOLOGIN BYPASSRLS;\nGRANT ALL ON stores, orders TO shop_admin;\n',
    );
    const lint = await cli(['lint'], dir);
    expect(lint.code, lint.err).toBe(0);
    expect(lint.err).toMatch(
      /^note: application role shop_app: granted the most on tenant data of the 3 roles granted access to it, SELECT, INSERT, UPDATE, DELETE on 2 of 2 tenant-owned relation\(s\); not audited: reporting \(SELECT on 2 of 2 tenant-owned relation\(s\)\), shop_admin \(SELECT, INSERT, UPDATE, DELETE on 2 of 2 tenant-owned relation\(s\), BYPASSRLS\) \(discovered; audit another with --role NAME\)$/m,
    );
    expect((await reportOf(dir, 'migrations')).scenario.role).toBe('shop_app');
    // Only the BYPASSRLS role and a read-only one: the read-only one, for the reason said.
    await writeFile(path.join(dir, 'migrations', '004_drop_app.up.sql'), 'REVOKE ALL ON stores, orders FROM shop_app;\n');
    const second = await cli(['lint'], dir);
    expect(second.err).toMatch(/^note: application role reporting: the one without BYPASSRLS of the 2 roles granted access to it, SELECT on 2 of 2 /m);
  });

  it('no role but the owner is granted tenant data: the run stops (exit 2) and says why, never a pass', async () => {
    const dir = await project('prisma');
    const migration = path.join(dir, 'prisma', 'migrations', '20240112093000_row_level_security', 'migration.sql');
    const text = await readFile(migration, 'utf8');
    // The app connects as the owner: no role of its own, no grant.
    await writeFile(migration, text.replace(/^(CREATE ROLE|GRANT) .*\n/gm, ''));
    const run = await cli(['run'], dir);
    expect(run.code).toBe(2);
    expect(run.err).toMatch(/^rls-audit: no application role found: no role other than the owner of the tables \(\S+\) or a superuser is granted access to tenant data\. If the application connects as \S+, row-level security does not apply to it unless the tables FORCE ROW LEVEL SECURITY .*give it with --role NAME$/m);
    expect(existsSync(path.join(dir, 'reports'))).toBe(false);
  });

  it('a CREATE EXTENSION this build lacks stops with its name and how to audit with a PostgreSQL that has it', async () => {
    const dir = await project('supabase');
    await writeFile(path.join(dir, 'supabase', 'migrations', '20240401000000_embeddings.sql'), 'create extension if not exists vector with schema extensions;\ncreate table public.embeddings (id bigint primary key, embedding extensions.vector(3));\n');
    const lint = await cli(['lint', '--quiet'], dir);
    expect(lint.code).toBe(2);
    expect(lint.err).toMatch(/^rls-audit: \S*supabase\/migrations\/20240401000000_embeddings\.sql:1: the extension "vector" is not in this PostgreSQL build \(.*\)\. Audit with a PostgreSQL that has it: --pg-bin DIR/m);
  });

  it('a directory with no project says what it looks for', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'rls-audit-empty-'));
    copies.push(dir);
    const lint = await cli(['lint'], dir);
    expect(lint.code).toBe(2);
    expect(lint.err).toMatch(/nothing to audit: .*or run in a project directory \(rls-audit\.yaml, supabase\/, postgrest\.conf, prisma\/migrations, drizzle\/, db\/structure\.sql or migrations\/\)/);
  });
});
