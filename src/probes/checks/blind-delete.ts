import { relationObject, type Finding } from '../../findings/finding.js';
import { relationIdent } from '../../target/sql.js';
import { personalOf } from '../context.js';
import { writeActors } from '../coverage.js';
import { defineProbe } from '../types.js';
import { inOrder, type Attempt } from '../schedule.js';
import { ANONYMOUS_DELETE, anonymousDeletes } from '../anonymous-write.js';
import { baselineCounts, boundedWrite, changes, describeTenants, quietOutcome, recordWrite, runWrite, tenantCounts, writeEvidence } from '../writes.js';
import { writeTargets, writtenTable } from '../write-targets.js';
import { diagnoseWrite } from '../../findings/diagnose.js';

export const blindDelete = defineProbe({
  order: 190,
  meta: {
    id: 'blind-delete',
    matrix: 'delete',
    title: "A DELETE without WHERE removes other tenants' rows",
    severity: 'high',
    objectKind: 'table',
    summary: "A DELETE without WHERE, run as a tenant, removes other tenants' rows.",
    example: `As tenant A, \`delete from "public"."tasks"\` (no WHERE) deletes 60 rows, 40 of them other tenants': a \`for delete using (true)\` policy beside a tenant SELECT policy, invisible to a targeted delete.`,
    explanation:
      'As each tenant, runs `delete from t` with no WHERE clause on every tenant-owned table the role may delete from. Such a statement reads no ' +
      'column, so PostgreSQL applies only the DELETE policies, not the SELECT ones: a `for delete using (true)` policy next to a correct SELECT ' +
      "policy is invisible to reads and to targeted deletes, yet this statement wipes every tenant's rows. The administrator counts each tenant's " +
      'rows before and after; any other tenant losing rows is a finding (high). Fix: DELETE policies whose USING confines rows to the current tenant.',
    precondition:
      'High: as a tenant, a DELETE with no WHERE clause (so only the DELETE policies apply) removes rows the administrator counts as ' +
      'another tenant\'s (a blind DELETE).',
  },
  // The same statement as the platform's anonymous role, without credentials (with a preset that names one).
  related: [ANONYMOUS_DELETE],
  split: 'relation',
  async run(context, report) {
    const findings: Finding[] = [];
    for (const target of writeTargets(context, 'delete', { tenantTable: true, byKey: true, check: this.meta.id })) {
      const { relation } = target;
      const blind = `delete from ${relationIdent(relation)}`;
      const actors = writeActors(context, this.meta.id, relation);
      const baseline = actors.length ? await baselineCounts(context, target) : null;
      const found = await inOrder(actors, async (actor): Promise<Attempt> => {
        const victim = context.tenants[(context.tenants.indexOf(actor) + 1) % context.tenants.length]!;
        const bounded = await boundedWrite(context, target, victim, blind);
        if (bounded === undefined) {
          return { records: [() => recordWrite(context, this.meta.id, target, actor, blind, 'skipped', 0, 0, `${victim.label} has no seeded row in ${relation.qualified} to bound the statement to on a live database`)] };
        }
        const statement = bounded?.statement ?? blind;
        const run = await runWrite(context, target, actor, statement, [], () => tenantCounts(context, target), { baseline: baseline!, cursor: bounded?.cursor });
        const lost = new Map([...changes(run.before.total, run.after.total)].filter(([tenant, change]) => tenant !== null && tenant !== actor.id && !personalOf(context, actor).has(tenant) && context.ledger.tenant(tenant) !== undefined && change < 0));
        const foreignRows = [...lost.values()].reduce((sum, change) => sum - change, 0);
        if (run.error || !foreignRows) {
          return { records: [() => recordWrite(context, this.meta.id, target, actor, statement, quietOutcome(target, run.error), run.rowCount, 0, run.error)] };
        }
        const own = run.before.total.get(actor.id) ?? 0;
        const diagnosis = diagnoseWrite(context, writtenTable(context, target).relation, writtenTable(context, target).relationPlan, 'DELETE', 'using');
        const finding = report({
          severity: 'high',
          object: relationObject(relation),
          tenant: actor.id,
          foreignTenant: [...lost.keys()][0]!,
          message: `As ${actor.label}, ${blind} (no WHERE) deletes ${run.rowCount} rows, ${foreignRows} of them other tenants' (${actor.label} owns ${own}): ${diagnosis.reason}.`,
          evidence: {
            ...writeEvidence(context, actor, statement, [], { replica: run.replica, cursor: bounded?.cursor }),
            rowCount: run.rowCount,
            details:
              `Deleted: ${describeTenants(context, lost)}. PostgreSQL applies SELECT policies to a DELETE only when it reads columns (WHERE, RETURNING), so a targeted delete does not show this.` +
              (bounded ? ` On this live database the statement was bounded to one row of ${victim.label} (WHERE CURRENT OF a cursor, which brings in no SELECT policy either), so that no row of the application was locked or deleted.` : '') +
              (run.replica ? ' Rows of other tables reference these rows, so PostgreSQL rejects the delete at the foreign key; the policy allowed it (repeated with foreign-key triggers off).' : ''),
          },
          fix: diagnosis.fix,
          cause: diagnosis.cause,
        });
        return { records: [() => recordWrite(context, this.meta.id, target, actor, statement, 'leak', run.rowCount, foreignRows)], findings: [finding] };
      });
      findings.push(...found);
    }
    findings.push(...(await anonymousDeletes(context, report)));
    return findings;
  },
});
