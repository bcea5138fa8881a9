import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, cp, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { PROBES } from '../src/probes/registry.js';
import { RULES } from '../src/rules/registry.js';
import { ROOT } from './helpers.js';

const run = promisify(execFile);
const npm = (args: string[], cwd: string) => run('npm', [...args, '--no-audit', '--no-fund', '--loglevel=error'], { cwd, maxBuffer: 32 * 1024 * 1024 });
const made: string[] = [];

/** A directory PostgreSQL (run as an unprivileged user when the tests run as root) can read. */
async function tempDir(prefix: string): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), prefix));
  await chmod(dir, 0o755);
  made.push(dir);
  return dir;
}

afterAll(async () => {
  for (const dir of made) await rm(dir, { recursive: true, force: true });
});

describe('the published package', () => {
  it.skipIf(!existsSync(path.join(ROOT, 'dist', 'cli.js')))('installs from its tarball into an empty directory and runs there with npx', async () => {
    // `npm test` has just built dist/ (what `prepare` does on `npm pack`); rebuilding it here would race the
    // other test files that run dist/cli.js. prepack and postpack are run as `npm pack` runs them.
    const packed = await tempDir('rls-audit-pack-');
    await npm(['run', 'prepack'], ROOT);
    let listing: { filename: string; files: { path: string }[] }[];
    try {
      listing = JSON.parse((await npm(['pack', '--ignore-scripts', '--json', '--pack-destination', packed], ROOT)).stdout);
    } finally {
      await npm(['run', 'postpack'], ROOT);
    }
    const files = listing[0]!.files.map((file) => file.path);
    expect(files).toEqual(expect.arrayContaining(['dist/cli.js', 'dist/index.js', 'dist/index.d.ts', 'dist/library/vitest.js', 'dist/library/vitest.d.ts', 'npm-shrinkwrap.json', 'scenarios/demo.yaml', 'package.json', 'README.md']));
    expect(files.filter((file) => /^(src|test|bench|reports)\/|\.map$|^package-lock\.json$/.test(file))).toEqual([]);
    // The registries read their checks/ folders at load: every check module is in the package.
    expect(files.filter((file) => /^dist\/(probes|rules)\/checks\/[^/]+\.js$/.test(file)).length).toBe(
      (await readdir(path.join(ROOT, 'src', 'probes', 'checks'))).length + (await readdir(path.join(ROOT, 'src', 'rules', 'checks'))).length,
    );

    // An empty project. The tarball's shrinkwrap pins the lockfile's versions, whose tarballs `npm ci` left in
    // npm's cache: --prefer-offline takes them from there instead of downloading them again.
    const project = await tempDir('rls-audit-consumer-');
    await writeFile(path.join(project, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }));
    await npm(['install', path.join(packed, listing[0]!.filename), '--prefer-offline'], project);
    const installed = JSON.parse(await readFile(path.join(project, 'node_modules', 'rls-audit', 'package.json'), 'utf8')) as { version: string };
    const { stdout: version } = await run('npx', ['rls-audit', '--version'], { cwd: project });
    expect(version.trim()).toBe(installed.version);

    // The user's own scenario: the demo, with its planted leak, copied next to nothing else.
    for (const entry of ['demo.yaml', 'demo', 'chat']) await cp(path.join(ROOT, 'scenarios', entry), path.join(project, entry), { recursive: true });
    const audit = await run('npx', ['rls-audit', 'run', 'demo.yaml', '--format', 'sarif'], { cwd: project }).then(
      () => ({ code: 0, stdout: '' }),
      (error: { code: number; stdout: string }) => error,
    );
    expect(audit.code).toBe(1);
    expect(audit.stdout).toMatch(/definer-view +public\.recent_messages/);
    // README shows this run's output: its findings and verdict are what the installed package prints.
    const readme = await readFile(path.join(ROOT, 'README.md'), 'utf8');
    const shown = readme.slice(readme.indexOf('scenarios/demo.yaml` prints')).split('```')[1]!.split('\n');
    const findingLines = shown.filter((line) => /^ {2}(CRITICAL|HIGH|MEDIUM|LOW) |^ {2}(findings|verdict): /.test(line));
    expect(findingLines.length).toBeGreaterThan(2);
    for (const line of findingLines) expect(audit.stdout.split('\n')).toContain(line);
    expect(existsSync(path.join(project, 'reports', 'demo', 'report.sarif'))).toBe(true);

    // The library entry point loads from the installed package (the vitest one needs vitest, an optional peer).
    const { stdout: exported } = await run(process.execPath, ['--input-type=module', '-e', "const m = await import('rls-audit'); console.log(typeof m.audit, typeof m.createAuditDatabase, typeof m.renderSarif)"], { cwd: project });
    expect(exported.trim()).toBe('function function function');
    const { stdout: checks } = await run(process.execPath, ['--input-type=module', '-e', "const m = await import('rls-audit'); console.log(JSON.stringify([m.PROBES.map((p) => p.meta.id), m.RULES.map((r) => r.meta.id)]))"], { cwd: project });
    expect(JSON.parse(checks)).toEqual([PROBES.map((probe) => probe.meta.id), RULES.map((rule) => rule.meta.id)]);
  }, 300_000);
});
