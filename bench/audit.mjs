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
import { serverCpuMs } from './server-cpu.mjs';

function option(name, fallback) {
  const at = process.argv.indexOf(`--${name}`);
  return at > 0 ? process.argv[at + 1] : fallback;
}

const tables = Number(option('tables', '100'));
const tenants = Number(option('tenants', '10'));
const rows = Number(option('rows', '100'));
const pgBin = option('pg-bin', undefined);
const extra = JSON.parse(option('extra', '{}'));

/** The time between successive marks ([phase, reading]), by the phase each starts; a phase with a mark not taken is left out. */
function perPhase(marks) {
  const spans = {};
  for (let index = 0; index + 1 < marks.length; index += 1) {
    const [name, from] = marks[index];
    const to = marks[index + 1][1];
    if (typeof from === 'number' && typeof to === 'number') spans[name] = Math.round(to - from);
  }
  return spans;
}

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
  // This process's CPU per phase (the client's), read as each phase starts: what the audit costs the machine beside the server.
  const cpuAt = {};
  const cpuNow = () => {
    const usage = process.resourceUsage();
    return (usage.userCPUTime + usage.systemCPUTime) / 1000;
  };
  // The server's CPU (every PostgreSQL process) at the same moments, up to the last probe (the cluster stops after).
  const serverAt = {};
  const started = Date.now();
  const startCpu = cpuNow();
  // Each phase of the report's timings starts at the first event of its progress phase; the probes at the end of seeding.
  const report = await audit(scenario, {
    progress: ({ phase, completed, total }) => {
      const mark = phase === 'seeding' && completed ? 'seeded' : phase;
      cpuAt[mark] ??= cpuNow();
      serverAt[mark] ??= serverCpuMs();
      if (phase === 'probes' && completed === total) serverAt.end = serverCpuMs();
    },
  });
  const endCpu = cpuNow();
  // The probes' share holds the report's few milliseconds too.
  const phaseCpu = perPhase([['start', startCpu], ['schema', cpuAt.schema], ['introspection', cpuAt.catalog], ['seeding', cpuAt.seeding], ['probes', cpuAt.seeded], ['end', endCpu]]);
  phaseCpu.total = Math.round(endCpu - startCpu);
  const serverCpu = perPhase([['schema', serverAt.schema], ['introspection', serverAt.catalog], ['seeding', serverAt.seeding], ['probes', serverAt.seeded], ['end', serverAt.end]]);
  const wall = Date.now() - started;
  const { timings, summary } = report;
  console.log(
    JSON.stringify({
      timings,
      phaseCpu,
      serverCpu,
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
