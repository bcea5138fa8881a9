import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
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
    expect(run.err).toMatch(/^project: supabase\/ \(config\.toml, 2 migrations in supabase\/migrations\)\n/);
    expect(run.code, run.err).toBe(0);
    const report = await reportOf(dir, 'supabase');
    expect(report.scenario).toMatchObject({ name: 'supabase', role: 'authenticated', setting: 'request.jwt.claims', tenantKey: 'public.organizations.id uuid' });
    expect(report.summary.inconclusive).toEqual([]);
    const read = report.probes.filter((probe) => probe.check === 'read-isolation');
    expect(new Set(read.map((probe) => probe.relation))).toEqual(new Set(['public.organizations', 'public.org_members', 'public.tasks', 'public.api_keys']));
    for (const probe of read.filter((entry) => entry.context.startsWith('tenant '))) expect([probe.relation, probe.foreignRows, probe.rows > 0]).toEqual([probe.relation, 0, true]);

    const init = await cli(['init'], dir);
    expect(init.code, init.err).toBe(0);
    expect(init.err).toMatch(/^project: supabase\/ \(config\.toml, 2 migrations in supabase\/migrations\)\nwrote rls-audit\.yaml/);
    const text = await readFile(path.join(dir, 'rls-audit.yaml'), 'utf8');
    expect(text).toMatch(/^schema: .*\n {2}- supabase\/migrations\npreset: supabase +#/m);
    expect(text).toMatch(/^role: authenticated /m);
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
