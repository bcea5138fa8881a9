import type { Relation } from '../catalog/types.js';
import { cause, type Cause } from '../findings/cause.js';
import { relationObject, type Finding } from '../findings/finding.js';
import { comment, dropPolicy, fix, policyStatement, revoke, type Fix } from '../findings/fix.js';
import { plural } from '../report/text.js';
import { commentText, ident, inlineParameters, relationIdent } from '../target/sql.js';
import { roleAccess, type RoleAccess } from './access.js';
import { contextLabel } from './context.js';
import type { ProbeCheckInput, ProbeContext, ProbeReport } from './types.js';
import {
  ATTEMPTS,
  baselineCounts,
  boundedWrite,
  changes,
  describeTenants,
  quietOutcome,
  recordWrite,
  retryable,
  runWrite,
  tenantCounts,
  writeEvidence,
  type AnonymousState,
} from './writes.js';
import { ownValue, plainColumns, writeTargets, writtenTable, type WriteTarget } from './write-targets.js';

/**
 * The blind UPDATE and blind DELETE again, as the platform's anonymous role (Supabase `anon`, PostgREST's
 * db-anon-role) with nothing set: a request without credentials. Reported by blind-update and blind-delete as
 * related checks. An INSERT as that role is not probed: a public form that files a lead into a tenant inserts
 * rows without credentials by design.
 */

export const ANONYMOUS_UPDATE: ProbeCheckInput = {
  id: 'anonymous-update',
  matrix: 'update',
  title: "A request without credentials changes tenants' rows",
  severity: 'critical',
  objectKind: 'table',
  summary: "With a preset, the platform's anonymous role (a request without credentials) changes tenant rows with an UPDATE without WHERE.",
  example: `Without credentials, as anon, \`update "public"."bookings" set "guest_name" = <constant>\` (no WHERE) updates 60 rows: 20 rows of tenant A, 20 of tenant B, 20 of tenant C.`,
  explanation:
    "With a preset (Supabase, PostgREST), a request without a JWT runs as the platform's anonymous role with no claims. Supabase grants that " +
    'role UPDATE and DELETE on every new table by default, so only the policies stand between it and the rows. On every tenant-owned table ' +
    'it may update, the blind UPDATE (`update t set c = <constant>`, no WHERE, no column read, so only the UPDATE policies apply) runs as that ' +
    "role, nothing set, in a rolled-back savepoint; the administrator counts every tenant's rows holding the constant before and after. Any " +
    'tenant row changed is a finding (critical): anyone on the internet can rewrite it. Typically a policy `to anon, authenticated using (true)` ' +
    '(the client was meant to filter by a token) or one without TO, which applies to every role. Fix: give the policy to the signed-in role only ' +
    '(`to authenticated`) with a USING that confines rows to the current tenant, or revoke UPDATE from the anonymous role.',
  precondition:
    "Critical: with a preset that names an anonymous role, that role holds UPDATE on a tenant-owned table, and an UPDATE with no WHERE as it, " +
    "with no credentials (no claims, no context), changes rows the administrator counts as a tenant's: a request without credentials rewrites " +
    'tenant rows. Without a preset, or when the anonymous role may not update the table, nothing is run.',
};

