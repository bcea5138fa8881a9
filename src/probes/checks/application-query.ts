import type { Finding } from '../../findings/finding.js';
import { alterFunction, appendFix, comment, fix as makeFix, type Fix } from '../../findings/fix.js';
import { functionsCalled, relationsNamed } from '../../analysis/sql-text.js';
import type { NamedQuery } from '../../scenario/schema.js';
import type { Tenant } from '../../seed/ledger.js';
import { commentText, inlineParameters } from '../../target/sql.js';
import { describeContext, reproduction, runAs, sourcesOf } from '../context.js';
import { diagnoseReadLeak } from '../../findings/diagnose.js';
import { describeForeign, tallyRows, type RowTally } from '../foreign-rows.js';
import { readTargets } from '../targets.js';
import { defineProbe, type ProbeContext } from '../types.js';

type Parameter = string | number | boolean | null;

/** The query's parameters for one tenant: the literal `$tenant` becomes the tenant id. */
function bind(query: NamedQuery, tenant: Tenant): Parameter[] {
  return query.params.map((param) => (param === '$tenant' ? tenant.id : param));
}

interface PlanNode {
  'Relation Name'?: string;
  Schema?: string;
  'Function Name'?: string;
  Plans?: PlanNode[];
}

/** True when a name as the parser read it (`name` or `schema.name`) names this schema object. */
function names(written: string, schema: string, name: string): boolean {
  return written === name || written === `${schema}.${name}`;
}

/**
 * What the query reads: the relations and functions its text names (views included, which a plan no
 * longer shows) and those its plan scans (as the application role, under the tenant).
 */
async function readsOf(context: ProbeContext, query: NamedQuery, tenant: Tenant): Promise<{ relations: string[]; functions: string[] }> {
  const named = relationsNamed(query.sql);
  const called = functionsCalled(query.sql);
  const relations = new Set(context.catalog.relations.filter((relation) => named.some((written) => names(written, relation.schema, relation.name))).map((relation) => relation.qualified));
  const functions = new Set(context.catalog.functions.filter((fn) => called.some((written) => names(written, fn.schema, fn.name.toLowerCase()))).map((fn) => `${fn.schema}.${fn.name}`));
  const result = await runAs(context, { kind: 'tenant', tenant }, `explain (verbose, format json) ${query.sql}`, bind(query, tenant));
  const walk = (node: PlanNode) => {
    if (node['Relation Name']) relations.add(`${node.Schema ?? 'public'}.${node['Relation Name']}`);
    if (node['Function Name']) functions.add(`${node.Schema ?? 'public'}.${node['Function Name']}`);
    for (const child of node.Plans ?? []) walk(child);
  };
  const text = result.rows[0] ? Object.values(result.rows[0])[0] : null;
  if (text) for (const entry of JSON.parse(text) as { Plan: PlanNode }[]) walk(entry.Plan);
  return { relations: [...relations], functions: [...functions] };
}

/**
 * The reason and fix, from what the query reads: every tenant-owned relation it reads that itself shows
 * the tenant other tenants' rows (read the same way the read-isolation probe reads it), explained from
 * the catalog, and every SECURITY DEFINER function it calls. The query is the symptom; those are the defect.
 */
