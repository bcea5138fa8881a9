import pg from 'pg';
import { performance } from 'node:perf_hooks';
import { startEmbedded } from '../dist/target/embedded.js';
import { generateSchema, parentsOf, tableName } from './schema.mjs';
const T = 100, N = 10, R = 100;
const target = await startEmbedded({ pgBin: '/usr/lib/postgresql/15/bin' });
const variant = process.argv[2] ?? 'A';
const client = new pg.Client({ connectionString: target.connectionString });
await client.connect();
await client.query(generateSchema({ tables: T }));
await client.query(`insert into tenants (id, name) select t, 'tenant ' || t from generate_series(1, ${N}) t`);
const ids = new Map();
let sp = 0; let node = 0;
const started = performance.now();
await client.query('begin');
for (let i = 1; i <= T; i++) {
  const parents = parentsOf(i);
  const cols = ['tenant_id', 'name', 'quantity', 'status', 'created_at', ...parents.map((p) => `${tableName(p)}_id`)];
  const types = ['integer', 'text', 'integer', 'text', 'timestamptz', ...parents.map(() => 'bigint')];
  const batches = [];
  for (let t = 1; t <= N; t++) {
    const s = performance.now();
    const rows = [];
    for (let g = 0; g < R; g++) rows.push([String(t), `Row name ${g} of ${Math.random().toString(36).slice(2)}`, String(g), ['open','pending','closed'][g%3], new Date(1.7e12 + g * 1e6).toISOString(), ...parents.map((p) => ids.get(`${p}:${t}`)[g % R])]);
    node += performance.now() - s;
    batches.push(rows);
  }
  const run = async (rows) => {
    const params = cols.map((_, c) => rows.map((r) => r[c]));
    const ret = variant === 'C' ? 'returning tenant_id::text, id::text' : `returning ${['id', ...cols].map((c) => `${c}::text`).join(', ')}`;
    const sql = `insert into ${tableName(i)} (${cols.join(', ')}) select ${cols.map((c, k) => `u.c${k}::${types[k]}`).join(', ')} from unnest(${cols.map((_, k) => `$${k + 1}::text[]`).join(', ')}) as u(${cols.map((_, k) => `c${k}`).join(', ')}) ${ret}`;
    if (variant === 'A') await client.query(`savepoint s${++sp}`);
    const res = await client.query({ text: sql, values: params });
    if (variant === 'A') await client.query(`release savepoint s${sp}`);
    return res.rows;
  };
  if (variant === 'D') {
    const res = await run(batches.flat());
    for (let t = 1; t <= N; t++) ids.set(`${i}:${t}`, res.filter((r) => r.tenant_id === String(t)).map((r) => r.id));
  } else {
    for (let t = 1; t <= N; t++) { const res = await run(batches[t - 1]); ids.set(`${i}:${t}`, res.map((r) => r.id)); }
  }
}
await client.query('commit');
const ms = performance.now() - started;
console.log(variant, `${ms.toFixed(0)} ms, ${(T * N * R / ms * 1000).toFixed(0)} rows/s, node gen ${node.toFixed(0)} ms`);
await client.end(); await target.close();
