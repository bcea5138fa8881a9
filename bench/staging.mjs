/**
 * A staging audit at production scale: `rls-audit run --database-url` on the chat schema (scenarios/chat/)
 * whose messages table already holds N rows of other tenants, for N = 0 and the given sizes. Prints, per
 * size, the audit's time, its ratio to the empty database, and the rows PostgreSQL read in the four tables
 * (seq_tup_read + idx_tup_fetch, from pg_stat_user_tables, before and after the audit) per existing row.
 * Targets: within 1.5x of the empty database; at most 0.5 rows read per existing row.
 *
 * Each size gets a fresh cluster (initdb into a temporary directory, PostgreSQL 15 binaries by default), filled
 * with generate_series: 200 tenants, 10 users and 50 conversations each, N messages spread over them. The
 * audit runs in a child process (the built library: `npm run build` first). Not a test: it prints numbers.
 *
 *   node bench/staging.mjs [--rows 0,3000000] [--tenants 200] [--pg-bin /usr/lib/postgresql/15/bin] [--rounds 3]
 *                                           (the audit's time is the median of --rounds runs on the same database;
 *                                           the rows read are the first run's)
 *                          [--pgbench 4]    also run pgbench as the application (N clients, a tenant's latest
 *                                           messages) without a pause through --rounds rounds of three windows,
 *                                           each as long as an audit: quiet, the control (one thread busy where and
 *                                           as the audit runs, no database work: what any process there does to the
 *                                           application on this machine), an audit. Prints the application's
 *                                           latency (p50, p99, max) in each kind of window, the p99 of each window
 *                                           (their spread is this machine's own), and the time its statement took
 *                                           on the server (pg_stat_statements: a lock wait, a read from disk or a
 *                                           changed plan would show there); [--pgbench-rate 200]
 *                                           bounds it to that many transactions per second (0: as fast as it can;
 *                                           the latency is then counted from each transaction's scheduled start)
 *                          [--statements]   print the audit's 8 heaviest statements (pg_stat_statements)
 *                          [--audit-args '--pace 1']  more arguments for the audit
 *                          [--nice 10]      run the audit's process at that niceness
 *                          [--split-cpus]   pgbench on CPUs of its own (all but the first), the server and the audit's
 *                                           process on the first, the audit at niceness 19 unless --nice says
 *                                           otherwise (taskset, nice): the application's clients on machines of
 *                                           their own and the audit's client taking only the time the server leaves
 *                                           idle, as when it runs on another machine; the audit's backend is not
 *                                           niced, it competes with the application's as it would in production
 */
