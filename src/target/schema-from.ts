/**
 * `--schema-from URL`: audit a copy of a live database's schema, roles and grants in the embedded cluster.
 * The live database sees only what pg_dump and pg_dumpall read (catalog queries in a READ ONLY, REPEATABLE
 * READ transaction, ACCESS SHARE locks on its tables for the moment of the dump, no data); every probe then
 * runs on the copy, where nothing can harm anything.
 */
import { spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { describeDumpStatement, type DumpObjectKind, type DumpStatement } from '../analysis/dump.js';
import { loadParser, statementSpans } from '../analysis/parse.js';
import { AuditError, errorMessage } from '../errors.js';
import { clientConfig, connect, DEFAULT_BOUNDS, LIVE_BOUNDS } from './connect.js';

interface ClientTools {
  pgDump: string;
  pgDumpall: string;
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
  if (![pgDump, pgDumpall].every((file) => existsSync(file))) return null;
  try {
    const { stdout } = await run(pgDump, ['--version'], process.env, 10_000);
    const major = Number(/(\d+)(\.\d+)?/.exec(stdout)?.[1]);
    return Number.isFinite(major) ? { pgDump, pgDumpall, major } : null;
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

/** pg_dump and pg_dumpall of one installation, at least as new as the server (pg_dump refuses older). */
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
      : '--schema-from needs pg_dump and pg_dumpall: install the PostgreSQL client tools (e.g. apt install postgresql-client) or give their bin directory with --pg-bin.',
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


/** A statement of the dump the copy could not run: the object it would have made, and why not. */
export interface CopyFailure {
  phase: 'roles' | 'schema';
  kind: DumpObjectKind;
  /** The object in words: `policy orders_read on public.orders`. */
  object: string;
  /** Relations the statement names, its own first. */
  relations: string[];
  /** PostgreSQL's error. */
  error: string;
  /** What missing in the copy it depends on: `extension old_snapshot`, `function public.f (language plpython3u)`. */
  cause: string | null;
  /** The extension the copy could not create that this statement needs (its own, for CREATE EXTENSION). */
  extension?: string;
}

export interface SchemaCopy {
  /** Every statement that failed, one line each, for the report's notes and the terminal. */
  notes: string[];
  failures: CopyFailure[];
}

/** A psql meta-command line pg_dump writes around the SQL (`\restrict KEY`, `\unrestrict KEY`): not SQL, skipped. */
function withoutMetaCommands(script: string): string {
  return script
    .split('\n')
    .map((line) => (/^\\(restrict|unrestrict|connect)\b/.test(line) ? '' : line))
    .join('\n');
}

/** One line of a failure for the notes. */
export function describeFailure(failure: CopyFailure): string {
  return `${failure.object} was not recreated in the copy${failure.cause ? ` (it needs ${failure.cause})` : ''}: ${failure.error}`;
}

/**
 * Run a dump's statements one by one on the copy, each in a message of its own (as psql does), and keep
 * every failure with the object the statement would have made.
 */
async function restore(into: string, phase: CopyFailure['phase'], script: string, failures: (CopyFailure & { statement: DumpStatement })[]): Promise<void> {
  let spans: ReturnType<typeof statementSpans>;
  try {
    spans = statementSpans(withoutMetaCommands(script));
  } catch (error) {
    throw new AuditError(`--schema-from: the ${phase} dump does not parse (${errorMessage(error)}): audit the database itself with --database-url, or use --pg-bin with the bin directory of the source's PostgreSQL version`);
  }
  const client = await connect(into, DEFAULT_BOUNDS, 'rls-audit schema-from');
  try {
    for (const span of spans) {
      try {
        await client.query(span.text);
      } catch (error) {
        const statement = describeDumpStatement(span.raw);
        // The embedded cluster's own superuser exists already.
        if (statement.kind === 'role' && (error as { code?: string }).code === '42710') continue;
        failures.push({ phase, kind: statement.kind, object: statement.object, relations: statement.relations, error: errorMessage(error), cause: null, statement });
      }
    }
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** The routines, types, relations and languages each of `extensions` holds on the source (names, unqualified). */
async function extensionMembers(source: string, extensions: string[]): Promise<Map<string, Set<string>>> {
  const members = new Map<string, Set<string>>(extensions.map((name) => [name, new Set<string>()]));
  if (!extensions.length) return members;
  const client = await connect(source, LIVE_BOUNDS, 'rls-audit schema-from');
  try {
    const { rows } = await client.query<{ extname: string; name: string | null }>(
      `select e.extname, coalesce(p.proname, t.typname, c.relname, o.oprname, l.lanname)::text as name
       from pg_depend d join pg_extension e on e.oid = d.refobjid
       left join pg_proc p on d.classid = 'pg_proc'::regclass and p.oid = d.objid
       left join pg_type t on d.classid = 'pg_type'::regclass and t.oid = d.objid
       left join pg_class c on d.classid = 'pg_class'::regclass and c.oid = d.objid
       left join pg_operator o on d.classid = 'pg_operator'::regclass and o.oid = d.objid
       left join pg_language l on d.classid = 'pg_language'::regclass and l.oid = d.objid
       where d.refclassid = 'pg_extension'::regclass and d.deptype = 'e' and e.extname = any($1::text[])`,
      [extensions],
    );
    for (const row of rows) if (row.name) members.get(row.extname)?.add(row.name);
  } finally {
    await client.end().catch(() => undefined);
  }
  return members;
}

/**
 * What each failure needs that the copy lacks: an extension that could not be created (one of whose
 * routines, types, relations or languages the statement names), else a routine that could not be created.
 */
function attributeCauses(failures: (CopyFailure & { statement: DumpStatement })[], members: Map<string, Set<string>>): void {
  const extensionOf = (name: string) => (members.has(name) ? name : [...members].find(([, names]) => names.has(name))?.[0]);
  const missingRoutines = new Map<string, CopyFailure & { statement: DumpStatement }>();
  for (const failure of failures) if (failure.kind === 'function') for (const routine of failure.statement.routines) missingRoutines.set(routine, failure);
  for (const failure of failures) {
    if (failure.kind === 'extension') {
      failure.extension = failure.statement.extension;
      continue;
    }
    const references = [...failure.statement.references];
    const extension = references.map(extensionOf).find(Boolean);
    if (extension) {
      const via = references.find((name) => members.get(extension)?.has(name));
      failure.extension = extension;
      failure.cause = `extension ${extension}${via && via !== extension ? `, for ${via}` : ''}`;
      continue;
    }
    const routine = references.map((name) => missingRoutines.get(name)).find((candidate) => candidate && candidate !== failure);
    if (!routine) continue;
    failure.cause = `${routine.object}, which was not recreated${routine.cause ? ` either (it needs ${routine.cause})` : ''}`;
    if (routine.extension) failure.extension = routine.extension;
  }
}

/**
 * Copy the roles (without passwords), the schema and the grants of `source` into the cluster at `into`
 * (the embedded cluster's superuser URL), statement by statement. Statements the copy cannot run (an
 * extension the embedded binaries lack, and what depends on it) are returned, each with the object it
 * would have made and what it needs; the audit decides which of them leave it proving nothing. A dump that
 * fails is an AuditError.
 */
export async function copySchema(source: string, into: string, options: { pgBin?: string; log?: (line: string) => void } = {}): Promise<SchemaCopy> {
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

  await loadParser();
  const failures: (CopyFailure & { statement: DumpStatement })[] = [];
  await restore(into, 'roles', roles.stdout, failures);
  await restore(into, 'schema', schema.stdout, failures);
  const extensions = failures.flatMap((failure) => (failure.statement.extension ? [failure.statement.extension] : []));
  attributeCauses(failures, await extensionMembers(source, extensions));
  const kept = failures.map(({ statement: _statement, ...failure }) => failure);
  const notes = kept.length ? [`--schema-from: ${kept.length} statement(s) of the dump could not be recreated in the copy; each is listed below`, ...kept.map((failure) => `--schema-from: ${describeFailure(failure)}`)] : [];
  for (const note of notes) options.log?.(note);
  return { notes, failures: kept };
}
