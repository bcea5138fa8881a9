import { relationObject, type Finding } from '../../findings/finding.js';
import { inlineParameters } from '../../target/sql.js';
import { maskRow } from '../context.js';
import { OwnRowBuilder } from '../own-row.js';
import { writePairs } from '../coverage.js';
import { defineProbe } from '../types.js';
import { inOrder, type Attempt } from '../schedule.js';
import { ATTEMPTS, baselineCounts, quietOutcome, recordWrite, retryable, runWrite, tenantCounts, writeEvidence } from '../writes.js';
import { directSeverity, writeTargets } from '../write-targets.js';
import { diagnoseWrite } from '../../findings/diagnose.js';

export const foreignInsert = defineProbe({
  order: 150,
  meta: {
    id: 'foreign-insert',
    matrix: 'insert',
    title: "A tenant can insert rows into another tenant's data",
    severity: 'critical',
    objectKind: 'table',
    summary: "A tenant can insert rows carrying another tenant's id.",
    example: "As tenant A, inserting a row of tenant B into public.tasks succeeds (tenant_id = 1559837805, foreign keys pointing at tenant B's rows): policy tenant_insert's WITH CHECK does not confine writes to the current tenant.",
    explanation:
      "As each tenant, inserts one complete, valid row that belongs to the next tenant: the tenant column set to that tenant and every foreign key " +
      "pointing at that tenant's seeded parents. An administrator count before and after (in the same rolled-back savepoint) proves whether the " +
      "other tenant gained the row. A policy with a USING clause but a WITH CHECK that does not name the tenant (or `with check (true)`, or a " +
      'separate permissive INSERT policy) lets any tenant plant rows in another; critical (high through a partition or child). Fix: a WITH CHECK ' +
      'that confines new rows to the current tenant.',
    precondition:
      'Critical: as a tenant, inserting a complete, valid row that belongs to the next tenant (its tenant column and foreign keys ' +
      'pointing there) succeeds, and the administrator counts that tenant gaining the row in the same rolled-back savepoint: an ' +
      'ordinary INSERT writes into another tenant. High when the relation is a partition, inheritance child or view inserted into ' +
      'directly.',
  },
  split: 'relation',
  async run(context, report) {
    const findings: Finding[] = [];
    const builder = new OwnRowBuilder(context);
    for (const target of writeTargets(context, 'insert', { tenantTable: false, check: this.meta.id })) {
      const { relation, relationPlan } = target;
      const pairs = writePairs(context, this.meta.id, target.relation);
      // Read before any attempt's savepoint is on the wire: the attempts below go out together.
      const baseline = pairs.length ? await baselineCounts(context, target) : null;
      const found = await inOrder(pairs, async ({ actor, victim }): Promise<Attempt> => {
        const records: (() => void)[] = [];
        for (let attempt = 0; attempt < ATTEMPTS; attempt += 1) {
          const row = builder.ownRow(relation, relationPlan, victim, {}, { stream: { key: `${relation.qualified}\u0000${actor.id}\u0000${victim.id}`, attempt } });
          if (!row) {
            records.push(() => recordWrite(context, this.meta.id, target, actor, `insert into ${relation.qualified} ...`, 'skipped', 0, 0, `${victim.label} has no seeded parent row for a required foreign key`));
            return { records, last: true };
          }
          const run = await runWrite(context, target, actor, row.sql, row.params, () => tenantCounts(context, target), { baseline: baseline! });
          const sql = inlineParameters(row.sql, row.params);
          const gained = (run.after.total.get(victim.id) ?? 0) - (run.before.total.get(victim.id) ?? 0);
          if (!run.error && gained > 0) {
            records.push(() => recordWrite(context, this.meta.id, target, actor, sql, 'leak', run.rowCount, gained));
            const diagnosis = diagnoseWrite(context, relation, relationPlan, 'INSERT', 'check');
            const keep = new Set([...(relation.primaryKey ?? []), ...(relationPlan.tenantColumn ? [relationPlan.tenantColumn] : []), ...relation.foreignKeys.flatMap((foreignKey) => foreignKey.columns)]);
            const finding = report({
              severity: directSeverity(relation),
              object: relationObject(relation),
              tenant: actor.id,
              foreignTenant: victim.id,
              message: `As ${actor.label}, inserting a row of ${victim.label} into ${relation.qualified} succeeds (${relationPlan.tenantColumn ? `${relationPlan.tenantColumn} = ${victim.id}, ` : ''}foreign keys pointing at ${victim.label}'s rows): ${diagnosis.reason}.`,
              evidence: {
                ...writeEvidence(context, actor, row.sql, row.params, { replica: run.replica }),
                rowCount: run.rowCount,
                sampleRows: [maskRow(row.values, keep, context.tenants)],
                details: `${victim.label} had ${run.before.total.get(victim.id) ?? 0} rows in ${relation.qualified} before the insert and ${run.after.total.get(victim.id) ?? 0} after it.`,
              },
              fix: diagnosis.fix,
              cause: diagnosis.cause,
            });
            return { records, findings: [finding] };
          }
          records.push(() => recordWrite(context, this.meta.id, target, actor, sql, quietOutcome(target, run.error), run.rowCount, 0, run.error));
          if (!retryable(run.error)) break;
        }
        return { records };
      });
      findings.push(...found);
    }
    return findings;
  },
});