export const ANONYMOUS_DELETE: ProbeCheckInput = {
  id: 'anonymous-delete',
  matrix: 'delete',
  title: "A request without credentials deletes tenants' rows",
  severity: 'critical',
  objectKind: 'table',
  summary: "With a preset, the platform's anonymous role (a request without credentials) deletes tenant rows with a DELETE without WHERE.",
  example: `Without credentials, as anon, \`delete from "public"."subscribers"\` (no WHERE) deletes 60 rows: 20 rows of tenant A, 20 of tenant B, 20 of tenant C. A \`for delete using (true)\` policy without TO applies to anon too.`,
  explanation:
    "With a preset (Supabase, PostgREST), a request without a JWT runs as the platform's anonymous role with no claims. On every tenant-owned " +
    'table that role may delete from (Supabase grants it DELETE on new tables by default), the blind DELETE (`delete from t`, no WHERE, so only ' +
    "the DELETE policies apply) runs as that role, nothing set, in a rolled-back savepoint; the administrator counts every tenant's rows before " +
    'and after. Any tenant row deleted is a finding (critical): anyone on the internet can wipe it. Typically a DELETE policy written without TO ' +
    '(it then applies to every role, anon included) whose USING does not depend on the caller. Fix: give the policy to the signed-in role only ' +
    '(`to authenticated`) with a USING that confines rows to the current tenant, or revoke DELETE from the anonymous role.',
  precondition:
    'Critical: with a preset that names an anonymous role, that role holds DELETE on a tenant-owned table, and a DELETE with no WHERE as it, ' +
    "with no credentials (no claims, no context), removes rows the administrator counts as a tenant's: a request without credentials deletes " +
    'tenant rows. Without a preset, or when the anonymous role may not delete from the table, nothing is run.',
};

const accessByContext = new WeakMap<ProbeContext, Promise<RoleAccess>>();

/** What the anonymous role may do with each relation, asked of PostgreSQL once per audit (has_table_privilege as that role). */
function anonymousAccess(context: ProbeContext, role: string): Promise<RoleAccess> {
  const known = accessByContext.get(context);
  if (known) return known;
  const access = roleAccess(context.session, context.catalog, role);
  accessByContext.set(context, access);
  return access;
}

async function anonymousTargets(context: ProbeContext, privilege: 'update' | 'delete', check: string): Promise<{ state: AnonymousState; targets: WriteTarget[] } | null> {
  const role = context.plan.anonymousRole;
  if (!role || !context.tenants.length) return null;
  const access = await anonymousAccess(context, role);
  return { state: { kind: 'anonymous', role }, targets: writeTargets(context, privilege, { tenantTable: true, byKey: true, check, access }) };
}

/** The permissive policies of `command` that apply to the anonymous role: to it by name, or to PUBLIC (no TO). */
function anonymousPolicies(relation: Relation, command: 'UPDATE' | 'DELETE', role: string) {
  return relation.policies.filter((policy) => policy.permissive && (policy.command === command || policy.command === 'ALL') && policy.roles.some((name) => name === role || name === 'public'));
}

/** Why the anonymous role reaches the rows, and the fix: the policies that let it through given to the signed-in role, or the privilege revoked. */
function diagnose(context: ProbeContext, target: WriteTarget, command: 'UPDATE' | 'DELETE', role: string): { reason: string; fix: Fix; cause: Cause } {
  const { relation } = writtenTable(context, target);
  const table = relationIdent(relation);
  const written = relationIdent(target.relation);
  const policies = anonymousPolicies(relation, command, role);
  const revoked = revoke(command.toLowerCase(), written, ident(role));
  const header = comment(`a request without credentials runs as ${commentText(role)}: it must not ${command === 'UPDATE' ? 'change' : 'delete'} tenant rows of ${commentText(relation.qualified)}`);
  if (!relation.rlsEnabled || !policies.length) {
    return {
      reason: relation.rlsEnabled
        ? `no ${command} policy names ${role} or PUBLIC, yet ${role} reached the rows (through a role it is a member of, or as the table's owner)`
        : `row-level security is disabled on ${relation.qualified}, and ${role} holds ${command}`,
      fix: fix([header, revoked]),
      cause: cause(relation.rlsEnabled ? 'policies-admit' : 'rls-disabled', relationObject(relation), relation.rlsEnabled ? { command, clause: 'using', role } : {}),
    };
  }
  const moved = policies.map((policy) => {
    const others = policy.roles.filter((name) => name !== role && name !== 'public');
    const to = policy.roles.includes('public') ? [context.plan.role, ...others.filter((name) => name !== context.plan.role)] : others;
    const named = { name: policy.name, table: relation.qualified };
    return to.length ? policyStatement('alter-policy', named, `alter policy ${ident(policy.name)} on ${table} to ${to.map(ident).join(', ')};`, table) : dropPolicy(named, table);
  });
  return {
    reason: `${policies.length > 1 ? 'the permissive policies' : 'the permissive policy'} ${policies.map((policy) => `${policy.name} (for ${policy.command.toLowerCase()} to ${policy.roles.join(', ')} using ${policy.using ?? 'none'})`).join(', ')} ${policies.length > 1 ? 'apply' : 'applies'} to ${role} and ${policies.length > 1 ? 'do' : 'does'} not confine the rows to the caller`,
    fix: fix([
      header,
      ...moved,
      comment(`(the signed-in role still needs a USING that confines the rows to the current tenant); or, if requests without credentials never ${command === 'UPDATE' ? 'update' : 'delete from'} it:`),
      revoked,
    ]),
    cause: cause('loose-policy', relationObject(relation), { command, clause: 'using', policies: policies.map((policy) => policy.name) }),
  };
}

