import { spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { auditFixture, FIXTURES, PG15_BIN, ROOT, runCli } from './helpers.js';

async function tempSchema(sql: string): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'rls-audit-cli-'));
  const file = path.join(dir, 'schema.sql');
  await writeFile(file, sql);
  return file;
}

describe('bad input exits 2 with a message that says what to do, and no stack', () => {
  it('a missing schema file', async () => {
    const run = await runCli(['run', '--schema', 'no/such/file.sql', '--role', 'app_user']);
    expect(run.code).toBe(2);
    expect(run.err).toMatch(/cannot read schema file .*no\/such\/file\.sql/);
    expect(run.err).not.toMatch(/\n\s+at /);
  });

  it('a schema with a syntax error names the file and the line', async () => {
    const file = await tempSchema('create role app_user;\ncreate table tenants (id int primary key);\n\ncreate tabel oops (id int);\n');
    const run = await runCli(['run', '--schema', file, '--role', 'app_user', '--quiet']);
    expect(run.code).toBe(2);
    expect(run.err).toMatch(/schema\.sql:4: syntax error at or near "tabel"/);
  });

  it('an unknown role', async () => {
    const run = await auditFixture('rls-disabled', ['--role', 'ghost']);
    expect(run.code).toBe(2);
    expect(run.err).toMatch(/role ghost does not exist/);
  });

  it('a scenario with a wrong field', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'rls-audit-cli-'));
    const file = path.join(dir, 'bad.yaml');
    await writeFile(file, `schema: [${path.join(FIXTURES, 'rls-disabled', 'schema.sql')}]\nrole: app_user\nrows: many\n`);
    const run = await runCli(['run', file]);
    expect(run.code).toBe(2);
    expect(run.err).toMatch(/bad\.yaml is not a valid scenario:\n {2}rows:/);
  });

  it('an unreachable database, without printing its password', async () => {
    const run = await runCli(['run', '--database-url', 'postgresql://auditor:s3cret-pw@127.0.0.1:1/nowhere', '--role', 'app_user']);
    expect(run.code).toBe(2);
    expect(run.err).toMatch(/cannot connect to the database/);
    expect(run.err + run.out).not.toContain('s3cret-pw');
  });

  it('a schema without any tenant-owned table', async () => {
    const file = await tempSchema('create role app_user; create table settings (key text primary key, value text);');
    const run = await runCli(['run', '--schema', file, '--role', 'app_user', '--quiet']);
    expect(run.code).toBe(2);
    expect(run.err).toMatch(/no tenant-owned table found.*--tenant-column/);
  });

  it('a context SQL that fails as the application role', async () => {
    const run = await auditFixture('rls-disabled', ['--context-sql', 'select app.set_tenant($1)']);
    expect(run.code).toBe(2);
    expect(run.err).toMatch(/the context SQL failed as role app_user \(select app\.set_tenant\(\$1::text\)\): schema "app" does not exist\. Give the SQL/);
  });

  it('the container target without a container runtime says so', async () => {
    const run = await runCli(['run', '--schema', path.join(FIXTURES, 'rls-disabled', 'schema.sql'), '--role', 'app_user', '--target', 'container', '--quiet']);
    expect(run.code).toBe(2);
    expect(run.err).toMatch(/container runtime|testcontainers/);
  });
});

