/**
 * `--schema-from URL`: audit a copy of a live database's schema, roles and grants in the embedded cluster.
 * The live database sees only what pg_dump and pg_dumpall read (catalog queries in a READ ONLY, REPEATABLE
 * READ transaction, ACCESS SHARE locks on its tables for the moment of the dump, no data); every probe then
 * runs on the copy, where nothing can harm anything.
 */
import { spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { AuditError, errorMessage } from '../errors.js';
import { clientConfig, connect, LIVE_BOUNDS } from './connect.js';

interface ClientTools {
  pgDump: string;
  pgDumpall: string;
  psql: string;
  major: number;
}

function run(binary: string, args: string[], env: NodeJS.ProcessEnv, timeoutMs: number): Promise<{ stdout: string; stderr: string; code: number | null }> {
  return new Promise((resolve, reject) => {
    const child = spawn(binary, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    const stdout: Buffer[] = [];
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => stdout.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => {
      if (stderr.length < 100_000) stderr += chunk.toString();
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ stdout: Buffer.concat(stdout).toString('utf8'), stderr, code });
    });
  });
}

async function toolsIn(dir: string): Promise<ClientTools | null> {
  const pgDump = path.join(dir, 'pg_dump');
  const pgDumpall = path.join(dir, 'pg_dumpall');
  const psql = path.join(dir, 'psql');
  if (![pgDump, pgDumpall, psql].every((file) => existsSync(file))) return null;
  try {
    const { stdout } = await run(pgDump, ['--version'], process.env, 10_000);
    const major = Number(/(\d+)(\.\d+)?/.exec(stdout)?.[1]);
    return Number.isFinite(major) ? { pgDump, pgDumpall, psql, major } : null;
  } catch {
    return null;
  }
}

/** Directories that may hold pg_dump, in order: beside --pg-bin, on PATH, the usual Debian and RPM places. */
function candidateDirs(pgBin: string | undefined): string[] {
  const dirs = [...(pgBin ? [pgBin] : []), ...(process.env.PATH ?? '').split(path.delimiter).filter(Boolean)];
  for (const root of ['/usr/lib/postgresql', '/usr/pgsql']) {
    try {
      for (const version of readdirSync(root).sort((a, b) => Number(b) - Number(a))) dirs.push(path.join(root, version, 'bin'));
    } catch {
      // not there
    }
  }
  return [...new Set(dirs)];
}

/** pg_dump, pg_dumpall and psql of one installation, at least as new as the server (pg_dump refuses older). */
async function findTools(pgBin: string | undefined, serverMajor: number): Promise<ClientTools> {
  const found: ClientTools[] = [];
  for (const dir of candidateDirs(pgBin)) {
    const tools = await toolsIn(dir);
    if (tools) found.push(tools);
  }
  const usable = found.filter((tools) => tools.major >= serverMajor).sort((a, b) => a.major - b.major)[0];
  if (usable) return usable;
  throw new AuditError(
    found.length
      ? `--schema-from needs pg_dump ${serverMajor} or newer for a PostgreSQL ${serverMajor} server; found only ${found.map((tools) => `${tools.pgDump} (${tools.major})`).join(', ')}. Install the PostgreSQL ${serverMajor} client tools, or give their bin directory with --pg-bin.`
      : '--schema-from needs pg_dump, pg_dumpall and psql: install the PostgreSQL client tools (e.g. apt install postgresql-client) or give their bin directory with --pg-bin.',
  );
}

