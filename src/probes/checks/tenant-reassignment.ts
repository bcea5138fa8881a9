import { relationObject, type Finding } from '../../findings/finding.js';
import type { Tenant } from '../../seed/ledger.js';
import { ident, inlineParameters, relationIdent } from '../../target/sql.js';
import { writePairs } from '../coverage.js';
import { defineProbe, type ProbeContext } from '../types.js';
import { inOrder, type Attempt } from '../schedule.js';
import { pending } from '../../target/session.js';
import { baselineCounts, boundedWrite, changes, describeTenants, quietOutcome, recordWrite, rowOf, runWrite, tenantCounts, writeEvidence, type RowCursor } from '../writes.js';
import { keyCondition, rowKey, writeTargets, type WriteTarget } from '../write-targets.js';
import { requireColumn } from '../../catalog/lookup.js';
import { diagnoseWrite } from '../../findings/diagnose.js';

/**
 * The columns that say whose a row is, with the values that make it `victim`'s: the tenant column, and
 * every foreign key to a tenant-owned table (or the tenant table) pointed at the victim's seeded parent.
 */
function moveTo(context: ProbeContext, target: WriteTarget, victim: Tenant): Map<string, string | null> {
  const { relation, relationPlan } = target;
  const plans = new Map(context.plan.relations.map((entry) => [entry.relation, entry]));
  const values = new Map<string, string | null>();
  if (relationPlan.tenantColumn) values.set(relationPlan.tenantColumn, victim.id);
  for (const foreignKey of relation.foreignKeys) {
    const parentPlan = plans.get(foreignKey.references);
    if (!parentPlan || parentPlan.tenancy === 'shared' || foreignKey.references === relation.qualified) continue;
    const parent = context.ledger.rows(foreignKey.references, victim.id)[0];
    if (!parent) continue;
    foreignKey.columns.forEach((column, position) => {
      if (!values.has(column)) values.set(column, parent.values[foreignKey.referencedColumns[position]!] ?? null);
    });
  }
  return values;
}

