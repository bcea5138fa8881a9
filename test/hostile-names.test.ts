/**
 * Names are data the database's owner chose, not SQL: a table, column, role, policy, function, schema or
 * enum label named with newlines, comment openers, quotes, backslashes, `$$`, semicolons, control and
 * non-ASCII characters, or at the 63-byte limit, must reach the server only quoted (issue 21). The live
 * database is a PostgreSQL 15 cluster of its own that logs every statement (log_statement = all, JSON lines
 * to a file); each generated database is audited with --database-url, and afterwards
 * - its fingerprint (catalog and data) is what it was, and the canary table audit_log still holds its row;
 * - every statement the audit's connections sent went over the extended protocol and parses (PostgreSQL's
 *   parser) to exactly one statement of a kind the audit runs, with no comment in it; a COMMIT only ends a
 *   READ ONLY transaction.
 * The names come from a seeded generator: a failure is reproducible from the seed it prints.
 */
import { execFileSync, spawn } from 'node:child_process';
import { chownSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadParser, parseStatements, scanTokens } from '../src/analysis/parse.js';
import { databaseFingerprint, PG15_BIN, runCli, withClient } from './helpers.js';

/** PostgreSQL refuses to run as root: then the cluster belongs to `postgres` (or `nobody`). */
function clusterUser(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  for (const name of ['postgres', 'nobody']) {
    try {
      return { uid: Number(execFileSync('id', ['-u', name], { encoding: 'utf8' }).trim()), gid: Number(execFileSync('id', ['-g', name], { encoding: 'utf8' }).trim()) };
    } catch {
      // no such user
    }
  }
  throw new Error('running as root and no postgres or nobody user to run PostgreSQL as');
}

function runAs(binary: string, args: string[], user: { uid: number; gid: number } | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(binary, args, { ...user, stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, LC_ALL: 'C' } });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`${path.basename(binary)} exited with ${code}: ${stderr}`))));
  });
}

/** One line of the server's JSON log. */
interface LogEntry {
  dbname?: string;
  pid?: number;
  application_name?: string;
  error_severity?: string;
  message?: string;
}

/** A PostgreSQL 15 cluster in a temporary directory that logs every statement, as JSON lines, to a file. */
class LoggedCluster {
  private constructor(
    private readonly dir: string,
    private readonly user: { uid: number; gid: number } | undefined,
  ) {}

