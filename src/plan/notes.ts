/**
 * What planning chose and why, as data: each note says which part of the plan it explains (its kind) and the
 * evidence. `planNoteText` puts a note into words, once, for the report and the terminal; `planNoteReason` gives
 * the words a scenario writes beside the value the note explains (`rls-audit init`).
 */
import { plural } from '../report/text.js';

/** Where the tenant travels when it is not one setting the policies compare (a platform's claims, the role, a claim). */
export type ContextNote =
  /** A platform preset: JWT claims in `setting`; `evidence`: how the claim path was found. */
  | { kind: 'context'; source: 'preset'; preset: string; setting: string; claim: string[]; evidence: { by: 'compared' } | { by: 'helper'; function: string } | { by: 'assumed' } }
  /** current_user / session_user compared with a row column: one database role per tenant. */
  | { kind: 'context'; source: 'role'; keyword: string; relations: number; escapes: string[] }
  /** A JWT claim read from a setting, compared with a row column. */
  | { kind: 'context'; source: 'jwt-claim'; path: string[]; setting: string; relations: number; escapes: string[] }
  /** Another setting the policies compare, kept because every tenant saw its own seeded rows under it (and none under `planned`). */
  | { kind: 'context'; source: 'seeded-data'; setting: string; tables: number; planned: string };

/** The tenant setting, discovered or assumed. */
export type SettingNote =
  /** No policy compares a setting with a row column: the default is assumed. */
  | { kind: 'setting'; source: 'assumed'; setting: string; escapes: string[] }
  /** Compared with a row column by `relations` relations; `alternatives`: other settings compared, tried on seeded data. */
  | { kind: 'setting'; source: 'compared'; setting: string; relations: number; alternatives: string[]; escapes: string[] }
  /** Read by a helper function that the policies compare with a row column. */
  | { kind: 'setting'; source: 'helper'; setting: string; function: string; relations: number; escapes: string[] };

/** Why a table is the tenant table. */
export type TenantTableEvidence =
  /** The policies join `membership` with the user identity, and its `column` references the tenant table. */
  | { by: 'membership'; membership: string; column: string; uses: number }
  /** The tenant columns of `tables` tables reference it. */
  | { by: 'references'; tables: number }
  /** The platform's users table: each user is a tenant. */
  | { by: 'preset-users'; preset: string }
  /** Its name. */
  | { by: 'name' };

/** The grants that made a role the application role, counted on tenant-owned relations. */
export interface RoleGrants {
  /** SELECT, INSERT, UPDATE, DELETE granted, each with the number of tenant-owned relations it is granted on. */
  privileges: { privilege: string; relations: number }[];
  /** Tenant-owned relations it is granted anything on (said when none of the four is granted). */
  granted: number;
  /** Tenant-owned relations in all. */
  tenantRelations: number;
  bypassRls: boolean;
}

export type RoleNote =
  | { kind: 'role'; source: 'preset'; role: string; preset: string }
  /** The only role granted access to tenant data, owners and superusers aside. */
  | { kind: 'role'; source: 'only'; role: string; grants: RoleGrants }
  /** Of several roles: the one granted the most (`why: 'most'`) or the one without BYPASSRLS; `others` not audited. */
  | { kind: 'role'; source: 'ranked'; role: string; why: 'most' | 'without-bypassrls'; candidates: number; grants: RoleGrants; others: { role: string; grants: RoleGrants }[] };

/** A membership table: users of the users table belong to tenants through it. */
export interface MembershipNote {
  relation: string;
  userColumn: string;
  tenantColumn: string;
}

export type ActorsNote =
  | { kind: 'actors'; mode: 'roles'; roleTemplate: string }
  | { kind: 'actors'; mode: 'users-are-tenants'; users: string }
  /**
   * Users, members of tenants through `membership`, found because the policies join it with the user identity
   * or (`evidence.by: 'foreign-keys'`) as the only table with foreign keys to both. `profile`: the application's
   * users table over the platform's, through which its rows reach the users.
   */
  | {
      kind: 'actors';
      mode: 'members';
      users: string;
      membership: MembershipNote;
      evidence: { by: 'policies'; uses: number; alsoJoined: { relation: string; uses: number }[]; notMembership: string[] } | { by: 'foreign-keys' };
      profile: { relation: string; column: string } | null;
    }
  /** Tenants are the actors: `linked` tables link users to tenants by foreign keys, but the policies join none (or none does). */
  | { kind: 'actors'; mode: 'tenants'; users: string; tenantTable: string | null; linked: string[] };