import { execFileSync, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chown, mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';

function option(name, fallback) {
  const at = process.argv.indexOf(`--${name}`);
  return at > 0 ? process.argv[at + 1] : fallback;
}
const flag = (name) => process.argv.includes(`--${name}`);

const pgBin = option('pg-bin', '/usr/lib/postgresql/15/bin');
const sizes = option('rows', '0,3000000').split(',').map(Number);
const tenantCount = Number(option('tenants', '200'));
const pgbenchClients = Number(option('pgbench', '0'));
const pgbenchRate = Number(option('pgbench-rate', '200'));
const statements = flag('statements');
const rounds = Number(option('rounds', '3'));
const auditArgs = option('audit-args', '').split(' ').filter(Boolean);
const cpus = os.cpus().length;
const split = flag('split-cpus') && cpus > 1 ? { server: '0', application: `1-${cpus - 1}` } : null;
const nice = option('nice', split ? '19' : undefined);
/** The command pinned to the server's CPU (the server, the audit) or the application's (taskset) when --split-cpus is given. */
const pinned = (command, which) => (split ? ['taskset', '-c', split[which], ...command] : command);
/** A command run where and as the audit runs: on the server's CPU with --split-cpus, at --nice. */
const asAudit = (command) => pinned(nice === undefined ? command : ['nice', '-n', nice, ...command], 'server');
const root = fileURLToPath(new URL('..', import.meta.url));
const chatSchema = await readFile(path.join(root, 'scenarios/chat/schema.sql'), 'utf8');

if (!existsSync(path.join(pgBin, 'initdb'))) {
  console.error(`no initdb in ${pgBin}: give the PostgreSQL binaries with --pg-bin`);
  process.exit(2);
}

const freePort = () =>
  new Promise((resolve, reject) => {
    const server = net.createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });

/** PostgreSQL refuses to run as root: then the cluster runs as `postgres` (or `nobody`), as the embedded target does. */
function unprivilegedUser() {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return {};
  for (const name of ['postgres', 'nobody']) {
    try {
      return { uid: Number(execFileSync('id', ['-u', name], { encoding: 'utf8' })), gid: Number(execFileSync('id', ['-g', name], { encoding: 'utf8' })) };
    } catch {
      // no such user
    }
  }
  throw new Error('running as root and no postgres or nobody user to run PostgreSQL');
}
const user = unprivilegedUser();

async function startCluster() {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'rls-audit-staging-'));
  if (user.uid !== undefined) await chown(dir, user.uid, user.gid);
  const data = path.join(dir, 'data');
  execFileSync(path.join(pgBin, 'initdb'), ['-D', data, '-U', 'postgres', '-A', 'trust', '--no-sync'], { stdio: 'ignore', ...user });
  const port = await freePort();
  const settings = [
    `port = ${port}`,
    `unix_socket_directories = '${dir}'`,
    "listen_addresses = '127.0.0.1'",
    'fsync = off',
    'synchronous_commit = off',
    'full_page_writes = off',
    'shared_buffers = 256MB',
    'max_wal_size = 4GB',
    'track_counts = on',
  ];
  if (statements || pgbenchClients) settings.push("shared_preload_libraries = 'pg_stat_statements'", `pg_stat_statements.track = ${statements ? 'all' : 'top'}`);
  await writeFile(path.join(data, 'postgresql.auto.conf'), `${settings.join('\n')}\n`);
  // The postmaster's backends inherit its CPUs.
  const start = pinned([path.join(pgBin, 'pg_ctl'), '-D', data, '-l', path.join(dir, 'log'), '-w', 'start'], 'server');
  execFileSync(start[0], start.slice(1), { stdio: 'ignore', ...user });
  const url = `postgresql://postgres@127.0.0.1:${port}/postgres`;
  return {
    url,
    port,
    dir,
    async stop() {
      try {
        execFileSync(path.join(pgBin, 'pg_ctl'), ['-D', data, '-m', 'immediate', 'stop'], { stdio: 'ignore', ...user });
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    },
  };
}

/** The chat schema, with `tenants` tenants (ids 1000 and up, so the audit's own tenants never collide) and `rows` messages. */
async function fill(client, rows) {
  await client.query(chatSchema);
  await client.query(`insert into tenants (id, name) select 1000 + t, 'tenant ' || t from generate_series(1, ${tenantCount}) t`);
  await client.query(`insert into users (tenant_id, email, display_name) select 1000 + t, 'user' || u || '@t' || t || '.test', 'User ' || u from generate_series(1, ${tenantCount}) t, generate_series(1, 10) u order by t, u`);
  await client.query(`insert into conversations (tenant_id, created_by, title) select tenant_id, id, 'Conversation ' || c from users, generate_series(1, 5) c order by tenant_id, id, c`);
  if (rows > 0) {
    // Foreign-key triggers off while the messages go in (the values are right by construction): minutes less at 3M.
    await client.query('set session_replication_role = replica');
    // Each tenant's conversations are numbered consecutively (one insert, tenants in order): message i goes
    // to tenant 1000 + i % tenants and to one of its 50 conversations.
    await client.query(
      `insert into messages (tenant_id, conversation_id, author_id, body)
       select 1000 + 1 + i % ${tenantCount}, c.first + (i / ${tenantCount}) % 50, u.first + (i / ${tenantCount}) % 10, 'message ' || i || ' of a conversation that happened'
       from generate_series(0, ${rows - 1}) i
       join (select tenant_id, min(id) as first from conversations group by 1) c on c.tenant_id = 1000 + 1 + i % ${tenantCount}
       join (select tenant_id, min(id) as first from users group by 1) u on u.tenant_id = 1000 + 1 + i % ${tenantCount}`,
    );
  }
  await client.query('reset session_replication_role');
  await client.query('vacuum analyze');
  // The fill's pages written out now, not by the checkpointer while the audit runs.
  await client.query('checkpoint');
}

const TABLES = ['tenants', 'users', 'conversations', 'messages'];

async function tuplesRead(client) {
  const { rows } = await client.query(
    `select relname, seq_tup_read::int8::text as seq, coalesce(idx_tup_fetch, 0)::int8::text as idx from pg_stat_user_tables where relname = any($1)`,
    [TABLES],
  );
  return new Map(rows.map((row) => [row.relname, { read: Number(row.seq) + Number(row.idx), seq: Number(row.seq), idx: Number(row.idx) }]));
}

