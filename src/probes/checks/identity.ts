import type { Relation } from '../../catalog/types.js';
import type { Tenant } from '../../seed/ledger.js';
import { pending, type RawRow } from '../../target/session.js';
import { ownershipFix } from '../../findings/fixes.js';
import { alterRole, fix as makeFix } from '../../findings/fix.js';
import { relationObject, type Finding } from '../../findings/finding.js';
import { cause } from '../../findings/cause.js';
import { apiBarrier } from '../../rules/privilege-helpers.js';
import { ident, literal, relationIdent } from '../../target/sql.js';
import { describeContext, reproduction, runAs } from '../context.js';

/** PostgreSQL prints booleans as t / f. */
const isTrue = (value: string | null | undefined) => value === 't' || value === 'true';
import { defineProbe, type ProbeContext, type ProbeOutcome, type ProbeReport } from '../types.js';

/**
 * Asks PostgreSQL, as the application role, who it is: a superuser or BYPASSRLS role skips every policy,
 * and an owner (or a member of the owning role) skips them unless the table FORCEs row-level security.
 */
export const identity = defineProbe({
  order: 20,
  meta: {
    id: 'role-bypasses-rls',
    matrix: 'outside',
    title: 'The application role bypasses row-level security',
    severity: 'critical',
    objectKind: 'role',
    summary: 'The application role, as it connects, is a superuser or has BYPASSRLS.',
    example: 'The application role app_user has BYPASSRLS: no row-level security policy applies to it, on any table.',
    explanation:
      'Run as the application role: a superuser or a role with BYPASSRLS is exempt from every policy, so every tenant sees every row. ' +
      'Give the application an ordinary role: ALTER ROLE ... NOSUPERUSER NOBYPASSRLS.',
    precondition:
      'Critical: the application role itself, as the probe becomes it, is a superuser or has BYPASSRLS, so no policy applies to any ' +
      'query the application runs; nothing but the role\'s attributes is needed.',
  },
  related: [
    {
      id: 'role-owns-table',
      matrix: 'read',
      title: 'The application role owns a tenant table',
      severity: 'critical',
      objectKind: 'table',
      summary: 'The application role owns a tenant table: it sees every tenant in it, or, when the table forces RLS, can turn FORCE off and then see them.',
      example: 'The application role app_user owns public.orders, which does not force row-level security: its policies do not apply to the application.',
      explanation:
        'Table owners, and members of the owning role who inherit its rights, bypass row-level security unless the table has FORCE ROW LEVEL ' +
        'SECURITY (critical), and may ALTER the table: ALTER TABLE ... NO FORCE ROW LEVEL SECURITY takes the fence down in one statement. ' +
        "On a cluster of the run's own, the probe proves that as the application role in a rolled-back savepoint: it counts the rows a tenant " +
        'sees, runs NO FORCE, and counts again (high when it then sees other tenants\' rows); on a live database it runs no DDL, and the ' +
        'ownership is the evidence. Give the table to a role the application does not use.',
      precondition:
        'Not forced: critical. Forced: high when the role can run DDL (proven by NO FORCE and a read, or, on a live database, by the ' +
        'ownership); not reported when it is reached only through an API layer and no function it may call runs dynamic SQL (the rule ' +
        'owner-without-force says so, as info).',
    },
  ],
  split: 'whole',
  async run(context, report) {
    const { session, plan } = context;
    const findings: Finding[] = [];
    const state = { kind: 'never-set' as const };
    const whoSql =
      `select current_user as role, current_setting('is_superuser') = 'on' as superuser, ` +
      `(select rolbypassrls from pg_roles where rolname = current_user) as bypass_rls`;
    // The first row of `sql` as the application role, in a unit that is rolled back.
    const asRole = (sql: string) => session.readRolledBack(sql, [session.roleStatement(plan.role)]).then(({ rows }) => rows[0]!);
    const who = await asRole(whoSql);
    context.record({ check: this.meta.id, relation: plan.role, context: 'identity', tenant: null, sql: whoSql, outcome: isTrue(who.superuser) || isTrue(who.bypass_rls) ? 'leak' : 'pass', rows: 1, foreignRows: 0, missingOwnRows: 0 });
    if (isTrue(who.superuser) || isTrue(who.bypass_rls)) {
      findings.push(report({
        severity: 'critical',
        object: plan.role,
        message: `The application role ${plan.role} ${isTrue(who.superuser) ? 'is a superuser' : 'has BYPASSRLS'}: no row-level security policy applies to it, on any table.`,
        evidence: {
          sql: `begin;\nset local role ${ident(plan.role)};\n${whoSql};\nrollback;`,
          context: describeContext(context, state),
          rowCount: 1,
          sampleRows: [who],
        },
        fix: makeFix([alterRole(ident(plan.role), 'nosuperuser nobypassrls')]),
        cause: cause('role-bypasses-rls', { kind: 'role', name: plan.role }),
      }));
      return findings;
    }
    const tenantTables = context.catalog.relations.filter(
      (relation) => (relation.kind === 'table' || relation.kind === 'partitioned-table') && context.plan.relations.find((entry) => entry.relation === relation.qualified)?.tenancy !== 'shared',
    );
    const ownerSql = (relation: Relation) =>
      `select pg_has_role(current_user, ${literal(relation.owner)}, 'USAGE') as acts_as_owner, relforcerowsecurity as forced, relrowsecurity as enabled from pg_class where oid = ${relation.oid}`;
    // Every table at once (the session sends them together), the answers taken in order.
    const answers = tenantTables.map((relation) => pending(asRole(ownerSql(relation))));
    for (const [index, relation] of tenantTables.entries()) {
      const answer = await answers[index]!;
      const owner = isTrue(answer.acts_as_owner);
      const forced = isTrue(answer.forced);
      if (owner && forced) {
        const finding = await forcedOwner(context, relation, ownerSql(relation), answer, report);
        if (finding) findings.push(finding);
        continue;
      }
      const bypass = owner && !forced;
      context.record({ check: 'role-owns-table', relation: relation.qualified, context: 'identity', tenant: null, sql: ownerSql(relation), outcome: bypass ? 'leak' : 'pass', rows: 1, foreignRows: 0, missingOwnRows: 0 });
      if (!bypass) continue;
      findings.push(report({
        check: 'role-owns-table',
        severity: 'critical',
        object: relationObject(relation),
        message:
          relation.owner === plan.role
            ? `The application role ${plan.role} owns ${relation.qualified}, which does not force row-level security: its policies do not apply to the application.`
            : `The application role ${plan.role} inherits the rights of ${relation.owner}, owner of ${relation.qualified}, which does not force row-level security: its policies do not apply to the application.`,
        evidence: {
          sql: `begin;\nset local role ${ident(plan.role)};\n${ownerSql(relation)};\nrollback;`,
          context: describeContext(context, state),
          rowCount: 1,
          sampleRows: [answer],
        },
        fix: makeFix(ownershipFix(plan, relation)),
        cause: cause('owner-bypass', relationObject(relation)),
      }));
    }
    return findings;
  },
});