export type PlanNote =
  | ContextNote
  | SettingNote
  | { kind: 'tenant-table'; relation: string; evidence: TenantTableEvidence }
  /** The tenant key is the column foreign keys reference, not the primary key. */
  | { kind: 'tenant-key'; relation: string; column: string; references: number }
  /** No tenant table: tenant ids are values of a column. */
  | { kind: 'tenant-values'; column: string; type: string }
  | { kind: 'tenant-columns'; columns: string[] }
  | RoleNote
  | ActorsNote
  /** The table the policies read the identity through: the tenant table (`tenant-row`) or another (`own-row`). */
  | { kind: 'identity'; mode: 'tenant-row' | 'own-row'; relation: string; keyColumn: string; valueColumn: string; clauses: number };

function escapeWords(escapes: string[]): string {
  return escapes.length ? `; ${escapes.join(', ')} only open rows as a flag (an escape hatch), never the tenant setting` : '';
}

function grantWords(grants: RoleGrants): string {
  const sizes = new Set(grants.privileges.map((entry) => entry.relations));
  const what = !grants.privileges.length
    ? `no SELECT, INSERT, UPDATE or DELETE (other privileges on ${grants.granted})`
    : sizes.size === 1
      ? `${grants.privileges.map((entry) => entry.privilege).join(', ')} on ${[...sizes][0]}`
      : grants.privileges.map((entry) => `${entry.privilege} on ${entry.relations}`).join(', ');
  return `${what} of ${grants.tenantRelations} tenant-owned relation(s)${grants.bypassRls ? ', BYPASSRLS' : ''}`;
}

function tenantTableReason(evidence: TenantTableEvidence): string {
  switch (evidence.by) {
    case 'membership':
      return `the policies join ${evidence.membership} with the user identity (${plural(evidence.uses, 'policy clause')}), and ${evidence.membership}.${evidence.column} references it (discovered)`;
    case 'references':
      return `referenced by the tenant column of ${evidence.tables} table(s) (discovered)`;
    case 'preset-users':
      return `no table points at another tenant table, and tables reference the ${evidence.preset} users: each user is a tenant (set tenantTable to override)`;
    case 'name':
      return 'chosen by its name; no foreign key points at it (set tenantTable to override)';
  }
}

function roleWords(note: RoleNote): string {
  switch (note.source) {
    case 'preset':
      return `application role ${note.role} (--preset ${note.preset}; set it with --role)`;
    case 'only':
      return `application role ${note.role}: the only role granted access to tenant data (${grantWords(note.grants)}; owners and superusers aside)`;
    case 'ranked':
      return (
        `application role ${note.role}: ${note.why === 'most' ? 'granted the most on tenant data' : 'the one without BYPASSRLS'} of the ${note.candidates} roles granted access to it, ` +
        `${grantWords(note.grants)}; not audited: ${note.others.map((other) => `${other.role} (${grantWords(other.grants)})`).join(', ')}`
      );
  }
}

function settingReason(note: SettingNote): string {
  switch (note.source) {
    case 'assumed':
      return `no policy compares a setting with a row column; assuming the tenant setting is ${note.setting} (set it with --setting)${note.escapes.length ? `; ${note.escapes.join(', ')} only open rows as a flag and are never the tenant setting` : ''}`;
    case 'compared':
      return `compared with a row column by ${note.relations} relation(s) (discovered)${note.alternatives.length ? `; also compared: ${note.alternatives.join(', ')} (tried on seeded data if ${note.setting} proves nothing)` : ''}${escapeWords(note.escapes)}`;
    case 'helper':
      return `read by ${note.function}(), which ${note.relations} relation(s) compare with a row column (discovered)${escapeWords(note.escapes)}`;
  }
}

