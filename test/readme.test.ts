import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { allChecks, renderCheckTables, replaceCheckTables } from '../src/findings/checks.js';
import { ROOT } from './helpers.js';

describe('README', () => {
  it('lists every check as its metadata describes it (regenerate with `npm run readme:checks`)', async () => {
    const readme = await readFile(path.join(ROOT, 'README.md'), 'utf8');
    expect(replaceCheckTables(readme), 'README.md check tables differ from the metadata: run `npm run readme:checks`').toBe(readme);
    const tables = renderCheckTables();
    for (const check of allChecks()) expect(tables).toContain(`| \`${check.id}\` | ${check.objectKind} | ${check.severity} |`);
  });

  it('every check has a one-line summary and an example', () => {
    for (const check of allChecks()) {
      expect(check.summary, check.id).toMatch(/^[A-Z].*\.$/);
      expect(check.summary, check.id).not.toContain('\n');
      expect(check.example.length, check.id).toBeGreaterThan(20);
    }
  });
});
