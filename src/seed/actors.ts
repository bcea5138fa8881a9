import type { Catalog, Column, Relation } from '../catalog/types.js';
import { AuditError, errorMessage } from '../errors.js';
import { isLockTimeout } from '../target/locks.js';
import { roleNameOf, type ActorKind } from '../plan/actors.js';
import type { TenancyPlan } from '../plan/tenancy.js';
import type { AuditSession } from '../target/session.js';
import { ident, relationIdent } from '../target/sql.js';
import type { Ledger, Tenant } from './ledger.js';
import { addProfile } from './identity.js';
import { columnRules } from './column-rules.js';
import { checksOf, columnValue, createFaker, tenantIds } from './values.js';
import { isSequenceBacked, KEY_LIMITS } from './shapes.js';
import { rowsMadeByTriggers } from './triggers.js';
import { columnOf, relationOf, requireColumn, requireRelation } from '../catalog/lookup.js';

/** Who a probe runs as: the context binds `$tenant`, `$user` and `$role` from it. */
export interface Actor {
  /** How reports name it: `tenant A`, `user of tenant A`, `user of tenant A and tenant B`, `user of no tenant`. */
  label: string;
  /** The tenants whose rows it may see: one, two (a user in two tenants), or none. */
  tenants: Tenant[];
  user: string | null;
  role: string | null;
  /**
   * Tenants the platform made for this user when the audit created it (a trigger on the users table made the
   * tenant and the user's membership, as a personal account), which no one else belongs to: their rows are the
   * actor's own to see, and every other actor's foreign rows. Probes never run as them.
   */
  personal?: Tenant[];
  /**
   * The key of its row in the table the policies read the identity through (a session id, a tenant's
   * db_user), when they do (plan.actors.lookup): the context carries it in place of the tenant id.
   */
  key?: string | null;
}

export interface Actors {
  kind: ActorKind;
  /** The actor that stands for each tenant (by tenant id): what "as tenant A" means in every probe. */
  primary: Map<string, Actor>;
  /** A user who belongs to two tenants: must see exactly the union of their rows. */
  multi: Actor | null;
  /** A user who belongs to no tenant: must see no tenant row (the user-level missing context). */
  outsider: Actor | null;
}

/** Values for the context SQL's parameters ($tenant, $user, $role), in its positional order. */
export function contextValuesOf(plan: TenancyPlan, actor: Actor, tenantId: string | null = actor.tenants[0]?.id ?? null): (string | null)[] {
  // The identity read through a table: the context carries the actor's key there, not the tenant id.
  const carried = plan.actors.lookup && actor.key !== undefined && (!actor.tenants.length || tenantId === actor.tenants[0]!.id) ? actor.key : tenantId;
  return plan.contextParameters.map((parameter) => (parameter === 'tenant' ? carried : parameter === 'user' ? actor.user : actor.role));
}

/**
 * The statement that sets `actor`'s context: the application's context SQL with its values, or, for a role
 * per tenant, the audit's own `set local role`.
 */
export function contextStatementOf(plan: TenancyPlan, actor: Actor, tenantId?: string | null): { text: string; values: (string | null)[]; origin: TenancyPlan['contextOrigin'] } {
  if (plan.roleSwitch) return { text: `set local role ${ident(actor.role ?? plan.role)}`, values: [], origin: 'audit' };
  return { text: plan.contextSql, values: contextValuesOf(plan, actor, tenantId), origin: plan.contextOrigin };
}

/** Insert one row with the given values; other required columns get generated values; returns the row as text. */
/**
 * A key for a sequence-backed column from the middle of its type's range, counting down, instead of
 * nextval() (which a rollback does not undo) on a database that is not ours; the seeder takes the top.
 */
function middleKey(column: Column, serial: { next: number }): string | null {
  const limit = KEY_LIMITS[column.baseType];
  if (limit === undefined) return null;
  serial.next += 1;
  return String(limit / 2n - BigInt(serial.next));
}