/** The blind UPDATE as the anonymous role on every tenant-owned table it may update. */
export async function anonymousUpdates(context: ProbeContext, report: ProbeReport): Promise<Finding[]> {
  const check = ANONYMOUS_UPDATE.id;
  const found = await anonymousTargets(context, 'update', check);
  if (!found) return [];
  const { state, targets } = found;
  const findings: Finding[] = [];
  // The constant is a valid value of one tenant's own (the second's), and, on a live database, the statement is
  // bound to a row of another (the first's), which cannot already hold it by construction of the seed.
  const source = context.tenants[0]!;
  const donor = context.tenants[1] ?? source;
  for (const target of targets) {
    const { relation, relationPlan } = target;
    const columns = plainColumns(relation, relationPlan).slice(0, ATTEMPTS);
    if (!columns.length) {
      recordWrite(context, check, target, state, `update ${relation.qualified} set ...`, 'skipped', 0, 0, 'no column that is not part of a key, a foreign key or the tenant column', false);
      continue;
    }
    let tried = false;
    for (const column of columns) {
      const value = ownValue(context, relation, donor, column.name);
      if (value === undefined || value === null) continue;
      tried = true;
      const blind = `update ${relationIdent(relation)} set ${ident(column.name)} = $1::${column.type}`;
      const bounded = await boundedWrite(context, target, source, blind);
      if (bounded === undefined) {
        recordWrite(context, check, target, state, inlineParameters(blind, [value]), 'skipped', 0, 0, `${source.label} has no seeded row in ${relation.qualified} to bound the statement to on a live database`);
        break;
      }
      const statement = bounded?.statement ?? blind;
      const marker = { columns: [column.name], values: [value] };
      const run = await runWrite(context, target, state, statement, [value], () => tenantCounts(context, target, marker), { cursor: bounded?.cursor });
      const sql = inlineParameters(statement, [value]);
      const changed = new Map([...changes(run.before.marked, run.after.marked)].filter(([tenant, change]) => tenant !== null && context.ledger.tenant(tenant) !== undefined && change > 0));
      const rows = [...changed.values()].reduce((sum, change) => sum + change, 0);
      if (run.error || !rows) {
        recordWrite(context, check, target, state, sql, quietOutcome(target, run.error), run.rowCount, 0, run.error);
        if (retryable(run.error)) continue;
        break;
      }
      recordWrite(context, check, target, state, sql, 'leak', run.rowCount, rows);
      const diagnosis = diagnose(context, target, 'UPDATE', state.role);
      findings.push(report({
        check,
        severity: 'critical',
        object: relationObject(relation),
        foreignTenant: [...changed.keys()][0]!,
        message: `Without credentials, as ${state.role}, ${blind.replace(/\$1::.*$/, '<constant>')} (no WHERE) updates ${plural(run.rowCount, 'row')}: ${describeTenants(context, changed)}: ${diagnosis.reason}.`,
        evidence: {
          ...writeEvidence(context, state, statement, [value], { replica: run.replica, cursor: bounded?.cursor }),
          rowCount: run.rowCount,
          details:
            `Changed (rows now holding the constant, counted by the administrator before and after in the same rolled-back savepoint): ${describeTenants(context, changed)}. ` +
            `Run as ${contextLabel(state)} with no claims and no tenant set; an UPDATE that reads no column brings in no SELECT policy, so ${state.role} needs no read access to do this.` +
            (bounded ? ` On this live database the statement was bounded to one row of ${source.label} (WHERE CURRENT OF a cursor, which brings in no SELECT policy either), so that no row of the application was locked or rewritten.` : ''),
        },
        fix: diagnosis.fix,
        cause: diagnosis.cause,
      }));
      break;
    }
    if (!tried) recordWrite(context, check, target, state, `update ${relation.qualified} set ...`, 'skipped', 0, 0, `${donor.label} has no seeded value in ${columns.map((column) => column.name).join(', ')} of ${relation.qualified} to set`);
  }
  return findings;
}

