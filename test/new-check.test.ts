import { execFile } from 'node:child_process';
import { cp, mkdir, mkdtemp, readFile, realpath, rm, symlink } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import YAML from 'yaml';

const run = promisify(execFile);
const ROOT = path.resolve(import.meta.dirname, '..');

/**
 * `npm run new-check -- <id>` on a copy of the project (src, tsconfig, the fixtures folder): the module it
 * writes typechecks, is registered, and carries its matrix place and split; the fixture pair and its
 * expect.yaml are where check-fixtures.test.ts reads them. Nothing is written in the repository.
 */
describe('npm run new-check', () => {
  let copy: string;
  beforeAll(async () => {
    copy = await mkdtemp(path.join(os.tmpdir(), 'rls-audit-new-check-'));
    await cp(path.join(ROOT, 'src'), path.join(copy, 'src'), { recursive: true });
    await cp(path.join(ROOT, 'tsconfig.json'), path.join(copy, 'tsconfig.json'));
    await cp(path.join(ROOT, 'package.json'), path.join(copy, 'package.json'));
    await mkdir(path.join(copy, 'test', 'fixtures'), { recursive: true });
    await symlink(await realpath(path.join(ROOT, 'node_modules')), path.join(copy, 'node_modules'), 'dir');
  });
  afterAll(async () => {
    if (copy) await rm(copy, { recursive: true, force: true });
  });

  const scaffold = (args: string[]) => run(process.execPath, [path.join(ROOT, 'scripts', 'new-check.mjs'), ...args, '--root', copy]);

  it('writes a probe and a rule that typecheck and are registered, with their fixture pairs', async () => {
    await scaffold(['scratch-write-probe', '--matrix', 'update', '--split', 'relation', '--severity', 'medium']);
    await scaffold(['scratch-rule', '--rule', '--severity', 'low']);

    for (const [kind, id, name] of [['probes', 'scratch-write-probe', 'scratchWriteProbe'], ['rules', 'scratch-rule', 'scratchRule']] as const) {
      const registry = await readFile(path.join(copy, 'src', kind, 'registry.ts'), 'utf8');
      expect(registry).toContain(`import { ${name} } from './${id}.js';`);
      expect(registry).toMatch(new RegExp(`\\n  ${name},\\n\\];`));
      const fixtures = path.join(copy, 'test', 'fixtures', id);
      expect(await readFile(path.join(fixtures, 'vulnerable.sql'), 'utf8')).toContain('create table');
      expect(await readFile(path.join(fixtures, 'secure.sql'), 'utf8')).toContain('create table');
      expect(YAML.parse(await readFile(path.join(fixtures, 'expect.yaml'), 'utf8'))).toEqual({ pair: {} });
    }

    const tsc = path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
    await expect(run(process.execPath, [tsc, '-p', path.join(copy, 'tsconfig.json'), '--noEmit'])).resolves.toBeDefined();

    const checks = (await import(path.join(copy, 'src', 'findings', 'checks.ts'))) as typeof import('../src/findings/checks.js');
    const { PROBES } = (await import(path.join(copy, 'src', 'probes', 'registry.ts'))) as typeof import('../src/probes/registry.js');
    expect(checks.allChecks().filter((check) => check.id.startsWith('scratch-')).map((check) => [check.id, check.source, check.severity])).toEqual([
      ['scratch-write-probe', 'probe', 'medium'],
      ['scratch-rule', 'rule', 'low'],
    ]);
    expect(checks.matrixPlacements().find((check) => check.id === 'scratch-write-probe')).toEqual({ id: 'scratch-write-probe', matrix: 'update' });
    const probe = PROBES[PROBES.length - 1]!;
    expect([probe.meta.id, probe.split, probe.exclusive]).toEqual(['scratch-write-probe', 'relation', false]);
    // The metadata it writes already states a precondition naming its most severe level.
    for (const check of checks.allChecks().filter((entry) => entry.id.startsWith('scratch-'))) expect(check.precondition.toLowerCase()).toContain(check.severity);
  }, 120_000);

  it('refuses an id that is not kebab-case, or a check that exists', async () => {
    await expect(scaffold(['Bad_Id'])).rejects.toMatchObject({ stderr: expect.stringContaining('kebab-case') });
    await expect(scaffold(['read-isolation'])).rejects.toMatchObject({ stderr: expect.stringContaining('src/probes/read-isolation.ts exists') });
    await expect(scaffold(['x-probe', '--matrix', 'sideways'])).rejects.toMatchObject({ stderr: expect.stringContaining('--matrix is one of') });
  });
});
