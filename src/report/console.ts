import { objectLabel } from '../findings/finding.js';
import { SEVERITIES } from '../findings/severity.js';
import { isSeedingNote, notesOf, noteText } from './notes.js';
import type { Report } from './model.js';
import { brokenContext, verdictLabel } from '../findings/verdict.js';

/** A short summary for a terminal: verdict, counts, and one line per finding at or above low, in aligned columns. */
export function renderConsole(report: Report, files: string[] = []): string {
  const { summary } = report;
  const lines: string[] = [];
  const counts = [...SEVERITIES].reverse().map((severity) => `${summary.findings[severity]} ${severity}`).join(', ');
  lines.push(`rls-audit ${report.tool.version}: ${report.scenario.name} on ${report.target.description}`);
  if (report.command === 'lint') lines.push(`  static audit of ${report.relations.length} relations (${report.relations.filter((relation) => relation.tenancy !== 'shared').length} tenant-owned), read-only`);
  else lines.push(`  ${report.tenants.length} tenants, ${report.relations.filter((relation) => relation.tenancy !== 'shared').length} tenant-owned relations, ${summary.rowsSeeded} rows seeded, ${Object.values(summary.probes).reduce((sum, count) => sum + (count ?? 0), 0)} probes, ${summary.queries} queries`);
  // A context that showed no tenant its rows makes every probe moot: said before any finding.
  const broken = brokenContext(summary.inconclusive ?? []);
  if (broken) {
    lines.push(`  context: ${broken.reason}`);
    lines.push(`    try: ${broken.hint}`);
  }
  lines.push(`  findings: ${counts}${summary.accepted ? ` (${summary.accepted} accepted)` : ''}`);
  const listed = report.findings.filter((entry) => entry.severity !== 'info').slice(0, 25);
  // Columns as wide as their widest entry: a long check id must not push its object out of line.
  const severityWidth = Math.max(0, ...listed.map((finding) => finding.severity.length));
  const checkWidth = Math.max(0, ...listed.map((finding) => finding.check.length));
  for (const finding of listed) {
    const accepted = finding.accepted ? (finding.accepted.expired ? ' [acceptance expired]' : ' [accepted]') : finding.baseline && finding.baseline !== 'unchanged' ? ` [${finding.baseline}]` : '';
    const proof = finding.confirmedBy?.length ? ` [confirmed by ${finding.confirmedBy.length} probe finding${finding.confirmedBy.length === 1 ? '' : 's'}]` : finding.refutedBy ? ' [refuted by probes]' : '';
    lines.push(`  ${finding.severity.toUpperCase().padEnd(severityWidth)}  ${finding.check.padEnd(checkWidth)}  ${objectLabel(finding.object)}${accepted}${proof}: ${finding.message}`);
  }
  const more = report.findings.filter((entry) => entry.severity !== 'info').length - 25;
  if (more > 0) lines.push(`  ... and ${more} more`);
  if (report.command === 'run') lines.push(...coverageLines(report));
  for (const note of notesOf(report).filter(isSeedingNote)) lines.push(`  note: ${noteText(note)}`);
  for (const entry of (summary.inconclusive ?? []).filter((reason) => reason !== broken)) {
    lines.push(`  inconclusive: ${entry.reason}`);
    lines.push(`    try: ${entry.hint}`);
  }
  if (report.baseline) lines.push(`  ${baselineLine(report.baseline)}`);
  lines.push(`  verdict: ${verdictLabel(summary)}`);
  for (const file of files) lines.push(`  wrote ${file}`);
  return `${lines.join('\n')}\n`;
}

/** `baseline rls-audit.baseline.json: 1 new, 0 worse, 4 unchanged, 2 fixed`: what the ratchet compared. */
export function baselineLine(baseline: NonNullable<Report['baseline']>): string {
  return `baseline ${baseline.source}: ${baseline.new} new, ${baseline.worse} worse, ${baseline.unchanged} unchanged (not failing), ${baseline.fixed.length} fixed`;
}

/** Rows each tenant got, per tenant-owned relation (and leaf partition), wrapped: `public.invoices 20/20/20`. */
function coverageLines(report: Report): string[] {
  const ids = report.tenants.map((tenant) => tenant.id);
  const counts = (rows: Record<string, number>) => ids.map((id) => rows[id] ?? 0).join('/');
  const entries: string[] = [];
  for (const relation of report.relations) {
    const seeding = relation.seeding;
    if (!seeding || relation.tenancy === 'shared' || !Object.keys(seeding.tenants).length) continue;
    const partitions = seeding.partitions.map((partition) => `${partition.relation.replace(/^.*\./, '')} ${counts(partition.tenants)}`);
    entries.push(`${relation.name} ${counts(seeding.tenants)}${seeding.adopted ? ` (${seeding.adopted} from triggers)` : ''}${partitions.length ? ` [${partitions.join(', ')}]` : ''}`);
  }
  if (!entries.length) return [];
  const lines = [`  rows per tenant (${report.tenants.map((tenant) => tenant.label.replace(/^tenant /, '')).join('/')}):`];
  let line = '   ';
  for (const entry of entries) {
    if (line.length + entry.length > 110 && line.trim()) {
      lines.push(line.replace(/,$/, ''));
      line = '   ';
    }
    line += ` ${entry},`;
  }
  lines.push(line.replace(/,$/, ''));
  return lines;
}
