import { describe, expect, it } from 'vitest';
import { cause, causeKey } from '../src/findings/cause.js';
import { finishFindings } from '../src/findings/finish.js';
import type { Finding } from '../src/findings/finding.js';
import type { ProbeRecord } from '../src/probes/types.js';
import { reconcile } from '../src/rules/reconcile.js';
import { RULES } from '../src/rules/registry.js';

const table = (name: string) => ({ kind: 'table' as const, name });

function finding(check: string, source: 'probe' | 'rule', object: string, fix: string, extra: Partial<Finding> = {}): Finding {
  return { check, source, severity: 'high', object: table(object), message: `${check} on ${object}`, evidence: { sql: 'select 1', context: 'tenant A' }, fix, ...extra };
}

describe('one defect, one finding: grouped by cause', () => {
  it('findings of one cause are one finding whatever their fixes say; the same fix text alone groups nothing', () => {
    const moved = cause('loose-policy', table('public.profiles'), { command: 'UPDATE', clause: 'check', policies: ['edit own profile'] });
    const grouped = reconcile([], [finding('tenant-reassignment', 'probe', 'public.profiles', 'alter policy ...;', { cause: moved }), finding('user-pointer', 'probe', 'public.profiles', '-- a comment', { cause: moved })], [], RULES);
    expect(grouped).toHaveLength(1);
    expect(grouped[0]!.confirmedBy!.map((entry) => entry.check)).toEqual(['user-pointer']);

    const sameText = reconcile([], [finding('read-isolation', 'probe', 'public.a', 'alter table t force row level security;'), finding('read-isolation', 'probe', 'public.b', 'alter table t force row level security;')], [], RULES);
    expect(sameText).toHaveLength(2);
  });

  it('tells causes apart by their facts, lists compared as sets', () => {
    const object = table('public.notes');
    expect(causeKey(cause('loose-policy', object, { command: 'SELECT', policies: ['a', 'b'] }))).toBe(causeKey(cause('loose-policy', object, { policies: ['b', 'a'], command: 'SELECT' })));
    expect(causeKey(cause('loose-policy', object, { command: 'SELECT', policies: ['a'] }))).not.toBe(causeKey(cause('loose-policy', object, { command: 'UPDATE', policies: ['a'] })));
    expect(causeKey(cause('rls-disabled', object))).not.toBe(causeKey(cause('rls-disabled', table('public.tasks'))));
  });

  it('a run stopped at its time limit groups its findings but lowers none on the probes that happened to run', () => {
    const rule = finding('rls-disabled', 'rule', 'public.notes', 'alter table ...;');
    const record = (tenant: string): ProbeRecord => ({ check: 'read-isolation', relation: 'public.notes', context: `tenant ${tenant}`, tenant, sql: 'select 1', outcome: 'pass', rows: 5, foreignRows: 0, missingOwnRows: 0 });
    const finish = (complete: boolean) =>
      finishFindings({ ruleFindings: [rule], probeFindings: [], probes: [record('A'), record('B')], complete, accept: [], failOn: 'high', rowsSeeded: 10, queries: 2, inconclusive: [], locate: () => ({}) });
    const full = finish(true);
    expect(full.findings[0]!.severity).toBe('info');
    expect(full.summary.verdict).toBe('pass');
    const partial = finish(false);
    expect(partial.findings[0]!.severity).toBe('high');
    expect(partial.findings[0]!.fingerprint).toMatch(/^[0-9a-f]{32}$/);
    expect(partial.summary).toMatchObject({ verdict: 'fail', failing: 1 });
  });
});
