import type { Relation } from '../../catalog/types.js';
import { comment, fix, grant, or, policyStatement, revoke, type Fix } from '../../findings/fix.js';
import { relationObject, type Finding } from '../../findings/finding.js';
import type { Cause } from '../../findings/cause.js';
import { diagnoseWrite } from '../../findings/diagnose.js';
import { roleColumns, userColumns } from '../../plan/owners.js';
import type { Actor } from '../../seed/actors.js';
import type { Tenant } from '../../seed/ledger.js';
import type { Severity } from '../../findings/severity.js';
import { ident, inlineParameters, literal, qualifiedIdent, relationIdent } from '../../target/sql.js';
import { chainEvidence, chainTargets, describeOpened, opened, runChain, type ChainRun, type ChainStep } from '../chains.js';
import { actorOf, describeContext } from '../context.js';
import { OwnRowBuilder } from '../own-row.js';
import { ROW_CURSOR } from '../writes.js';
import { sequenceSkip } from '../write-targets.js';
import type { ReadTarget } from '../targets.js';
import { defineProbe, type ProbeContext, type ProbeReport } from '../types.js';
import { requireColumn, requireRelation } from '../../catalog/lookup.js';

/**
 * What a signed-in user can do to who it is: add itself to another tenant (self-join), move its membership
 * to another tenant or raise its own role (membership-escalation), point a row the policies read its
 * tenant from at another tenant (user-pointer). Each step runs as the tenant's user with the application's
 * context, followed in the same rolled-back savepoint by a read of every tenant-owned relation: the finding
 * is the chain, the write and what it opened.
 */

interface Attempt {
  check: 'self-join' | 'membership-escalation' | 'user-pointer';
  relation: Relation;
  actor: Actor;
  tenant: Tenant;
  victim: Tenant;
  step: ChainStep;
  /** `insert into team_members (team B, itself)`. */
  what: string;
  /** The step changes memberships (self-join, move): a membership gained in the victim tenant is itself the finding. */
  grantsMembership: boolean;
}

/** Tables (not the membership table) with a user column and a column naming a tenant, read by a policy or a function: where a user's row may choose its tenant. */
function pointerTables(context: ProbeContext): { relation: Relation; userColumn: string; pointer: string }[] {
  const { plan, catalog, analysis } = context;
  const tenantTable = plan.tenantKey.relation;
  if (!tenantTable) return [];
  const readBy = new Set<string>([
    ...analysis.policies.flatMap((entry) => [...(entry.using?.relations ?? []), ...(entry.check?.relations ?? [])]),
    ...analysis.functions.flatMap((body) => body.relations),
  ]);
  const found: { relation: Relation; userColumn: string; pointer: string }[] = [];
  for (const relation of catalog.relations) {
    if ((relation.kind !== 'table' && relation.kind !== 'partitioned-table') || relation.qualified === plan.actors.membership?.relation || !readBy.has(relation.qualified)) continue;
    if (!context.access.get(relation.qualified)?.update) continue;
    const users = userColumns(catalog, analysis, plan, relation);
    const pointer = relation.foreignKeys.find((foreignKey) => foreignKey.references === tenantTable && foreignKey.columns.length === 1 && foreignKey.referencedColumns[0] === plan.tenantKey.column);
    if (users.length && pointer) found.push({ relation, userColumn: users[0]!, pointer: pointer.columns[0]! });
  }
  return found;
}