/** The libpq environment for a connection: the password never appears on a command line (ps). */
function libpqEnvironment(connection: string): NodeJS.ProcessEnv {
  const config = clientConfig(connection);
  const env: NodeJS.ProcessEnv = { ...process.env, PGCONNECT_TIMEOUT: String(Math.ceil(LIVE_BOUNDS.connectTimeoutMs / 1000)), PGAPPNAME: 'rls-audit schema-from' };
  delete env.DATABASE_URL;
  if (config.connectionString) {
    const url = new URL(config.connectionString);
    const host = url.searchParams.get('host') ?? decodeURIComponent(url.hostname);
    if (host) env.PGHOST = host;
    if (url.port) env.PGPORT = url.port;
    if (url.username) env.PGUSER = decodeURIComponent(url.username);
    if (url.password) env.PGPASSWORD = decodeURIComponent(url.password);
    const database = decodeURIComponent(url.pathname.replace(/^\//, ''));
    if (database) env.PGDATABASE = database;
    const sslmode = url.searchParams.get('sslmode');
    if (sslmode) env.PGSSLMODE = sslmode;
  } else {
    if (config.host) env.PGHOST = config.host;
    if (config.port) env.PGPORT = String(config.port);
    if (config.user) env.PGUSER = config.user;
    if (typeof config.password === 'string') env.PGPASSWORD = config.password;
    if (config.database) env.PGDATABASE = config.database;
    if (config.ssl === false) env.PGSSLMODE = 'disable';
    else if (config.ssl) env.PGSSLMODE = 'require';
  }
  // Every session the tools open on the live server: read-only, and no long waits on its locks.
  env.PGOPTIONS = `-c default_transaction_read_only=on -c statement_timeout=${LIVE_BOUNDS.statementTimeoutMs} -c lock_timeout=1000 -c idle_in_transaction_session_timeout=${LIVE_BOUNDS.idleInTransactionMs}`;
  return env;
}

function firstLines(text: string, count = 5): string {
  return text.split('\n').map((line) => line.trim()).filter(Boolean).slice(0, count).join('; ');
}


/**
 * Copy the roles (without passwords), the schema and the grants of `source` into the cluster at `into`
 * (the embedded cluster's superuser URL). Errors from objects the copy cannot hold (an extension the
 * embedded binaries lack) are returned as notes for the report; a dump that fails is an AuditError.
 */
export async function copySchema(source: string, into: string, options: { pgBin?: string; log?: (line: string) => void } = {}): Promise<string[]> {
  const probe = await connect(source, LIVE_BOUNDS, 'rls-audit schema-from');
  let serverMajor: number;
  try {
    serverMajor = Math.floor(Number((await probe.query<{ num: string }>(`select current_setting('server_version_num') as num`)).rows[0]!.num) / 10_000);
  } finally {
    await probe.end();
  }
  const tools = await findTools(options.pgBin, serverMajor);
  const env = libpqEnvironment(source);
  options.log?.(`schema-from: reading roles and schema with ${tools.pgDump} (PostgreSQL ${serverMajor} source, read-only)`);
  const roles = await run(tools.pgDumpall, ['--roles-only', '--no-role-passwords'], env, 120_000);
  if (roles.code !== 0) throw new AuditError(`--schema-from: pg_dumpall --roles-only failed: ${firstLines(roles.stderr)}`);
  const schema = await run(tools.pgDump, ['--schema-only', '--lock-wait-timeout=1000', '--no-subscriptions', '--no-publications'], env, 600_000);
  if (schema.code !== 0) throw new AuditError(`--schema-from: pg_dump --schema-only failed: ${firstLines(schema.stderr)}`);

  const notes: string[] = [];
  const restore = async (what: string, sql: string, ignore: RegExp) => {
    const target = libpqEnvironment(into);
    delete target.PGOPTIONS;
    const child = spawn(tools.psql, ['-X', '-q', '-v', 'ON_ERROR_STOP=0', '-f', '-'], { env: target, stdio: ['pipe', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => {
      if (stderr.length < 200_000) stderr += chunk.toString();
    });
    const closed = new Promise<number | null>((resolve, reject) => {
      child.on('error', reject);
      child.on('close', resolve);
    });
    child.stdin.end(sql);
    try {
      await closed;
    } catch (error) {
      throw new AuditError(`--schema-from: could not run ${tools.psql}: ${errorMessage(error)}`);
    }
    const errors = stderr.split('\n').filter((line) => /ERROR:/.test(line) && !ignore.test(line));
    if (errors.length) {
      notes.push(`--schema-from: ${errors.length} statement(s) of the ${what} could not be recreated in the copy (the rest was audited): ${errors.slice(0, 5).map((line) => line.replace(/^.*?ERROR:\s*/, '')).join('; ')}`);
    }
  };
  // The embedded cluster's own superuser exists already.
  await restore('roles', roles.stdout, /role "[^"]*" already exists/);
  await restore('schema', schema.stdout, /$^/);
  for (const note of notes) options.log?.(note);
  return notes;
}
