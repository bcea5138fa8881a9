import { relationObject, type Finding } from '../findings.js';
import { ident, literal, relationIdent } from '../sql.js';
import { describeContext } from './context.js';

/** PostgreSQL prints booleans as t / f. */
const isTrue = (value: string | null | undefined) => value === 't' || value === 'true';
import { defineProbe } from './types.js';

/**
 * Asks PostgreSQL, as the application role, who it is: a superuser or BYPASSRLS role skips every policy,
 * and an owner (or a member of the owning role) skips them unless the table FORCEs row-level security.
 */
export const identity = defineProbe({
  meta: {
    id: 'role-bypasses-rls',
    title: 'The application role bypasses row-level security',
    severity: 'critical',
    objectKind: 'role',
    summary: 'The application role, as it connects, is a superuser or has BYPASSRLS.',
    example: 'The application role app_user has BYPASSRLS: no row-level security policy applies to it, on any table.',
    explanation:
      'Run as the application role: a superuser or a role with BYPASSRLS is exempt from every policy, so every tenant sees every row. ' +
      'Give the application an ordinary role: ALTER ROLE ... NOSUPERUSER NOBYPASSRLS.',
  },
  related: [
    {
      id: 'role-owns-table',
      title: 'The application role owns a tenant table that does not force RLS',
      severity: 'critical',
      objectKind: 'table',
      summary: 'The application role owns a tenant table that does not force RLS, and sees every tenant in it.',
      example: 'The application role app_user owns public.orders, which does not force row-level security: its policies do not apply to the application.',
      explanation:
        'Table owners, and members of the owning role who inherit its rights, bypass row-level security unless the table has FORCE ROW LEVEL ' +
        'SECURITY. An application that connects as the schema owner sees every tenant. Force RLS on the table, or give the table to another role.',
    },
  ],
  async run(context, report) {
    const { session, plan } = context;
    const findings: Finding[] = [];
    const state = { kind: 'never-set' as const };
    const whoSql =
      `select current_user as role, current_setting('is_superuser') = 'on' as superuser, ` +
      `(select rolbypassrls from pg_roles where rolname = current_user) as bypass_rls`;
    const who = await session.savepoint(async () => {
      await session.becomeRole(plan.role);
      return (await session.query(whoSql)).rows[0]!;
    });
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
        fix: `alter role ${ident(plan.role)} nosuperuser nobypassrls;`,
      }));
      return findings;
    }
    const tenantTables = context.catalog.relations.filter(
      (relation) => (relation.kind === 'table' || relation.kind === 'partitioned-table') && context.plan.relations.find((entry) => entry.relation === relation.qualified)?.tenancy !== 'shared',
    );
    for (const relation of tenantTables) {
      const ownerSql = `select pg_has_role(current_user, ${literal(relation.owner)}, 'USAGE') as acts_as_owner, relforcerowsecurity as forced, relrowsecurity as enabled from pg_class where oid = ${relation.oid}`;
      const answer = await session.savepoint(async () => {
        await session.becomeRole(plan.role);
        return (await session.query(ownerSql)).rows[0]!;
      });
      const bypass = isTrue(answer.acts_as_owner) && !isTrue(answer.forced);
      context.record({ check: 'role-owns-table', relation: relation.qualified, context: 'identity', tenant: null, sql: ownerSql, outcome: bypass ? 'leak' : 'pass', rows: 1, foreignRows: 0, missingOwnRows: 0 });
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
          sql: `begin;\nset local role ${ident(plan.role)};\n${ownerSql};\nrollback;`,
          context: describeContext(context, state),
          rowCount: 1,
          sampleRows: [answer],
        },
        fix: `alter table ${relationIdent(relation)} force row level security;`,
      }));
    }
    return findings;
  },
});
