import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { main } from '../src/cli.js';
import type { Report } from '../src/report/model.js';
import { objectSubject, type Finding } from '../src/findings.js';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const FIXTURES = path.join(ROOT, 'test', 'fixtures');
export const PG15_BIN = '/usr/lib/postgresql/15/bin';

/** The PostgreSQL versions the integration suite runs on: the embedded default, and local PG 15 when present. */
export const TARGETS: { name: string; args: string[] }[] = [
  { name: 'embedded', args: [] },
  ...(existsSync(path.join(PG15_BIN, 'postgres')) ? [{ name: 'pg15', args: ['--pg-bin', PG15_BIN] }] : []),
];

export interface CliRun {
  code: number;
  out: string;
  err: string;
  report: Report | null;
}

/** Run the CLI in-process with its output captured; reads report.json back when one was written. */
export async function runCli(args: string[]): Promise<CliRun> {
  const outDir = await mkdtemp(path.join(os.tmpdir(), 'rls-audit-test-'));
  let out = '';
  let err = '';
  const withOut = args.includes('--out') || args[0] !== 'run' ? args : [...args, '--out', outDir];
  try {
    const code = await main(withOut, { out: (text) => (out += text), err: (text) => (err += text), cwd: ROOT });
    const reportFile = path.join(withOut.includes('--out') ? withOut[withOut.indexOf('--out') + 1]! : outDir, 'report.json');
    const report = existsSync(reportFile) ? (JSON.parse(await readFile(reportFile, 'utf8')) as Report) : null;
    return { code, out, err, report };
  } finally {
    await rm(outDir, { recursive: true, force: true });
  }
}

/** Audit one fixture schema (test/fixtures/<name>/schema.sql) as app_user. */
export function auditFixture(name: string, extra: string[] = []): Promise<CliRun> {
  return runCli(['run', '--schema', path.join(FIXTURES, name, 'schema.sql'), '--role', 'app_user', '--seed', '7', '--quiet', ...extra]);
}

/** A finding with `table`: the relation (or role, function, setting) it concerns, for comparing with expectations. */
export type FlatFinding = Finding & { table: string };

export function flatFinding(finding: Finding): FlatFinding {
  return { ...finding, table: objectSubject(finding.object) };
}

/**
 * A report's findings with the findings folded into them (a defect is one finding; the probe findings that
 * prove it are its `confirmedBy`, other rules' findings of it its `related`) listed as findings of their own.
 */
export function allFindings(findings: readonly Finding[]): FlatFinding[] {
  return findings.flatMap((finding) => [
    flatFinding(finding),
    ...[...(finding.confirmedBy ?? []), ...(finding.related ?? [])].map((linked) => flatFinding({ ...finding, ...linked, confirmedBy: [], related: [] })),
  ]);
}

export function findingsOf(run: CliRun, check?: string): FlatFinding[] {
  return allFindings(run.report?.findings ?? []).filter((finding) => !check || finding.check === check);
}