export const tenantReassignment = defineProbe({
  order: 200,
  meta: {
    id: 'tenant-reassignment',
    matrix: 'update',
    title: 'A tenant can move its rows to another tenant',
    severity: 'high',
    objectKind: 'table',
    summary: 'A tenant can move its rows to another tenant with UPDATE.',
    example: 'As tenant A, an UPDATE without WHERE moves 20 rows of public.tasks to tenant B (tenant_id, project_id rewritten).',
    explanation:
      "As each tenant, rewrites one of its own rows so that it belongs to the next tenant: the tenant column set to that tenant and the tenant-scoped " +
      "foreign keys pointed at that tenant's parents, once by key (`update ... where <key> = ...`) and once with no WHERE. The administrator " +
      "counts the other tenant's rows before and after. A row that arrives is data planted in another tenant (high): an UPDATE policy whose " +
      'WITH CHECK does not name the tenant (PostgreSQL checks new rows of an UPDATE only against WITH CHECK, or USING when there is none). ' +
      'Fix: a WITH CHECK that confines updated rows to the current tenant.',
    precondition:
      'High: as a tenant, an UPDATE of one of its own rows (by key, or with no WHERE) that sets the tenant column and the ' +
      'tenant-scoped foreign keys to the next tenant succeeds, and that tenant gains the row (a row moved to another tenant).',
  },
  split: 'relation',
  async run(context, report) {
    const findings: Finding[] = [];
    for (const target of writeTargets(context, 'update', { tenantTable: false, check: this.meta.id })) {
      const { relation, relationPlan } = target;
      const key = rowKey(relation);
      const pairs = writePairs(context, this.meta.id, target.relation).map((pair) => ({ ...pair, moves: moveTo(context, target, pair.victim) }));
      // Up to the first victim none of whose rows' tenant could be rewritten.
      const movable = pairs.findIndex(({ moves }) => !moves.size);
      const baseline = pairs.length ? await baselineCounts(context, target) : null;
      const found = await inOrder(movable < 0 ? pairs : pairs.slice(0, movable), async ({ actor, victim, moves }): Promise<Attempt> => {
        const assignments = [...moves.keys()].map((column, index) => `${ident(column)} = $${index + 1}::${requireColumn(relation, column).type}`).join(', ');
        const values = [...moves.values()];
        const own = await rowOf(context, target, actor, key);
        const forms = [
          ...(own ? [{ form: 'by key', statement: `update ${relationIdent(relation)} set ${assignments} where ${keyCondition(relation, key, values.length)}`, params: [...values, ...key.map((name) => own[name] ?? null)], cursor: undefined as RowCursor | undefined }] : []),
        ];
        // Without WHERE: on a live database bounded to one of the actor's own rows (WHERE CURRENT OF), never the application's.
        const blind = `update ${relationIdent(relation)} set ${assignments}`;
        const bounded = await boundedWrite(context, target, actor, blind);
        if (bounded !== undefined) forms.push({ form: 'without WHERE', statement: bounded?.statement ?? blind, params: values, cursor: bounded?.cursor });
        const outcomes: string[] = [];
        const records: (() => void)[] = [];
        let proof: { statement: string; params: (string | null)[]; rowCount: number; moved: number; from: Map<string | null, number>; replica: boolean; form: string; cursor?: RowCursor } | null = null;
        // Both forms at once: each is rolled back, and the session sends them in one write.
        const runs = forms.map(({ statement, params, cursor }) => pending(runWrite(context, target, actor, statement, params, () => tenantCounts(context, target), { baseline: baseline!, cursor })));
        for (const [index, { form, statement, params, cursor }] of forms.entries()) {
          const run = await runs[index]!;
          const moved = (run.after.total.get(victim.id) ?? 0) - (run.before.total.get(victim.id) ?? 0);
          const sql = inlineParameters(statement, params);
          if (!run.error && moved > 0) {
            records.push(() => recordWrite(context, this.meta.id, target, actor, sql, 'leak', run.rowCount, moved));
            outcomes.push(`${form}: ${moved} row${moved === 1 ? '' : 's'} moved to ${victim.label}`);
            const from = new Map([...changes(run.before.total, run.after.total)].filter(([tenant, change]) => tenant !== victim.id && change < 0));
            proof ??= { statement, params, rowCount: run.rowCount, moved, from, replica: run.replica, form, cursor };
          } else {
            records.push(() => recordWrite(context, this.meta.id, target, actor, sql, quietOutcome(target, run.error), run.rowCount, 0, run.error));
            outcomes.push(`${form}: ${run.error ? `rejected (${run.error.message})` : 'no row moved'}`);
          }
        }
        if (!proof) return { records };
        const diagnosis = diagnoseWrite(context, relation, relationPlan, 'UPDATE', 'check');
        const finding = report({
          severity: 'high',
          object: relationObject(relation),
          tenant: actor.id,
          foreignTenant: victim.id,
          message: `As ${actor.label}, an UPDATE ${proof.form} moves ${proof.moved} row${proof.moved === 1 ? '' : 's'} of ${relation.qualified} to ${victim.label} (${describeTenants(context, proof.from)}; ${[...moves.keys()].join(', ')} rewritten): ${diagnosis.reason}.`,
          evidence: {
            ...writeEvidence(context, actor, proof.statement, proof.params, { replica: proof.replica, cursor: proof.cursor }),
            rowCount: proof.rowCount,
            details:
              `${outcomes.join('; ')}.` +
              (proof.replica ? ' Rows of other tables reference the moved rows, so PostgreSQL rejects the update at their foreign keys; the policy allowed it (repeated with foreign-key triggers off).' : ''),
          },
          fix: diagnosis.fix,
          cause: diagnosis.cause,
        });
        return { records, findings: [finding] };
      });
      findings.push(...found);
    }
    return findings;
  },
});
