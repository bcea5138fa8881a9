import { readFile } from 'node:fs/promises';
import type { Baseline } from './baseline.js';
import { AuditError, errorMessage } from '../errors.js';
import { finishFindings } from './finish.js';
import type { FamilyCoverage } from '../probes/coverage.js';
import type { Report } from '../report/model.js';
import { notesOf, remark, reportNotes, type Note } from '../report/notes.js';

/**
 * One report and one verdict from the reports of a sharded run (`rls-audit run --shard i/n`, one CI job each).
 * Every part seeded the same tenants and rows and evaluated every rule; each ran its own share of the probes.
 * The merge joins the probe evidence and ties the rule findings to all of it, as a single run would.
 */
export function mergeReports(reports: Report[], options: { baseline?: Baseline } = {}): Report {
  if (!reports.length) throw new AuditError('nothing to merge: give the report.json of every shard');
  const parts = reports.map((report, position) => {
    if (!report.shard) throw new AuditError(`report ${position + 1} is not part of a sharded run (it has no shard section): merge the reports of rls-audit run --shard i/n`);
    return { report, shard: report.shard };
  });
  const count = parts[0]!.shard.count;
  const seen = new Set<number>();
  for (const { report, shard } of parts) {
    if (shard.count !== count) throw new AuditError(`the reports come from different splits (${shard.count} and ${count} shards): merge the reports of one run`);
    if (seen.has(shard.index)) throw new AuditError(`shard ${shard.index}/${count} is given twice`);
    seen.add(shard.index);
    const first = parts[0]!.report;
    if (report.scenario.seed !== first.scenario.seed || report.tenants.map((tenant) => tenant.id).join() !== first.tenants.map((tenant) => tenant.id).join()) {
      throw new AuditError(`shard ${shard.index}/${count} seeded other tenants than shard ${parts[0]!.shard.index}/${count}: run every shard with the same scenario and --seed`);
    }
  }
  const missing = Array.from({ length: count }, (_, index) => index + 1).filter((index) => !seen.has(index));
  if (missing.length) throw new AuditError(`shard${missing.length > 1 ? 's' : ''} ${missing.map((index) => `${index}/${count}`).join(', ')} missing: a merge of some shards would pass what the others never probed`);
  parts.sort((a, b) => a.shard.index - b.shard.index);

  const base = parts[0]!.report;
  const probeFindings = parts.flatMap(({ shard }) => shard.probeFindings);
  const records = parts.flatMap(({ report }) => report.probes);
  const queries = parts.reduce((sum, { report }) => sum + report.summary.queries, 0);
  // The parts' locations: a merge has no schema files of its own.
  const locations = Object.assign({}, ...parts.map(({ report }) => report.locations)) as Report['locations'];
  const finished = finishFindings({
    ruleFindings: base.shard!.ruleFindings,
    probeFindings,
    probes: records,
    complete: true,
    accept: base.shard!.accept,
    ...(options.baseline ? { baseline: options.baseline } : {}),
    failOn: base.summary.failOn,
    rowsSeeded: base.summary.rowsSeeded,
    queries,
    inconclusive: inconclusiveOf(parts.map(({ report }) => report)),
    locate: () => locations,
  });
  const timings = { ...base.timings, perProbe: {} as Record<string, number> };
  for (const { report } of parts) {
    for (const phase of ['start', 'schema', 'introspection', 'seeding', 'probes', 'report', 'total'] as const) timings[phase] = Math.max(timings[phase], report.timings[phase]);
    for (const [probe, ms] of Object.entries(report.timings.perProbe)) timings.perProbe[probe] = (timings.perProbe[probe] ?? 0) + ms;
  }
  const { shard: _shard, baseline: _baseline, ...rest } = base;
  return {
    ...rest,
    ...reportNotes([...uniqueNotes(parts.flatMap(({ report }) => notesOf(report))), remark(`merged from ${count} shards`)]),
    locations: finished.locations,
    probes: records,
    coverage: mergeCoverage(parts.map(({ report }) => report.coverage ?? [])),
    findings: finished.findings,
    summary: finished.summary,
    ...(finished.baseline ? { baseline: finished.baseline } : {}),
    timings,
  };
}

/** Every part's notes, each once. */
function uniqueNotes(notes: Note[]): Note[] {
  const seen = new Set<string>();
  return notes.filter((note) => {
    const key = JSON.stringify(note);
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

/** Every part's reasons for an inconclusive verdict, each once. */
function inconclusiveOf(reports: Report[]): Report['summary']['inconclusive'] {
  const seen = new Set<string>();
  return reports.flatMap((report) => report.summary.inconclusive ?? []).filter((reason) => {
    const key = JSON.stringify(reason);
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

function mergeCoverage(lists: FamilyCoverage[][]): FamilyCoverage[] {
  const byCheck = new Map<string, FamilyCoverage>();
  for (const entry of lists.flat()) {
    const merged = byCheck.get(entry.check);
    if (!merged) {
      byCheck.set(entry.check, { ...entry, tenants: [...entry.tenants] });
      continue;
    }
    merged.tenants = [...new Set([...merged.tenants, ...entry.tenants])];
    merged.paired += entry.paired;
    merged.everyTenant += entry.everyTenant;
    if (!merged.reason.includes(entry.reason)) merged.reason = `${merged.reason}; ${entry.reason}`;
  }
  return [...byCheck.values()];
}

/** Read and merge report.json files. */
export async function mergeReportFiles(files: string[], options: { baseline?: Baseline } = {}): Promise<Report> {
  const reports = await Promise.all(
    files.map(async (file) => {
      try {
        return JSON.parse(await readFile(file, 'utf8')) as Report;
      } catch (error) {
        throw new AuditError(`cannot read report ${file}: ${errorMessage(error)}`);
      }
    }),
  );
  return mergeReports(reports, options);
}
