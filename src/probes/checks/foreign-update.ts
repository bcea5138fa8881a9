import { relationObject, type Finding } from '../../findings/finding.js';
import { ident, inlineParameters, literal, relationIdent } from '../../target/sql.js';
import { writePairs } from '../coverage.js';
import { defineProbe } from '../types.js';
import { inOrder, type Attempt } from '../schedule.js';
import { quietOutcome, recordWrite, rowOf, runWrite, writeEvidence } from '../writes.js';
import { writeSeverity, keyCondition, plainColumns, rowKey, writeTargets, writtenTable } from '../write-targets.js';
import { diagnoseWrite } from '../../findings/diagnose.js';

export const foreignUpdate = defineProbe({
  order: 160,
  meta: {
    id: 'foreign-update',
    matrix: 'update',
    title: "A tenant can update another tenant's rows",
    severity: 'critical',
    objectKind: 'table',
    summary: "A tenant can update another tenant's rows by key.",
    example: "As tenant A, updating tenant B's row of public.tasks by its key affects 1 row: permissive policy edit_any (for update using (true)) does not confine the rows it may change.",
    explanation:
      "As each tenant, runs a targeted `update t set c = c where <key> = <the next tenant's key>` on every tenant-owned table the role may update. " +
      "Any affected row is another tenant's row changed through an ordinary query: critical (high through a partition or child). A WHERE clause " +
      'reads columns, so PostgreSQL applies the SELECT policies too; a loose UPDATE policy that only the blind form reaches is reported by ' +
      'blind-update. Fix: UPDATE policies whose USING (and WITH CHECK) confine rows to the current tenant.',
    precondition:
      'Critical: as a tenant, a targeted `update ... where <key> = <the next tenant\'s key>` changes a row the administrator ' +
      'attributes to that tenant: an ordinary UPDATE reaches another tenant\'s row. High when the relation is a partition, ' +
      'inheritance child or view updated directly.',
  },
  split: 'relation',
  async run(context, report) {
    const findings: Finding[] = [];
    for (const target of writeTargets(context, 'update', { tenantTable: true, byKey: true, check: this.meta.id })) {
      const { relation, relationPlan } = target;
      const key = rowKey(relation);
      const column = plainColumns(relation, relationPlan)[0] ?? relation.columns.find((candidate) => !candidate.generated && candidate.identity !== 'always');
      if (!column) continue;
      const statement = `update ${relationIdent(relation)} set ${ident(column.name)} = ${ident(column.name)} where ${keyCondition(relation, key)}`;
      const found = await inOrder(writePairs(context, this.meta.id, target.relation), async ({ actor, victim }): Promise<Attempt> => {
        const row = await rowOf(context, target, victim, key);
        if (!row) {
          return { records: [() => recordWrite(context, this.meta.id, target, actor, statement, 'skipped', 0, 0, `${victim.label} has no row in ${relation.qualified}`)] };
        }
        const params = key.map((name) => row[name] ?? null);
        const run = await runWrite(context, target, actor, statement, params, async () => null);
        const sql = inlineParameters(statement, params);
        if (run.error || run.rowCount === 0) {
          return { records: [() => recordWrite(context, this.meta.id, target, actor, sql, quietOutcome(target, run.error), run.rowCount, 0, run.error)] };
        }
        const diagnosis = diagnoseWrite(context, writtenTable(context, target).relation, writtenTable(context, target).relationPlan, 'UPDATE', 'using');
        const finding = report({
          severity: writeSeverity(target),
          object: relationObject(relation),
          tenant: actor.id,
          foreignTenant: victim.id,
          message: `As ${actor.label}, updating ${victim.label}'s row of ${relation.qualified} by its key affects ${run.rowCount} row${run.rowCount === 1 ? '' : 's'}: ${diagnosis.reason}.`,
          evidence: {
            ...writeEvidence(context, actor, statement, params, { replica: run.replica }),
            rowCount: run.rowCount,
            details: `The key ${key.map((name, index) => `${name} = ${literal(params[index] ?? null)}`).join(', ')} is ${victim.label}'s row (read as the administrator).`,
          },
          fix: diagnosis.fix,
          cause: diagnosis.cause,
        });
        return { records: [() => recordWrite(context, this.meta.id, target, actor, sql, 'leak', run.rowCount, run.rowCount)], findings: [finding] };
      });
      findings.push(...found);
    }
    return findings;
  },
});
