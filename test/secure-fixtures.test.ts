import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { expectNoFalseAlarm, FIXTURES, FixtureCluster, ROOT, runCli, type CliRun } from './helpers.js';

/**
 * The false-alarm budget is zero: every secure fixture in test/fixtures (a file whose name says `secure`,
 * SQL or a scenario in YAML) is audited, and none may get a finding at medium or above. A folder may hold an
 * `expect.yaml` with `args:` (how its fixtures are audited instead of the defaults, e.g. `--preset supabase`),
 * `command: lint` where a run cannot prove anything without the application's own context (say why there), and
 * `target: embedded` where the run needs a cluster of its own, and `files:` for what differs per file (a secure fixture whose name does not say so, its own args).
 * Schemas without a preset are audited on one shared cluster with --database-url; the others each on an
 * embedded cluster of their own (a preset builds its platform before the schema).
 * A file's `auditedBy: <name>.test.ts` says that test audits it exactly as this file would (same schema, same
 * arguments) and makes this file's assertions on that audit (expectNoFalseAlarm in helpers.ts): it is not
 * audited a second time here.
 */
interface SecureFixture {
  name: string;
  file: string;
  args: string[];
  command: 'run' | 'lint';
  target: 'embedded' | 'shared';
  /** The test file that audits it as this file would, and asserts expectNoFalseAlarm on that audit. */
  auditedBy?: string;
}

interface FolderExpectations {
  /** How the folder's fixtures are audited, unless a file says otherwise. */
  args?: string[];
  command?: 'run' | 'lint';
  /** `embedded` where the run needs a cluster of its own (seeding with the context set is done only there). */
  target?: 'embedded' | 'shared';
  /** Per file: whether it is a secure fixture (a name with `secure` in it is), and how it is audited. */
  files?: Record<string, { secure?: boolean; args?: string[]; command?: 'run' | 'lint'; auditedBy?: string }>;
}

const SECURE_NAME = /(^|[-_.])secure([-_.][^/]*)?\.(sql|ya?ml)$/;

function secureFixtures(): SecureFixture[] {
  const found: SecureFixture[] = [];
  const walk = (dir: string): void => {
    const entries = readdirSync(dir, { withFileTypes: true });
    const expectFile = path.join(dir, 'expect.yaml');
    const expected = existsSync(expectFile) ? ((YAML.parse(readFileSync(expectFile, 'utf8')) as FolderExpectations | null) ?? {}) : {};
    const scenarios = entries.filter((entry) => entry.isFile() && /secure[^/]*\.ya?ml$/.test(entry.name) && entry.name !== 'expect.yaml');
    // A scenario names its own schema files: those are audited through it, not alone.
    const throughScenario = new Set(
      scenarios.flatMap((entry) => ((YAML.parse(readFileSync(path.join(dir, entry.name), 'utf8')) as { schema?: string[] }).schema ?? []).map((schema) => path.resolve(dir, schema))),
    );
    for (const entry of entries) {
      const file = path.join(dir, entry.name);
      if (entry.isDirectory()) {
        walk(file);
        continue;
      }
      const own = expected.files?.[entry.name];
      const secure = own?.secure ?? (SECURE_NAME.test(entry.name) && entry.name !== 'expect.yaml');
      if (!secure || throughScenario.has(file)) continue;
      found.push({
        name: path.relative(FIXTURES, file),
        file,
        args: own?.args ?? expected.args ?? [],
        command: own?.command ?? expected.command ?? 'run',
        target: expected.target ?? 'shared',
        ...(own?.auditedBy ? { auditedBy: own.auditedBy } : {}),
      });
    }
  };
  walk(FIXTURES);
  return found.sort((a, b) => a.name.localeCompare(b.name));
}

const ALL_FIXTURES = secureFixtures();
/** The secure fixtures this file audits: the others' audits are another test's (see `auditedBy`). */
const FIXTURE_LIST = ALL_FIXTURES.filter((fixture) => !fixture.auditedBy);
const ELSEWHERE = ALL_FIXTURES.filter((fixture) => fixture.auditedBy);

describe('no false alarm on a secure fixture', () => {
  let cluster: FixtureCluster;
  let scratch: string;
  beforeAll(async () => {
    cluster = await FixtureCluster.start();
    scratch = await mkdtemp(path.join(os.tmpdir(), 'rls-audit-secure-fixtures-'));
  });
  afterAll(async () => {
    await cluster?.close();
    await rm(scratch, { recursive: true, force: true });
  });

  it('finds the secure fixtures', () => {
    expect(ALL_FIXTURES.length).toBeGreaterThan(50);
    expect(FIXTURE_LIST.length).toBeGreaterThan(50);
  });

  it.each(ELSEWHERE)('$name: audited by $auditedBy, which asserts the same on its audit', ({ name, args, command, auditedBy }) => {
    // The test that audits it must exist, name the fixture, and make this file's assertions (expectNoFalseAlarm);
    // it audits it with `run --schema` and the same arguments (a preset: a cluster of its own either way).
    const source = readFileSync(path.join(ROOT, 'test', auditedBy!), 'utf8');
    expect(source).toMatch(/\bexpectNoFalseAlarm\(/);
    expect(source).toContain(path.dirname(name));
    expect(source).toContain(path.basename(name, '.sql').replace(/-secure$/, ''));
    expect(command).toBe('run');
    expect(args.includes('--preset')).toBe(true);
  });

  let runs = 0;
  async function audit({ file, args, command, target }: SecureFixture): Promise<CliRun> {
    runs += 1;
    const out = path.join(scratch, `run-${runs}`);
    const common = ['--seed', '7', '--quiet', '--out', out];
    const role = args.includes('--role') || args.includes('--preset') ? [] : ['--role', 'app_user'];
    if (command === 'lint') return runCli(['lint', '--schema', file, ...role, '--quiet', '--out', out, ...args]);
    if (/\.ya?ml$/.test(file)) return runCli(['run', file, ...common, ...args]);
    if (args.includes('--preset')) return runCli(['run', '--schema', file, ...common, ...args]);
    if (target === 'embedded') return runCli(['run', '--schema', file, ...role, ...common, ...args]);
    // The test's own database: no application runs there to leave time for (--pace 1, no pause).
    return cluster.withDatabase([file], ({ target }) =>
      runCli(['run', '--database-url', target.connectionString, '--pace', '1', ...role, '--tenants', '2', '--rows', '5', ...common, ...args]),
    );
  }

  it.each(FIXTURE_LIST)('$name: nothing at medium or above, and the run passes', async (fixture) => {
    expectNoFalseAlarm(await audit(fixture));
  });
});
