import { actsAsOwner, policiesFor } from '../../catalog/roles.js';
import { alterRole, appendFix, comment, fix, forceRls, or, orTrailing, revoke, type Fix, type FixStep } from '../../findings/fix.js';
import type { Finding } from '../../findings/finding.js';
import type { Tenant } from '../../seed/ledger.js';
import { commentText, ident, relationIdent } from '../../target/sql.js';
import { roleAccess } from '../access.js';
import { describeContext, reproduction, runAs, sourcesOf } from '../context.js';
import { describeForeign, tallyRows, type RowTally } from '../foreign-rows.js';
import { readTargets, shownStatement } from '../targets.js';
import { defineProbe, type ProbeContext } from '../types.js';
import { requireRelation } from '../../catalog/lookup.js';

const isTrue = (value: string | null | undefined) => value === 't' || value === 'true';

interface ReachableRole {
  name: string;
  superuser: boolean;
  bypassRls: boolean;
  /** The application role holds this role's privileges without SET ROLE. */
  inherited: boolean;
}

/**
 * Roles the application role can SET ROLE to. PostgreSQL 16 made that a separate SET option of a
 * membership (pg_has_role(..., 'SET')); before 16 every member may SET ROLE (pg_has_role(..., 'MEMBER')).
 * The audit's session user is a superuser who may SET ROLE to anything, so whether the application role
 * could take the step is decided here, from the catalog, before the step is taken.
 */
async function reachableRoles(context: ProbeContext): Promise<ReachableRole[]> {
  const option = context.catalog.serverVersionNum >= 160000 ? 'SET' : 'MEMBER';
  const { rows } = await context.session.query(
    `select r.rolname as name, r.rolsuper as superuser, r.rolbypassrls as bypass_rls, pg_has_role($1, r.oid, 'USAGE') as inherited
     from pg_roles r
     where r.rolname <> $1 and r.rolname !~ '^pg_' and pg_has_role($1, r.oid, '${option}')
     order by r.rolname`,
    [context.plan.role],
  );
  return rows.map((row) => ({ name: row.name!, superuser: isTrue(row.superuser), bypassRls: isTrue(row.bypass_rls), inherited: isTrue(row.inherited) }));
}

/** Why reading as `role` shows more than the application role sees, from the catalog. */
function causes(context: ProbeContext, role: ReachableRole, relations: string[]): string[] {
  const found: string[] = [];
  if (role.superuser) found.push(`${role.name} is a superuser`);
  else if (role.bypassRls) found.push(`${role.name} has BYPASSRLS`);
  for (const name of relations) {
    const relation = requireRelation(context.catalog, name);
    if (!relation.rlsForced && actsAsOwner(context.catalog, relation, role.name)) found.push(`${role.name} acts as owner (${relation.owner}) of ${name}, which does not force row-level security`);
    // Policies apply to a role and to the roles that inherit its privileges (not to members without INHERIT).
    const own = new Set(policiesFor(context.catalog, relation, context.plan.role, 'SELECT').map((policy) => policy.name));
    const wider = policiesFor(context.catalog, relation, role.name, 'SELECT').filter((policy) => !own.has(policy.name));
    if (wider.length) found.push(`polic${wider.length > 1 ? 'ies' : 'y'} ${wider.map((policy) => `${policy.name} on ${name} (to ${policy.roles.join(', ')}, using ${policy.using ?? 'true'})`).join(', ')} appl${wider.length > 1 ? 'y' : 'ies'} to ${role.name}`);
  }
  return found;
}

function fixFor(context: ProbeContext, role: ReachableRole, relations: string[]): Fix {
  const app = ident(context.plan.role);
  const target = ident(role.name);
  const setOption =
    context.catalog.serverVersionNum >= 160000
      ? [or(', to keep inheriting its privileges without being able to SET ROLE to it (PostgreSQL 16+):', [revoke(`set option for ${target}`, null, app)])]
      : [];
  const revoked = fix(
    [comment(`the application role should not be able to become ${commentText(role.name)}:`), revoke(target, null, app)],
    [orTrailing(` from the role through which ${commentText(context.plan.role)} is a member`, fix([], setOption))],
  );
  const more: FixStep[] = [];
  if (role.superuser || role.bypassRls) more.push(comment(`and if ${commentText(role.name)} needs no exemption from row-level security:`), alterRole(target, 'nosuperuser nobypassrls'));
  for (const name of relations) {
    const relation = requireRelation(context.catalog, name);
    if (!relation.rlsForced && actsAsOwner(context.catalog, relation, role.name)) more.push(forceRls(relationIdent(relation)));
  }
  return more.length ? appendFix(revoked, fix(more)) : revoked;
}

