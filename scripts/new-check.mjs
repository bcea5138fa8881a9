// Scaffold a new check: `npm run new-check -- <id> [--rule] [--severity <level>] [--matrix <place>] [--split relation|whole] [--order <n>]`.
//
// Writes everything a check is (see README "Architecture"), and nothing else: its module
// (src/probes/checks/<id>.ts, or src/rules/checks/<id>.ts with --rule), which the registry finds there, and its
// fixture folder test/fixtures/<id>/ with a vulnerable fixture, its secure twin and an expect.yaml that has
// test/check-fixtures.test.ts run the pair. The module typechecks and is discovered as written, last in the
// run order unless --order places it (the shipped checks are spaced by 10); its metadata, its logic and the
// fixtures are then to be filled in (the fixture tests fail until the vulnerable fixture is flagged).
// `--root <dir>` writes into another copy of the project.
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const SEVERITIES = ['critical', 'high', 'medium', 'low', 'info'];
const MATRIX = ['read', 'insert', 'update', 'delete', 'missing', 'outside'];
const SPLITS = ['relation', 'whole'];

function fail(message) {
  console.error(`new-check: ${message}`);
  process.exit(1);
}

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    rule: { type: 'boolean', default: false },
    severity: { type: 'string', default: 'high' },
    matrix: { type: 'string', default: 'read' },
    split: { type: 'string', default: 'whole' },
    order: { type: 'string' },
    root: { type: 'string' },
  },
});

const id = positionals[0];
if (!id || positionals.length !== 1) fail('usage: npm run new-check -- <id> [--rule] [--severity <level>] [--matrix <place>] [--split relation|whole] [--order <n>]');
if (!/^[a-z][a-z0-9]*(-[a-z0-9]+)*$/.test(id)) fail(`${id}: a check id is kebab-case (lower-case words joined by -)`);
if (!SEVERITIES.includes(values.severity)) fail(`--severity is one of ${SEVERITIES.join(', ')}`);
if (!MATRIX.includes(values.matrix)) fail(`--matrix is one of ${MATRIX.join(', ')}`);
if (!SPLITS.includes(values.split)) fail(`--split is one of ${SPLITS.join(', ')}`);
if (values.order !== undefined && !/^[0-9]+$/.test(values.order)) fail('--order is a whole number: the place in the run order (ascending, ties broken by id)');

const root = path.resolve(values.root ?? path.join(path.dirname(fileURLToPath(import.meta.url)), '..'));
const kind = values.rule ? 'rules' : 'probes';
const name = id.replace(/-([a-z0-9])/g, (_, letter) => letter.toUpperCase());
const checks = path.join(root, 'src', kind, 'checks');
const module = path.join(checks, `${id}.ts`);
const fixtures = path.join(root, 'test', 'fixtures', id);
if (existsSync(module)) fail(`${path.relative(root, module)} exists`);
if (existsSync(fixtures)) fail(`${path.relative(root, fixtures)} exists`);

/** The place after the last check of its kind: the largest `order` its folder's modules declare (as this script and the shipped checks write it), plus 10. */
async function lastOrder() {
  let last = 0;
  for (const file of (await readdir(checks)).filter((name) => name.endsWith('.ts'))) {
    const declared = /^  order: ([0-9]+),$/m.exec(await readFile(path.join(checks, file), 'utf8'));
    if (declared) last = Math.max(last, Number(declared[1]));
  }
  return last + 10;
}
const order = values.order === undefined ? await lastOrder() : Number(values.order);

const level = values.severity[0].toUpperCase() + values.severity.slice(1);
const title = id.replace(/-/g, ' ').replace(/^./, (letter) => letter.toUpperCase());
// Every string below is to be rewritten; each says what it must hold (findings/finding.ts, CheckMeta).
const meta = (indent) =>
  [
    `id: '${id}',`,
    ...(values.rule ? [] : [`// Its column in the HTML matrix: read, insert, update, delete, missing, or outside (not one command on one tenant-owned relation).`, `matrix: '${values.matrix}',`]),
    `title: '${title}',`,
    `// The most severe level it reports; each finding may be lower.`,
    `severity: '${values.severity}',`,
    `objectKind: 'table',`,
    `summary: '${title}: one line, what it finds.',`,
    `example: 'A finding as it reads in a report.',`,
    `explanation: 'What is checked, why it matters, how it is fixed.',`,
    `// Per severity it reports: the precondition of the exploit and how the check establishes it (names ${values.severity}).`,
    `precondition: '${level}: what an attacker needs, and how the check establishes it.',`,
  ]
    .map((line) => `${indent}${line}`)
    .join('\n');

