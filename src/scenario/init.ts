import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { stringify } from 'yaml';
import { lint } from '../audit.js';
import { AuditError } from '../errors.js';
import type { TenancyPlan } from '../plan/tenancy.js';
import { planNoteReason, planNoteText, type PlanNote } from '../plan/notes.js';
import type { Report } from '../report/model.js';
import type { Scenario } from './schema.js';

export interface InitResult {
  file: string;
  text: string;
  plan: TenancyPlan;
  report: Report;
}

/** A YAML value on one line, as `yaml` writes it (quoted when it must be). */
const inline = (value: unknown) => stringify(value, { lineWidth: 0, collectionStyle: 'flow', flowCollectionPadding: false }).trim();

/** `key: value  # comment`, the comments aligned in a column. */
function entry(key: string, value: unknown, comment?: string): string {
  const line = `${key}: ${inline(value)}`;
  return comment ? `${line.padEnd(44)} # ${comment}` : line;
}

/**
 * The scenario, written for a person to confirm: every value discovery chose, with the reason it was
 * chosen beside it, and the tenancy of every relation listed in comments.
 */
export function renderInitScenario(scenario: Scenario, plan: TenancyPlan, report: Report, file: string, source: string): string {
  const dir = path.dirname(file);
  const relative = (entryPath: string) => path.relative(dir, entryPath).split(path.sep).join('/') || '.';
  // The notes that explain a value written below, said beside it (and not again as a note). An assumed setting
  // is also a note: the reader must confirm it.
  const roleNote = plan.notes.find((candidate) => candidate.kind === 'role');
  const settingNote = plan.notes.find((candidate) => candidate.kind === 'setting');
  const tableNote = plan.notes.find((candidate) => candidate.kind === 'tenant-table');
  const besideValue = (candidate: PlanNote) => candidate === roleNote || candidate === tableNote || candidate.kind === 'tenant-columns' || (candidate === settingNote && settingNote.source !== 'assumed');
  const owned = plan.relations.filter((relation) => relation.tenancy !== 'shared');
  const shared = plan.relations.filter((relation) => relation.tenancy === 'shared');
  const width = Math.max(0, ...owned.map((relation) => relation.relation.length));
  const lines: string[] = [
    `# rls-audit scenario, written by \`rls-audit init\` from ${source}.`,
    '# Every value below was discovered from the catalog and the policies: check each one (the comment says',
    '# why it was chosen), then run `npx rls-audit run` here or below (it finds this file), or',
    `# \`npx rls-audit run ${path.basename(file)}\`.`,
    '',
    entry('name', scenario.name, 'names the report folder, reports/<name>/'),
  ];
  if (scenario.schema.length) {
    lines.push('schema:                                      # applied in order, as the superuser, on a throwaway PostgreSQL');
    for (const schemaFile of scenario.schema) lines.push(`  - ${inline(relative(schemaFile))}`);
  }
  if (scenario.preset) {
    lines.push(entry('preset', scenario.preset, 'what the platform creates before the migrations, and how its requests carry the user and the tenant'));
    if (scenario.anonymousRole) lines.push(entry('anonymousRole', scenario.anonymousRole, 'requests without a JWT run as this role'));
    if (scenario.authenticator) lines.push(entry('authenticator', scenario.authenticator, 'the role the API server logs in as'));
  }
  if (scenario.apiSchemas) lines.push(entry('apiSchemas', scenario.apiSchemas, 'what the API exposes; findings on what nothing there reaches are info'));
  if (scenario.target.kind === 'url') {
    lines.push(
      '# An existing database: the URL is not written here (it may hold a password). Give it when you run:',
      '#   npx rls-audit run --database-url "$DATABASE_URL"',
      entry('target', { kind: 'url' }),
    );
  } else if (scenario.target.pgBin) {
    lines.push(entry('target', { kind: scenario.target.kind, pgBin: relative(scenario.target.pgBin) }));
  }
  lines.push(
    entry('role', plan.role, scenario.role ? 'given' : ((roleNote && planNoteReason(roleNote)) ?? 'discovered')),
    entry('setting', plan.setting, scenario.setting ? 'given' : ((settingNote && planNoteReason(settingNote)) ?? 'discovered')),
    '# How the application sets the tenant for a transaction ($1 is the tenant id, bound as text). Replace it',
    "# with your application's own SQL if it sets the context another way (a function, JWT claims, SET ROLE).",
    entry('contextSql', plan.contextSql),
  );
  if (plan.tenantKey.relation) {
    lines.push(entry('tenantTable', plan.tenantKey.relation, `key ${plan.tenantKey.column} (${plan.tenantKey.type}); ${(tableNote && planNoteReason(tableNote)) ?? 'given'}`));
  } else {
    lines.push(`# No tenant table: tenant ids are values of ${plan.tenantKey.column} (${plan.tenantKey.type}).`);
  }
  lines.push(entry('tenantColumn', plan.tenantColumns, scenario.tenantColumn.length ? 'given' : 'discovered'));
  lines.push('', `# Tenant-owned relations (${owned.length}):`);
  for (const relation of owned) lines.push(`#   ${relation.relation.padEnd(width)}  ${relation.tenancy}: ${relation.reason}`);
  if (shared.length) lines.push(`# Shared relations, never reported as leaks (${shared.length}): ${shared.map((relation) => relation.relation).join(', ')}`);
  for (const other of plan.notes.filter((candidate) => !besideValue(candidate))) lines.push(`# Note: ${planNoteText(other)}`);
  const { findings } = report.summary;
  const static_ = Object.entries(findings).filter(([, count]) => count > 0).map(([severity, count]) => `${count} ${severity}`).reverse();
  lines.push(
    '',
    entry('tenants', scenario.tenants, 'tenants seeded'),
    entry('rows', scenario.rows, 'rows per tenant-owned table per tenant'),
    entry('failOn', scenario.failOn, 'exit 1 at or above this severity'),
    '',
    "# The application's own queries, run as every tenant and attributed row by row, e.g.:",
    '# queries:',
    '#   - { name: inbox, sql: "select * from messages where conversation_id = $1", params: [42] }',
    '# Findings you accept stay in the report and do not fail the run:',
    '# accept:',
    '#   - { check: unique-without-tenant, object: public.users, reason: "emails are unique by design", expires: 2027-06-30 }',
    '',
    `# The static rules found ${static_.length ? static_.join(', ') : 'nothing'} on this schema; \`rls-audit run\` proves or refutes them on seeded data.`,
  );
  return `${lines.join('\n')}\n`;
}

/**
 * Discover the tenancy of a schema or database (read-only, as `lint` does) and write a commented scenario.
 * Refuses to overwrite an existing file unless `force`.
 */
export async function initScenario(scenario: Scenario, options: { file: string; force?: boolean; source: string }): Promise<InitResult> {
  if (existsSync(options.file) && !options.force) {
    throw new AuditError(`${options.file} exists already: remove it, write elsewhere with --file PATH, or replace it with --force`);
  }
  let plan: TenancyPlan | undefined;
  const report = await lint(scenario, { onPlan: (planned) => (plan = planned) });
  const text = renderInitScenario(scenario, plan!, report, options.file, options.source);
  await writeFile(options.file, text);
  return { file: options.file, text, plan: plan!, report };
}
