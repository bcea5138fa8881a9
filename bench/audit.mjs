/**
 * One `rls-audit run` on the generated schema (bench/schema.mjs): prints one JSON line with the report's
 * timings, counts and this process's peak RSS. bench/run.mjs runs it in a child process so that the peak
 * RSS is the audit's alone. Uses the built library: `npm run bench` builds first.
 *
 *   node bench/audit.mjs [--tables 100] [--tenants 10] [--rows 100] [--pg-bin DIR] [--extra '{"jobs":2}']
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
const extra = JSON.parse(option('extra', '{}'));

const dir = await mkdtemp(path.join(os.tmpdir(), 'rls-audit-bench-'));
const schemaFile = path.join(dir, 'schema.sql');
await writeFile(schemaFile, generateSchema({ tables }));
try {
  const scenario = scenarioSchema.parse({
    name: 'bench',
    schema: [schemaFile],
    role: 'app_user',
    tenants,
    rows,
    seed: 1,
    ...(pgBin ? { target: { kind: 'embedded', pgBin } } : {}),
    ...extra,
  });
  const started = Date.now();
  const report = await audit(scenario);
  const wall = Date.now() - started;
  const { timings, summary } = report;
  console.log(
    JSON.stringify({
      timings,
      wall,
      rowsSeeded: summary.rowsSeeded,
      queries: summary.queries,
      probeRecords: report.probes.length,
      verdict: summary.verdict,
      findings: summary.findings,
      maxRssMB: Math.round(process.resourceUsage().maxRSS / 1024),
      // This process's own CPU (the client's: not the server's), from start-up to here.
      cpuMs: Math.round((process.resourceUsage().userCPUTime + process.resourceUsage().systemCPUTime) / 1000),
    }),
  );
} finally {
  await rm(dir, { recursive: true, force: true });
}
