import type { Catalog } from '../catalog/types.js';
import { AuditError, errorMessage } from '../errors.js';
import type { TenancyPlan } from '../plan/tenancy.js';
import type { AuditSession } from '../target/session.js';
import { ident, relationIdent } from '../target/sql.js';
import { insertRow, type Actor, type Actors } from './actors.js';
import type { Ledger } from './ledger.js';
import { columnOf, relationOf } from '../catalog/lookup.js';

/**
 * Where the policies read the identity through a table of the application's own (plan.actors.lookup), give
 * every actor its row there and the key of it, as the administrator inside the audit's transaction:
 * - the tenant table (`tenants.db_user = current_user`): the tenant's seeded row holds the key; for a role
 *   per tenant the audit writes the role's name into it first;
 * - another table (`app_private.sessions.id = <claim>` -> `user_id`): a seeded row of the tenant's (its
 *   key column set to the role's name for a role per tenant), else one the audit inserts.
 * The context then carries the key instead of the tenant id (see contextValuesOf). Ledger rows follow.
 */
export async function seedIdentityLookup(session: AuditSession, catalog: Catalog, plan: TenancyPlan, actors: Actors, ledger: Ledger, seed: number, explicitKeys = false): Promise<Actors> {
  const lookup = plan.actors.lookup;
  if (!lookup) return actors;
  const relation = relationOf(catalog, lookup.relation);
  if (!relation) return actors;
  const table = relationIdent(relation);
  const keyType = columnOf(relation, lookup.keyColumn)?.type ?? 'text';
  const serial = { next: 500 };
  const primary = new Map<string, Actor>();
  for (const [tenantId, actor] of actors.primary) {
    const given = actor.role;
    const rows = ledger.rows(relation.qualified, tenantId);
    const index = rows.findIndex((row) => row.values[lookup.valueColumn] === tenantId);
    let key: string | null;
    try {
      if (index >= 0 && given === null && rows[index]!.values[lookup.keyColumn] !== null && rows[index]!.values[lookup.keyColumn] !== undefined) {
        key = rows[index]!.values[lookup.keyColumn]!;
      } else if (index >= 0) {
        // The row is ours: the key column gets the role's name (or keeps its value), read back as the server stores it.
        const row = rows[index]!;
        const identity = (relation.primaryKey ?? [lookup.keyColumn]).filter((column) => row.values[column] !== undefined);
        const where = identity.map((column, position) => `${ident(column)} = $${position + 2}::${columnOf(relation, column)?.type ?? 'text'}`).join(' and ');
        const result = await session.savepoint(
          () =>
            session.query(
              `update ${table} set ${ident(lookup.keyColumn)} = coalesce($1::${keyType}, ${ident(lookup.keyColumn)}) where ${where} returning ${ident(lookup.keyColumn)}::text as key`,
              [given, ...identity.map((column) => row.values[column] ?? null)],
            ),
          true,
        );
        key = (result.rows[0]?.key as string | null | undefined) ?? null;
        if (key !== null) ledger.update(relation.qualified, tenantId, index, { [lookup.keyColumn]: key });
      } else {
        const values: Record<string, string | null> = { [lookup.valueColumn]: tenantId };
        if (given !== null) values[lookup.keyColumn] = given;
        const row = await insertRow(session, relation, values, ledger, serial, seed, explicitKeys);
        ledger.add(relation.qualified, relation.primaryKey, [{ tenant: tenantId, values: row }]);
        key = row[lookup.keyColumn] ?? null;
      }
    } catch (error) {
      throw new AuditError(
        `cannot give ${actor.label} its row in ${relation.qualified} (the policies read the identity through ${relation.qualified}.${lookup.keyColumn} -> ${lookup.valueColumn}): ${errorMessage(error)}. ` +
          `Give the SQL the application runs with --context-sql instead.`,
      );
    }
    if (key === null) throw new AuditError(`${actor.label} has no ${lookup.keyColumn} in ${relation.qualified}: the policies read the identity through it; give the SQL the application runs with --context-sql`);
    primary.set(tenantId, { ...actor, key, label: actor.role ? actor.label : `${actor.label} (${lookup.keyColumn} ${key})` });
  }
  return { ...actors, primary };
}

/**
 * The application's own users row of a user the audit created (public.users over auth.users), unless
 * something (a trigger on the platform's users) already made it.
 */
export async function addProfile(
  session: AuditSession,
  catalog: Catalog,
  profile: { relation: string; column: string },
  id: string,
  ledger: Ledger,
  serial: { next: number },
  seed: number,
  explicitKeys: boolean,
): Promise<void> {
  const relation = relationOf(catalog, profile.relation);
  if (!relation) return;
  const type = columnOf(relation, profile.column)?.type ?? 'text';
  const existing = await session.query(`select 1 from ${relationIdent(relation)} where ${ident(profile.column)} = $1::${type}`, [id]);
  if (existing.rows.length) return;
  const row = await insertRow(session, relation, { [profile.column]: id }, ledger, serial, seed, explicitKeys);
  ledger.add(relation.qualified, relation.primaryKey, [{ tenant: null, values: row }]);
}
