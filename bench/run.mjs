/**
 * The whole `rls-audit run` on a generated schema of 100 tenant-owned tables with foreign keys between
 * them (bench/schema.mjs), 10 tenants and 100 rows per table per tenant (100,000 rows): prints the time of
 * each phase and the seeding and query rates. Uses the built library: `npm run bench` builds first.
 *
 *   node bench/run.mjs [--tables 100] [--tenants 10] [--rows 100] [--pg-bin /usr/lib/postgresql/15/bin]
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { audit } from '../dist/audit.js';
import { scenarioSchema } from '../dist/scenario/schema.js';
import { generateSchema } from './schema.mjs';

function option(name, fallback) {
  const at = process.argv.indexOf(`--${name}`);
  return at > 0 ? process.argv[at + 1] : fallback;
}

const tables = Number(option('tables', '100'));
const tenants = Number(option('tenants', '10'));
const rows = Number(option('rows', '100'));
const pgBin = option('pg-bin', undefined);

const dir = await mkdtemp(path.join(os.tmpdir(), 'rls-audit-bench-'));
const schemaFile = path.join(dir, 'schema.sql');
await writeFile(schemaFile, generateSchema({ tables }));
try {
  const scenario = scenarioSchema.parse({
    name: 'bench', schema: [schemaFile], role: 'app_user', tenants, rows, seed: 1, ...(pgBin ? { target: { kind: 'embedded', pgBin } } : {}),
  });
  const report = await audit(scenario);
  const { timings, summary } = report;
  const seconds = (ms) => ms / 1000;
  const probes = Object.values(summary.probes).reduce((sum, count) => sum + count, 0);
  const line = (label, ms, extra = '') => console.log(`${label.padEnd(14)}${String(ms).padStart(8)} ms${extra ? `  ${extra}` : ''}`);
  console.log(`rls-audit run: ${tables} tenant tables, ${tenants} tenants, ${rows} rows per table per tenant, ${report.target.description}`);
  line('start', timings.start);
  line('schema', timings.schema);
  line('introspection', timings.introspection);
  line('seeding', timings.seeding, `${summary.rowsSeeded} rows, ${Math.round(summary.rowsSeeded / seconds(timings.seeding))} rows/s`);
  line('probes', timings.probes, `${probes} probe statements recorded`);
  for (const [probe, ms] of Object.entries(timings.perProbe).sort((a, b) => b[1] - a[1])) line(`  ${probe}`, ms);
  line('report', timings.report);
  line('total', timings.total, `${summary.queries} queries, ${Math.round(summary.queries / seconds(timings.seeding + timings.probes))} queries/s (seeding + probes)`);
  console.log(`findings: ${Object.entries(summary.findings).map(([severity, count]) => `${count} ${severity}`).join(', ')}; verdict ${summary.verdict}`);
} finally {
  await rm(dir, { recursive: true, force: true });
}
