import { policiesFor } from '../../catalog/roles.js';
import { comment, createIndex, fix } from '../../findings/fix.js';
import { currentTenantExpression } from '../../findings/fixes.js';
import { relationObject, type Finding } from '../../findings/finding.js';
import { commentText, ident, relationIdent } from '../../target/sql.js';
import { pending } from '../../target/session.js';
import { describeContext, reproduction, runAs, sourcesOf } from '../context.js';
import { readTargets, shownStatement } from '../targets.js';
import { defineProbe } from '../types.js';

/** Below this many (estimated) rows a sequential scan is as good as any index. */
const ROW_THRESHOLD = 1000;

export interface PlanNode {
  'Node Type': string;
  'Relation Name'?: string;
  'Index Name'?: string;
  'Index Cond'?: string;
  Schema?: string;
  'Plan Rows'?: number;
  Filter?: string;
  Plans?: PlanNode[];
}

export function nodes(plan: PlanNode): PlanNode[] {
  return [plan, ...(plan.Plans ?? []).flatMap(nodes)];
}

export function parsePlan(text: string | null | undefined): PlanNode | null {
  if (!text) return null;
  return (JSON.parse(text) as { Plan: PlanNode }[])[0]?.Plan ?? null;
}

export function firstValue(row: Record<string, string | null> | undefined): string | null {
  return row ? Object.values(row)[0] ?? null : null;
}

export const seqScan = defineProbe({
  order: 140,
  meta: {
    id: 'seq-scan',
    matrix: 'outside',
    title: "A tenant's read scans every tenant's rows",
    severity: 'info',
    objectKind: 'table',
    summary: "A tenant's read plans a sequential scan over every tenant's rows.",
    example: `As tenant A, \`select * from "public"."events"\` reads all rows (Seq Scan) to find the tenant's own: no index starts with tenant_id (the plan is in the evidence).`,
    explanation:
      `EXPLAINs the read probe's query (select * from the table, as the application role with a tenant set) on every table with a tenant ` +
      `column and more than ${ROW_THRESHOLD} estimated rows. When the planner scans the whole table, and still does with sequential scans ` +
      'disabled, no index can serve the policy\'s tenant predicate: every query of every tenant reads every tenant\'s rows, and gets slower as ' +
      'other tenants grow. Index the tenant column (first in the index), and compare it with the setting read once per statement, ' +
      `(select nullif(current_setting(...), '')::type), which the planner can use as an index condition. The plan is in the finding.`,
    precondition:
      'Info: performance, not a leak: on a table with a tenant column and more than the row threshold (estimated), the plan of the ' +
      'read probe\'s query, as the application role with a tenant set, still scans the whole table with sequential scans disabled.',
  },
  split: 'whole',
  async run(context, report) {
    const findings: Finding[] = [];
    const tenant = context.tenants[0]!;
    const state = { kind: 'tenant' as const, tenant };
    const { session } = context;
    const targets = readTargets(context, (relation) => sourcesOf(context, relation)).filter(
      ({ relation, relationPlan, access }) => relation.kind === 'table' && relationPlan.tenancy === 'direct' && relationPlan.tenantColumn && access.select,
    );
    // The tables' real sizes, counted up to the threshold as the session user (no policy filter), all at once: a
    // table the planner has never analyzed is estimated from its pages (at least ten), which overstates a small one.
    const counts = targets.map(({ relation }) =>
      pending(session.readRolledBack(`select count(*) from (select 1 from only ${relationIdent(relation)} limit ${ROW_THRESHOLD + 1}) as sample`).then(({ rows }) => Number(firstValue(rows[0])))),
    );
    for (const [index, target] of targets.entries()) {
      const { relation, relationPlan } = target;
      const counted = await counts[index]!;
      if (counted <= ROW_THRESHOLD) continue;
      const size = parsePlan(firstValue((await context.session.savepoint(() => context.session.query(`explain (format json) select * from only ${relationIdent(relation)}`))).rows[0]));
      const estimated = Math.max(size?.['Plan Rows'] ?? 0, counted);
      const shownSize = estimated > counted ? `~${Math.round(estimated)}` : `over ${ROW_THRESHOLD}`;
      const statement = `select * from ${relationIdent(relation)}`;
      const scans = async (before: string[]) => {
        const result = await runAs(context, state, `explain (format json) ${statement}`, [], { before });
        const plan = parsePlan(firstValue(result.rows[0]));
        return plan ? nodes(plan).filter((node) => node['Node Type'] === 'Seq Scan' && node['Relation Name'] === relation.name && (node.Schema ?? relation.schema) === relation.schema) : [];
      };
      const chosen = await scans([]);
      const forced = chosen.length ? await scans(['set local enable_seqscan = off']) : [];
      const outcome = chosen.length && forced.length ? 'leak' : 'pass';
      context.record({ check: this.meta.id, relation: relation.qualified, context: tenant.label, tenant: tenant.id, sql: `explain ${statement}`, outcome, rows: estimated, foreignRows: 0, missingOwnRows: 0 });
      if (outcome !== 'leak') continue;
      const text = await runAs(context, state, `explain ${statement}`);
      const plan = text.rows.map((row) => firstValue(row)).join('\n');
      const column = relationPlan.tenantColumn!;
      const indexed = relation.indexes.some((index) => index.columns[0] === column && !index.partial);
      const predicates = policiesFor(context.catalog, relation, context.plan.role, 'SELECT').map((policy) => `${policy.name}: ${policy.using ?? 'true'}`);
      findings.push(report({
        severity: 'info',
        object: relationObject(relation),
        tenant: tenant.id,
        message: indexed
          ? `As ${tenant.label}, ${shownStatement(statement)} reads all ${shownSize} rows (Seq Scan) even with sequential scans disabled: the policy's tenant predicate cannot use the index on ${column}.`
          : `As ${tenant.label}, ${shownStatement(statement)} reads all ${shownSize} rows (Seq Scan) to find the tenant's own: no index starts with ${column}.`,
        evidence: {
          sql: reproduction(context, state, `explain ${statement}`),
          context: describeContext(context, state),
          rowCount: Math.round(estimated),
          details: `${plan}\n-- policies: ${commentText(predicates.join('; ') || 'none')}`,
        },
        fix: indexed
          ? fix([
              comment('compare the tenant column itself with the setting, read once per statement, so the index applies:'),
              comment(`using (${commentText(ident(column))} = ${commentText(currentTenantExpression(context.plan))})`),
            ])
          : fix([createIndex(relationIdent(relation), `create index ${ident(`${relation.name}_${column}_idx`)} on ${relationIdent(relation)} (${ident(column)});`)]),
      }));
    }
    return findings;
  },
});
