import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { ROOT } from './helpers.js';

interface Step {
  id?: string;
  if?: string;
  uses?: string;
  run?: string;
  env?: Record<string, string>;
  with?: Record<string, string>;
}
interface Action {
  inputs: Record<string, { default?: string }>;
  outputs: Record<string, { value: string }>;
  runs: { using: string; steps: Step[] };
}

const action = parse(readFileSync(path.join(ROOT, 'action.yml'), 'utf8')) as Action;
const text = readFileSync(path.join(ROOT, 'action.yml'), 'utf8');

describe('action.yml (GitHub Actions)', () => {
  it('is a composite action whose expressions name only its own inputs and steps', () => {
    expect(action.runs.using).toBe('composite');
    for (const [, name] of text.matchAll(/inputs\.([a-z-]+)/g)) expect(Object.keys(action.inputs)).toContain(name);
    const ids = action.runs.steps.map((step) => step.id).filter(Boolean);
    for (const [, id] of text.matchAll(/steps\.([a-z-]+)\.outputs/g)) expect(ids).toContain(id);
    const upload = action.runs.steps.find((step) => step.uses?.startsWith('github/codeql-action/upload-sarif@'))!;
    expect(upload.if).toMatch(/^always\(\) && /);
    // The job fails with the audit's own exit code, after the upload.
    expect(action.runs.steps.at(-1)!.run).toMatch(/exit "\$\{CODE:-2\}"/);
  });

  const cli = path.join(ROOT, 'dist', 'cli.js');

  it.skipIf(!existsSync(cli))('its audit step runs the CLI, records exit code, verdict and report paths, and writes the job summary', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'rls-audit-action-'));
    const outputs = path.join(dir, 'outputs');
    const summary = path.join(dir, 'summary.md');
    await writeFile(outputs, '');
    const step = action.runs.steps.find((candidate) => candidate.id === 'audit')!;
    const result = spawnSync('bash', ['-e', '-c', step.run!], {
      cwd: ROOT,
      encoding: 'utf8',
      env: {
        ...process.env,
        CLI: `${process.execPath} ${cli}`,
        COMMAND: 'lint',
        SCENARIO: 'scenarios/demo.yaml',
        FAIL_ON: action.inputs['fail-on']!.default!,
        BASELINE: '',
        OUT: path.join(dir, 'report'),
        ARGS: '--quiet',
        GITHUB_OUTPUT: outputs,
        GITHUB_STEP_SUMMARY: summary,
      },
    });
    expect(result.status).toBe(0);
    const recorded = Object.fromEntries(readFileSync(outputs, 'utf8').trim().split('\n').map((line) => line.split(/=(.*)/s).slice(0, 2)));
    expect(recorded).toEqual({
      'exit-code': '1',
      report: path.join(dir, 'report', 'report.json'),
      sarif: path.join(dir, 'report', 'report.sarif'),
      verdict: 'fail',
    });
    expect(existsSync(recorded.sarif!)).toBe(true);
    expect(readFileSync(summary, 'utf8')).toMatch(/definer-view/);
  });
});