function attempts(context: ProbeContext, actor: Actor, tenant: Tenant, victim: Tenant, builder: OwnRowBuilder, columnUpdate: boolean): Attempt[] {
  const { plan, catalog } = context;
  const membership = plan.actors.membership!;
  const relation = requireRelation(catalog, membership.relation);
  const relationPlan = plan.relations.find((entry) => entry.relation === relation.qualified);
  const list: Attempt[] = [];
  const user = actor.user!;
  const roles = roleColumns(relation, (table, column) => context.ledger.rows(table).map((row) => row.values[column]).filter((value): value is string => typeof value === 'string'));
  if (relationPlan && context.access.get(relation.qualified)?.insert && !sequenceSkip(context, 'self-join', relation.qualified, ['INSERT'])) {
    const row = builder.ownRow(relation, relationPlan, victim, {}, { identity: tenant });
    if (row) {
      list.push({
        check: 'self-join', relation, actor, tenant, victim, grantsMembership: true,
        step: { statement: row.sql, params: row.params },
        what: `insert into ${relation.qualified} (${membership.tenantColumn} = ${victim.label}, ${membership.userColumn} = itself)`,
      });
    }
  }
  // UPDATE on some columns only is tried too: the grant is what must refuse the others.
  if ((context.access.get(relation.qualified)?.update || columnUpdate) && !sequenceSkip(context, 'membership-escalation', relation.qualified, ['UPDATE'])) {
    // The update names the user's own membership with WHERE CURRENT OF a cursor the administrator declares, as
    // an UPDATE without WHERE would (the SELECT policies are not applied to the new row; a filter would add them).
    const own = `select * from ${relationIdent(relation)} where ${ident(membership.userColumn)}::text = ${literal(user)} and ${ident(membership.tenantColumn)}::text = ${literal(tenant.id)}`;
    const cursor = [`declare ${ROW_CURSOR} cursor for ${own}`, `fetch ${ROW_CURSOR}`];
    list.push({
      check: 'membership-escalation', relation, actor, tenant, victim, grantsMembership: true,
      step: { statement: `update ${relationIdent(relation)} set ${ident(membership.tenantColumn)} = $1::${requireColumn(relation, membership.tenantColumn).type} where current of ${ROW_CURSOR}`, params: [victim.id], setup: cursor },
      what: `update ${relation.qualified} set ${membership.tenantColumn} = ${victim.label} on its own membership of ${tenant.label}`,
    });
    for (const role of roles) {
      // From the least privileged value (the actors are seeded with the most privileged one).
      const lower = `update ${relationIdent(relation)} set ${ident(role.column.name)} = ${literal(role.bottom)}::${role.column.type} where ${ident(membership.userColumn)}::text = ${literal(user)} and ${ident(membership.tenantColumn)}::text = ${literal(tenant.id)}`;
      list.push({
        check: 'membership-escalation', relation, actor, tenant, victim: tenant, grantsMembership: false,
        step: { statement: `update ${relationIdent(relation)} set ${ident(role.column.name)} = $1::${role.column.type} where current of ${ROW_CURSOR}`, params: [role.top], setup: [lower, ...cursor] },
        what: `update ${relation.qualified} set ${role.column.name} = '${role.top}' on its own membership of ${tenant.label} (as a ${role.bottom})`,
      });
    }
  }
  for (const pointer of pointerTables(context)) {
    if (sequenceSkip(context, 'user-pointer', pointer.relation.qualified, ['UPDATE'])) continue;
    const cursor = [`declare ${ROW_CURSOR} cursor for select * from ${relationIdent(pointer.relation)} where ${ident(pointer.userColumn)}::text = ${literal(user)}`, `fetch ${ROW_CURSOR}`];
    list.push({
      check: 'user-pointer', relation: pointer.relation, actor, tenant, victim, grantsMembership: false,
      step: { statement: `update ${relationIdent(pointer.relation)} set ${ident(pointer.pointer)} = $1::${requireColumn(pointer.relation, pointer.pointer).type} where current of ${ROW_CURSOR}`, params: [victim.id], setup: cursor },
      what: `update ${pointer.relation.qualified} set ${pointer.pointer} = ${victim.label} on its own row`,
    });
  }
  return list;
}

const FIXES: Record<Attempt['check'], (attempt: Attempt, context: ProbeContext) => Fix> = {
  'self-join': (attempt, context) => {
    const membership = context.plan.actors.membership!;
    const table = relationIdent(attempt.relation);
    return fix([
      comment(`a user must not add itself to a tenant: only the tenant's owners add members (or a SECURITY DEFINER function that checks an invitation addressed to the caller)`),
      comment(`e.g. replace the INSERT policies on ${attempt.relation.qualified} with one that requires the caller to own the tenant:`),
      policyStatement(
        'create-policy',
        { name: 'owners_add_members', table: attempt.relation.qualified },
        `create policy owners_add_members on ${table} for insert with check (${ident(membership.tenantColumn)} in (select ${ident(membership.tenantColumn)} from ${table} where ${ident(membership.userColumn)} = <current user> and <role> = 'owner'));`,
        table,
      ),
    ]);
  },
  'membership-escalation': (attempt, context) => {
    const membership = context.plan.actors.membership!;
    const table = relationIdent(attempt.relation);
    return fix([
      comment(`a member must not change its own membership's tenant or role: give UPDATE only on the columns it may change, e.g.`),
      revoke('update', table, ident(context.plan.role)),
      grant('update (<columns a member may change>)', table, ident(context.plan.role)),
      comment('and give the UPDATE policies a WITH CHECK that keeps the row in a tenant the caller belongs to:'),
      comment(`with check (${ident(membership.userColumn)} = <current user> and <the caller is a member of ${ident(membership.tenantColumn)}>)`),
    ]);
  },
  'user-pointer': (attempt, context) =>
    fix(
      [
        comment('the policies choose the tenant from a column the user may set: check the membership as well, e.g.'),
        comment(`using (<tenant column> = (select <pointer> from ${attempt.relation.qualified} where <user> = <current user>) and <the caller is a member of it>)`),
      ],
      [
        or(' let the user point only at tenants it belongs to:', [
          comment(`alter policy ... on ${relationIdent(attempt.relation)} with check (<user> = <current user> and <pointer> in (select <tenant> from ${context.plan.actors.membership?.relation ?? '<memberships>'} where <user> = <current user>))`),
        ]),
      ],
    ),
};