  static async start(): Promise<LoggedCluster> {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'rls-audit-hostile-'));
    const user = clusterUser();
    if (user) chownSync(dir, user.uid, user.gid);
    const cluster = new LoggedCluster(dir, user);
    await runAs(path.join(PG15_BIN, 'initdb'), ['-D', cluster.dataDir, '-U', 'postgres', '-A', 'trust', '-E', 'UTF8', '--locale=C', '--no-sync'], user);
    const options = [
      "-c listen_addresses=''",
      `-c unix_socket_directories=${dir}`,
      '-c fsync=off',
      '-c logging_collector=on',
      '-c log_destination=jsonlog',
      `-c log_directory=${cluster.logDir}`,
      '-c log_filename=postgres.log',
      '-c log_statement=all',
    ].join(' ');
    await runAs(path.join(PG15_BIN, 'pg_ctl'), ['start', '-w', '-D', cluster.dataDir, '-l', path.join(dir, 'pg_ctl.log'), '-o', options], user);
    return cluster;
  }

  private get dataDir(): string {
    return path.join(this.dir, 'data');
  }

  private get logDir(): string {
    return path.join(this.dir, 'log');
  }

  url(database = 'postgres'): string {
    return `postgresql://postgres@localhost/${database}?host=${encodeURIComponent(this.dir)}`;
  }

  /** Every line logged so far, once `marker` (a statement run just before) has reached the log. */
  async log(marker: string): Promise<LogEntry[]> {
    for (let attempt = 0; ; attempt += 1) {
      const entries = readdirSync(this.logDir)
        .filter((file) => file.endsWith('.json'))
        .flatMap((file) => readFileSync(path.join(this.logDir, file), 'utf8').split('\n'))
        .filter(Boolean)
        .map((line) => JSON.parse(line) as LogEntry);
      if (entries.some((entry) => entry.message?.includes(marker)) || attempt > 100) return entries;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  async stop(): Promise<void> {
    await runAs(path.join(PG15_BIN, 'pg_ctl'), ['stop', '-m', 'immediate', '-D', this.dataDir], this.user).catch(() => undefined);
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** A small seeded generator (mulberry32): the same seed, the same names. */
function generator(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** What a name is made of: everything that ends, opens or escapes something in SQL text, and characters outside ASCII. */
const PIECES = [
  '\n', '\r\n', '--', '/*', '*/', "'", "''", '"', '""', '\\', "\\'", '$$', '$q$', ';', '\t', '\u0001', '\u0007', '\u001b', '\u007f',
  ' ', 'é', 'Ω', '租户', '😀', '\u200b', 'commit', 'drop table audit_log', "E'", '$1', '%I', '%s', 'U&', '(', ')', ',', 'x', 'Tenant',
];

const MAX_NAME_BYTES = 63;

/** The longest prefix of `text` within `bytes` bytes of UTF-8 that does not cut a character. */
function fit(text: string, bytes: number): string {
  let out = '';
  for (const char of text) {
    if (Buffer.byteLength(out + char) > bytes) break;
    out += char;
  }
  return out;
}

/**
 * A hostile name ending in `tag` (which keeps names unique): random pieces, sometimes exactly 63 bytes
 * long (PostgreSQL's limit; padded with ASCII when a multibyte character does not fit).
 */
function hostileName(random: () => number, tag: string): string {
  const full = random() < 0.35;
  const budget = (full ? MAX_NAME_BYTES : 6 + Math.floor(random() * 40)) - Buffer.byteLength(tag);
  let body = '';
  while (Buffer.byteLength(body) < budget) body += PIECES[Math.floor(random() * PIECES.length)];
  body = fit(body, budget);
  if (full) body = body.padEnd(body.length + budget - Buffer.byteLength(body), '_');
  return body + tag;
}

/** Quoting of the test's own (independent of src/target/sql.ts, which is under test). */
const q = (name: string) => `"${name.split('"').join('""')}"`;
const text = (value: string) => `'${value.split("'").join("''")}'`;

/** The name from issue 21: a newline ends the `-- "public"."<name>"` comment a probe appended to what it ran. */
const ISSUE_NAME = "E'm\n; commit; drop table audit_log; --'";

interface HostileDatabase {
  sql: string;
  role: string;
  tenantTable: string;
  names: string[];
}

/**
 * A tenant schema in which every name is hostile: two schemas, a tenant table, a tenant-owned table with
 * an enum column and a CHECK, a child reached through a composite foreign key in the other schema, a view,
 * a function the application calls, a SECURITY DEFINER trigger, policies, and the application role. The
 * canary `public.audit_log` holds one row, and the table named in issue 21 is tenant-owned, with a policy
 * that leaks (so that findings, evidence and fixes name it). 'plain' gives ordinary names around that table.
 */
function hostileDatabase(seed: number | 'plain'): HostileDatabase {
  const random = generator(seed === 'plain' ? 0 : seed);
  let counter = 0;
  const name = () => (seed === 'plain' ? `name_${(counter += 1)}` : hostileName(random, `_${(counter += 1)}`));
  const [main, other] = [name(), name()];
  const role = name();
  const tenants = name();
  const tenantName = name();
  const notes = name();
  const tenantColumn = name();
  const body = name();
  const kind = name();
  const enumType = name();
  const labels = [name(), name(), name()];
  const child = name();
  const childTenant = name();
  const childNote = name();
  const childText = name();
  const view = name();
  const fn = name();
  const triggerFn = name();
  const trigger = name();
  const policies = [name(), name(), name()];
  const forbidden = `x''--/*${name()}`;
  const setting = `nullif(current_setting('app.current_tenant', true), '')::integer`;
  const t = `${q(main)}.${q(tenants)}`;
  const n = `${q(main)}.${q(notes)}`;
  const c = `${q(other)}.${q(child)}`;
  const sql = [
    `create role ${q(role)} nologin`,
    `create schema ${q(main)}`,
    `create schema ${q(other)}`,
    `grant usage on schema ${q(main)}, ${q(other)} to ${q(role)}`,
    `create table public.audit_log (id bigserial primary key, entry text not null)`,
    `insert into public.audit_log (entry) values ('canary')`,
    `create type ${q(main)}.${q(enumType)} as enum (${labels.map(text).join(', ')})`,
    `create table ${t} (id integer primary key, ${q(tenantName)} text not null)`,
    `create table ${n} (${q(tenantColumn)} integer not null references ${t} (id), id bigint generated always as identity, ${q(body)} text not null check (${q(body)} <> ${text(forbidden)}), ${q(kind)} ${q(main)}.${q(enumType)} not null, primary key (${q(tenantColumn)}, id))`,
    `create table ${c} (id bigint generated always as identity primary key, ${q(childTenant)} integer not null, ${q(childNote)} bigint not null, ${q(childText)} text, foreign key (${q(childTenant)}, ${q(childNote)}) references ${n} (${q(tenantColumn)}, id))`,
    `create view ${q(other)}.${q(view)} with (security_invoker = true) as select ${q(tenantColumn)}, id, ${q(body)} from ${n}`,
    `create function ${q(other)}.${q(fn)}() returns setof ${n} language sql stable as $rls_body$ select * from ${n} $rls_body$`,
    `create function ${q(main)}.${q(triggerFn)}() returns trigger language plpgsql security definer set search_path = pg_catalog as $rls_body$ begin return new; end $rls_body$`,
    `create trigger ${q(trigger)} before insert or update on ${n} for each row execute function ${q(main)}.${q(triggerFn)}()`,
    `alter table ${t} enable row level security`,
    `alter table ${n} enable row level security`,
    `alter table ${c} enable row level security`,
    `create policy ${q(policies[0]!)} on ${t} using (id = ${setting})`,
    `create policy ${q(policies[1]!)} on ${n} using (${q(tenantColumn)} = ${setting})`,
    `create policy ${q(policies[2]!)} on ${c} using (${q(childTenant)} = ${setting})`,
    `grant select on ${t} to ${q(role)}`,
    `grant select, insert, update, delete on ${n}, ${c} to ${q(role)}`,
    `grant select on ${q(other)}.${q(view)} to ${q(role)}`,
    `grant execute on function ${q(other)}.${q(fn)}() to ${q(role)}`,
    `grant select on public.audit_log to ${q(role)}`,
    `insert into ${t} values (1, ${text(name())}), (2, ${text(name())})`,
    `insert into ${n} (${q(tenantColumn)}, ${q(body)}, ${q(kind)}) values (1, ${text(name())}, ${text(labels[0]!)}), (2, ${text(name())}, ${text(labels[1]!)})`,
    `create table public.${q(ISSUE_NAME)} (tenant_id integer not null references ${t} (id), body text)`,
    `alter table public.${q(ISSUE_NAME)} enable row level security`,
    // Open on purpose: findings name this table in their evidence and fixes, comments included.
    `create policy ${q(name())} on public.${q(ISSUE_NAME)} using (true)`,
    `grant select, insert, update, delete on public.${q(ISSUE_NAME)} to ${q(role)}`,
  ];
  return {
    sql: sql.join(';\n'),
    role,
    tenantTable: `${main}.${tenants}`,
    names: [main, other, role, tenants, tenantName, notes, tenantColumn, body, kind, enumType, ...labels, child, childTenant, childNote, childText, view, fn, triggerFn, trigger, ...policies],
  };
}

/**
 * Statement kinds (parse tree node names) the audit runs on a live database, inside its transaction (no
 * TRUNCATE there: the privilege is the proof). Roles per tenant are created inside it, when the actors are roles.
 */
const EXPECTED_KINDS = new Set([
  'SelectStmt',
  'InsertStmt',
  'UpdateStmt',
  'DeleteStmt',
  'TransactionStmt',
  'VariableSetStmt',
  'ExplainStmt',
  'PrepareStmt',
  'DeallocateStmt',
  'DeclareCursorStmt',
  'FetchStmt',
  'ClosePortalStmt',
  'CreateRoleStmt',
  'GrantRoleStmt',
]);

/** Transaction control the audit may send: never COMMIT of a transaction that could write (checked apart). */
const TRANSACTION_KINDS = new Set(['TRANS_STMT_BEGIN', 'TRANS_STMT_START', 'TRANS_STMT_SAVEPOINT', 'TRANS_STMT_RELEASE', 'TRANS_STMT_ROLLBACK', 'TRANS_STMT_ROLLBACK_TO', 'TRANS_STMT_COMMIT']);

/** What is wrong with the statements the audit's connections sent: [] when every one was a single, expected, comment-free statement. */
function unexpectedStatements(entries: LogEntry[], database: string): string[] {
  const problems: string[] = [];
  /** Per connection: whether its open transaction began READ ONLY. */
  const readOnly = new Map<number, boolean>();
  const sent = entries.filter((entry) => entry.dbname === database && entry.application_name?.startsWith('rls-audit') && entry.error_severity === 'LOG');
  for (const entry of sent) {
    const match = /^(?:statement|execute [^:]*): ([\s\S]*)$/.exec(entry.message ?? '');
    if (!match) continue;
    const sql = match[1]!;
    const shown = JSON.stringify(sql).slice(0, 300);
    // The extended protocol logs `execute <name>:`, the simple one `statement:`, which may hold several statements.
    if (entry.message!.startsWith('statement:')) problems.push(`sent over the simple protocol: ${shown}`);
    let statements;
    try {
      statements = parseStatements(sql);
    } catch (error) {
      problems.push(`does not parse (${String(error)}): ${shown}`);
      continue;
    }
    if (statements.length !== 1) {
      problems.push(`${statements.length} statements in one message: ${shown}`);
      continue;
    }
    if (scanTokens(sql).some((token) => token.tokenName === 'SQL_COMMENT' || token.tokenName === 'C_COMMENT')) problems.push(`a comment in executed SQL: ${shown}`);
    const node = statements[0]!.stmt as unknown as Record<string, Record<string, unknown>>;
    const [kind] = Object.keys(node);
    if (!EXPECTED_KINDS.has(kind!)) {
      problems.push(`unexpected ${kind}: ${shown}`);
      continue;
    }
    if (kind !== 'TransactionStmt') continue;
    const transaction = node.TransactionStmt!;
    const control = String(transaction.kind);
    if (!TRANSACTION_KINDS.has(control)) problems.push(`unexpected ${control}: ${shown}`);
    if (control === 'TRANS_STMT_BEGIN' || control === 'TRANS_STMT_START') {
      readOnly.set(entry.pid!, JSON.stringify(transaction.options ?? []).includes('"transaction_read_only"') && JSON.stringify(transaction.options ?? []).includes('"ival":1'));
    }
    if (control === 'TRANS_STMT_COMMIT' && !readOnly.get(entry.pid!)) problems.push(`COMMIT of a transaction that was not READ ONLY: ${shown}`);
  }
  if (!sent.length) problems.push('no statement of the audit was logged');
  return problems;
}

/** What is wrong with SQL a reader pastes or applies: it does not parse, or a name's text became a statement (COMMIT, DROP TABLE). */
function pastedProblems(sql: string): string[] {
  let statements;
  try {
    statements = parseStatements(sql);
  } catch (error) {
    return [`does not parse (${String(error)}): ${JSON.stringify(sql).slice(0, 300)}`];
  }
  return statements
    .map((statement) => statement.stmt as unknown as Record<string, { kind?: string; removeType?: string }>)
    .filter((node) => node.TransactionStmt?.kind === 'TRANS_STMT_COMMIT' && !/^begin;[\s\S]*commit;/.test(sql) || node.DropStmt?.removeType === 'OBJECT_TABLE')
    .map((node) => `${JSON.stringify(node).slice(0, 200)} in ${JSON.stringify(sql).slice(0, 300)}`);
}

const CASES: (number | 'plain')[] = ['plain', 21, 4242, 90210];

describe('hostile names on a live database (--database-url): quoted, one statement per message, no trace', () => {
  let cluster: LoggedCluster;

  beforeAll(async () => {
    await loadParser();
    cluster = await LoggedCluster.start();
  });
  afterAll(async () => {
    await cluster?.stop();
  });

  it.each(CASES.map((seed, index) => ({ seed, index })))('names from seed $seed: the database is left as it was and every statement sent is one expected statement', async ({ seed, index }) => {
    const database = `hostile_${index}`;
    const generated = hostileDatabase(seed);
    await withClient(cluster.url(), (client) => client.query(`create database ${database}`));
    const url = cluster.url(database);
    await withClient(url, (client) => client.query(generated.sql));
    const before = await databaseFingerprint(url);

    const out = mkdtempSync(path.join(os.tmpdir(), 'rls-audit-hostile-report-'));
    const run = await runCli(['run', '--database-url', url, '--role', generated.role, '--tenant-table', generated.tenantTable, '--seed', String(index + 1), '--tenants', '2', '--rows', '2', '--quiet', '--out', out]);
    const fixScript = readFileSync(path.join(out, 'fix.sql'), 'utf8');
    rmSync(out, { recursive: true, force: true });
    const context = `seed ${seed} (names: ${JSON.stringify(generated.names).slice(0, 200)}...; run output: ${run.err.slice(0, 2000)})`;
    expect(run.err, context).not.toMatch(/internal error|unexpected/i);
    expect(run.report, context).not.toBeNull();
    // The names went through everything: every relation seeded, every probe ran, and only the open table fails.
    expect(run.report!.summary.rowsSeeded, context).toBeGreaterThan(0);
    expect(run.report!.probes.length, context).toBeGreaterThan(50);
    expect(run.report!.probes.filter((probe) => probe.outcome === 'error' || probe.outcome === 'skipped'), context).toEqual([]);
    expect(run.report!.summary.inconclusive, context).toEqual([]);
    expect(run.code, context).toBe(1);
    expect(run.report!.findings.some((finding) => finding.object.name === `public.${ISSUE_NAME}`), context).toBe(true);
    // What a reader pastes (evidence) or applies (fix.sql): the names stay inside their quotes and comments.
    const pasted = [fixScript, ...run.report!.findings.flatMap((finding) => [finding.evidence.sql, finding.fix])];
    expect(pasted.flatMap((sql) => pastedProblems(sql)), context).toEqual([]);

    expect(await databaseFingerprint(url), context).toEqual(before);
    const canary = await withClient(url, async (client) => (await client.query(`select entry from public.audit_log`)).rows);
    expect(canary, context).toEqual([{ entry: 'canary' }]);

    const marker = `hostile-log-marker-${seed}`;
    await withClient(url, (client) => client.query(`select ${text(marker)}`));
    expect(unexpectedStatements(await cluster.log(marker), database), context).toEqual([]);
  });
});