export async function insertRow(session: AuditSession, relation: Relation, given: Record<string, string | null>, ledger: Ledger, serial: { next: number }, seed: number, explicitKeys: boolean): Promise<Record<string, string | null>> {
  const faker = createFaker(seed + serial.next);
  const values = new Map(Object.entries(given));
  for (const foreignKey of relation.foreignKeys) {
    if (foreignKey.columns.some((column) => values.has(column))) continue;
    const nullable = foreignKey.columns.every((name) => !columnOf(relation, name)?.notNull);
    const parent = nullable ? undefined : ledger.rows(foreignKey.references)[0];
    foreignKey.columns.forEach((name, position) => values.set(name, parent ? (parent.values[foreignKey.referencedColumns[position]!] ?? null) : null));
  }
  const unique = new Set<string>();
  for (const constraint of relation.constraints) if (constraint.kind === 'primary-key' || constraint.kind === 'unique') constraint.columns.forEach((name) => unique.add(name));
  for (const column of relation.columns) {
    if (explicitKeys && !column.generated && !values.has(column.name) && isSequenceBacked(column)) {
      const key = middleKey(column, serial);
      if (key !== null) values.set(column.name, key);
      continue;
    }
    if (column.generated || column.identity || values.has(column.name) || column.default !== null) continue;
    serial.next += 1;
    const value = columnValue(faker, column, columnRules(column, checksOf(relation)), { serial: 9_000_000 + serial.next, canary: null, unique: unique.has(column.name) });
    if (value !== null || column.notNull) values.set(column.name, value);
  }
  const columns = relation.columns.filter((column) => values.has(column.name));
  const overriding = columns.some((column) => column.identity === 'always') ? ' overriding system value' : '';
  const sql =
    `insert into ${relationIdent(relation)} (${columns.map((column) => ident(column.name)).join(', ')})${overriding} ` +
    `values (${columns.map((column, index) => `$${index + 1}::${column.type}`).join(', ')}) ` +
    `returning ${relation.columns.map((column) => `${ident(column.name)}::text as ${ident(column.name)}`).join(', ')}`;
  const result = await session.savepoint(() => session.query(sql, columns.map((column) => values.get(column.name) ?? null)), true);
  return result.rows[0]!;
}

/**
 * Create the actors of the seeded tenants, inside the audit's transaction (so rolled back with it):
 * - tenant: nothing to create;
 * - user as tenant: the seeded tenant rows are the users;
 * - user with a membership table: one user per tenant, one user in the first two tenants, one user in
 *   none, each with exactly these memberships (the seeder's own membership rows belong to other users);
 * - role: one role per tenant, NOLOGIN, member of the application role (so it holds its privileges).
 */
/**
 * With `explicitKeys` (a database that is not ours), sequence-backed keys of the users and memberships the
 * audit creates are given, not drawn from their sequences.
 */
export async function seedActors(session: AuditSession, catalog: Catalog, plan: TenancyPlan, tenants: Tenant[], ledger: Ledger, seed: number, explicitKeys = false): Promise<Actors> {
  const { actors } = plan;
  const primary = new Map<string, Actor>();
  if (actors.kind === 'tenant') {
    for (const tenant of tenants) primary.set(tenant.id, { label: tenant.label, tenants: [tenant], user: null, role: null });
    return { kind: 'tenant', primary, multi: null, outsider: null };
  }
  if (actors.kind === 'role') {
    for (const tenant of tenants) {
      const role = roleNameOf(actors.roleTemplate!, tenant.id);
      try {
        await session.savepoint(async () => {
          const exists = await session.query('select 1 from pg_roles where rolname = $1', [role]);
          if (!exists.rows.length) {
            await session.query(`create role ${ident(role)} nologin`);
            await session.query(`grant ${ident(plan.role)} to ${ident(role)}`);
          }
        }, true);
      } catch (error) {
        throw new AuditError(`cannot create the role ${role} of ${tenant.label} (template ${actors.roleTemplate}): ${errorMessage(error)}. Give the role names with actor.roleTemplate.`);
      }
      primary.set(tenant.id, { label: `${tenant.label} (role ${role})`, tenants: [tenant], user: null, role });
    }
    return { kind: 'role', primary, multi: null, outsider: null };
  }
  const users = actors.users!;
  if (!actors.membership) {
    for (const tenant of tenants) primary.set(tenant.id, { label: `${tenant.label} (user ${tenant.id})`, tenants: [tenant], user: tenant.id, role: null });
    return { kind: 'user', primary, multi: null, outsider: null };
  }
  const usersRelation = requireRelation(catalog, users.relation);
  const membership = requireRelation(catalog, actors.membership.relation);
  const ids = tenantIds(createFaker(seed + 104_729), users.baseType, tenants.length + 2, columnOf(usersRelation, users.column)?.maxLength ?? null);
  const serial = { next: 0 };
  const memberships: { tenant: Tenant; values: Record<string, string | null> }[] = [];
  const { userColumn, tenantColumn } = actors.membership;
  const userType = requireColumn(membership, userColumn).type;
  /** Memberships the platform made for each user as it was created (a trigger on the users table), by user. */
  const made = new Map<string, Record<string, string | null>[]>();
  const addUser = async (id: string, of: Tenant[]) => {
    try {
      const row = await insertRow(session, usersRelation, { [users.column]: id }, ledger, serial, seed, explicitKeys);
      ledger.add(usersRelation.qualified, usersRelation.primaryKey, [{ tenant: null, values: row }]);
      if (actors.profile) await addProfile(session, catalog, actors.profile, id, ledger, serial, seed, explicitKeys);
      const platform = (await session.savepoint(() => session.query(`select ${membership.columns.map((column) => `${ident(column.name)}::text as ${ident(column.name)}`).join(', ')} from ${relationIdent(membership)} where ${ident(userColumn)} = $1::${userType}`, [id]), true)).rows;
      made.set(id, platform.filter((member) => !of.some((tenant) => tenant.id === member[tenantColumn])));
      for (const tenant of of) {
        // A membership the platform already made is the actor's, not one to insert again (rows a trigger creates are adopted, not fought).
        const member = platform.find((candidate) => candidate[tenantColumn] === tenant.id) ?? (await insertRow(session, membership, { [userColumn]: id, [tenantColumn]: tenant.id }, ledger, serial, seed, explicitKeys));
        memberships.push({ tenant, values: member });
      }
    } catch (error) {
      throw new AuditError(
        `cannot create the user ${id} in ${users.relation} with memberships in ${membership.qualified}: ${errorMessage(error)}. Name the users and membership tables with actor.usersTable / actor.membershipTable.`,
      );
    }
  };
  for (const [index, tenant] of tenants.entries()) {
    await addUser(ids[index]!, [tenant]);
    primary.set(tenant.id, { label: `${tenant.label} (its user)`, tenants: [tenant], user: ids[index]!, role: null });
  }
  const pair = tenants.slice(0, 2);
  await addUser(ids[tenants.length]!, pair);
  await addUser(ids[tenants.length + 1]!, []);
  for (const entry of memberships) ledger.add(membership.qualified, membership.primaryKey, [{ tenant: entry.tenant.id, values: entry.values }]);
  const multi: Actor = { label: `user of ${pair.map((tenant) => tenant.label).join(' and ')}`, tenants: pair, user: ids[tenants.length]!, role: null };
  const outsider: Actor = { label: 'user of no tenant', tenants: [], user: ids[tenants.length + 1]!, role: null };
  if (catalog.triggers.some((trigger) => trigger.enabled && [usersRelation.qualified, membership.qualified].includes(trigger.relation))) {
    try {
      await adoptActorRows(session, catalog, plan, ledger, [...primary.values(), multi, outsider], made);
    } catch (error) {
      // As the seeder adopts: a stop or a lock timeout ends the run; otherwise rows left unadopted count as no one's own (fails closed).
      session.rethrowStop(error);
      if (isLockTimeout(error)) throw error;
    }
  }
  return { kind: 'user', primary, multi, outsider };
}

