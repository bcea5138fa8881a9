import type { Analysis } from '../analysis/model.js';
import type { Catalog, Relation } from '../catalog/types.js';
import { roleColumns, userColumns } from '../plan/owners.js';
import type { TenancyPlan } from '../plan/tenancy.js';
import type { AuditSession } from '../target/session.js';
import { ident, qualifiedIdent, relationIdent } from '../target/sql.js';
import type { Actors } from './actors.js';
import type { Ledger } from './ledger.js';
import type { WriteBlock } from './outcome.js';
import { relationOf, requireColumn } from '../catalog/lookup.js';

/** At most this many rows of each tenant become its actor's own, per table. */
const OWNED_ROWS = 10;

export interface OwnedRows {
  relation: string;
  /** The columns set to the actor's user. */
  columns: string[];
  /** Rows per tenant id now owned by that tenant's actor. */
  tenants: Record<string, number>;
}

/**
 * Rows owned by the actor: in user tenancy, the seeded rows of a tenant carry users the seeder made, never
 * the user a probe runs as, so a policy that lets an author update or delete its own rows
 * (`using (author_id = auth.uid())`) gives the probes nothing to reach. As the administrator, inside the
 * audit's transaction, the first half (at most ten, by key) of each tenant's rows in every table with a
 * user column (a foreign key to the users table, or a column the policies compare with the user) are
 * given to that tenant's actor: the first rows by key are what the write probes pick. A column under a
 * unique key changes on one row only; a row that cannot change (a unique or foreign key says no) keeps
 * its user. The ledger follows. Tables whose UPDATE is blocked on a live database are left alone.
 */
export async function adoptOwnedRows(session: AuditSession, catalog: Catalog, analysis: Analysis, plan: TenancyPlan, actors: Actors, ledger: Ledger, blocked: WriteBlock = () => null): Promise<OwnedRows[]> {
  if (actors.kind !== 'user' || !plan.actors.membership || !plan.actors.users) return [];
  const skip = new Set([plan.actors.membership.relation, plan.actors.users.relation, plan.tenantKey.relation]);
  const adopted: OwnedRows[] = [];
  const promoted = await promoteActors(session, catalog, plan, actors, ledger);
  if (promoted) adopted.push(promoted);
  for (const relationPlan of plan.relations) {
    if (relationPlan.tenancy !== 'direct' || !relationPlan.tenantColumn || skip.has(relationPlan.relation)) continue;
    const relation = relationOf(catalog, relationPlan.relation);
    if (!relation || (relation.kind !== 'table' && relation.kind !== 'partitioned-table') || relation.partitionOf || relation.inheritsFrom.length) continue;
    const columns = userColumns(catalog, analysis, plan, relation);
    if (!columns.length || blocked(relation.qualified, 'UPDATE')) continue;
    const key = relation.primaryKey?.length ? relation.primaryKey : null;
    if (!key) continue;
    const unique = columns.some((column) => uniqueColumn(relation, column));
    const entry: OwnedRows = { relation: relation.qualified, columns, tenants: {} };
    for (const [tenantId, actor] of actors.primary) {
      if (!actor.user) continue;
      const seeded = ledger.count(relation.qualified, tenantId);
      const share = unique ? Math.min(1, seeded) : Math.min(OWNED_ROWS, Math.ceil(seeded / 2));
      if (!share) continue;
      const order = key.map((name) => `r.${ident(name)}`).join(', ');
      // The old keys come back (a key may be the column that changes: profiles.id), to find the rows in the ledger.
      const sql =
        `with picked as (select r.tableoid, r.ctid, ${key.map((name) => `r.${ident(name)}::text as ${ident(`old_${name}`)}`).join(', ')} from ${relationIdent(relation)} as r ` +
        `where r.${ident(relationPlan.tenantColumn)}::text = $2 order by ${order} limit ${share}) ` +
        `update ${relationIdent(relation)} as t set ${columns.map((column) => `${ident(column)} = $1::${requireColumn(relation, column).type}`).join(', ')} ` +
        `from picked where t.tableoid = picked.tableoid and t.ctid = picked.ctid ` +
        `returning ${key.map((name) => `picked.${ident(`old_${name}`)} as ${ident(name)}`).join(', ')}`;
      let rows: Record<string, string | null>[];
      try {
        rows = (await session.savepoint(() => session.query(sql, [actor.user, tenantId]), true)).rows;
      } catch {
        continue;
      }
      const keys = new Set(rows.map((row) => key.map((name) => row[name] ?? '').join('\u0001')));
      ledger.rows(relation.qualified, tenantId).forEach((row, index) => {
        if (keys.has(key.map((name) => row.values[name] ?? '').join('\u0001'))) ledger.update(relation.qualified, tenantId, index, Object.fromEntries(columns.map((column) => [column, actor.user])));
      });
      if (rows.length) entry.tenants[tenantId] = rows.length;
    }
    if (Object.keys(entry.tenants).length) adopted.push(entry);
  }
  return adopted;
}

function uniqueColumn(relation: Relation, column: string): boolean {
  return (
    relation.constraints.some((constraint) => (constraint.kind === 'primary-key' || constraint.kind === 'unique') && constraint.columns.includes(column)) ||
    relation.indexes.some((index) => index.unique && index.columns.includes(column))
  );
}

/**
 * The actor of a tenant stands for the whole tenant: where the membership grades its members (a role column
 * with owner, admin, member), the actors' memberships get the most privileged value, so that what only an
 * owner may read counts among the tenant's own rows. (membership-escalation starts from the least privileged
 * value, inside its own savepoint.)
 */
async function promoteActors(session: AuditSession, catalog: Catalog, plan: TenancyPlan, actors: Actors, ledger: Ledger): Promise<OwnedRows | null> {
  const membership = plan.actors.membership!;
  const relation = relationOf(catalog, membership.relation);
  if (!relation) return null;
  const roles = roleColumns(relation, (table, column) => ledger.rows(table).map((row) => row.values[column]).filter((value): value is string => typeof value === 'string'));
  if (!roles.length) return null;
  const users = [...actors.primary.values(), ...(actors.multi ? [actors.multi] : [])].map((actor) => actor.user).filter((user): user is string => user !== null);
  const sql =
    `update ${qualifiedIdent(relation.qualified)} set ${roles.map((role, index) => `${ident(role.column.name)} = $${index + 2}::${role.column.type}`).join(', ')} ` +
    `where ${ident(membership.userColumn)}::text = any($1::text[]) returning ${ident(membership.tenantColumn)}::text as tenant, ${ident(membership.userColumn)}::text as member`;
  let rows: Record<string, string | null>[];
  try {
    rows = (await session.savepoint(() => session.query(sql, [users, ...roles.map((role) => role.top)]), true)).rows;
  } catch {
    return null;
  }
  const changed = Object.fromEntries(roles.map((role) => [role.column.name, role.top]));
  const tenants: Record<string, number> = {};
  for (const row of rows) {
    const tenant = row.tenant ?? '';
    tenants[tenant] = (tenants[tenant] ?? 0) + 1;
    ledger.rows(relation.qualified, tenant).forEach((entry, index) => {
      if (entry.values[membership.userColumn] === row.member) ledger.update(relation.qualified, tenant, index, changed);
    });
  }
  return rows.length ? { relation: relation.qualified, columns: roles.map((role) => role.column.name), tenants } : null;
}
