import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { audit, lint } from '../src/audit.js';
import { analyze } from '../src/analysis/index.js';
import { introspect } from '../src/catalog/introspect.js';
import { planTenancy } from '../src/plan/tenancy.js';
import { definerView } from '../src/rules/checks/definer-view.js';
import { objectSubject, type Finding } from '../src/findings/finding.js';
import { scenarioSchema } from '../src/scenario/schema.js';
import { atLeast, type Severity } from '../src/findings/severity.js';
import { allFindings, applySql, FIXTURES, FixtureCluster, runCli, TARGETS } from './helpers.js';

/**
 * The privilege, integrity and performance rules: for each, the vulnerable fixture is flagged (right object, right
 * severity), the fix the finding proposes really removes the finding, and the secure twin is not flagged.
 */
interface Case {
  rule: string;
  /** Findings the vulnerable fixture must yield for this rule (and no others for it). */
  flags: { table: string; severity: Severity }[];
}

const CASES: Case[] = [
  { rule: 'superuser-role', flags: [{ table: 'ops_admin', severity: 'critical' }] },
  { rule: 'bypassrls-role', flags: [{ table: 'app_user', severity: 'critical' }] },
  { rule: 'owner-without-force', flags: [{ table: 'public.projects', severity: 'critical' }] },
  {
    rule: 'dangerous-grant',
    flags: [
      { table: 'public.projects', severity: 'high' },
      { table: 'public.labels', severity: 'low' },
    ],
  },
  { rule: 'public-grant', flags: [{ table: 'public.projects', severity: 'medium' }] },
  {
    rule: 'definer-view',
    flags: [
      { table: 'public.project_names', severity: 'high' },
      { table: 'public.project_list', severity: 'high' },
    ],
  },
  {
    rule: 'definer-function',
    flags: [
      // Static text names candidates; only calls (run) prove or refute them: medium, unproven, in lint.
      { table: 'search_projects(text)', severity: 'medium' },
      { table: 'projects_of(integer)', severity: 'medium' },
      { table: 'project_stats()', severity: 'medium' },
    ],
  },
  { rule: 'definer-function-search-path', flags: [{ table: 'touch_project()', severity: 'medium' }] },
  { rule: 'unique-without-tenant', flags: [{ table: 'public.users', severity: 'low' }] },
  { rule: 'foreign-key-without-tenant', flags: [{ table: 'public.messages', severity: 'medium' }] },
  { rule: 'shared-sequence', flags: [{ table: 'document_number_seq', severity: 'info' }] },
  { rule: 'missing-tenant-index', flags: [{ table: 'public.events', severity: 'info' }] },
  { rule: 'policy-volatile-function', flags: [{ table: 'public.documents', severity: 'info' }] },
  { rule: 'policy-per-row-setting', flags: [{ table: 'public.notes', severity: 'info' }] },
];

const fixture = (rule: string, name: string) => path.join(FIXTURES, rule, `${name}.sql`);

const summary = (findings: Finding[]) => findings.map((finding) => ({ check: finding.check, table: objectSubject(finding.object), severity: finding.severity }));

