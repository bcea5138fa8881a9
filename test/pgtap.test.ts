import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { main } from '../src/cli.js';
import { PRESETS, type PresetName } from '../src/presets/index.js';
import { applySchemaFiles, readSchemaFiles } from '../src/target/schema-files.js';
import { startEmbedded } from '../src/target/embedded.js';
import { FIXTURES, PG15_BIN, runCli } from './helpers.js';

/**
 * `--format pgtap`: the audit as a pgTAP file that pg_prove runs on a database holding the schema. It passes
 * on a secure schema and fails, naming the relation, on its vulnerable twin. Needs PostgreSQL 15 with pgTAP
 * and pg_prove (Debian: postgresql-15-pgtap, libtap-parser-sourcehandler-pgtap-perl; .ci/run installs them).
 */
const PGTAP_CONTROL = '/usr/share/postgresql/15/extension/pgtap.control';
const missing = !existsSync(path.join(PG15_BIN, 'postgres'))
  ? `no PostgreSQL 15 in ${PG15_BIN}`
  : !existsSync(PGTAP_CONTROL)
    ? `pgTAP is not installed for PostgreSQL 15 (${PGTAP_CONTROL}): apt-get install postgresql-15-pgtap`
    : spawnSync('pg_prove', ['--version']).status !== 0
      ? 'pg_prove is not installed: apt-get install libtap-parser-sourcehandler-pgtap-perl'
      : null;

const dirs: string[] = [];
afterAll(async () => {
  await Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true })));
});

/** Audit `schema` on PostgreSQL 15 writing rls-audit.test.sql; then pg_prove it on a fresh database holding the schema. */
async function auditAndProve(schema: string, args: string[], preset?: PresetName) {
  const out = await mkdtemp(path.join(os.tmpdir(), 'rls-audit-pgtap-'));
  dirs.push(out);
  const run = await runCli(['run', '--schema', schema, ...args, '--format', 'pgtap', '--pg-bin', PG15_BIN, '--tenants', '2', '--rows', '3', '--seed', '7', '--quiet', '--out', out]);
  const testFile = path.join(out, 'rls-audit.test.sql');
  return { run, ...(await prove(testFile, schema, preset)) };
}

/** pg_prove `testFile` on a fresh PostgreSQL 15 holding the platform (a preset's) and `schema`. */
async function prove(testFile: string, schema: string, preset?: PresetName) {
  const target = await startEmbedded({ pgBin: PG15_BIN });
  try {
    const client = new pg.Client({ connectionString: target.connectionString });
    await client.connect();
    try {
      if (preset) await client.query(PRESETS[preset].setupSql!);
      await applySchemaFiles(await readSchemaFiles([schema]), (sql) => client.query(sql));
      await client.query('create extension pgtap');
    } finally {
      await client.end();
    }
    const url = new URL(target.connectionString);
    const prove = spawnSync('pg_prove', ['-h', url.searchParams.get('host')!, '-p', url.port, '-U', decodeURIComponent(url.username), '-d', url.pathname.slice(1), testFile], { encoding: 'utf8' });
    return { text: await readFile(testFile, 'utf8'), prove: { status: prove.status, output: `${prove.stdout}${prove.stderr}` } };
  } finally {
    await target.close();
  }
}

