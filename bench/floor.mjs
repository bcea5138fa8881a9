/**
 * The floor: PostgreSQL doing the audit's minimum work over one psql connection, on the same generated schema
 * (bench/schema.mjs) and the same server binaries: apply the schema, seed the same rows server-side
 * (insert ... select generate_series, one statement per table), run four rolled-back transactions per
 * tenant x table as the application role (a read under the tenant's context, and the three missing-context
 * reads: never set, empty string, unknown tenant), then the writes the audit's write checks cannot do
 * without (floorWriteSql). Prints one JSON line with the time of each phase in ms: `probes` is the reads and
 * the writes, as the audit's probe phase is; `reads` alone is the floor as it was before the writes joined it.
 *
 *   node bench/floor.mjs [--tables 100] [--tenants 10] [--rows 100] [--pg-bin /usr/lib/postgresql/15/bin]
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { startEmbedded } from '../dist/target/embedded.js';
import { generateSchema, parentsOf, tableName } from './schema.mjs';
import { serverCpuMs } from './server-cpu.mjs';

const SETTING = 'app.current_tenant';

/** Server-side seeding of `rows` rows per tenant in every table, in one statement per table. */
export function floorSeedSql({ tables, tenants, rows }) {
  const lines = [`insert into tenants (id, name) select t, 'tenant ' || t from generate_series(1, ${tenants}) t;`];
  for (let index = 1; index <= tables; index += 1) {
    const parents = parentsOf(index);
    // Identities are assigned in insertion order, tenant by tenant: row g of tenant t has id (t - 1) * rows + g,
    // and points at the parent row with the same position (a wrong guess fails the foreign key and stops psql).
    const columns = ['tenant_id', 'name', 'quantity', 'status', ...parents.map((parent) => `${tableName(parent)}_id`)];
    const values = ['t', `'row ' || g`, 'g', "(array['open', 'pending', 'closed'])[1 + g % 3]", ...parents.map(() => `(t - 1) * ${rows} + g`)];
    lines.push(
      `insert into ${tableName(index)} (${columns.join(', ')}) select ${values.join(', ')} from generate_series(1, ${tenants}) t, generate_series(1, ${rows}) g order by t, g;`,
    );
  }
  return `${lines.join('\n')}\n`;
}

/** Four rolled-back transactions per tenant x table, as the application role. */
export function floorProbeSql({ tables, tenants, role = 'app_user' }) {
  const lines = [];
  for (let index = 1; index <= tables; index += 1) {
    const read = `select * from ${tableName(index)} limit 10001;`;
    for (let tenant = 1; tenant <= tenants; tenant += 1) {
      lines.push(
        `begin; set local role ${role}; select set_config('${SETTING}', '${tenant}', true); ${read} rollback;`,
        `begin; set local role ${role}; ${read} rollback;`,
        `begin; set local role ${role}; select set_config('${SETTING}', '', true); ${read} rollback;`,
        `begin; set local role ${role}; select set_config('${SETTING}', '2100000001', true); ${read} rollback;`,
      );
    }
  }
  return `${lines.join('\n')}\n`;
}

/**
 * The writes of the audit's write checks, each the least that decides its question, as two tenants (the
 * audit's write families cover a correct schema's tables with two), each against the other, on every table,
 * in rolled-back transactions as the application role:
 * - an UPDATE and a DELETE with no WHERE (blind-update, blind-delete), each followed by the administrator's
 *   count per tenant of what it changed (the floor knows the seeded rows, so it needs no count before);
 *   the DELETE with foreign-key triggers off where other tables reference the rows, as the audit's retry;
 * - an INSERT of the other tenant's row (foreign-insert), an UPDATE and a DELETE of the other tenant's first
 *   row by key (foreign-update, foreign-delete), moving an own row and every own row to the other tenant
 *   (tenant-reassignment), and an own row pointing at the other tenant's parent row (cross-tenant-reference).
 * The schema is correct, so the INSERTs and the moves fail: `expectedErrors` says how many.
 */
export function floorWriteSql({ tables, tenants, rows, role = 'app_user' }) {
  const lines = [];
  let expectedErrors = 0;
  const referenced = new Set();
  for (let index = 1; index <= tables; index += 1) for (const parent of parentsOf(index)) referenced.add(parent);
  /** The id of a tenant's first row, in every table (identities are assigned tenant by tenant, see floorSeedSql). */
  const firstOf = (tenant) => (tenant - 1) * rows + 1;
  const actors = tenants >= 2 ? [1, 2] : [];
  for (let index = 1; index <= tables; index += 1) {
    const name = tableName(index);
    const parents = parentsOf(index);
    const columns = ['tenant_id', 'name', 'quantity', 'status', ...parents.map((parent) => `${tableName(parent)}_id`)].join(', ');
    const row = (tenant, parentTenant) => [tenant, "'floor'", 1, "'open'", ...parents.map(() => firstOf(parentTenant))].join(', ');
    for (const actor of actors) {
      const victim = actor === 1 ? 2 : 1;
      const as = (statement, prelude = '') => `begin; ${prelude}set local role ${role}; select set_config('${SETTING}', '${actor}', true); ${statement} rollback;`;
      lines.push(
        as(`update ${name} set name = 'floor blind'; reset role; select tenant_id, count(*) from ${name} where name = 'floor blind' group by 1;`),
        as(`delete from ${name}; reset role; select tenant_id, count(*) from ${name} group by 1;`, referenced.has(index) ? 'set local session_replication_role = replica; ' : ''),
        as(`insert into ${name} (${columns}) values (${row(victim, victim)});`),
        as(`update ${name} set name = 'floor' where tenant_id = ${victim} and id = ${firstOf(victim)};`),
        as(`delete from ${name} where tenant_id = ${victim} and id = ${firstOf(victim)};`),
        as(`update ${name} set tenant_id = ${victim} where id = ${firstOf(actor)};`),
        as(`update ${name} set tenant_id = ${victim};`),
      );
      expectedErrors += 3;
      if (parents.length) {
        lines.push(as(`insert into ${name} (${columns}) values (${row(actor, victim)});`));
        expectedErrors += 1;
      }
    }
  }
  return { sql: `${lines.join('\n')}\n`, expectedErrors, transactions: lines.length };
}

