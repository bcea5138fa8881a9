import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { allChecks, audit, lint, loadScenario, PROBES, renderConsole, renderHtml, renderJson, RULES } from '../src/index.js';
import { ROOT } from './helpers.js';

describe('the library API', () => {
  it('audit() and lint() return reports that every renderer turns into its format', async () => {
    const scenario = await loadScenario(path.join(ROOT, 'scenarios/chat.yaml'));
    const report = await audit(scenario);
    expect(report.command).toBe('run');
    expect(report.summary.verdict).toBe('pass');
    expect(JSON.parse(renderJson(report))).toEqual(report);
    expect(renderHtml(report)).toMatch(/^<!doctype html>/i);
    expect(renderConsole(report)).toMatch(/verdict: PASS/);
    expect(report.timings.perProbe).toHaveProperty('read-isolation');

    const linted = await lint(scenario);
    expect(linted.command).toBe('lint');
    expect(linted.probes).toEqual([]);
    expect(linted.tenants).toEqual([]);
    expect(linted.findings).toEqual([]);
  });

  it('lists every check once, probes and rules', () => {
    const ids = allChecks().map((check) => check.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const probe of PROBES) expect(ids).toContain(probe.meta.id);
    for (const rule of RULES) expect(ids).toContain(rule.meta.id);
    for (const id of ids) expect(id).toMatch(/^[a-z]+(-[a-z]+)*$/);
  });
});
