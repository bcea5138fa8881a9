import { actsAsOwner, inheritedRoles, roleInfo } from '../../catalog/roles.js';
import { alterRole, comment, fix, revoke, type Fix, type FixStep } from '../../findings/fix.js';
import type { Relation } from '../../catalog/types.js';
import { relationObject, type Evidence, type Finding } from '../../findings/finding.js';
import { commentText, ident, literal, relationIdent } from '../../target/sql.js';
import { apiBarrier, truncateReach } from '../../rules/privilege-helpers.js';
import { defineProbe, type ProbeContext } from '../types.js';
import { runAs } from '../context.js';
import { baselineCounts, changes, describeTenants, quietOutcome, recordWrite, runWrite, tenantCounts, writeEvidence } from '../writes.js';
import { writeTargets } from '../write-targets.js';

const LOCK_TIMEOUT = `select set_config('lock_timeout', '2s', true)`;

/** Why the role may truncate, and the statements that take the privilege away. */
function truncateFix(context: ProbeContext, relation: Relation): { cause: string; fix: Fix } {
  const { catalog, plan } = context;
  const role = roleInfo(catalog, plan.role);
  if (role?.superuser) return { cause: `role ${plan.role} is a superuser`, fix: fix([alterRole(ident(plan.role), 'nosuperuser')]) };
  const held = inheritedRoles(catalog, plan.role);
  const grants = relation.grants.filter((grant) => grant.privilege === 'TRUNCATE' && (grant.grantee === 'public' || held.has(grant.grantee)));
  const lines: FixStep[] = grants.map((grant) => revoke('truncate', relationIdent(relation), grant.grantee === 'public' ? 'public' : ident(grant.grantee)));
  const via = grants.map((grant) => (grant.grantee === plan.role ? `granted to ${plan.role}` : grant.grantee === 'public' ? 'granted to PUBLIC' : `granted to ${grant.grantee}, whose rights ${plan.role} inherits`));
  if (actsAsOwner(catalog, relation, plan.role)) {
    via.push(relation.owner === plan.role ? `${plan.role} owns the table` : `${plan.role} inherits the rights of its owner ${relation.owner}`);
    lines.push(comment('owners may always TRUNCATE: give the table to a role the application does not use, e.g.'), comment(`alter table ${commentText(relationIdent(relation))} owner to schema_owner;`));
  }
  return { cause: via.join(' and ') || `${plan.role} holds TRUNCATE on it`, fix: fix(lines.length ? lines : [revoke('truncate', relationIdent(relation), ident(plan.role))]) };
}