/** Run a file with psql; with `expectedErrors`, the file's statements may fail, exactly that many and only of the kinds given. */
function psql(binary, connectionString, file, expectedErrors = null) {
  return new Promise((resolve, reject) => {
    const child = spawn(binary, ['-X', '-q', '-v', `ON_ERROR_STOP=${expectedErrors ? 0 : 1}`, '-o', '/dev/null', '-d', connectionString, '-f', file], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk) => (stderr += chunk));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) return reject(new Error(`psql exited with ${code}: ${stderr.trim()}`));
      if (expectedErrors) {
        const failures = stderr.split('\n').filter((line) => / ERROR: /.test(line));
        const unexpected = failures.filter((line) => !expectedErrors.kinds.test(line));
        if (unexpected.length || failures.length !== expectedErrors.count) {
          return reject(new Error(`the floor's writes failed ${failures.length} times (expected ${expectedErrors.count}, all refused by a policy or a foreign key): ${(unexpected[0] ?? failures[0] ?? '').trim()}`));
        }
      }
      resolve();
    });
  });
}

/** Run the floor on a fresh cluster; returns the time of each phase in ms. */
export async function runFloor({ tables = 100, tenants = 10, rows = 100, pgBin } = {}) {
  const binary = pgBin && existsSync(path.join(pgBin, 'psql')) ? path.join(pgBin, 'psql') : 'psql';
  const dir = await mkdtemp(path.join(os.tmpdir(), 'rls-audit-floor-'));
  const files = { schema: path.join(dir, 'schema.sql'), seeding: path.join(dir, 'seed.sql'), reads: path.join(dir, 'reads.sql'), writes: path.join(dir, 'writes.sql') };
  await writeFile(files.schema, generateSchema({ tables }));
  await writeFile(files.seeding, floorSeedSql({ tables, tenants, rows }));
  await writeFile(files.reads, floorProbeSql({ tables, tenants }));
  const writes = floorWriteSql({ tables, tenants, rows });
  await writeFile(files.writes, writes.sql);
  const expected = { writes: { count: writes.expectedErrors, kinds: /violates row-level security policy|violates foreign key constraint/ } };
  const timings = {};
  /** The server's CPU per phase (every PostgreSQL process, bench/server-cpu.mjs). */
  const serverCpu = {};
  let started = Date.now();
  const target = await startEmbedded(pgBin ? { pgBin } : {});
  timings.start = Date.now() - started;
  try {
    for (const phase of ['schema', 'seeding', 'reads', 'writes']) {
      started = Date.now();
      const cpuBefore = serverCpuMs();
      await psql(binary, target.connectionString, files[phase], expected[phase]);
      timings[phase] = Date.now() - started;
      const cpuAfter = serverCpuMs();
      if (cpuBefore !== null && cpuAfter !== null) serverCpu[phase] = Math.round(cpuAfter - cpuBefore);
    }
  } finally {
    await target.close();
    await rm(dir, { recursive: true, force: true });
  }
  timings.probes = timings.reads + timings.writes;
  if ('reads' in serverCpu && 'writes' in serverCpu) serverCpu.probes = serverCpu.reads + serverCpu.writes;
  timings.total = timings.start + timings.schema + timings.seeding + timings.probes;
  /** The floor as it was before the writes joined it. */
  timings.readsTotal = timings.total - timings.writes;
  return { timings, serverCpu, rowsSeeded: tenants + tables * tenants * rows, transactions: 4 * tables * tenants, writeTransactions: writes.transactions };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const option = (name, fallback) => {
    const at = process.argv.indexOf(`--${name}`);
    return at > 0 ? process.argv[at + 1] : fallback;
  };
  const result = await runFloor({
    tables: Number(option('tables', '100')),
    tenants: Number(option('tenants', '10')),
    rows: Number(option('rows', '100')),
    pgBin: option('pg-bin', undefined),
  });
  console.log(JSON.stringify({ ...result, maxRssMB: Math.round(process.resourceUsage().maxRSS / 1024) }));
}