describe.skipIf(missing !== null)(`--format pgtap${missing ? ` (skipped: ${missing})` : ''}`, () => {
  it('passes under pg_prove on a secure schema: own rows read, no other tenant read or changed, nothing without a context', async () => {
    const { run, text, prove } = await auditAndProve(path.join(FIXTURES, 'pgtap', 'secure.sql'), ['--role', 'clinic_app']);
    expect(run.code, run.err).toBe(0);
    expect(text).toMatch(/^begin;\ncreate extension if not exists pgtap;\nselect plan\(\d+\);$/m);
    expect(text).toContain("'public.patients: tenant A reads its own rows'");
    expect(text).toContain("'public.patients: without a context reads no tenant''s row'");
    expect(text).toMatch(/\nselect \* from finish\(\);\nrollback;\n$/);
    expect(prove.output).toMatch(/All tests successful/);
    expect(prove.status).toBe(0);
  });

  it('fails under pg_prove on the vulnerable twin, naming the relation and what leaked', async () => {
    const { run, prove } = await auditAndProve(path.join(FIXTURES, 'pgtap', 'vulnerable.sql'), ['--role', 'clinic_app']);
    expect(run.code).toBe(1);
    expect(prove.status).not.toBe(0);
    const failed = [...prove.output.matchAll(/# Failed test \d+: "([^"]+)"/g)].map((match) => match[1]);
    expect(failed).toContain('public.patients: tenant A reads no row of another tenant');
    expect(failed).toContain('public.patients: tenant B updates no row of another tenant');
    expect(failed.filter((name) => !name!.startsWith('public.patients: '))).toEqual([]);
  });

  it('a Supabase project: the file sets the JWT claims as the preset does and passes on the platform plus migrations', async () => {
    const migrations = path.join(FIXTURES, 'projects', 'supabase', 'supabase', 'migrations');
    const { run, text, prove } = await auditAndProve(migrations, ['--preset', 'supabase'], 'supabase');
    expect(run.code, run.err).toBe(0);
    expect(text).toContain("set_config('request.jwt.claims'");
    expect(text).toContain('set local role "anon";');
    expect(text).toMatch(/^insert into "auth"\."users" /m);
    expect(prove.output).toMatch(/All tests successful/);
    expect(prove.status).toBe(0);
  });
});

/** The CLI run in `cwd` as a user runs it there: no --out added (runCli adds one). */
async function cliIn(args: string[], cwd: string): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await main(args, { out: (text) => (out += text), err: (text) => (err += text), cwd });
  return { code, out, err };
}

describe.skipIf(missing !== null)(`--format pgtap in a Supabase project${missing ? ` (skipped: ${missing})` : ''}`, () => {
  it('with no other argument, the test goes in supabase/tests/ (where supabase test db runs it), passes there, and fails on a leaking migration', async () => {
    const parent = await mkdtemp(path.join(os.tmpdir(), 'rls-audit-pgtap-project-'));
    dirs.push(parent);
    const dir = path.join(parent, 'shop');
    await cp(path.join(FIXTURES, 'projects', 'supabase'), dir, { recursive: true });
    const args = ['run', '--format', 'pgtap', '--pg-bin', PG15_BIN, '--tenants', '2', '--rows', '3', '--seed', '7'];
    const run = await cliIn(args, dir);
    expect(run.code, run.err).toBe(0);
    const testFile = path.join(dir, 'supabase', 'tests', 'rls-audit.test.sql');
    expect(run.out).toContain('wrote supabase/tests/rls-audit.test.sql');
    expect(existsSync(path.join(dir, 'reports', 'shop', 'rls-audit.test.sql'))).toBe(false);
    const migrations = path.join(dir, 'supabase', 'migrations');
    const secure = await prove(testFile, migrations, 'supabase');
    expect(secure.prove.output).toMatch(/All tests successful/);
    expect(secure.prove.status).toBe(0);

    // A migration whose policy lets every signed-in user read every organization's invoices.
    await writeFile(
      path.join(migrations, '20240401090000_invoices.sql'),
      'create table public.invoices (id uuid primary key default extensions.uuid_generate_v4(), org_id uuid not null references public.organizations (id) on delete cascade, total_cents integer not null);\n' +
        'alter table public.invoices enable row level security;\n' +
        "create policy \"signed-in users read invoices\" on public.invoices for select to authenticated using ((select auth.role()) = 'authenticated');\n",
    );
    const leaking = await cliIn(args, dir);
    expect(leaking.code, leaking.err).toBe(1);
    const vulnerable = await prove(testFile, migrations, 'supabase');
    expect(vulnerable.prove.status).not.toBe(0);
    const failed = [...vulnerable.prove.output.matchAll(/# Failed test \d+: "([^"]+)"/g)].map((match) => match[1]!);
    expect(failed.length).toBeGreaterThan(0);
    expect(failed.filter((name) => !name.startsWith('public.invoices: '))).toEqual([]);
    expect(failed.some((name) => /^public\.invoices: .* reads no row of another tenant$/.test(name))).toBe(true);
  });
});

describe('--format pgtap outside run', () => {
  it('lint refuses it: nothing was seeded', async () => {
    const lint = await runCli(['lint', '--schema', path.join(FIXTURES, 'pgtap', 'secure.sql'), '--format', 'pgtap', '--quiet']);
    expect(lint.code).toBe(2);
    expect(lint.err).toMatch(/--format pgtap replays the tenants a run seeded: use it with `rls-audit run`; lint seeds nothing/);
  });
});
