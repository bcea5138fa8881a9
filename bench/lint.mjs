/**
 * Times `rls-audit lint` on a generated 100-table schema (bench/schema.mjs), phase by phase: introspection,
 * tenancy planning, and every rule, over several rounds. Uses the built library: run `npm run build` first.
 *
 *   node bench/lint.mjs [--tables 100] [--rounds 5] [--pg-bin /usr/lib/postgresql/15/bin]
 */
import { performance } from 'node:perf_hooks';
import pg from 'pg';
import { analyze, loadParser } from '../dist/analysis/index.js';
import { lint } from '../dist/audit.js';
import { introspect } from '../dist/catalog/introspect.js';
import { planTenancy } from '../dist/plan/tenancy.js';
import { RULES } from '../dist/rules/registry.js';
import { scenarioSchema } from '../dist/scenario/schema.js';
import { startEmbedded } from '../dist/target/embedded.js';
import { generateSchema } from './schema.mjs';

function option(name, fallback) {
  const at = process.argv.indexOf(`--${name}`);
  return at > 0 ? process.argv[at + 1] : fallback;
}

const tables = Number(option('tables', '100'));
const rounds = Number(option('rounds', '5'));
const pgBin = option('pg-bin', undefined);

const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
const ms = (value) => `${value.toFixed(1).padStart(8)} ms`;

const target = await startEmbedded(pgBin ? { pgBin } : {});
// Pipelined, as the audit's own session is (introspection then sends its queries together).
const client = new pg.Client({ connectionString: target.connectionString, pipeline: true });
try {
  await client.connect();
  const schema = generateSchema({ tables });
  let started = performance.now();
  await client.query(schema);
  console.log(`schema: ${tables} tenant tables applied in ${ms(performance.now() - started)}`);

  const scenario = scenarioSchema.parse({ role: 'app_user' });
  const phases = { introspection: [], analysis: [], planning: [], rules: [] };
  await loadParser();
  const perRule = new Map(RULES.map((rule) => [rule.meta.id, []]));
  let findings = [];
  for (let round = 0; round < rounds; round += 1) {
    await client.query('begin read only');
    started = performance.now();
    const catalog = await introspect(client);
    phases.introspection.push(performance.now() - started);
    await client.query('rollback');

    started = performance.now();
    const analysis = analyze(catalog, scenario.role);
    phases.analysis.push(performance.now() - started);

    started = performance.now();
    const plan = planTenancy(catalog, scenario, analysis);
    phases.planning.push(performance.now() - started);

    const rulesStarted = performance.now();
    findings = [];
    for (const rule of RULES) {
      const ruleStarted = performance.now();
      findings.push(...rule.evaluate({ catalog, plan, analysis }));
      perRule.get(rule.meta.id).push(performance.now() - ruleStarted);
    }
    phases.rules.push(performance.now() - rulesStarted);
  }

  // The whole command path, as `rls-audit lint` runs it against this database (no cluster start, no schema).
  const whole = [];
  for (let round = 0; round < rounds; round += 1) {
    started = performance.now();
    await lint(scenario, { target: { ...target, close: async () => undefined } });
    whole.push(performance.now() - started);
  }

  console.log(`\nmedian of ${rounds} rounds:`);
  for (const [phase, values] of Object.entries(phases)) console.log(`  ${phase.padEnd(28)} ${ms(median(values))}`);
  const total = median(phases.introspection) + median(phases.analysis) + median(phases.planning) + median(phases.rules);
  console.log(`  ${'introspection+analysis+plan+rules'.padEnd(28)} ${ms(total)}`);
  console.log(`  ${'lint() end to end'.padEnd(28)} ${ms(median(whole))}  (session, introspection, analysis, plan, rules, report)`);
  console.log('\nper rule (median):');
  for (const [id, values] of [...perRule].sort((a, b) => median(b[1]) - median(a[1]))) console.log(`  ${id.padEnd(28)} ${ms(median(values))}`);
  const bySeverity = {};
  for (const finding of findings) bySeverity[`${finding.severity} ${finding.check}`] = (bySeverity[`${finding.severity} ${finding.check}`] ?? 0) + 1;
  console.log(`\nfindings on the generated schema: ${findings.length}${findings.length ? ` ${JSON.stringify(bySeverity)}` : ' (it is correct by construction)'}`);
} finally {
  await client.end();
  await target.close();
}