function finding(context: ProbeContext, report: ProbeReport, attempt: Attempt, run: ChainRun, targets: readonly ReadTarget[]): Finding | null {
  const found = opened(run);
  const gained = attempt.grantsMembership && run.membershipsAfter.has(attempt.victim.id) && !run.membershipsBefore.has(attempt.victim.id);
  const foreign = found.filter((entry) => entry.foreign.size);
  if (!found.length && !gained) return null;
  // Severity from the end of the chain: other tenants' rows read, or a membership of another tenant granted
  // (high); only rows of its own tenant it could not read before (a raised role): high as well when proven.
  const severity: Severity = 'high';
  const impact = found.length ? `then ${describeOpened(context, found)}` : `it is now a member of ${attempt.victim.label} (no relation it may read shows that tenant's rows to it)`;
  const what = `${attempt.what} succeeds (${run.rowCount} row${run.rowCount === 1 ? '' : 's'})`;
  const foreignTenant = foreign[0] ? [...foreign[0].foreign.keys()][0] : attempt.victim.id !== attempt.tenant.id ? attempt.victim.id : undefined;
  return report({
    check: attempt.check,
    severity,
    object: relationObject(attempt.relation),
    tenant: attempt.tenant.id,
    ...(foreignTenant ? { foreignTenant } : {}),
    message: `As ${attempt.actor.label}, ${what}; ${impact}.`,
    evidence: {
      sql: chainEvidence(context, attempt.actor, attempt.step, found, targets),
      context: describeContext(context, { kind: 'actor', actor: attempt.actor }),
      rowCount: run.rowCount,
      sampleRows: (foreign[0] ?? found[0])?.samples ?? [],
      details:
        `in one rolled-back savepoint, as ${attempt.actor.label}: every tenant-owned relation read, then ${inlineParameters(attempt.step.statement, attempt.step.params)}, then every relation read again` +
        `${attempt.grantsMembership ? `; memberships of its user (as the administrator sees them) before: ${[...run.membershipsBefore].map((id) => context.ledger.tenant(id)?.label ?? id).join(', ') || 'none'}, after: ${[...run.membershipsAfter].map((id) => context.ledger.tenant(id)?.label ?? id).join(', ') || 'none'}` : ''}` +
        `${found.length ? `; after the write ${describeOpened(context, found)}` : ''}`,
    },
    fix: FIXES[attempt.check](attempt, context),
    ...causeOf(context, attempt),
  });
}

/**
 * A membership moved to another tenant, or a row pointed at one, is an UPDATE whose WITH CHECK lets the row
 * name another tenant: the cause tenant-reassignment's diagnosis names for the same table (one defect). A
 * raised role or a membership inserted is a defect of its own.
 */
function causeOf(context: ProbeContext, attempt: Attempt): { cause?: Cause } {
  const moves = attempt.check === 'user-pointer' || (attempt.check === 'membership-escalation' && attempt.grantsMembership);
  const relationPlan = context.plan.relations.find((entry) => entry.relation === attempt.relation.qualified);
  if (!moves || !relationPlan) return {};
  return { cause: diagnoseWrite(context, attempt.relation, relationPlan, 'UPDATE', 'check').cause };
}