function actorsText(note: ActorsNote): string {
  switch (note.mode) {
    case 'roles':
      return `actors: one database role per tenant, named ${note.roleTemplate} (created by the audit inside its transaction; set actor.roleTemplate to change)`;
    case 'users-are-tenants':
      return `actors: each user of ${note.users} is a tenant (the context carries the user id as both $user and $tenant)`;
    case 'tenants':
      return note.linked.length
        ? `actors: tenants; ${note.linked.join(', ')} link ${note.users} to ${note.tenantTable} by foreign keys, but the policies join none of them with the user identity: the context carries no user (name the membership with actor.membershipTable if the application has one)`
        : `actors: tenants (no table links ${note.users} to ${note.tenantTable ?? 'a tenant table'} by foreign keys); the context carries no user`;
    case 'members': {
      const { membership, evidence, profile } = note;
      const through = profile ? ` (users of ${note.users} through ${profile.relation}.${profile.column}, which references it; the audit gives each user its row there)` : '';
      const members = `actors: users of ${note.users}, members of tenants through ${membership.relation}(${membership.userColumn}, ${membership.tenantColumn})`;
      if (evidence.by === 'foreign-keys') return `${members} (discovered: foreign keys to both)${through}`;
      const skipped = evidence.notMembership;
      return (
        `${members} (discovered: the policies join it with the user identity in ${plural(evidence.uses, 'clause')}` +
        `${evidence.alsoJoined.length ? `; also joined: ${evidence.alsoJoined.map((entry) => `${entry.relation} (${entry.uses})`).join(', ')}` : ''}` +
        `${skipped.length ? `; ${skipped.join(', ')} also ${skipped.length === 1 ? 'has' : 'have'} foreign keys to both but ${skipped.length === 1 ? 'is' : 'are'} not the policies' membership (tenant data)` : ''}; set actor.membershipTable to override)${through}`
      );
    }
  }
}

function contextText(note: ContextNote): string {
  switch (note.source) {
    case 'preset': {
      const evidence = note.evidence.by === 'compared' ? ' (discovered: compared with a row column)' : note.evidence.by === 'helper' ? ` (discovered: read by ${note.evidence.function}(), which the policies compare with a row column)` : ' (assumed)';
      return `context: ${note.preset} JWT claims in ${note.setting} (--preset ${note.preset}); the tenant travels in the claim ${note.claim.join('.')}${evidence}`;
    }
    case 'role':
      return `tenant = ${note.keyword}: ${note.relations} relation(s) compare a row column with it (discovered): one database role per tenant${escapeWords(note.escapes)}`;
    case 'jwt-claim':
      return `tenant = JWT claim ${note.path.join('.')} in ${note.setting}: compared with a row column by ${note.relations} relation(s) (discovered)${escapeWords(note.escapes)}`;
    case 'seeded-data':
      return `context: ${note.setting} chosen on seeded data: every tenant sees its own rows on the ${note.tables} tenant-owned table(s) checked; under ${note.planned} no tenant saw any`;
  }
}

/**
 * The words a scenario writes beside the value a note explains: why the application role, the tenant setting or
 * the tenant table is what it is. Null for the notes about anything else.
 */
export function planNoteReason(note: PlanNote): string | null {
  switch (note.kind) {
    case 'role':
      return roleWords(note);
    case 'setting':
      return settingReason(note);
    case 'tenant-table':
      return tenantTableReason(note.evidence);
    default:
      return null;
  }
}

/** A plan note in words, as the report and the terminal show it. */
export function planNoteText(note: PlanNote): string {
  switch (note.kind) {
    case 'context':
      return contextText(note);
    case 'setting':
      return note.source === 'assumed' ? settingReason(note) : `tenant setting ${note.setting}: ${settingReason(note)}`;
    case 'tenant-table':
      return `tenant table ${note.relation}: ${tenantTableReason(note.evidence)}`;
    case 'tenant-key':
      return `tenant key ${note.relation}.${note.column}: the column ${note.references} foreign key(s) reference, not the primary key (set it with --tenant-key)`;
    case 'tenant-values':
      return `no tenant table; tenant ids are values of ${note.column} (${note.type})`;
    case 'tenant-columns':
      return `tenant column${note.columns.length > 1 ? 's' : ''} ${note.columns.join(', ')} (discovered)`;
    case 'role':
      return note.source === 'preset' ? roleWords(note) : `${roleWords(note)} (discovered; ${note.source === 'only' ? 'set it with --role' : 'audit another with --role NAME'})`;
    case 'actors':
      return actorsText(note);
    case 'identity': {
      const where = `${note.relation}.${note.keyColumn} -> ${note.relation}.${note.valueColumn} (${plural(note.clauses, 'policy clause')}, helpers followed)`;
      return note.mode === 'tenant-row'
        ? `identity read through the tenant table: ${where}; each tenant's row holds the key its context carries`
        : `identity read through ${note.relation}: ${where}; the audit gives each actor a row of it (as the administrator, rolled back) and puts its ${note.keyColumn} in the context`;
    }
  }
}