/** Statistics are sent by backends when they go idle and by the collector a moment later: wait for them to settle. */
async function settledTuplesRead(client) {
  let last = null;
  for (let attempt = 0; attempt < 20; attempt += 1) {
    await client.query('select pg_stat_clear_snapshot()');
    const now = await tuplesRead(client);
    const key = JSON.stringify([...now]);
    if (key === last) return now;
    last = key;
    await new Promise((resolve) => setTimeout(resolve, 600));
  }
  return tuplesRead(client);
}

function runAudit(url) {
  const cli = path.join(root, 'dist/cli.js');
  const out = path.join(os.tmpdir(), `rls-audit-staging-${process.pid}`);
  const args = [cli, 'run', '--database-url', url, '--role', 'app_user', '--setting', 'app.current_tenant', '--seed', '1', '--quiet', '--out', out];
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const command = asAudit([process.execPath, ...args, ...auditArgs]);
    const child = spawn(command[0], command.slice(1), { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (chunk) => (err += chunk));
    child.on('error', reject);
    child.on('close', async (code) => {
      const wall = Date.now() - started;
      try {
        const report = JSON.parse(await readFile(path.join(out, 'report.json'), 'utf8'));
        await rm(out, { recursive: true, force: true });
        resolve({ wall, code, report });
      } catch {
        reject(new Error(`the audit exited with ${code} and wrote no report: ${err.trim()}`));
      }
    });
  });
}

/**
 * The control: one thread busy for `ms` and no database work, where and as the audit runs. What any process
 * using that CPU does to the application's latency on this machine, next to what the audit does.
 */
function busyLoop(ms) {
  const command = asAudit([process.execPath, '-e', `const end = Date.now() + ${ms}; while (Date.now() < end);`]);
  return new Promise((resolve, reject) => {
    const child = spawn(command[0], command.slice(1), { stdio: 'ignore' });
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`the busy loop exited with ${code}`))));
  });
}

/** pgbench as the application during the audit: each transaction reads the last 20 messages of a conversation of one tenant. */
async function startPgbench(cluster, dir) {
  await mkdir(dir, { recursive: true });
  if (user.uid !== undefined) await chown(dir, user.uid, user.gid);
  const script = path.join(dir, 'app.sql');
  const logPrefix = path.join(dir, 'pgbench');
  return writeFile(
    script,
    [
      `\\set tenant random(1001, ${1000 + tenantCount})`,
      'begin;',
      "select set_config('app.current_tenant', :tenant::text, true);",
      'set local role app_user;',
      'select id, body from messages where tenant_id = :tenant and conversation_id = (select min(id) from conversations where tenant_id = :tenant) order by created_at desc limit 20;',
      'commit;',
      '',
    ].join('\n'),
  ).then(() => {
    const command = pinned(
      [path.join(pgBin, 'pgbench'), '-h', '127.0.0.1', '-p', String(cluster.port), '-U', 'postgres', '-n', '-c', String(pgbenchClients), '-j', '1', '-T', '3600', ...(pgbenchRate > 0 ? ['-R', String(pgbenchRate)] : []), '-f', script, '-l', '--log-prefix', logPrefix, 'postgres'],
      'application',
    );
    const child = spawn(command[0], command.slice(1), { stdio: 'ignore', cwd: dir });
    return {
      async stop() {
        child.kill('SIGINT');
        await new Promise((resolve) => child.on('close', resolve));
        // Each line: client, transaction, latency (us), script, end of the transaction (epoch s, us).
        const transactions = [];
        for (const name of await readdir(dir)) {
          if (!name.startsWith('pgbench.')) continue;
          for (const line of (await readFile(path.join(dir, name), 'utf8')).split('\n')) {
            const fields = line.trim().split(/\s+/);
            if (fields.length < 6) continue;
            const latency = Number(fields[2]) / 1000;
            transactions.push({ latency, start: Number(fields[4]) * 1000 + Number(fields[5]) / 1000 - latency });
          }
        }
        return transactions;
      },
    };
  });
}

/** p50, p99 and max latency of the transactions that started inside one of `windows` ([from, to] in epoch ms), or of all. */
function latencyOf(transactions, windows = null) {
  const latencies = transactions
    .filter(({ start }) => !windows || windows.some(([from, to]) => start >= from && start <= to))
    .map(({ latency }) => latency)
    .sort((a, b) => a - b);
  const at = (q) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? NaN;
  const seconds = windows ? windows.reduce((sum, [from, to]) => sum + (to - from), 0) : NaN;
  return { transactions: latencies.length, p50: at(0.5), p99: at(0.99), max: latencies[latencies.length - 1] ?? NaN, ms: seconds };
}