export const selfGrant = defineProbe({
  order: 210,
  meta: {
    id: 'self-join',
    matrix: 'insert',
    title: 'A user can add itself to another tenant',
    severity: 'high',
    objectKind: 'table',
    summary: 'A signed-in user inserts a membership of itself in a tenant it does not belong to, and then reads that tenant\'s rows.',
    precondition: 'high: the context carries a user, a membership table links users to tenants, and, as a tenant\'s user, inserting a membership of itself in another tenant succeeds (a membership the user can grant itself); the reads that follow in the same savepoint show what it opened',
    example: 'As tenant A (its user), insert into public.team_members (team_id = tenant B, user_id = itself) succeeds (1 row); then public.projects returns 20 rows of tenant B.',
    explanation:
      'With a user context and a membership table, the probe inserts, as each tenant\'s user, a membership row of the next tenant that names the user ' +
      'itself (its own id in every column that holds a user), the row a "join" button would write. A policy such as `with check (user_id = auth.uid())` ' +
      'accepts it: any user joins any tenant. In the same rolled-back savepoint every tenant-owned relation is read before and after the insert; ' +
      'the finding is the chain, the insert and the other tenant\'s rows it opened (high: a membership the user can grant itself).',
  },
  related: [
    {
      id: 'membership-escalation',
      matrix: 'update',
      title: 'A member can move its membership or raise its role',
      severity: 'high',
      objectKind: 'table',
      precondition: 'high: as a tenant\'s user, an UPDATE of its own membership succeeds and, in the same savepoint, it then reads another tenant\'s rows or rows of its own tenant it could not read before (or the membership now names another tenant)',
      summary: 'A member updates its own membership row: moves it to another tenant, or sets its role to the most privileged value.',
      example: "As tenant A (its user), update public.team_members set role = 'owner' on its own membership of tenant A succeeds (1 row); then public.billing returns 5 rows of its own tenant it could not read before.",
      explanation:
        'As each tenant\'s user, updates its own membership: the tenant column set to the next tenant (an UPDATE policy `using (user_id = auth.uid())` ' +
        'without a WITH CHECK that names the tenant moves it), and each role-like column (an enum, a CHECK list, a key of a roles table) set to its most ' +
        'privileged value (owner over admin over member). Every tenant-owned relation is read before and after, in the same rolled-back savepoint: ' +
        'another tenant\'s rows, or rows of its own tenant that only a higher role may read, prove the escalation (high).',
    },
    {
      id: 'user-pointer',
      matrix: 'update',
      title: 'A user can point its own row at another tenant',
      severity: 'high',
      objectKind: 'table',
      precondition: 'high: a policy or function reads a table holding the user and a reference to the tenant table (profiles.active_team_id); as a tenant\'s user, pointing its own row at another tenant succeeds and, in the same savepoint, it then reads that tenant\'s rows',
      summary: 'A policy takes the tenant from a column of the user\'s own row that the user may set, without checking membership.',
      example: 'As tenant A (its user), update public.profiles set active_team_id = tenant B on its own row succeeds (1 row); then public.projects returns 20 rows of tenant B.',
      explanation:
        'Policies that choose the tenant from a pointer on the user\'s own row (`team_id = (select active_team_id from profiles where id = auth.uid())`) ' +
        'trust whatever the user stores there. For every table read by a policy or a function that holds a user and a reference to the tenant table, ' +
        'the probe sets the pointer on the user\'s own row to another tenant through an UPDATE the policies allow, then reads every tenant-owned relation ' +
        'in the same rolled-back savepoint (high when that tenant\'s rows come back).',
    },
  ],
  split: 'whole',
  async run(context, report) {
    const findings: Finding[] = [];
    if (context.plan.actors.kind !== 'user' || !context.plan.actors.membership || !context.actors) return findings;
    const targets = chainTargets(context);
    const builder = new OwnRowBuilder(context);
    const reported = new Set<string>();
    const { rows } = await context.session.query(`select has_any_column_privilege($1, $2::regclass, 'UPDATE')::text as granted`, [context.plan.role, qualifiedIdent(context.plan.actors.membership.relation)]);
    const columnUpdate = rows[0]?.granted === 'true';
    // Two actors suffice: the policies do not tell tenants apart by their ids.
    for (const [index, tenant] of context.tenants.slice(0, 2).entries()) {
      const victim = context.tenants[(index + 1) % context.tenants.length]!;
      const actor = actorOf(context, tenant);
      if (actor.user === null || victim.id === tenant.id) continue;
      for (const attempt of attempts(context, actor, tenant, victim, builder, columnUpdate)) {
        const run = await runChain(context, actor, attempt.step, targets);
        const sql = inlineParameters(attempt.step.statement, attempt.step.params);
        const result = run.error ? null : finding(context, report, attempt, run, targets);
        context.record({
          check: attempt.check, relation: attempt.relation.qualified, context: actor.label, tenant: tenant.id, sql,
          // An UPDATE of the user's own row that touched none (it has no such row) proves nothing.
          outcome: result ? 'leak' : run.error ? (run.error.code === '42501' ? 'pass' : 'inconclusive') : run.rowCount === 0 && attempt.check === 'user-pointer' ? 'inconclusive' : 'pass',
          rows: run.rowCount, foreignRows: result ? 1 : 0, missingOwnRows: 0,
          ...(run.error && run.error.code !== '42501' ? { error: run.error.message } : {}),
        });
        const key = `${attempt.check}\u0000${attempt.relation.qualified}\u0000${attempt.what.replace(/tenant [A-Z]/g, '')}`;
        if (result && !reported.has(key)) {
          reported.add(key);
          findings.push(result);
        }
      }
    }
    return findings;
  },
});
