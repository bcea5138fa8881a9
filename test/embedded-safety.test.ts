import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { chmod, mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEmbedded } from '../src/target/embedded.js';
import type { Target } from '../src/target/types.js';
import { FIXTURES, PG15_BIN, ROOT, runCli } from './helpers.js';

const cli = path.join(ROOT, 'dist', 'cli.js');

describe('the embedded cluster is private (issue 10, problem 7)', () => {
  let target: Target;
  beforeAll(async () => {
    target = await startEmbedded({ pgBin: PG15_BIN });
  });
  afterAll(async () => {
    await target?.close();
  });

  it('listens on a Unix socket in a 0700 directory and on no TCP port', async () => {
    const socketDir = new URL(target.connectionString).searchParams.get('host')!;
    expect(socketDir).toMatch(/^\//);
    expect(statSync(socketDir).mode & 0o777).toBe(0o700);
    const client = new pg.Client({ connectionString: target.connectionString });
    await client.connect();
    try {
      const { rows } = await client.query(`select current_setting('listen_addresses') as tcp, inet_server_port() as port`);
      expect(rows).toEqual([{ tcp: '', port: null }]);
    } finally {
      await client.end();
    }
    // The postmaster's own record of where it listens: a socket directory and no TCP address.
    const pid = readFileSync(path.join(socketDir, 'data', 'postmaster.pid'), 'utf8').split('\n');
    expect(pid[4]).toBe(socketDir);
    expect(pid[5]?.trim()).toBe('');
  });
});

describe('initdb runs once per build: later clusters start from a copy kept in a private folder', () => {
  let tmp: string;
  const saved = process.env.TMPDIR;
  beforeAll(async () => {
    tmp = await mkdtemp(path.join(os.tmpdir(), 'rls-audit-template-'));
    await chmod(tmp, 0o755); // PostgreSQL runs as an unprivileged user when the tests run as root
    process.env.TMPDIR = tmp;
  });
  afterAll(() => {
    if (saved === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = saved;
    rmSync(tmp, { recursive: true, force: true });
  });
  const folder = () => path.join(tmp, `rls-audit-templates-${process.getuid!()}`);
  const startAndQuery = async () => {
    const target = await startEmbedded({ pgBin: PG15_BIN });
    try {
      const client = new pg.Client({ connectionString: target.connectionString });
      await client.connect();
      const { rows } = await client.query('select current_database() as db');
      await client.end();
      return rows[0].db as string;
    } finally {
      await target.close();
    }
  };

  it('keeps the template in a 0700 folder of this user, and starts from it', async () => {
    expect(await startAndQuery()).toBe('rls_audit');
    const [template, ...others] = readdirSync(folder());
    expect(others).toEqual([]);
    expect(statSync(folder()).mode & 0o777).toBe(0o700);
    expect(readFileSync(path.join(folder(), template!, 'PG_VERSION'), 'utf8').trim()).toBe('15');
    expect(await startAndQuery()).toBe('rls_audit');
  });

  it('replaces a damaged template with a fresh initdb', async () => {
    const [template] = readdirSync(folder());
    rmSync(path.join(folder(), template!, 'global'), { recursive: true });
    expect(await startAndQuery()).toBe('rls_audit');
    expect(existsSync(path.join(folder(), template!, 'global'))).toBe(true);
  });

  it('neither reads nor writes a folder others can read', async () => {
    rmSync(folder(), { recursive: true });
    mkdirSync(folder(), { mode: 0o755 });
    await chmod(folder(), 0o755);
    expect(await startAndQuery()).toBe('rls_audit');
    expect(readdirSync(folder())).toEqual([]);
  });
});

/**
 * Start the CLI on an embedded cluster with a private TMPDIR (no template yet: initdb runs); `when` decides
 * the moment to signal it. The signal goes to the CLI's whole process group, as a Ctrl-C at a terminal does.
 */
async function interrupt(signal: NodeJS.Signals, when: (cluster: string, tmp: string) => boolean): Promise<{ code: number | null; left: string[]; signalled: boolean; stderr: string; templates: string[] }> {
  const tmp = await mkdtemp(path.join(os.tmpdir(), 'rls-audit-signal-'));
  await chmod(tmp, 0o755); // PostgreSQL runs as an unprivileged user when the tests run as root
  const child = spawn(process.execPath, [cli, 'run', '--schema', path.join(FIXTURES, 'rls-disabled', 'schema.sql'), '--role', 'app_user', '--pg-bin', PG15_BIN, '--quiet'], {
    cwd: ROOT,
    env: { ...process.env, TMPDIR: tmp },
    stdio: ['ignore', 'ignore', 'pipe'],
    detached: true,
  });
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const clusters = () => readdirSync(tmp).filter((name) => name.startsWith('rls-audit-pg-'));
  const closed = new Promise<number | null>((resolve) => child.on('close', resolve));
  let signalled = false;
  const deadline = Date.now() + 60_000;
  while (child.exitCode === null && Date.now() < deadline) {
    const [cluster] = clusters();
    if (cluster && when(path.join(tmp, cluster), tmp)) {
      process.kill(-child.pid!, signal);
      signalled = true;
      break;
    }
    await new Promise((resolve) => setImmediate(resolve));
  }
  const code = await closed;
  const folder = path.join(tmp, `rls-audit-templates-${process.getuid!()}`);
  const templates = existsSync(folder) ? readdirSync(folder).filter((name) => name.startsWith('building-')) : [];
  const left = clusters();
  rmSync(tmp, { recursive: true, force: true });
  return { code, left, signalled, stderr, templates };
}

describe.skipIf(!existsSync(cli))('the embedded cluster is removed on a signal in every phase (problem 9, issue 21)', () => {
  const said = (signal: string) => new RegExp(`^rls-audit: interrupted by ${signal}; the embedded PostgreSQL was stopped and its directory removed\\. Nothing was reported\\.\\n$`);

  it('SIGINT while initdb runs (three times, at different moments of it)', async () => {
    // initdb has made the data directory, then base/, then template1's files; no postmaster has started yet.
    for (const made of [['data'], ['data', 'base'], ['data', 'base', '1']]) {
      const result = await interrupt('SIGINT', (cluster) => existsSync(path.join(cluster, ...made)) && !existsSync(path.join(cluster, 'data', 'postmaster.pid')));
      expect(result.signalled).toBe(true);
      expect(result.stderr).toMatch(said('SIGINT'));
      expect(result.code).toBe(130);
      expect(result.left).toEqual([]);
    }
  });

  it('SIGINT while initdb\'s output is copied into the template folder', async () => {
    const result = await interrupt('SIGINT', (_cluster, tmp) => {
      const folder = path.join(tmp, `rls-audit-templates-${process.getuid!()}`);
      return existsSync(folder) && readdirSync(folder).some((name) => name.startsWith('building-') && existsSync(path.join(folder, name, 'data')));
    });
    expect(result.signalled).toBe(true);
    expect(result.stderr).toMatch(said('SIGINT'));
    expect(result.code).toBe(130);
    expect(result.left).toEqual([]);
    expect(result.templates).toEqual([]);
  });

  it('SIGTERM while the server starts', async () => {
    const result = await interrupt('SIGTERM', (cluster) => existsSync(path.join(cluster, 'data', 'postmaster.pid')));
    expect(result.signalled).toBe(true);
    expect(result.stderr).toMatch(said('SIGTERM'));
    expect(result.code).toBe(143);
    expect(result.left).toEqual([]);
  });
});

describe('a lost connection', () => {
  it('says the connection was lost, not "unexpected error"', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'rls-audit-lost-'));
    const file = path.join(dir, 'schema.sql');
    // function-leak calls every function on a cluster of its own: this one ends the audit's session.
    writeFileSync(file, `${readFileSync(path.join(FIXTURES, 'rls-disabled', 'schema.sql'), 'utf8')}
create function hang_up() returns setof notes language sql security definer as $$ select pg_terminate_backend(pg_backend_pid()); select * from notes $$;
grant execute on function hang_up() to app_user;`);
    try {
      const run = await runCli(['run', '--schema', file, '--role', 'app_user', '--pg-bin', PG15_BIN, '--quiet', '--tenants', '2', '--rows', '2']);
      expect(run.code).toBe(2);
      expect(run.err).toMatch(/^rls-audit: the connection to the database was lost \(.*\): the server closed it/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
