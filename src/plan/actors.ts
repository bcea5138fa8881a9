import type { Catalog } from '../catalog/types.js';
import { AuditError } from '../errors.js';
import type { ContextParameter } from '../analysis/context-sql.js';
import { findRelation, singleKeyColumn } from '../catalog/lookup.js';
import type { PlanNote } from './notes.js';

/**
 * Who a probe runs as:
 * - `tenant`: the context carries the tenant id;
 * - `user`: the context carries a user id; users belong to tenants through a membership table, or the
 *   users table is the tenant table (per-user apps: each user is a tenant);
 * - `role`: one database role per tenant; the context switches to it.
 */
export type ActorKind = 'tenant' | 'user' | 'role';

export interface UsersTable {
  relation: string;
  column: string;
  type: string;
  baseType: string;
}

export interface Membership {
  relation: string;
  /** Column holding the user (references the users table). */
  userColumn: string;
  /** Column holding the tenant (references the tenant table). */
  tenantColumn: string;
}

/**
 * The identity the policies read through a table of the application's own (found in the policies and the
 * helpers they call): the context carries `keyColumn` of a row of `relation` whose `valueColumn` is the
 * actor's tenant (`tenants.db_user = current_user` -> `tenants.id`; `sessions.id = <claim>` -> `sessions.user_id`).
 * - `tenant-row`: `relation` is the tenant table: the tenant's own row holds the key (for a role per tenant,
 *   the audit stores each role's name there);
 * - `own-row`: a table of its own (sessions, tokens, API keys): each actor gets one row of it pointing at its
 *   tenant (a seeded one, else one the audit inserts), whose key the context carries.
 * All of it as the administrator, inside the audit's transaction.
 */
export interface IdentityLookup {
  relation: string;
  keyColumn: string;
  valueColumn: string;
  mode: 'tenant-row' | 'own-row';
  /** How many policy clauses read the identity through it. */
  uses: number;
}

export interface ActorPlan {
  kind: ActorKind;
  /** The table the identity is read through, when the policies read it through one (see IdentityLookup). */
  lookup?: IdentityLookup | null;
  /** For `user`: the users table; the tenant table itself when each user is a tenant. */
  users: UsersTable | null;
  /** For `user` when users are not tenants: the table that makes a user a member of a tenant. */
  membership: Membership | null;
  /** For `role`: the role name of a tenant; `{tenant}` stands for the tenant id. */
  roleTemplate: string | null;
  /**
   * For `user`: the application's own users table whose key is the platform user's (`public.users.id
   * references auth.users`), through which the membership table references users; each user the audit
   * creates gets its row there too.
   */
  profile?: { relation: string; column: string } | null;
}

export interface ActorScenario {
  kind?: ActorKind;
  usersTable?: string;
  membershipTable?: string;
  roleTemplate?: string;
}

/**
 * The application's own users tables over the platform's (`users`): tables whose single-column key
 * references the users table's key (public.users, public.profiles over auth.users).
 */
export function profileTables(catalog: Catalog, users: string): { relation: string; column: string }[] {
  return catalog.relations.flatMap((relation) => {
    if (relation.qualified === users || relation.primaryKey?.length !== 1) return [];
    const column = relation.primaryKey[0]!;
    const own = relation.foreignKeys.some((foreignKey) => foreignKey.references === users && foreignKey.columns.length === 1 && foreignKey.columns[0] === column);
    return own ? [{ relation: relation.qualified, column }] : [];
  });
}


/**
 * The actor kind follows from what the context SQL carries ($role: one role per tenant; $user: users),
 * unless the scenario says. For users, the membership table is the table with single-column foreign keys to
 * the users table and to the tenant table that the policies join with the user identity (the most used when
 * several are), else the only table with such foreign keys (or the one the scenario names).
 */
