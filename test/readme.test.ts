import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { allChecks, renderCheckTables, replaceCheckTables } from '../src/findings/checks.js';
import { COMMANDS, commandOptions, renderUsage, replaceUsage, type CommandName } from '../src/scenario/options.js';
import { ROOT } from './helpers.js';

describe('README', () => {
  it('lists every check as its metadata describes it (regenerate with `npm run readme:checks`)', async () => {
    const readme = await readFile(path.join(ROOT, 'README.md'), 'utf8');
    expect(replaceCheckTables(readme), 'README.md check tables differ from the metadata: run `npm run readme:checks`').toBe(readme);
    const tables = renderCheckTables();
    for (const check of allChecks()) expect(tables).toContain(`| \`${check.id}\` | ${check.objectKind} | ${check.severity} |`);
  });

  it('shows the usage of every command as the option table declares it (regenerate with `npm run readme:checks`)', async () => {
    const readme = await readFile(path.join(ROOT, 'README.md'), 'utf8');
    expect(replaceUsage(readme), 'README.md usage differs from the option table: run `npm run readme:checks`').toBe(readme);
    const usage = renderUsage();
    for (const command of Object.keys(COMMANDS) as CommandName[]) {
      const block = usage.slice(usage.indexOf(`rls-audit ${command} `), usage.indexOf('\nrls-audit ', usage.indexOf(`rls-audit ${command} `) + 1));
      for (const option of commandOptions(command)) expect(block, `${command} ${option.flag}`).toContain(`[${option.flag}`);
    }
  });

  it('every check has a one-line summary and an example', () => {
    for (const check of allChecks()) {
      expect(check.summary, check.id).toMatch(/^[A-Z].*\.$/);
      expect(check.summary, check.id).not.toContain('\n');
      expect(check.example.length, check.id).toBeGreaterThan(20);
    }
  });
});
