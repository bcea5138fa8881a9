import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { audit } from '../src/audit.js';
import type { Finding } from '../src/findings/finding.js';
import { mergeReports } from '../src/findings/merge.js';
import type { Report } from '../src/report/model.js';
import { startEmbedded } from '../src/target/embedded.js';
import type { Target } from '../src/target/types.js';
import { runCli } from './helpers.js';

const CURRENT = "(select nullif(current_setting('app.current_tenant', true), '')::integer)";

function table(name: string, policies: string[], rls = true): string {
  return [
    `create table ${name} (tenant_id integer not null references tenants (id), id bigint generated always as identity primary key, title text not null);`,
    ...(rls ? [`alter table ${name} enable row level security;`, `alter table ${name} force row level security;`] : []),
    ...policies,
    `grant select, insert, update, delete on ${name} to app_user;`,
  ].join('\n');
}

/** Tables with defects of several families (reads, missing context, writes, rules) and a correct one. */
const SCHEMA = [
  'create role app_user nologin;',
  'create table tenants (id integer primary key, name text not null);',
  'alter table tenants enable row level security;',
  'alter table tenants force row level security;',
  `create policy tenant_self on tenants using (id = ${CURRENT});`,
  'grant select on tenants to app_user;',
  table('notes', [`create policy isolation on notes using (tenant_id = ${CURRENT}) with check (tenant_id = ${CURRENT});`]),
  table('posts', ['create policy everyone on posts using (true);']),
  table('tasks', [
    `create policy read_own on tasks for select using (tenant_id = ${CURRENT});`,
    `create policy insert_own on tasks for insert with check (tenant_id = ${CURRENT});`,
    'create policy edit_any on tasks for update using (true);',
    `create policy delete_own on tasks for delete using (tenant_id = ${CURRENT});`,
  ]),
  table('events', [`create policy fails_open on events using (tenant_id = ${CURRENT} or ${CURRENT} is null);`]),
  table('logs', [], false),
  table('files', [
    `create policy read_own on files for select using (tenant_id = ${CURRENT});`,
    'create policy insert_any on files for insert with check (true);',
    `create policy update_own on files for update using (tenant_id = ${CURRENT});`,
    `create policy delete_own on files for delete using (tenant_id = ${CURRENT});`,
  ]),
].join('\n');

/** A finding by what it says and what proves it (the evidence SQL holds generated values that depend on what ran before). */
function shape(findings: Finding[]): string[] {
  const linked = (list: Finding['confirmedBy']) => (list ?? []).map((link) => JSON.stringify([link.check, link.object, link.severity, link.tenant ?? null, link.foreignTenant ?? null])).sort();
  return findings
    .map((finding) => JSON.stringify([finding.check, finding.object, finding.severity, finding.tenant ?? null, finding.foreignTenant ?? null, finding.message, linked(finding.confirmedBy), linked(finding.related), finding.refutedBy ?? null]))
    .sort();
}

/** Probe statements by what they tested and saw (generated values in the SQL depend on what ran before). */
function records(report: Report): string[] {
  return report.probes.map((probe) => JSON.stringify([probe.check, probe.relation, probe.context, probe.outcome, probe.rows, probe.foreignRows])).sort();
}

describe('--shard i/n and rls-audit merge', () => {
  let dir: string;
  let target: Target;
  let whole: Report;
  let wholeShared: Report;
  let shards: Report[];
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'rls-audit-shard-'));
    const schema = path.join(dir, 'schema.sql');
    await writeFile(schema, `${SCHEMA}\n`);
    const scenario = { schema: [schema], role: 'app_user', tenants: 3, rows: 4, seed: 5 };
    // One run on a cluster of its own (the seed committed, probes over two connections) ...
    const wholeRun = audit({ ...scenario, jobs: 2 });
    // ... and the three shards on one shared cluster, each in its own rolled-back transaction.
    target = await startEmbedded();
    shards = [];
    for (const index of [1, 2, 3]) shards.push(JSON.parse(JSON.stringify(await audit({ ...scenario, shard: `${index}/3` }, { target }))) as Report);
    wholeShared = await audit(scenario, { target });
    whole = await wholeRun;
  }, 240_000);
  afterAll(async () => {
    await target?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('splits the probe plan: every probe statement runs in exactly one shard', () => {
    expect(shards.map((report) => report.shard && [report.shard.index, report.shard.count])).toEqual([
      [1, 3],
      [2, 3],
      [3, 3],
    ]);
    for (const report of shards) expect(report.probes.length).toBeLessThan(wholeShared.probes.length);
    expect(shards.flatMap(records).sort()).toEqual(records(wholeShared));
  });

  it('merged, gives the findings and the verdict of one run', () => {
    const merged = mergeReports(shards.reverse());
    expect(whole.findings.length).toBeGreaterThan(5);
    expect(shape(merged.findings)).toEqual(shape(whole.findings));
    expect(shape(merged.findings)).toEqual(shape(wholeShared.findings));
    expect(merged.summary.verdict).toBe(whole.summary.verdict);
    expect(merged.summary.findings).toEqual(whole.summary.findings);
    expect(merged.shard).toBeUndefined();
  });

  it('refuses an incomplete set of shards', () => {
    expect(() => mergeReports(shards.slice(0, 2))).toThrow(/missing: a merge of some shards would pass/);
    expect(() => mergeReports([whole])).toThrow(/not part of a sharded run/);
  });

  it('rls-audit merge writes one report and exits with its verdict', async () => {
    const files = await Promise.all(
      shards.map(async (report, index) => {
        const file = path.join(dir, `shard-${index}.json`);
        await writeFile(file, JSON.stringify(report));
        return file;
      }),
    );
    const run = await runCli(['merge', ...files, '--out', path.join(dir, 'merged'), '--quiet']);
    expect(run.err).toBe('');
    expect(run.code).toBe(whole.summary.verdict === 'fail' ? 1 : 0);
    expect(run.report && shape(run.report.findings)).toEqual(shape(whole.findings));
  });
});
