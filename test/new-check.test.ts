import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cp, mkdtemp, readdir, readFile, realpath, rm, symlink } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import YAML from 'yaml';

const run = promisify(execFile);
const ROOT = path.resolve(import.meta.dirname, '..');

/** Every file under `root` (not following node_modules) with a hash of its content, by path relative to it. */
async function listing(root: string): Promise<Map<string, string>> {
  const files = new Map<string, string>();
  for (const entry of await readdir(root, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const file = path.join(entry.parentPath, entry.name);
    const relative = path.relative(root, file);
    if (relative.split(path.sep).includes('node_modules')) continue;
    files.set(relative.split(path.sep).join('/'), createHash('sha256').update(await readFile(file)).digest('hex'));
  }
  return files;
}

/**
 * `npm run new-check -- <id>` on a copy of the project (src, test, scripts, README and the build's
 * configuration): it writes the check's module into its kind's checks/ folder and its fixture folder, and
 * nothing else; the registries find the module there (the copy builds, its CLI's `checks` listing and its
 * library show it). Nothing is written in the repository.
 */
describe('npm run new-check', () => {
  let copy: string;
  beforeAll(async () => {
    copy = await mkdtemp(path.join(os.tmpdir(), 'rls-audit-new-check-'));
    for (const entry of ['src', 'test', 'scripts', 'README.md', 'package.json', 'tsconfig.json', 'vitest.config.ts']) {
      await cp(path.join(ROOT, entry), path.join(copy, entry), { recursive: true });
    }
    await symlink(await realpath(path.join(ROOT, 'node_modules')), path.join(copy, 'node_modules'), 'dir');
  });
  afterAll(async () => {
    if (copy) await rm(copy, { recursive: true, force: true });
  });

  const scaffold = (args: string[]) => run(process.execPath, [path.join(copy, 'scripts', 'new-check.mjs'), ...args, '--root', copy]);

  it('writes a probe and a rule as their modules and fixture folders only, and the registries find them', async () => {
    const before = await listing(copy);
    await scaffold(['scratch-write-probe', '--matrix', 'update', '--split', 'relation', '--severity', 'medium']);
    await scaffold(['scratch-rule', '--rule', '--severity', 'low', '--order', '15']);
    const after = await listing(copy);

    // What changed in the copy: the two modules and the two fixture folders, nothing modified, nothing removed.
    const added = [...after.keys()].filter((file) => !before.has(file)).sort();
    const changed = [...before.keys()].filter((file) => after.get(file) !== before.get(file)).sort();
    expect(added).toEqual([
      'src/probes/checks/scratch-write-probe.ts',
      'src/rules/checks/scratch-rule.ts',
      'test/fixtures/scratch-rule/expect.yaml',
      'test/fixtures/scratch-rule/secure.sql',
      'test/fixtures/scratch-rule/vulnerable.sql',
      'test/fixtures/scratch-write-probe/expect.yaml',
      'test/fixtures/scratch-write-probe/secure.sql',
      'test/fixtures/scratch-write-probe/vulnerable.sql',
    ]);
    expect(changed).toEqual([]);

    for (const id of ['scratch-write-probe', 'scratch-rule']) {
      const fixtures = path.join(copy, 'test', 'fixtures', id);
      expect(await readFile(path.join(fixtures, 'vulnerable.sql'), 'utf8')).toContain('create table');
      expect(await readFile(path.join(fixtures, 'secure.sql'), 'utf8')).toContain('create table');
      expect(YAML.parse(await readFile(path.join(fixtures, 'expect.yaml'), 'utf8'))).toEqual({ pair: {} });
    }

    // The copy builds (its tsconfig: src into dist), and its CLI, run from dist, lists both.
    const tsc = path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
    await expect(run(process.execPath, [tsc, '-p', path.join(copy, 'tsconfig.json')])).resolves.toBeDefined();
    const { stdout } = await run(process.execPath, [path.join(copy, 'dist', 'cli.js'), 'checks'], { cwd: copy });
    const listed = stdout.split('\n').map((line) => line.split(/\s+/).slice(0, 3));
    expect(listed.filter(([id]) => id!.startsWith('scratch-'))).toEqual([
      ['scratch-write-probe', 'probe', 'medium'],
      ['scratch-rule', 'rule', 'low'],
    ]);

    // As a library import of the built copy: the probe runs last (the next place after the last probe) with its
    // matrix place and split, the rule where --order put it, between rls-disabled (10) and rls-no-policy (20).
    const library = pathToFileURL(path.join(copy, 'dist', 'index.js')).href;
    const read = `const { PROBES, RULES } = await import(${JSON.stringify(library)});
const probe = PROBES.at(-1);
console.log(JSON.stringify({ probe: [probe.meta.id, probe.order, probe.matrix.get(probe.meta.id), probe.split, probe.exclusive, probe.meta.precondition], rules: RULES.slice(0, 3).map((rule) => [rule.meta.id, rule.order]), rule: RULES[1].meta.precondition }));`;
    const loaded = JSON.parse((await run(process.execPath, ['--input-type=module', '-e', read])).stdout) as { probe: unknown[]; rules: unknown[]; rule: string };
    // The metadata it writes already states a precondition naming its most severe level.
    expect(loaded.probe).toEqual(['scratch-write-probe', 250, 'update', 'relation', false, expect.stringMatching(/^Medium: /)]);
    expect(loaded.rules).toEqual([['rls-disabled', 10], ['scratch-rule', 15], ['rls-no-policy', 20]]);
    expect(loaded.rule).toMatch(/^Low: /);
  }, 180_000);

  it('refuses an id that is not kebab-case, or a check that exists', async () => {
    await expect(scaffold(['Bad_Id'])).rejects.toMatchObject({ stderr: expect.stringContaining('kebab-case') });
    await expect(scaffold(['read-isolation'])).rejects.toMatchObject({ stderr: expect.stringContaining('src/probes/checks/read-isolation.ts exists') });
    await expect(scaffold(['x-probe', '--matrix', 'sideways'])).rejects.toMatchObject({ stderr: expect.stringContaining('--matrix is one of') });
    await expect(scaffold(['x-probe', '--order', 'last'])).rejects.toMatchObject({ stderr: expect.stringContaining('--order is a whole number') });
  });
});