export const truncate = defineProbe({
  order: 220,
  meta: {
    id: 'truncate',
    matrix: 'delete',
    title: 'The application role can TRUNCATE a tenant table',
    severity: 'high',
    objectKind: 'table',
    summary: "The application role can TRUNCATE a tenant table, emptying every tenant's rows.",
    example: 'As tenant A, `truncate table "public"."tasks"` succeeds and empties it for every tenant (RLS does not apply to TRUNCATE).',
    explanation:
      'Row-level security does not apply to TRUNCATE: a role holding the privilege empties the table for every tenant in one statement. For every ' +
      'tenant-owned table on which has_table_privilege(role, table, \'TRUNCATE\') is true, the probe proves it by running TRUNCATE as the ' +
      'application role (CASCADE when foreign keys require it) in a rolled-back savepoint with a 2 s lock timeout, and counts what every tenant ' +
      'lost; against a database that is not the audit\'s own it asks the privilege as the role instead, because TRUNCATE would lock the table ' +
      'against the application. High. Fix: revoke TRUNCATE (and do not let the application own its tables).',
    precondition:
      'High: the role may TRUNCATE a tenant-owned table (has_table_privilege as the role), and, on the run\'s own cluster, TRUNCATE ' +
      '(CASCADE when foreign keys require it) run as the role in a rolled-back savepoint empties it for every tenant; on a live ' +
      'database TRUNCATE is not run: the privilege, asked as the role, with no referencing table it may not truncate blocking ' +
      'CASCADE, is the evidence. Not run, and not reported here, when the role is reached only through an API layer and no function ' +
      'it may call runs dynamic SQL (dangerous-grant reports the privilege as info).',
  },
  split: 'relation',
  exclusive: true,
  async run(context, report) {
    const findings: Finding[] = [];
    const actor = context.tenants[0];
    if (!actor) return findings;
    // A role reached only through an API layer sends no TRUNCATE (dangerous-grant reports the privilege as info).
    const barrier = apiBarrier(context.catalog, context.analysis, context.plan);
    const reportTruncate = (relation: Relation, what: string, evidence: Evidence) => {
      const { cause, fix } = truncateFix(context, relation);
      findings.push(report({
        severity: 'high',
        object: relationObject(relation),
        tenant: actor.id,
        message: `As ${actor.label}, ${what} for every tenant (row-level security does not apply to TRUNCATE): ${cause}.`,
        evidence,
        fix,
      }));
    };
    for (const target of writeTargets(context, 'truncate', { tenantTable: true, check: this.meta.id })) {
      const { relation } = target;
      const privilegeSql = `select has_table_privilege(current_user, ${literal(relationIdent(relation))}, 'TRUNCATE')`;
      if (barrier) {
        recordWrite(context, this.meta.id, target, actor, `truncate table ${relationIdent(relation)}`, 'skipped', 0, 0, `not run: ${barrier}`, false);
        continue;
      }
      if (!context.disposable) {
        // Not the audit's own database: TRUNCATE would take an ACCESS EXCLUSIVE lock and stall the
        // application's queries on the table while it waits. The privilege, asked as the role, is the proof.
        const asked = await runAs(context, { kind: 'tenant', tenant: actor }, privilegeSql);
        const holds = asked.rows[0]?.has_table_privilege === 't';
        // TRUNCATE of a table other tables reference runs only with CASCADE, which needs TRUNCATE on them too.
        const reach = truncateReach(context.catalog, context.plan.role, relation);
        const runs = holds && reach.kind !== 'blocked';
        recordWrite(context, this.meta.id, target, actor, privilegeSql, runs ? 'leak' : 'pass', asked.rowCount, 0, asked.error?.message ?? (holds && !runs ? 'held, but a referencing table the role may not truncate blocks it (CASCADE)' : undefined));
        if (!runs) continue;
        const empties = reach.kind === 'cascade' ? `TRUNCATE ${relation.qualified} CASCADE, which empties it and ${reach.tables.map((table) => table.qualified).join(', ')}` : `TRUNCATE ${relation.qualified}, which empties it`;
        reportTruncate(relation, `the application role may run ${empties}`, {
          ...writeEvidence(context, actor, privilegeSql, []),
          rowCount: 1,
          details:
            'TRUNCATE itself was not run: the database is not the audit\'s own, and TRUNCATE locks the table against every other query. ' +
            (reach.kind === 'cascade' ? `Foreign keys of ${reach.tables.map((table) => table.qualified).join(', ')} reference the table, and the role may truncate those too.` : 'No foreign key references the table.'),
        });
        continue;
      }
      let run = null;
      let statement = '';
      for (const candidate of [`truncate table ${relationIdent(relation)}`, `truncate table ${relationIdent(relation)} cascade`]) {
        statement = candidate;
        run = await runWrite(context, target, actor, statement, [], () => tenantCounts(context, target, undefined, { everyTenant: true }), { before: [LOCK_TIMEOUT], baseline: await baselineCounts(context, target, { everyTenant: true }) });
        // 0A000: the table is referenced by a foreign key, so it can only be truncated together with the referencing tables.
        if (run.error?.code !== '0A000') break;
      }
      if (!run) continue;
      if (run.error) {
        recordWrite(context, this.meta.id, target, actor, statement, quietOutcome(target, run.error), 0, 0, run.error);
        continue;
      }
      const lost = new Map([...changes(run.before.total, run.after.total)].filter(([tenant, change]) => tenant !== null && change < 0));
      const foreignRows = [...lost].filter(([tenant]) => tenant !== actor.id).reduce((sum, [, change]) => sum - change, 0);
      recordWrite(context, this.meta.id, target, actor, statement, 'leak', 0, foreignRows);
      reportTruncate(relation, `${statement} succeeds and empties ${relation.qualified}`, {
        ...writeEvidence(context, actor, statement, [], { before: [privilegeSql, LOCK_TIMEOUT] }),
        rowCount: [...lost.values()].reduce((sum, change) => sum - change, 0),
        details: lost.size ? `Removed: ${describeTenants(context, lost)}.` : `The table held no seeded rows; the privilege alone empties it for every tenant.`,
      });
    }
    return findings;
  },
});