/** The blind DELETE as the anonymous role on every tenant-owned table it may delete from. */
export async function anonymousDeletes(context: ProbeContext, report: ProbeReport): Promise<Finding[]> {
  const check = ANONYMOUS_DELETE.id;
  const found = await anonymousTargets(context, 'delete', check);
  if (!found) return [];
  const { state, targets } = found;
  const findings: Finding[] = [];
  const source = context.tenants[0]!;
  for (const target of targets) {
    const { relation } = target;
    const blind = `delete from ${relationIdent(relation)}`;
    const bounded = await boundedWrite(context, target, source, blind);
    if (bounded === undefined) {
      recordWrite(context, check, target, state, blind, 'skipped', 0, 0, `${source.label} has no seeded row in ${relation.qualified} to bound the statement to on a live database`);
      continue;
    }
    const statement = bounded?.statement ?? blind;
    const run = await runWrite(context, target, state, statement, [], () => tenantCounts(context, target), { baseline: await baselineCounts(context, target), cursor: bounded?.cursor });
    const lost = new Map([...changes(run.before.total, run.after.total)].filter(([tenant, change]) => tenant !== null && context.ledger.tenant(tenant) !== undefined && change < 0));
    const rows = [...lost.values()].reduce((sum, change) => sum - change, 0);
    if (run.error || !rows) {
      recordWrite(context, check, target, state, statement, quietOutcome(target, run.error), run.rowCount, 0, run.error);
      continue;
    }
    recordWrite(context, check, target, state, statement, 'leak', run.rowCount, rows);
    const diagnosis = diagnose(context, target, 'DELETE', state.role);
    findings.push(report({
      check,
      severity: 'critical',
      object: relationObject(relation),
      foreignTenant: [...lost.keys()][0]!,
      message: `Without credentials, as ${state.role}, ${blind} (no WHERE) deletes ${plural(run.rowCount, 'row')}: ${describeTenants(context, lost)}: ${diagnosis.reason}.`,
      evidence: {
        ...writeEvidence(context, state, statement, [], { replica: run.replica, cursor: bounded?.cursor }),
        rowCount: run.rowCount,
        details:
          `Deleted (counted by the administrator before and after in the same rolled-back savepoint): ${describeTenants(context, lost)}. ` +
          `Run as ${contextLabel(state)} with no claims and no tenant set; a DELETE that reads no column brings in no SELECT policy, so ${state.role} needs no read access to do this.` +
          (bounded ? ` On this live database the statement was bounded to one row of ${source.label} (WHERE CURRENT OF a cursor, which brings in no SELECT policy either), so that no row of the application was locked or deleted.` : '') +
          (run.replica ? ' Rows of other tables reference these rows, so PostgreSQL rejects the delete at the foreign key; the policy allowed it (repeated with foreign-key triggers off).' : ''),
      },
      fix: diagnosis.fix,
      cause: diagnosis.cause,
    }));
  }
  return findings;
}
