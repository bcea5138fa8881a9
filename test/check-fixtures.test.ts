import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { allChecks } from '../src/findings/checks.js';
import { atLeast } from '../src/findings/severity.js';
import { allFindings, FIXTURES, FixtureCluster, runCli, type CliRun } from './helpers.js';

/**
 * Every check ships a vulnerable fixture it must flag and a secure twin it must not (SQL, or a scenario in
 * YAML where the check needs one), in test/fixtures/<check-id>/. A check whose folder's `expect.yaml` has a
 * `pair:` entry has its pair exercised here (the others have tests of their own), on one cluster: each schema
 * goes into a database of its own (and the role app_user is created afresh), which a `--database-url` audit
 * then reads. The merged fix.sql of the vulnerable run, applied after the schema, must clear the finding.
 * `pair:` may say `fixable: false` (fix.sql only names the finding in a comment) and `secureAlso:` (other
 * checks the secure twin may report at medium or above); the folder's `args:` apply to both runs.
 */
interface PairExpectations {
  fixable?: false;
  secureAlso?: string[];
}

interface FolderExpectations {
  args?: string[];
  pair?: PairExpectations | null;
}

function expectationsOf(check: string): FolderExpectations {
  const file = path.join(FIXTURES, check, 'expect.yaml');
  return existsSync(file) ? ((YAML.parse(readFileSync(file, 'utf8')) as FolderExpectations | null) ?? {}) : {};
}

/** The checks (in registry order) whose fixture pair this file runs: those whose expect.yaml has `pair:`. */
const PROBED: ({ check: string; args: string[] } & PairExpectations)[] = allChecks().flatMap((meta) => {
  const expected = expectationsOf(meta.id);
  return expected.pair === undefined ? [] : [{ check: meta.id, args: expected.args ?? [], ...(expected.pair ?? {}) }];
});

function fixtureFile(check: string, variant: 'vulnerable' | 'secure'): string | undefined {
  return ['sql', 'yaml'].map((extension) => path.join(FIXTURES, check, `${variant}.${extension}`)).find((file) => existsSync(file));
}

describe('check fixtures', () => {
  it('every registered check has a vulnerable fixture and a secure twin', () => {
    // `vulnerable.sql`, or several pairs named `<case>-vulnerable.sql` / `<case>-secure.sql`.
    const has = (check: string, variant: 'vulnerable' | 'secure') =>
      Boolean(fixtureFile(check, variant)) || (existsSync(path.join(FIXTURES, check)) && readdirSync(path.join(FIXTURES, check)).some((name) => name.endsWith(`-${variant}.sql`)));
    const missing = allChecks().flatMap((check) => (['vulnerable', 'secure'] as const).filter((variant) => !has(check.id, variant)).map((variant) => `${check.id}/${variant}`));
    expect(missing).toEqual([]);
  });

  it('a `pair:` in expect.yaml is in the folder of a registered check, and this file runs it', () => {
    const registered = new Set(allChecks().map((check) => check.id));
    const withPair = readdirSync(FIXTURES).filter((folder) => expectationsOf(folder).pair !== undefined);
    expect(withPair.filter((folder) => !registered.has(folder))).toEqual([]);
    expect(PROBED.map((entry) => entry.check).sort()).toEqual(withPair.sort());
  });

  it('every registered check states the precondition that sets its severity, naming its most severe level', () => {
    const unstated = allChecks()
      .filter((check) => !new RegExp(`\\b${check.severity}\\b`, 'i').test(check.precondition))
      .map((check) => `${check.id} (${check.severity})`);
    expect(unstated).toEqual([]);
  });
});

describe('fixtures of the probes without a test of their own', () => {
  let cluster: FixtureCluster;
  let scratch: string;
  beforeAll(async () => {
    cluster = await FixtureCluster.start();
    scratch = await mkdtemp(path.join(os.tmpdir(), 'rls-audit-check-fixtures-'));
  });
  afterAll(async () => {
    await cluster?.close();
    await rm(scratch, { recursive: true, force: true });
  });

  let runs = 0;
  async function audit(schemas: string[], extra: string[] = []): Promise<CliRun & { dir: string }> {
    return cluster.withDatabase(schemas, async ({ target }) => {
      runs += 1;
      const out = path.join(scratch, `run-${runs}`);
      // The test's own database: no application runs there to leave time for (--pace 1, no pause).
      const run = await runCli(['run', '--database-url', target.connectionString, '--pace', '1', '--role', 'app_user', '--seed', '7', '--tenants', '2', '--rows', '5', '--out', out, ...extra]);
      expect(run.err).not.toMatch(/^rls-audit: /m);
      expect(run.report).not.toBeNull();
      // Exit 2 only for an inconclusive verdict (a tenant that cannot see its own rows), never for an error.
      if (run.code === 2) expect(run.report!.summary.verdict).toBe('inconclusive');
      return { ...run, dir: out };
    });
  }

  it.each(PROBED)('$check: flags the vulnerable fixture; its fix.sql clears it; the secure twin is not flagged', async ({ check, fixable, secureAlso, args }) => {
    const vulnerable = await audit([fixtureFile(check, 'vulnerable')!], args);
    expect(allFindings(vulnerable.report!.findings).map((finding) => finding.check)).toContain(check);
    const script = await readFile(path.join(vulnerable.dir, 'fix.sql'), 'utf8');
    if (fixable === false) {
      expect(script).toContain(`-- ${check} on `);
    } else {
      const fixed = await audit([fixtureFile(check, 'vulnerable')!, path.join(vulnerable.dir, 'fix.sql')], args);
      expect(allFindings(fixed.report!.findings).filter((finding) => finding.check === check)).toEqual([]);
    }
    const secure = await audit([fixtureFile(check, 'secure')!], args);
    expect(allFindings(secure.report!.findings).filter((finding) => finding.check === check)).toEqual([]);
    expect(secure.report!.findings.filter((finding) => atLeast(finding.severity, 'medium') && !secureAlso?.includes(finding.check))).toEqual([]);
  });

  it('the team schema with two planted bugs: each reported once with one fix, and fix.sql clears both', async () => {
    const schema = path.join(FIXTURES, 'team-schema', 'schema.sql');
    const run = await audit([schema]);
    const reported = run.report!.findings.filter((finding) => atLeast(finding.severity, 'low'));
    expect(reported.map((finding) => `${finding.check} ${finding.object.name}`).sort()).toEqual(['definer-view public.open_tasks', 'with-check-missing-tenant public.tasks']);
    const view = reported.find((finding) => finding.check === 'definer-view')!;
    expect(view.confirmedBy!.map((entry) => entry.check)).toContain('read-isolation');
    const update = reported.find((finding) => finding.check === 'with-check-missing-tenant')!;
    expect(update.confirmedBy!.map((entry) => entry.check)).toContain('tenant-reassignment');
    // One line per defect on the terminal.
    expect(run.out.split('\n').filter((line) => /^\s+HIGH\s/.test(line))).toHaveLength(2);
    const script = await readFile(path.join(run.dir, 'fix.sql'), 'utf8');
    expect(script.match(/^alter policy "tasks_update" on "public"\."tasks"$/gm)).toHaveLength(1);
    expect(script.match(/^alter view "public"\."open_tasks" set \(security_invoker = true\);$/gm)).toHaveLength(1);
    const fixed = await audit([schema, path.join(run.dir, 'fix.sql')]);
    expect(fixed.report!.findings.filter((finding) => atLeast(finding.severity, 'low'))).toEqual([]);
  });
});