async function measure(rows) {
  const cluster = await startCluster();
  const client = new pg.Client({ connectionString: cluster.url });
  await client.connect();
  try {
    const filling = Date.now();
    await fill(client, rows);
    const filled = Date.now() - filling;
    if (statements || pgbenchClients) await client.query('create extension pg_stat_statements').then(() => client.query('select pg_stat_statements_reset()'));
    // Exact row counts (n_live_tup is an estimate), read before the statistics' starting point.
    const existing = new Map();
    for (const name of TABLES) existing.set(name, Number((await client.query(`select count(*)::int8::text as n from ${name}`)).rows[0].n));
    // This backend's share of those counts is still pending (an idle backend flushes its statistics up to
    // 10 s later): flushed now, it cannot land after the starting point and be charged to the audit (one run
    // read 1.95 million rows of messages "by the audit" that way).
    await client.query('select pg_stat_force_next_flush()').catch(() => undefined); // PostgreSQL 15 and later
    await client.query('select 1');
    const before = await settledTuplesRead(client);
    const run = await runAudit(cluster.url);
    const after = await settledTuplesRead(client);
    // The first audit's statements, read before the application's windows reset the statistics.
    let heaviest = [];
    if (statements) {
      const { rows: top } = await client.query(
        `select calls::text, rows::text, (shared_blks_hit + shared_blks_read)::text as blocks, round(total_exec_time)::text as ms, left(regexp_replace(query, '\\s+', ' ', 'g'), 160) as query
         from pg_stat_statements where query not like '%pg_stat%' order by shared_blks_hit + shared_blks_read desc limit 8`,
      );
      heaviest = top;
    }
    // The audit leaves the database as it was: further rounds on the same cluster, for the median time.
    const walls = [run.wall];
    for (let round = 1; round < rounds; round += 1) walls.push((await runAudit(cluster.url)).wall);
    run.wall = [...walls].sort((a, b) => a - b)[Math.floor(walls.length / 2)];
    run.walls = walls;
    // The application (pgbench) without a pause, and --rounds times: a quiet window as long as an audit, the
    // control (a busy loop as long as an audit), an audit. The windows interleave, so the machine's own drift
    // falls on every side.
    let latency = null;
    if (pgbenchClients) {
      const app = await startPgbench(cluster, path.join(cluster.dir, 'pgbench'));
      const serverTime = { quiet: [], control: [], audits: [] };
      const windows = { quiet: [], control: [], audits: [], processes: [] };
      /** The application's statement on the server (pg_stat_statements) over one window. */
      const statementTime = async () => {
        const { rows } = await client.query(
          "select calls::int8::text as calls, total_exec_time as total, max_exec_time as max from pg_stat_statements where query like 'select id, body from messages%'",
        );
        await client.query('select pg_stat_statements_reset()');
        return rows.map((row) => ({ calls: Number(row.calls), total: row.total, max: row.max }));
      };
      await new Promise((resolve) => setTimeout(resolve, 2000)); // connections made, plans cached
      await statementTime();
      for (let round = 0; round < rounds; round += 1) {
        const quietFrom = Date.now();
        await new Promise((resolve) => setTimeout(resolve, run.wall));
        windows.quiet.push([quietFrom, Date.now()]);
        serverTime.quiet.push(...(await statementTime()));
        const loopFrom = Date.now();
        await busyLoop(run.wall);
        windows.control.push([loopFrom, Date.now()]);
        serverTime.control.push(...(await statementTime()));
        const spawned = Date.now();
        const during = await runAudit(cluster.url);
        windows.processes.push([spawned, spawned + during.wall]);
        // The audit's work on the database: from its start to its report (the process also starts Node and exits).
        const started = Date.parse(during.report.startedAt);
        windows.audits.push([started, started + during.report.timings.total]);
        serverTime.audits.push(...(await statementTime()));
      }
      const transactions = await app.stop();
      const server = (entries) => {
        const calls = entries.reduce((sum, entry) => sum + entry.calls, 0);
        return { mean: entries.reduce((sum, entry) => sum + entry.total, 0) / calls, max: Math.max(...entries.map((entry) => entry.max)) };
      };
      const side = (name) => ({ ...latencyOf(transactions, windows[name]), each: windows[name].map((window) => latencyOf(transactions, [window]).p99), server: server(serverTime[name]) });
      latency = { quiet: side('quiet'), control: side('control'), audits: side('audits'), processes: latencyOf(transactions, windows.processes) };
    }
    const perTable = TABLES.map((name) => ({ name, read: (after.get(name)?.read ?? 0) - (before.get(name)?.read ?? 0), seq: (after.get(name)?.seq ?? 0) - (before.get(name)?.seq ?? 0), live: existing.get(name) }));
    return { rows, filled, run, perTable, latency, heaviest };
  } finally {
    await client.end();
    await cluster.stop();
  }
}

