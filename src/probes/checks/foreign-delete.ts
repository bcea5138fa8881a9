import { relationObject, type Finding } from '../../findings/finding.js';
import { inlineParameters, relationIdent } from '../../target/sql.js';
import { writePairs } from '../coverage.js';
import { defineProbe } from '../types.js';
import { inOrder, type Attempt } from '../schedule.js';
import { baselineCounts, quietOutcome, recordWrite, rowOf, runWrite, tenantCounts, writeEvidence } from '../writes.js';
import { writeSeverity, keyCondition, rowKey, writeTargets, writtenTable } from '../write-targets.js';
import { diagnoseWrite } from '../../findings/diagnose.js';

export const foreignDelete = defineProbe({
  order: 170,
  meta: {
    id: 'foreign-delete',
    matrix: 'delete',
    title: "A tenant can delete another tenant's rows",
    severity: 'critical',
    objectKind: 'table',
    summary: "A tenant can delete another tenant's rows by key.",
    example: "As tenant A, deleting tenant B's row of public.tasks by its key succeeds.",
    explanation:
      "As each tenant, runs a targeted `delete from t where <key> = <the next tenant's key>` on every tenant-owned table the role may delete from, " +
      'and counts the other tenant\'s rows before and after as the administrator. A deleted row is another tenant\'s data destroyed through an ' +
      'ordinary query: critical (high through a partition or child). When only a foreign key of another table stops the delete, it is repeated ' +
      'with foreign-key triggers off, since the policy let it through. The WHERE clause makes the SELECT policies apply as well; a loose DELETE ' +
      'policy hidden by them is reported by blind-delete. Fix: DELETE policies whose USING confines rows to the current tenant.',
    precondition:
      'Critical: as a tenant, a targeted `delete ... where <key> = <the next tenant\'s key>` removes a row of that tenant (counted by ' +
      'the administrator before and after; repeated with foreign-key triggers off when only a referencing key stops it): an ordinary ' +
      'DELETE destroys another tenant\'s data. High when the relation is a partition, inheritance child or view deleted from ' +
      'directly.',
  },
  split: 'relation',
  async run(context, report) {
    const findings: Finding[] = [];
    for (const target of writeTargets(context, 'delete', { tenantTable: true, byKey: true, check: this.meta.id })) {
      const { relation } = target;
      const key = rowKey(relation);
      const statement = `delete from ${relationIdent(relation)} where ${keyCondition(relation, key)}`;
      const pairs = writePairs(context, this.meta.id, target.relation);
      const baseline = pairs.length ? await baselineCounts(context, target) : null;
      const found = await inOrder(pairs, async ({ actor, victim }): Promise<Attempt> => {
        const row = await rowOf(context, target, victim, key);
        if (!row) {
          return { records: [() => recordWrite(context, this.meta.id, target, actor, statement, 'skipped', 0, 0, `${victim.label} has no row in ${relation.qualified}`)] };
        }
        const params = key.map((name) => row[name] ?? null);
        const run = await runWrite(context, target, actor, statement, params, () => tenantCounts(context, target), { baseline: baseline! });
        const sql = inlineParameters(statement, params);
        const lost = (run.before.total.get(victim.id) ?? 0) - (run.after.total.get(victim.id) ?? 0);
        if (run.error || lost <= 0) {
          return { records: [() => recordWrite(context, this.meta.id, target, actor, sql, quietOutcome(target, run.error), run.rowCount, 0, run.error)] };
        }
        const diagnosis = diagnoseWrite(context, writtenTable(context, target).relation, writtenTable(context, target).relationPlan, 'DELETE', 'using');
        const finding = report({
          severity: writeSeverity(target),
          object: relationObject(relation),
          tenant: actor.id,
          foreignTenant: victim.id,
          message: `As ${actor.label}, deleting ${victim.label}'s row of ${relation.qualified} by its key succeeds: ${diagnosis.reason}.`,
          evidence: {
            ...writeEvidence(context, actor, statement, params, { replica: run.replica }),
            rowCount: run.rowCount,
            details:
              `${victim.label} had ${run.before.total.get(victim.id) ?? 0} rows in ${relation.qualified} before the delete and ${run.after.total.get(victim.id) ?? 0} after it.` +
              (run.replica ? ' Rows of other tables reference it, so PostgreSQL rejects the delete at the foreign key; the policy allowed it (repeated with foreign-key triggers off).' : ''),
          },
          fix: diagnosis.fix,
          cause: diagnosis.cause,
        });
        return { records: [() => recordWrite(context, this.meta.id, target, actor, sql, 'leak', run.rowCount, lost)], findings: [finding] };
      });
      findings.push(...found);
    }
    return findings;
  },
});