const LOCK_TIMEOUT = `select set_config('lock_timeout', '2s', true)`;

/**
 * The application role owns (or inherits the owner's rights on) a table that forces row-level security: FORCE
 * holds until the owner turns it off. On a cluster of the run's own, prove it can: as the first tenant, count
 * the rows it sees, then, in another rolled-back savepoint, ALTER TABLE ... NO FORCE ROW LEVEL SECURITY and
 * count again. On a live database no DDL is run: the ownership is the evidence. A role reached only through an
 * API layer (and no function that runs dynamic SQL) runs no ALTER TABLE: nothing is reported.
 */
async function forcedOwner(context: ProbeContext, relation: Relation, ownerSql: string, answer: RawRow, report: ProbeReport): Promise<Finding | null> {
  const { plan, catalog, analysis } = context;
  const record = (outcome: ProbeOutcome, sql: string, tenant: Tenant | null, rows: number, foreignRows: number, error?: string) =>
    context.record({ check: 'role-owns-table', relation: relation.qualified, context: tenant?.label ?? 'identity', tenant: tenant?.id ?? null, sql, outcome, rows, foreignRows, missingOwnRows: 0, ...(error ? { error } : {}) });
  const barrier = apiBarrier(catalog, analysis, plan);
  if (barrier) {
    record('pass', ownerSql, null, 1, 0, `owns the table, which forces row-level security; ${barrier}`);
    return null;
  }
  const who = relation.owner === plan.role ? `The application role ${plan.role} owns ${relation.qualified}` : `The application role ${plan.role} inherits the rights of ${relation.owner}, owner of ${relation.qualified}`;
  const alter = `alter table ${relationIdent(relation)} no force row level security`;
  const fix = makeFix(ownershipFix(plan, relation));
  const actor = context.tenants[0];
  if (!context.disposable || !actor) {
    record('leak', ownerSql, null, 1, 0);
    return report({
      check: 'role-owns-table',
      severity: 'high',
      object: relationObject(relation),
      message: `${who}, which forces row-level security, but as owner it may run ${alter} (or DISABLE it) and then read every tenant's rows.`,
      evidence: {
        sql: `begin;\nset local role ${ident(plan.role)};\n${ownerSql};\nrollback;`,
        context: describeContext(context, { kind: 'never-set' }),
        rowCount: 1,
        sampleRows: [answer],
        details: context.disposable ? 'No tenant was seeded to prove it on.' : 'ALTER TABLE was not run: the database is not the audit\'s own, and it would lock the table against the application. The ownership is the evidence.',
      },
      fix,
      cause: cause('owner-bypass', relationObject(relation)),
    });
  }
  const count = `select count(*)::text as rows from ${relationIdent(relation)}`;
  const state = { kind: 'tenant' as const, tenant: actor };
  const fenced = await runAs(context, state, count);
  const opened = await runAs(context, state, count, [], { before: [LOCK_TIMEOUT, alter] });
  const before = Number(fenced.rows[0]?.rows ?? 0);
  const after = Number(opened.rows[0]?.rows ?? 0);
  const seeded = context.tenants.reduce((sum, tenant) => sum + context.ledger.rows(relation.qualified, tenant.id).length, 0);
  const shown = `${alter};\n${count}`;
  if (fenced.error || opened.error) {
    record('error', shown, actor, 0, 0, (opened.error ?? fenced.error)!.message);
    return null;
  }
  const foreign = after - before;
  record(foreign > 0 ? 'leak' : 'pass', shown, actor, after, Math.max(foreign, 0));
  if (foreign <= 0) return null;
  return report({
    check: 'role-owns-table',
    severity: 'high',
    object: relationObject(relation),
    tenant: actor.id,
    message: `${who}, which forces row-level security, but as ${actor.label} the role ran ${alter} and then saw ${after} rows instead of its own ${before}: ${foreign} rows of other tenants.`,
    evidence: {
      sql: reproduction(context, state, `${count};\n${alter};\n${count}`),
      context: describeContext(context, state),
      rowCount: after,
      details: `${before} rows visible with FORCE, ${after} after NO FORCE (${seeded} seeded in all); rolled back.`,
    },
    fix,
  });
}
