import { relationObject, type Finding } from '../../findings/finding.js';
import { ident, inlineParameters, relationIdent } from '../../target/sql.js';
import { OwnRowBuilder } from '../own-row.js';
import { personalOf } from '../context.js';
import { writeActors } from '../coverage.js';
import { defineProbe } from '../types.js';
import { inOrder, type Attempt } from '../schedule.js';
import { ANONYMOUS_UPDATE, anonymousUpdates } from '../anonymous-write.js';
import { ATTEMPTS, boundedWrite, changes, describeTenants, quietOutcome, recordWrite, retryable, runWrite, tenantCounts, writeEvidence } from '../writes.js';
import { ownValue, plainColumns, writeTargets, writtenTable } from '../write-targets.js';
import { diagnoseWrite } from '../../findings/diagnose.js';

export const blindUpdate = defineProbe({
  order: 180,
  meta: {
    id: 'blind-update',
    matrix: 'update',
    title: "An UPDATE without WHERE changes other tenants' rows",
    severity: 'high',
    objectKind: 'table',
    summary: "An UPDATE without WHERE, run as a tenant, changes other tenants' rows.",
    example: `As tenant A, \`update "public"."tasks" set "title" = <constant>\` (no WHERE) updates 60 rows, 40 of them other tenants'.`,
    explanation:
      'As each tenant, runs `update t set c = <constant>` with no WHERE clause and no column read (`set c = c` would read c and bring in the SELECT ' +
      'policies) on every tenant-owned table the role may update, c being a plain column (not a key, foreign key or the tenant column) and the ' +
      "constant a valid value of the tenant's own. Only the UPDATE policies apply to such a statement, so a `for update using (true)` policy next to " +
      "a correct SELECT policy changes every tenant's rows while reads and targeted updates look fine. The administrator counts, per tenant, the rows " +
      'holding the constant before and after; any other tenant gaining some is a finding (high). Fix: UPDATE policies whose USING confines rows to ' +
      'the current tenant.',
    precondition:
      'High: as a tenant, an UPDATE with no WHERE clause that reads no column (so only the UPDATE policies apply) sets a plain ' +
      'column to a constant, and the administrator counts rows of another tenant now holding it (a blind UPDATE).',
  },
  // The same statement as the platform's anonymous role, without credentials (with a preset that names one).
  related: [ANONYMOUS_UPDATE],
  split: 'relation',
  async run(context, report) {
    const findings: Finding[] = [];
    const builder = new OwnRowBuilder(context);
    for (const target of writeTargets(context, 'update', { tenantTable: true, byKey: true, check: this.meta.id })) {
      const { relation, relationPlan } = target;
      const columns = plainColumns(relation, relationPlan).slice(0, ATTEMPTS);
      if (!columns.length) {
        recordWrite(context, this.meta.id, target, context.tenants[0]!, `update ${relation.qualified} set ...`, 'skipped', 0, 0, 'no column that is not part of a key, a foreign key or the tenant column', false);
        continue;
      }
      const found = await inOrder(writeActors(context, this.meta.id, relation), async (actor): Promise<Attempt> => {
        const victim = context.tenants[(context.tenants.indexOf(actor) + 1) % context.tenants.length]!;
        const records: (() => void)[] = [];
        for (const [attempt, column] of columns.entries()) {
          const generated = relationPlan.tenancy === 'tenant-table' ? undefined : builder.ownRow(relation, relationPlan, actor, {}, { stream: { key: `${relation.qualified}\u0000${actor.id}`, attempt } })?.values[column.name];
          const value = generated ?? ownValue(context, relation, actor, column.name);
          if (value === undefined || value === null) continue;
          const blind = `update ${relationIdent(relation)} set ${ident(column.name)} = $1::${column.type}`;
          const bounded = await boundedWrite(context, target, victim, blind);
          if (bounded === undefined) {
            records.push(() => recordWrite(context, this.meta.id, target, actor, inlineParameters(blind, [value]), 'skipped', 0, 0, `${victim.label} has no seeded row in ${relation.qualified} to bound the statement to on a live database`));
            return { records };
          }
          const statement = bounded?.statement ?? blind;
          const marker = { columns: [column.name], values: [value] };
          const run = await runWrite(context, target, actor, statement, [value], () => tenantCounts(context, target, marker), { cursor: bounded?.cursor });
          const sql = inlineParameters(statement, [value]);
          const changed = new Map([...changes(run.before.marked, run.after.marked)].filter(([tenant, change]) => tenant !== null && tenant !== actor.id && !personalOf(context, actor).has(tenant) && context.ledger.tenant(tenant) !== undefined && change > 0));
          const foreignRows = [...changed.values()].reduce((sum, change) => sum + change, 0);
          if (run.error || !foreignRows) {
            records.push(() => recordWrite(context, this.meta.id, target, actor, sql, quietOutcome(target, run.error), run.rowCount, 0, run.error));
            if (retryable(run.error)) continue;
            return { records };
          }
          records.push(() => recordWrite(context, this.meta.id, target, actor, sql, 'leak', run.rowCount, foreignRows));
          const own = run.before.total.get(actor.id) ?? 0;
          const diagnosis = diagnoseWrite(context, writtenTable(context, target).relation, writtenTable(context, target).relationPlan, 'UPDATE', 'using');
          const finding = report({
            severity: 'high',
            object: relationObject(relation),
            tenant: actor.id,
            foreignTenant: [...changed.keys()][0]!,
            message: `As ${actor.label}, ${blind.replace(/\$1::.*$/, '<constant>')} (no WHERE) updates ${run.rowCount} rows, ${foreignRows} of them other tenants' (${actor.label} owns ${own}): ${diagnosis.reason}.`,
            evidence: {
              ...writeEvidence(context, actor, statement, [value], { replica: run.replica, cursor: bounded?.cursor }),
              rowCount: run.rowCount,
              details: `Changed: ${describeTenants(context, changed)}.${bounded ? ` On this live database the statement was bounded to one row of ${victim.label} (WHERE CURRENT OF a cursor, which brings in no SELECT policy either), so that no row of the application was locked or rewritten.` : ''} PostgreSQL applies SELECT policies to an UPDATE only when it reads columns (WHERE, RETURNING, or a SET expression such as c = c), so a targeted update does not show this.`,
            },
            fix: diagnosis.fix,
            cause: diagnosis.cause,
          });
          return { records, findings: [finding] };
        }
        return { records };
      });
      findings.push(...found);
    }
    findings.push(...(await anonymousUpdates(context, report)));
    return findings;
  },
});
