import type { Check } from './findings.js';
import { PROBES } from './probes/registry.js';
import { RULES } from './rules/registry.js';

/** Every check id the tool can report: probes, what they report along the way, and rules. */
export function allChecks(): Check[] {
  const checks: Check[] = [];
  for (const probe of PROBES) {
    checks.push({ id: probe.id, title: probe.title, severity: probe.severity, kind: 'probe', explanation: probe.explanation });
    for (const related of probe.related ?? []) checks.push(related);
  }
  for (const rule of RULES) checks.push({ id: rule.id, title: rule.title, severity: rule.severity, kind: 'rule', explanation: rule.explanation });
  return checks;
}

export function renderChecks(checks: Check[]): string {
  const width = Math.max(...checks.map((check) => check.id.length));
  return `${checks.map((check) => `${check.id.padEnd(width)}  ${check.kind.padEnd(5)}  ${check.severity.padEnd(8)}  ${check.title}`).join('\n')}\n`;
}
