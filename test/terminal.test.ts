import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { colourEnabled, colourSummary, palette, progressEnabled } from '../src/terminal.js';
import { ROOT } from './helpers.js';

const ESC = '\u001b[';

describe('colour and progress are for people at a terminal', () => {
  it('colour on a TTY only, NO_COLOR turns it off, FORCE_COLOR decides over both', () => {
    expect(colourEnabled({ isTTY: true }, {})).toBe(true);
    expect(colourEnabled({ isTTY: false }, {})).toBe(false);
    expect(colourEnabled({ isTTY: true }, { NO_COLOR: '1' })).toBe(false);
    expect(colourEnabled({ isTTY: true }, { NO_COLOR: '' })).toBe(true);
    expect(colourEnabled({ isTTY: true }, { TERM: 'dumb' })).toBe(false);
    expect(colourEnabled({ isTTY: false }, { FORCE_COLOR: '1' })).toBe(true);
    expect(colourEnabled({ isTTY: true }, { FORCE_COLOR: '0', NO_COLOR: '' })).toBe(false);
    expect(colourEnabled({ isTTY: true }, { FORCE_COLOR: '1', NO_COLOR: '1' })).toBe(true);
    expect(progressEnabled({ isTTY: true }, {})).toBe(true);
    expect(progressEnabled({ isTTY: true }, { CI: 'true' })).toBe(false);
    expect(progressEnabled({ isTTY: false }, {})).toBe(false);
  });

  it('colours severity labels and the verdict, and nothing when colour is off', () => {
    const summary = '  HIGH     read-isolation  public.messages: As tenant A, ...\n  verdict: FAIL (fail on high and above: 1 finding)\n';
    expect(colourSummary(summary, palette(false))).toBe(summary);
    const coloured = colourSummary(summary, palette(true));
    expect(coloured).toContain(`  ${ESC}31mHIGH${ESC}39m     read-isolation`);
    expect(coloured).toContain(`verdict: ${ESC}1m${ESC}31mFAIL${ESC}39m${ESC}22m (fail on`);
    expect(coloured.replace(/\u001b\[\d+m/g, '')).toBe(summary);
  });

  const script = ['/usr/bin/script', '/bin/script'].find((candidate) => existsSync(candidate));
  const cli = path.join(ROOT, 'dist', 'cli.js');

  /** Run the built CLI on a pseudo-terminal (util-linux `script`), as a person would see it. */
  async function onTerminal(env: Record<string, string>): Promise<string> {
    const out = await mkdtemp(path.join(os.tmpdir(), 'rls-audit-tty-'));
    const { CI: _ci, NO_COLOR: _noColour, FORCE_COLOR: _force, ...base } = process.env;
    const command = `${JSON.stringify(process.execPath)} ${JSON.stringify(cli)} lint scenarios/chat.yaml --out ${JSON.stringify(out)}`;
    const result = spawnSync(script!, ['-q', '-e', '-c', command, '/dev/null'], { cwd: ROOT, env: { ...base, TERM: 'xterm-256color', ...env }, encoding: 'utf8' });
    expect(result.status).toBe(0);
    return result.stdout;
  }

  it.skipIf(!script || !existsSync(cli))('on a TTY: a bar per phase and a coloured verdict; with CI and NO_COLOR set: neither', async () => {
    const tty = await onTerminal({});
    for (const phase of ['database', 'schema', 'catalog']) expect(tty).toMatch(new RegExp(`${phase}.*\u2588+ 1/1`));
    expect(tty).toContain(`verdict: ${ESC}1m${ESC}32mPASS`);

    const plain = await onTerminal({ CI: 'true', NO_COLOR: '1' });
    expect(plain).not.toContain('\u2588');
    expect(plain).not.toMatch(/\u001b\[3\dm/);
    expect(plain).toMatch(/verdict: PASS/);
  }, 240_000);
});