describe('the installed command', () => {
  const cli = path.join(ROOT, 'dist', 'cli.js');

  it.skipIf(!existsSync(cli))('runs from dist, writes both reports, and prints a summary', async () => {
    const out = await mkdtemp(path.join(os.tmpdir(), 'rls-audit-bin-'));
    const { FORCE_COLOR: _force, ...env } = process.env;
    const child = spawn(process.execPath, [cli, 'run', 'scenarios/chat.yaml', '--out', out], { cwd: ROOT, env });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    expect(code).toBe(0);
    expect(stdout).toMatch(/verdict: PASS/);
    // Piped: plain lines, no progress bar, no colour.
    expect(stderr).toMatch(/^target: .*\ntenancy: /m);
    expect(stdout + stderr).not.toMatch(/\u001b\[|\u2588/);
    expect(readdirSync(out).sort()).toEqual(['fix.sql', 'report.html', 'report.json']);
  });

  it.skipIf(!existsSync(cli))('--timeout holds during a large seed: the run ends on its own, exit 2, saying why (issue 21)', { timeout: 120_000 }, async () => {
    const out = await mkdtemp(path.join(os.tmpdir(), 'rls-audit-timeout-'));
    const child = spawn(process.execPath, [cli, 'run', 'scenarios/chat.yaml', '--rows', '100000', '--timeout', '10s', '--pg-bin', PG15_BIN, '--out', out], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    // A seeder that retried on the cancelled insert ran for many minutes: give it a bound well past the limit.
    const guard = setTimeout(() => child.kill('SIGKILL'), 60_000);
    const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) => child.on('close', (exitCode, exitSignal) => resolve([exitCode, exitSignal])));
    clearTimeout(guard);
    expect(signal).toBeNull();
    expect(code).toBe(2);
    expect(output).toMatch(/inconclusive: the audit stopped at its time limit \(--timeout 10s\)/);
    expect(output).not.toMatch(/unexpected error|\n\s+at /);
    expect(readdirSync(out)).toContain('report.json');
  });

  it.skipIf(!existsSync(cli))('stops and deletes the embedded cluster on Ctrl-C', async () => {
    // A private TMPDIR: other tests start clusters of their own at the same time.
    const tmp = await mkdtemp(path.join(os.tmpdir(), 'rls-audit-sigint-'));
    await chmod(tmp, 0o755); // PostgreSQL runs as an unprivileged user when the tests run as root
    const child = spawn(process.execPath, [cli, 'run', '--schema', path.join(FIXTURES, 'rls-disabled', 'schema.sql'), '--role', 'app_user', '--rows', '2000', '--tenants', '10'], {
      cwd: ROOT,
      env: { ...process.env, TMPDIR: tmp },
    });
    let stderr = '';
    // Interrupt once the cluster is up and the audit is under way.
    await new Promise<void>((resolve, reject) => {
      child.stderr.on('data', (chunk: Buffer) => {
        stderr += chunk.toString();
        if (stderr.includes('tenancy:')) resolve();
      });
      child.on('close', () => reject(new Error(`the audit ended before it could be interrupted: ${stderr}`)));
    });
    const clusters = () => readdirSync(tmp).filter((name) => name.startsWith('rls-audit-pg-'));
    expect(clusters().length).toBe(1);
    child.kill('SIGINT');
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    expect(code).toBe(130);
    expect(clusters()).toEqual([]);
  });
});

describe('--schema takes several files, repeated flags, and directories of migrations', () => {
  // Split as migrations are: the second file needs the first (order matters), the third holds the leak.
  const parts = [
    ['0001_tenants.sql', 'create role app_user nologin;\ncreate table tenants (id integer primary key, name text not null);\n'],
    ['0002_notes.sql', "create table notes (tenant_id integer not null references tenants (id), body text);\nalter table notes enable row level security;\ncreate policy tenant_isolation on notes using (tenant_id = nullif(current_setting('app.current_tenant', true), '')::integer);\ngrant select on notes, tenants to app_user;\n"],
    ['0010_leak.sql', 'create table files (tenant_id integer not null references tenants (id), name text);\ngrant select on files to app_user;\n'],
  ];
  const tables = (run: Awaited<ReturnType<typeof runCli>>) => run.report!.relations.map((relation) => relation.name).sort();

  it('applies a directory in name order, several files after one flag (a shell glob), and repeated flags alike', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'rls-audit-migrations-'));
    const migrations = path.join(dir, 'migrations');
    await mkdir(migrations);
    // Written in reverse: the directory order, not the creation order, decides.
    for (const [name, sql] of [...parts].reverse()) await writeFile(path.join(migrations, name!), sql!);
    await writeFile(path.join(migrations, 'README.md'), 'not SQL');
    const files = parts.map(([name]) => path.join(migrations, name!));
    const runs = [
      await runCli(['lint', '--schema', migrations, '--role', 'app_user', '--quiet', '--out', path.join(dir, 'a')]),
      await runCli(['lint', '--schema', ...files, '--role', 'app_user', '--quiet', '--out', path.join(dir, 'b')]),
      await runCli(['lint', ...files.flatMap((file) => ['--schema', file]), '--role', 'app_user', '--quiet', '--out', path.join(dir, 'c')]),
    ];
    for (const run of runs) {
      expect(run.err).toBe('');
      expect(tables(run)).toEqual(['public.files', 'public.notes', 'public.tenants']);
      expect(run.report!.findings.map((finding) => [finding.check, finding.object.name])).toContainEqual(['rls-disabled', 'public.files']);
    }
    expect(runs[0]!.report!.scenario.name).toBe('migrations');
  });

  it('an empty directory, and files out of order, say which file failed', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'rls-audit-migrations-'));
    const empty = path.join(dir, 'empty');
    await mkdir(empty);
    const none = await runCli(['lint', '--schema', empty, '--role', 'app_user', '--quiet', '--out', path.join(dir, 'x')]);
    expect(none.code).toBe(2);
    expect(none.err).toMatch(/schema directory .*empty holds no \.sql file/);
    const files = await Promise.all(parts.map(async ([name, sql]) => {
      const file = path.join(dir, name!);
      await writeFile(file, sql!);
      return file;
    }));
    const reversed = await runCli(['lint', '--schema', files[1]!, files[0]!, '--role', 'app_user', '--quiet', '--out', path.join(dir, 'y')]);
    expect(reversed.code).toBe(2);
    expect(reversed.err).toMatch(/0002_notes\.sql:1: relation "tenants" does not exist/);
  });
});