/**
 * An actor's side effects are its own. Creating the users (and their memberships) fires the application's
 * triggers: a basejump-style trigger on the users table makes each new user a personal account and its
 * membership. Each such tenant, not seeded, whose only member is the user it was made for, is that user's
 * personal tenant (`Actor.personal`, `Ledger.addPersonal`): the user seeing it is no leak, another actor
 * seeing it is. A membership the platform made in a tenant with other members (a seeded tenant, a tenant every
 * new user joins) stays what it is: access the probes judge. Then every row the triggers made for a seeded or
 * personal tenant (by tenant column, or through a parent in the ledger) is adopted into the ledger, tenant-owned
 * relations in seeding order; own-row counts stay those of the seeded tenants.
 */
async function adoptActorRows(session: AuditSession, catalog: Catalog, plan: TenancyPlan, ledger: Ledger, users: Actor[], made: Map<string, Record<string, string | null>[]>): Promise<void> {
  const { membership } = plan.actors;
  const membershipRelation = requireRelation(catalog, membership!.relation);
  const candidates = new Map<string, Actor>();
  for (const actor of users) {
    for (const member of made.get(actor.user!) ?? []) {
      const id = member[membership!.tenantColumn];
      if (id !== null && id !== undefined && !ledger.tenants.some((tenant) => tenant.id === id)) candidates.set(id, actor);
    }
  }
  if (candidates.size) {
    const members = (await session.savepoint(
      () => session.query(`select ${ident(membership!.tenantColumn)}::text as tenant, count(distinct ${ident(membership!.userColumn)})::text as members, min(${ident(membership!.userColumn)}::text) as member from ${relationIdent(membershipRelation)} where ${ident(membership!.tenantColumn)}::text = any($1::text[]) group by 1`, [[...candidates.keys()]]),
      true,
    )).rows;
    for (const row of members) {
      const actor = candidates.get(row.tenant!);
      if (!actor || row.members !== '1' || row.member !== actor.user) continue;
      const who = `the user of ${actor.tenants.length ? actor.tenants.map((tenant) => tenant.label).join(' and ') : 'no tenant'}`;
      (actor.personal ??= []).push(ledger.addPersonal(row.tenant!, `tenant ${row.tenant} (made for ${who})`));
    }
  }
  // The personal tenants first, on their own: their few rows are not cut off by the many of the seeded tenants.
  const personal = users.flatMap((actor) => (actor.personal ?? []).map((tenant) => tenant.id));
  for (const owners of [personal, ledger.tenants.map((tenant) => tenant.id)]) {
    for (const name of plan.seedOrder) {
      const relationPlan = plan.relations.find((candidate) => candidate.relation === name);
      const relation = relationOf(catalog, name);
      if (!relationPlan || !relation) continue;
      const adopted = await rowsMadeByTriggers(session, relation, relationPlan, ledger, owners);
      if (adopted?.length) ledger.add(relation.qualified, relation.primaryKey, adopted);
    }
  }
}