describe.each(TARGETS)('privilege, integrity and performance rules on $name', ({ args }) => {
  // One cluster per PostgreSQL version, a database per fixture.
  let cluster: FixtureCluster;
  beforeAll(async () => {
    cluster = await FixtureCluster.start(args);
  });
  afterAll(async () => {
    await cluster?.close();
  });

  it.each(CASES)('$rule: flags the vulnerable fixture, and its fix clears the finding', async ({ rule, flags }) => {
    await cluster.withDatabase([fixture(rule, 'vulnerable')], async ({ target, client }) => {
      const scenario = scenarioSchema.parse({ role: 'app_user' });
      const before = (await lint(scenario, { target })).findings.filter((finding) => finding.check === rule);
      expect(summary(before)).toEqual(expect.arrayContaining(flags.map((flag) => ({ check: rule, ...flag }))));
      expect(before).toHaveLength(flags.length);
      for (const finding of before) {
        expect(finding.source).toBe('rule');
        expect(finding.evidence.context).toBe('static: catalog');
        expect(finding.message).toMatch(/\.$/);
        // The evidence is a catalog query that runs as it is printed.
        const evidence = await client.query(finding.evidence.sql);
        expect(([] as pg.QueryResult[]).concat(evidence).some((result) => result.rowCount! > 0)).toBe(true);
      }
      for (const finding of before) await applySql(client, finding.fix);
      const after = (await lint(scenario, { target })).findings.filter((finding) => finding.check === rule);
      expect(summary(after)).toEqual([]);
    });
  });

  it("unique-without-tenant: an exclusion constraint's expression elements are shown as expressions, the tenant inside one scopes the key, and existence-oracle leaves such a key out", async () => {
    await cluster.withDatabase([fixture('unique-without-tenant', 'exclusion-expression-vulnerable')], async ({ target, client }) => {
      const scenario = scenarioSchema.parse({ role: 'app_user', seed: 7 });
      const [finding, ...others] = (await lint(scenario, { target })).findings.filter((candidate) => candidate.check === 'unique-without-tenant');
      expect(others).toEqual([]);
      expect(finding!.message).toContain('The exclusion constraint bookings_no_overlap on public.bookings ((expression), (expression)) does not include tenant_id');
      expect(finding!.message).not.toContain('#0');
      // The probes ran without an error: the key was left out, not probed with a column named "#0".
      const report = await audit(scenario, { target });
      expect(report.probes.filter((probe) => probe.outcome === 'error')).toEqual([]);
      expect(report.summary.verdict).toBe('pass');
      await applySql(client, finding!.fix);
      expect((await lint(scenario, { target })).findings.filter((candidate) => candidate.check === 'unique-without-tenant')).toEqual([]);
    });
    const secure = await cluster.lint([fixture('unique-without-tenant', 'exclusion-expression-secure')]);
    expect(secure.code).toBe(0);
    expect(summary(secure.report!.findings).filter((candidate) => candidate.check === 'unique-without-tenant')).toEqual([]);
  });

  it('definer-view: on PostgreSQL before 15 the fix says security_invoker is missing and fences the owner instead', async () => {
    await cluster.withDatabase([fixture('definer-view', 'vulnerable')], async ({ client }) => {
      const catalog = { ...(await introspect(client)), serverVersion: '14.12', serverVersionNum: 140012 };
      const analysis = analyze(catalog, 'app_user');
      const plan = planTenancy(catalog, scenarioSchema.parse({ role: 'app_user' }), analysis);
      const finding = definerView.evaluate({ catalog, plan, analysis }).find((candidate) => objectSubject(candidate.object) === 'public.project_names')!;
      expect(finding.severity).toBe('high');
      expect(finding.fix).toMatch(/^-- PostgreSQL 14\.12 has no security_invoker \(added in 15\)/);
      expect(finding.fix).not.toMatch(/^alter view .* set \(security_invoker/m);
      expect(finding.fix).toMatch(/^alter view "public"\."project_names" owner to </m);
    });
  });

  it.each(CASES)('$rule: does not flag the secure twin', async ({ rule }) => {
    const run = await cluster.lint([fixture(rule, 'secure')]);
    expect(run.err).toBe('');
    expect(run.code).toBe(0);
    expect(summary(run.report!.findings).filter((finding) => finding.check === rule)).toEqual([]);
    expect(summary(run.report!.findings).filter((finding) => atLeast(finding.severity, 'medium'))).toEqual([]);
  });

  it.each([
    { rule: 'definer-view', table: 'public.my_projects' },
    { rule: 'definer-function', table: 'my_projects(text)' },
    { rule: 'definer-function', table: 'count_my_projects()' },
  ])('$rule: $table filters by the caller tenant, so it is info, not high', async ({ rule, table }) => {
    const run = await cluster.lint([fixture(rule, 'filtered')]);
    expect(run.code).toBe(0);
    expect(summary(run.report!.findings)).toContainEqual({ check: rule, table, severity: 'info' });
    expect(summary(run.report!.findings).filter((finding) => atLeast(finding.severity, 'low'))).toEqual([]);
  });

  it('lint finds nothing at all in the hardened chat scenario', async () => {
    const out = await mkdtemp(path.join(os.tmpdir(), 'rls-audit-lint-'));
    try {
      const run = await runCli(['lint', 'scenarios/chat.yaml', '--quiet', '--out', out, ...args]);
      expect(run.err).toBe('');
      expect(run.code).toBe(0);
      expect(run.report!.findings).toEqual([]);
    } finally {
      await rm(out, { recursive: true, force: true });
    }
  });

  it('run confirms owner-without-force with the role-owns-table and read-isolation probes', async () => {
    const run = await runCli(['run', '--schema', fixture('owner-without-force', 'vulnerable'), '--role', 'app_user', '--seed', '7', '--quiet', ...args]);
    expect(run.code).toBe(1);
    const finding = allFindings(run.report!.findings).find((candidate) => candidate.check === 'owner-without-force');
    expect(finding).toMatchObject({ object: { kind: 'table', name: 'public.projects' }, severity: 'critical', source: 'rule' });
    expect(finding!.confirmedBy).toContainEqual(expect.objectContaining({ check: 'role-owns-table', object: { kind: 'table', name: 'public.projects' } }));
    expect(finding!.confirmedBy).toContainEqual(expect.objectContaining({ check: 'read-isolation', object: { kind: 'table', name: 'public.projects' } }));
  });

  it('run confirms bypassrls-role with the role-bypasses-rls probe', async () => {
    const run = await runCli(['run', '--schema', fixture('bypassrls-role', 'vulnerable'), '--role', 'app_user', '--seed', '7', '--quiet', ...args]);
    expect(run.code).toBe(1);
    const finding = allFindings(run.report!.findings).find((candidate) => candidate.check === 'bypassrls-role');
    expect(finding).toMatchObject({ object: { kind: 'role', name: 'app_user' }, severity: 'critical', source: 'rule' });
    expect(finding!.confirmedBy).toContainEqual(expect.objectContaining({ check: 'role-bypasses-rls', object: { kind: 'role', name: 'app_user' } }));
  });
});

