/**
 * The floor: PostgreSQL doing the audit's minimum work over one psql connection, on the same generated schema
 * (bench/schema.mjs) and the same server binaries: apply the schema, seed the same rows server-side
 * (insert ... select generate_series, one statement per table), and run four rolled-back transactions per
 * tenant x table as the application role (a read under the tenant's context, and the three missing-context
 * reads: never set, empty string, unknown tenant). Prints one JSON line with the time of each phase in ms.
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

function psql(binary, connectionString, file) {
  return new Promise((resolve, reject) => {
    const child = spawn(binary, ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-o', '/dev/null', '-d', connectionString, '-f', file], { stdio: ['ignore', 'ignore', 'pipe'] });
    let errors = '';
    child.stderr.on('data', (chunk) => (errors += chunk));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`psql exited with ${code}: ${errors.trim()}`))));
  });
}

/** Run the floor on a fresh cluster; returns the time of each phase in ms. */
export async function runFloor({ tables = 100, tenants = 10, rows = 100, pgBin } = {}) {
  const binary = pgBin && existsSync(path.join(pgBin, 'psql')) ? path.join(pgBin, 'psql') : 'psql';
  const dir = await mkdtemp(path.join(os.tmpdir(), 'rls-audit-floor-'));
  const files = { schema: path.join(dir, 'schema.sql'), seeding: path.join(dir, 'seed.sql'), probes: path.join(dir, 'probes.sql') };
  await writeFile(files.schema, generateSchema({ tables }));
  await writeFile(files.seeding, floorSeedSql({ tables, tenants, rows }));
  await writeFile(files.probes, floorProbeSql({ tables, tenants }));
  const timings = {};
  let started = Date.now();
  const target = await startEmbedded(pgBin ? { pgBin } : {});
  timings.start = Date.now() - started;
  try {
    for (const phase of ['schema', 'seeding', 'probes']) {
      started = Date.now();
      await psql(binary, target.connectionString, files[phase]);
      timings[phase] = Date.now() - started;
    }
  } finally {
    await target.close();
    await rm(dir, { recursive: true, force: true });
  }
  timings.total = timings.start + timings.schema + timings.seeding + timings.probes;
  return { timings, rowsSeeded: tenants + tables * tenants * rows, transactions: 4 * tables * tenants };
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