async function diagnose(context: ProbeContext, query: NamedQuery, tenant: Tenant): Promise<{ reason: string; fix: Fix }> {
  const reads = await readsOf(context, query, tenant);
  const targets = readTargets(context, (relation) => sourcesOf(context, relation)).filter((target) => reads.relations.includes(target.relation.qualified));
  const parts: { reason: string; fix: Fix }[] = [];
  for (const target of targets) {
    const result = await runAs(context, { kind: 'tenant', tenant }, target.statement);
    const { relation, relationPlan, sources } = target;
    if (!result.error && tallyRows(context, tenant, result.rows, { relation: { relation, relationPlan, sources } }).foreignRows) {
      parts.push(diagnoseReadLeak(context, relation, relationPlan));
    }
  }
  for (const name of reads.functions) {
    const fn = context.catalog.functions.find((candidate) => `${candidate.schema}.${candidate.name}` === name);
    if (fn?.securityDefiner) parts.push({ reason: `${fn.signature} is SECURITY DEFINER and runs with the rights of ${fn.owner}`, fix: makeFix([alterFunction(fn.signature, 'security invoker')]) });
  }
  if (!parts.length) {
    return {
      reason: "none of the relations it reads shows other tenants' rows on its own, so the query's own joins or functions let them through",
      fix: makeFix([comment(`check how the query reaches rows of other tenants (${commentText([...reads.relations, ...reads.functions].join(', ') || 'see its plan')})`)]),
    };
  }
  return { reason: parts.map((part) => part.reason).join('; '), fix: parts.map((part) => appendFix(makeFix([comment(commentText(part.reason))]), part.fix)).reduce((all, part) => appendFix(all, part)) };
}

export const applicationQuery = defineProbe({
  order: 80,
  meta: {
    id: 'application-query',
    matrix: 'outside',
    title: "An application query returns other tenants' rows",
    severity: 'critical',
    objectKind: 'query',
    summary: "An application query, run as a tenant, returns other tenants' rows.",
    example: "As tenant A, the application's query overdue_invoices returns 10 rows of tenant B (queries come from `queries:` in the scenario, `$tenant` bound per tenant).",
    explanation:
      "Runs the scenario's own named queries (queries: name, sql, params, where the parameter `$tenant` is bound to the tenant id) as the " +
      'application role, once for every tenant with its context set the way the application sets it, and attributes every returned row ' +
      "through the tenant column and the canaries. A row of another tenant means a query the application really runs leaks: the fix is in " +
      'the policies (or views and functions) of what the query reads, which the finding names from the query\'s plan.',
    precondition:
      'Critical: a query the application really runs (the scenario\'s queries, `$tenant` bound to the tenant\'s id), run as the ' +
      'application role with each tenant\'s context, returns a row attributed to another tenant.',
  },
  split: 'whole',
  async run(context, report) {
    const findings: Finding[] = [];
    for (const query of context.scenario.queries) {
      const leaks: { tenant: Tenant; params: Parameter[]; tally: RowTally }[] = [];
      for (const tenant of context.tenants) {
        const params = bind(query, tenant);
        const result = await runAs(context, { kind: 'tenant', tenant }, query.sql, params, { userSql: `the query ${query.name}` });
        const base = { check: this.meta.id, relation: query.name, context: tenant.label, tenant: tenant.id, sql: inlineParameters(query.sql, params), missingOwnRows: 0 };
        if (result.error) {
          context.record({ ...base, outcome: 'error', rows: 0, foreignRows: 0, error: result.error.message });
          continue;
        }
        const tally = tallyRows(context, tenant, result.rows);
        context.record({ ...base, outcome: tally.foreignRows ? 'leak' : 'pass', rows: tally.rows, foreignRows: tally.foreignRows });
        if (tally.foreignRows) leaks.push({ tenant, params, tally });
      }
      if (!leaks.length) continue;
      const first = leaks[0]!;
      const state = { kind: 'tenant' as const, tenant: first.tenant };
      const diagnosis = await diagnose(context, query, first.tenant);
      findings.push(report({
        severity: 'critical',
        object: query.name,
        tenant: first.tenant.id,
        foreignTenant: [...first.tally.foreign.keys()][0],
        message: `As ${first.tenant.label}, the application's query ${query.name} returns ${describeForeign(context, first.tally.foreign)}: ${diagnosis.reason}.`,
        evidence: {
          sql: reproduction(context, state, query.sql, first.params),
          context: describeContext(context, state),
          rowCount: first.tally.rows,
          sampleRows: first.tally.samples,
          details: `${leaks.length} of ${context.tenants.length} tenants see other tenants' rows: ${leaks.map((leak) => `${leak.tenant.label}: ${describeForeign(context, leak.tally.foreign)}`).join('; ')}`,
        },
        fix: diagnosis.fix,
      }));
    }
    return findings;
  },
});