const probeModule = `import type { Finding } from '../../findings/finding.js';
import { defineProbe } from '../types.js';

/** ${id}: what this probe proves, on seeded data, as the application role. */
export const ${name} = defineProbe({
  // Its place in the run order (ascending, ties broken by id); the shipped probes are spaced by 10.
  order: ${order},
  meta: {
${meta('    ')}
  },
  // 'relation' when its work is one independent piece per relation (it iterates readTargets / writeTargets, or
  // checks inPart itself): it is then split across --shard and --jobs; 'whole' runs it in one place.
  split: '${values.split}',
  async run(_context, _report) {
    const findings: Finding[] = [];
    // Run the statements as the application role (context.session, see ../context.ts runAs), record each with
    // context.record(), and report what crosses a tenant's boundary, e.g.
    // findings.push(report({ severity: '${values.severity}', object: relationObject(relation), message, evidence: { sql, context: label } }));
    return findings;
  },
});
`;

const ruleModule = `import type { Finding } from '../../findings/finding.js';
import { defineRule } from '../types.js';

/** ${id}: what this rule reads from the catalog. */
export const ${name} = defineRule({
  // Its place in the evaluation order (ascending, ties broken by id); the shipped rules are spaced by 10.
  order: ${order},
  meta: {
${meta('    ')}
  },
  evaluate(_context, _report) {
    const findings: Finding[] = [];
    // Report each defect the catalog (context.catalog, context.analysis, context.plan) shows, with the catalog
    // query that shows it, e.g. findings.push(report({ severity: '${values.severity}', object: relationObject(relation), message, sql, fix }));
    return findings;
  },
});
`;

const table = `${id.replace(/-/g, '_')}_items`;
const tenantIs = "(select nullif(current_setting('app.current_tenant', true), '')::integer)";
const vulnerable = `-- ${id}: the smallest schema with the defect, which the check must flag. It starts as a tenant table
-- isolated correctly (the default context setting, app.current_tenant): change it so that it has the defect.
create role app_user nologin;
create table tenants (id integer primary key, name text not null);
alter table tenants enable row level security;
alter table tenants force row level security;
create policy tenant_self on tenants using (id = ${tenantIs});
grant select on tenants to app_user;
create table ${table} (
  tenant_id integer not null references tenants (id),
  id bigint generated always as identity,
  title text not null,
  primary key (tenant_id, id)
);
alter table ${table} enable row level security;
alter table ${table} force row level security;
create policy tenant_isolation on ${table} using (tenant_id = ${tenantIs}) with check (tenant_id = ${tenantIs});
grant select, insert, update, delete on ${table} to app_user;
`;

const secure = `-- ${id}: the secure twin of vulnerable.sql, the same schema without the defect, which nothing may flag at
-- medium or above.
${vulnerable.split('\n').slice(2).join('\n')}`;

const expectations = `# check-fixtures.test.ts runs this pair: the vulnerable fixture must be flagged, the fix.sql of its run must clear
# the finding, and the secure twin must not be flagged. \`fixable: false\` when fix.sql can only name the finding.
pair: {}
`;

await writeFile(module, values.rule ? ruleModule : probeModule);
await mkdir(fixtures, { recursive: true });
await writeFile(path.join(fixtures, 'vulnerable.sql'), vulnerable);
await writeFile(path.join(fixtures, 'secure.sql'), secure);
await writeFile(path.join(fixtures, 'expect.yaml'), expectations);
for (const file of [module, path.join(fixtures, 'vulnerable.sql'), path.join(fixtures, 'secure.sql'), path.join(fixtures, 'expect.yaml')]) {
  console.log(`wrote ${path.relative(root, file)}`);
}
console.log(`then: fill in the module and the fixtures, run npx vitest run test/check-fixtures.test.ts -t ${id}, and npm run readme:checks`);