export function planActors(
  catalog: Catalog,
  input: {
    actor: ActorScenario;
    parameters: ContextParameter[];
    tenantTable: string | null;
    usersTable: string | null;
    /** Tables the policies join with the user identity, most used first (see policyMemberships). */
    policyMemberships?: { relation: string; userColumn: string; uses: number }[];
  },
  notes: PlanNote[],
): ActorPlan {
  const kind: ActorKind = input.actor.kind ?? (input.parameters.includes('role') ? 'role' : input.parameters.includes('user') && input.usersTable ? 'user' : 'tenant');
  if (kind === 'role') {
    const roleTemplate = input.actor.roleTemplate ?? '{tenant}';
    notes.push({ kind: 'actors', mode: 'roles', roleTemplate });
    return { kind, users: null, membership: null, roleTemplate };
  }
  if (kind === 'tenant') return { kind, users: null, membership: null, roleTemplate: null };

  const usersName = input.actor.usersTable ?? input.usersTable;
  const usersRelation = usersName ? findRelation(catalog, usersName) : undefined;
  if (!usersRelation) throw new AuditError(`users table ${usersName ?? '(none)'} does not exist: name it with actor.usersTable in the scenario`);
  const key = singleKeyColumn(usersRelation);
  if (!key) throw new AuditError(`users table ${usersRelation.qualified} has no single-column key to identify a user`);
  const users: UsersTable = { relation: usersRelation.qualified, column: key.name, type: key.type, baseType: key.baseType };
  if (usersRelation.qualified === input.tenantTable) {
    notes.push({ kind: 'actors', mode: 'users-are-tenants', users: users.relation });
    return { kind, users, membership: null, roleTemplate: null };
  }
  const candidates = catalog.relations.filter((relation) => {
    if (input.actor.membershipTable) return relation.qualified === findRelation(catalog, input.actor.membershipTable)?.qualified;
    return relation.kind === 'table' || relation.kind === 'partitioned-table';
  });
  // Users are the platform's, or rows of the application's own users table over them (public.users.id references auth.users).
  const profiles = profileTables(catalog, users.relation);
  const profileOf = new Map<string, { relation: string; column: string } | null>();
  const linked: Membership[] = [];
  for (const relation of candidates) {
    if (profiles.some((profile) => profile.relation === relation.qualified)) continue;
    const toUsers =
      relation.foreignKeys.find((foreignKey) => foreignKey.references === users.relation && foreignKey.columns.length === 1) ??
      relation.foreignKeys.find((foreignKey) => foreignKey.columns.length === 1 && profiles.some((profile) => profile.relation === foreignKey.references && profile.column === foreignKey.referencedColumns[0]));
    const toTenants = relation.foreignKeys.find((foreignKey) => foreignKey.references === input.tenantTable && foreignKey.columns.length === 1);
    if (toUsers && toTenants) {
      linked.push({ relation: relation.qualified, userColumn: toUsers.columns[0]!, tenantColumn: toTenants.columns[0]! });
      profileOf.set(relation.qualified, toUsers.references === users.relation ? null : profiles.find((profile) => profile.relation === toUsers.references)!);
    }
  }
  const profileThrough = (membership: Membership) => profileOf.get(membership.relation) ?? null;
  // Any table with foreign keys to both is only a candidate: the membership table is the one the policies join
  // with the user identity; among several, the one most policy clauses join.
  const joined = input.actor.membershipTable ? [] : (input.policyMemberships ?? []).flatMap((entry) => {
    const match = linked.find((candidate) => candidate.relation === entry.relation && candidate.userColumn === entry.userColumn);
    return match ? [{ membership: match, uses: entry.uses }] : [];
  });
  if (joined.length) {
    const [chosen, ...others] = joined;
    const skipped = linked.filter((candidate) => candidate.relation !== chosen!.membership.relation).map((candidate) => candidate.relation);
    const profile = profileThrough(chosen!.membership);
    notes.push({
      kind: 'actors', mode: 'members', users: users.relation, membership: chosen!.membership, profile,
      evidence: { by: 'policies', uses: chosen!.uses, alsoJoined: others.map((entry) => ({ relation: entry.membership.relation, uses: entry.uses })), notMembership: skipped },
    });
    return { kind, users, membership: chosen!.membership, roleTemplate: null, profile };
  }
  const memberships = linked;
  if (memberships.length !== 1) {
    if (input.actor.kind === 'user' || input.actor.membershipTable) {
      throw new AuditError(
        memberships.length
          ? `several membership tables link ${users.relation} to ${input.tenantTable}: ${memberships.map((entry) => entry.relation).join(', ')}; name one with actor.membershipTable`
          : `no membership table links ${users.relation} to ${input.tenantTable ?? 'a tenant table'} by foreign keys: name it with actor.membershipTable, or the tenant table with --tenant-table`,
      );
    }
    notes.push({ kind: 'actors', mode: 'tenants', users: users.relation, tenantTable: input.tenantTable, linked: memberships.map((entry) => entry.relation) });
    return { kind: 'tenant', users: null, membership: null, roleTemplate: null };
  }
  const membership = memberships[0]!;
  const profile = profileThrough(membership);
  notes.push({ kind: 'actors', mode: 'members', users: users.relation, membership, profile, evidence: { by: 'foreign-keys' } });
  return { kind, users, membership, roleTemplate: null, profile };
}

/** The role name of a tenant under a role template. */
export function roleNameOf(template: string, tenantId: string): string {
  return template.split('{tenant}').join(tenantId);
}