const load = () => os.loadavg().map((value) => value.toFixed(2)).join(' ');
const s = (ms) => `${(ms / 1000).toFixed(2)} s`;

console.log(`\n== staging-scale audit (chat schema, ${tenantCount} existing tenants, --database-url), PostgreSQL from ${pgBin}, ${cpus} cores${split ? ` (the server and the audit on CPU ${split.server}, pgbench on ${split.application})` : ''}, load ${load()}`);
const results = [];
for (const rows of sizes) {
  const result = await measure(rows);
  results.push(result);
  const { run, perTable, latency } = result;
  const existing = perTable.reduce((sum, table) => sum + table.live, 0);
  const read = perTable.reduce((sum, table) => sum + table.read, 0);
  const empty = results[0];
  console.log(
    `\n${rows.toLocaleString('en')} existing messages (filled in ${s(result.filled)}): audit ${s(run.wall)} (median of ${run.walls.map(s).join(', ')}; first run's report total ${s(run.report.timings.total)}, probes ${s(run.report.timings.probes)})` +
      `${results.length > 1 && empty.rows === 0 ? `, ${(run.wall / empty.run.wall).toFixed(2)}x the empty database` : ''}; verdict ${run.report.summary.verdict} (exit ${run.code}), ${run.report.findings.length} finding(s)`,
  );
  console.log(`  rows read: ${read.toLocaleString('en')} for ${existing.toLocaleString('en')} existing rows${existing ? ` = ${(read / existing).toFixed(3)} per existing row` : ''}`);
  for (const table of perTable) {
    console.log(`    ${table.name.padEnd(14)} ${String(table.live).padStart(9)} existing, ${String(table.read).padStart(10)} read (${table.seq} by sequential scan)${table.live ? `, ${(table.read / table.live).toFixed(3)} per row` : ''}`);
  }
  for (const note of run.report.notes.filter((line) => /sampl/i.test(line))) console.log(`  note: ${note}`);
  const latencyLine = (name, entry) => `${name} (${s(entry.ms)}): ${entry.transactions} transactions, p50 ${entry.p50.toFixed(2)} ms, p99 ${entry.p99.toFixed(2)} ms, max ${entry.max.toFixed(2)} ms`;
  if (latency) {
    const { quiet, control, audits, processes } = latency;
    const each = (entry) => entry.each.map((p99) => p99.toFixed(1)).join(' ');
    const onServer = (entry) => `its statement on the server ${(entry.server.mean * 1000).toFixed(0)} us on average, ${entry.server.max.toFixed(2)} ms at most`;
    const where = `${nice === undefined ? '' : ` at niceness ${nice}`}${split ? ` on CPU ${split.server}` : ''}`;
    console.log(`  application (pgbench, ${pgbenchClients} clients${pgbenchRate > 0 ? `, ${pgbenchRate} transactions/s` : ', unthrottled'}${split ? ` on CPU ${split.application}` : ''}), ${run.walls.length} rounds of a quiet window, the control and an audit:`);
    console.log(`    ${latencyLine('quiet', quiet)}; ${onServer(quiet)}`);
    console.log(`    ${latencyLine(`the control (a busy loop${where}, no database work)`, control)}; ${onServer(control)}; p99 ${(control.p99 / quiet.p99).toFixed(2)}x quiet`);
    console.log(`    ${latencyLine("during the audits' work on the database", audits)}; ${onServer(audits)}; p99 ${(audits.p99 / quiet.p99).toFixed(2)}x quiet, ${(audits.p99 / control.p99).toFixed(2)}x the control`);
    console.log(`    ${latencyLine(`while the audits' processes ran (with Node's start-up and exit${where})`, processes)}; p99 ${(processes.p99 / quiet.p99).toFixed(2)}x quiet, ${(processes.p99 / control.p99).toFixed(2)}x the control`);
    console.log(`    p99 of each window: quiet ${each(quiet)} ms; control ${each(control)} ms; audits ${each(audits)} ms`);
  }
  for (const statement of result.heaviest) console.log(`    ${statement.blocks.padStart(9)} blocks ${statement.ms.padStart(6)} ms ${statement.calls.padStart(5)} calls: ${statement.query}`);
}
console.log(`\nload at the end ${load()}`);