export const roleGraph = defineProbe({
  order: 70,
  meta: {
    id: 'role-graph',
    matrix: 'read',
    title: "A role the application can switch to sees other tenants' rows",
    severity: 'critical',
    objectKind: 'role',
    summary: "A role the application role can switch to sees other tenants' rows.",
    example: 'app_user can SET ROLE auditor; as tenant A after that, `select * from "public"."documents"` returns 40 rows of other tenants: auditor has BYPASSRLS.',
    explanation:
      'Finds every role the application role is a member of and may SET ROLE to (the SET option of the membership on PostgreSQL 16+, any ' +
      'membership before), and reads every tenant-owned relation as each tenant after `set role` to that role, comparing with what the ' +
      'application role itself sees. A role that is a superuser or has BYPASSRLS (critical: one statement sheds every policy), owns tables ' +
      'that do not force row-level security, or has policies of its own that admit more rows (high) is a way around tenant isolation that ' +
      'any SQL the application runs can take. Revoke the membership, or its SET option.',
    precondition:
      'The application role may SET ROLE to a role it is a member of (the membership\'s SET option on PostgreSQL 16+), and as a ' +
      'tenant after that it reads rows of another tenant it could not read as itself: critical when that role is a superuser or has ' +
      'BYPASSRLS (one statement sheds every policy), high otherwise (it owns tables that do not force row-level security, or ' +
      'policies of its own admit more rows).',
  },
  split: 'whole',
  async run(context, report) {
    const findings: Finding[] = [];
    const roles = await reachableRoles(context);
    const ownTargets = new Map(readTargets(context, (relation) => sourcesOf(context, relation)).map((target) => [target.relation.qualified, target]));
    for (const role of roles) {
      const access = await roleAccess(context.session, context.catalog, role.name);
      const targets = readTargets({ ...context, access }, (relation) => sourcesOf(context, relation));
      const leaks: { tenant: Tenant; relation: string; statement: string; tally: RowTally }[] = [];
      for (const target of targets) {
        const { relation, relationPlan, statement, sources } = target;
        for (const tenant of context.tenants) {
          const state = { kind: 'tenant' as const, tenant };
          const asRole = await runAs(context, state, statement, [], { before: [`set local role ${ident(role.name)}`] });
          const base = { check: this.meta.id, relation: relation.qualified, context: `${tenant.label} as ${role.name}`, tenant: tenant.id, sql: `set local role ${ident(role.name)}; ${shownStatement(statement)}`, missingOwnRows: 0 };
          if (asRole.error) {
            context.record({ ...base, outcome: 'error', rows: 0, foreignRows: 0, error: asRole.error.message });
            continue;
          }
          const tally = tallyRows(context, tenant, asRole.rows, { relation: { relation, relationPlan, sources } });
          let baselineForeign = 0;
          const own = ownTargets.get(relation.qualified);
          if (tally.foreignRows && own) {
            // Rows the application role already sees without switching are the read-isolation probe's finding.
            const asApp = await runAs(context, state, own.statement);
            baselineForeign = asApp.error ? 0 : tallyRows(context, tenant, asApp.rows, { relation: { relation, relationPlan, sources } }).foreignRows;
          }
          const gained = tally.foreignRows > baselineForeign;
          context.record({ ...base, outcome: gained ? 'leak' : target.reliable ? 'pass' : 'unreliable', rows: tally.rows, foreignRows: Math.max(0, tally.foreignRows - baselineForeign) });
          if (gained) leaks.push({ tenant, relation: relation.qualified, statement: shownStatement(statement), tally });
        }
      }
      if (!leaks.length) continue;
      const first = leaks[0]!;
      const relations = [...new Set(leaks.map((leak) => leak.relation))];
      const why = causes(context, role, relations);
      const state = { kind: 'tenant' as const, tenant: first.tenant };
      findings.push(report({
        severity: role.superuser || role.bypassRls ? 'critical' : 'high',
        object: role.name,
        tenant: first.tenant.id,
        foreignTenant: [...first.tally.foreign.keys()][0],
        message:
          `The application role ${context.plan.role} can SET ROLE ${role.name}${role.inherited ? ' (and inherits its privileges)' : ''}; as ${first.tenant.label} after that, ` +
          `${first.statement} returns ${describeForeign(context, first.tally.foreign)}${why.length ? `: ${why[0]}` : ''}.`,
        evidence: {
          sql: reproduction(context, state, `set local role ${ident(role.name)};\n${first.statement}`),
          context: `${describeContext(context, state)}, then set role ${role.name}`,
          rowCount: first.tally.rows,
          sampleRows: first.tally.samples,
          details: [`relations that show other tenants' rows as ${role.name}: ${relations.join(', ')}`, ...why].join('; '),
        },
        fix: fixFor(context, role, relations),
      }));
    }
    return findings;
  },
});
