import { objectLabel, type Finding } from '../findings/finding.js';
import type { Report } from '../report/model.js';
import { atLeast } from '../findings/severity.js';
import { describeOwner, tenantMatches, type AttributedRow } from './attribution.js';

/** What a test framework's custom matcher returns (vitest and jest share the shape). */
export interface MatcherResult {
  pass: boolean;
  message: () => string;
}

const LISTED = 10;

function isReport(value: unknown): value is Report {
  return typeof value === 'object' && value !== null && 'summary' in value && 'findings' in value && 'tool' in value;
}

function failing(report: Report): Finding[] {
  return report.findings.filter((finding) => atLeast(finding.severity, report.summary.failOn) && (!finding.accepted || finding.accepted.expired));
}

function describeFinding(finding: Finding): string {
  const fix = finding.fix.split('\n').filter((line) => line.trim()).map((line) => `      ${line}`).join('\n');
  return `  ${finding.severity.toUpperCase()} ${finding.check} on ${objectLabel(finding.object)}: ${finding.message}\n    fix:\n${fix}`;
}

/** `expect(report).toIsolateTenants()`: the audit's verdict is pass. */
export function toIsolateTenants(received: unknown): MatcherResult {
  if (!isReport(received)) {
    return { pass: false, message: () => `toIsolateTenants() expects the report that audit() returns, got ${typeof received}` };
  }
  const report = received;
  const { summary } = report;
  const pass = summary.verdict === 'pass';
  const what = `the audit of ${report.scenario.name} (${report.command}, role ${report.scenario.role}, ${report.tenants.length} tenants)`;
  if (pass) {
    const below = report.findings.length ? `; ${report.findings.length} finding(s) below ${summary.failOn} or accepted` : '';
    return { pass, message: () => `expected ${what} not to prove tenant isolation, but its verdict is PASS${below}` };
  }
  return {
    pass,
    message: () => {
      const findings = failing(report);
      const lines = [`expected ${what} to prove tenant isolation, but its verdict is ${summary.verdict.toUpperCase()} (fail on ${summary.failOn} and above: ${summary.failing} finding${summary.failing === 1 ? '' : 's'})`];
      lines.push(...findings.slice(0, LISTED).map(describeFinding));
      if (findings.length > LISTED) lines.push(`  ... and ${findings.length - LISTED} more (see the report's findings)`);
      // A leak fails the run even when another part of it proved nothing: both are worth reading.
      for (const entry of summary.inconclusive ?? []) lines.push(`  INCONCLUSIVE${entry.relation ? ` ${entry.relation}` : ''}: ${entry.reason}\n    try: ${entry.hint}`);
      return lines.join('\n');
    },
  };
}

function isAttributedRows(value: unknown): value is AttributedRow<object>[] {
  return Array.isArray(value) && value.every((entry) => typeof entry === 'object' && entry !== null && 'row' in entry && 'owner' in entry);
}

/**
 * `expect(rows).toBelongTo('A')`: every row `asTenant` returned is the tenant's own (rows of shared
 * tables are allowed). No rows, or a row that cannot be attributed, is not proof and fails.
 */
export function toBelongTo(received: unknown, tenant: string): MatcherResult {
  if (!isAttributedRows(received)) {
    return { pass: false, message: () => 'toBelongTo(tenant) expects the rows asTenant() returns (each carries the tenant it belongs to)' };
  }
  const rows = received;
  const strangers = rows.filter(({ owner }) => !(owner.kind === 'shared' || (owner.kind === 'tenant' && tenantMatches(owner.tenant, tenant))));
  const pass = rows.length > 0 && strangers.length === 0;
  const show = (entry: AttributedRow<object>) => `  ${JSON.stringify(entry.row)}\n    belongs to ${describeOwner(entry.owner)}`;
  if (pass) return { pass, message: () => `expected some of the ${rows.length} row(s) not to belong to ${tenant}, but every one does` };
  if (!rows.length) return { pass, message: () => `expected rows of ${tenant}, but the query returned none: an empty result proves nothing about isolation` };
  return {
    pass,
    message: () =>
      [
        `expected every row to belong to ${tenant}, but ${strangers.length} of ${rows.length} do not:`,
        ...strangers.slice(0, LISTED).map(show),
        ...(strangers.length > LISTED ? [`  ... and ${strangers.length - LISTED} more`] : []),
      ].join('\n'),
  };
}
