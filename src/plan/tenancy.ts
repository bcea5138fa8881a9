import type { Catalog, Column, Relation, RelationKind } from '../catalog/types.js';
import { AuditError } from '../errors.js';
import type { Scenario } from '../scenario/schema.js';
import { compileContextSql, type ContextParameter } from '../analysis/context-sql.js';
import { analyze, type Analysis } from '../analysis/index.js';
import type { RowFlag } from '../analysis/model.js';
import { claimsObject, PRESETS, type Preset } from '../presets/index.js';
import { planActors, profileTables, type ActorPlan, type IdentityLookup } from './actors.js';
import { foreignKeyOrder, type Dependency } from './order.js';
import { literal } from '../target/sql.js';
import { columnOf, findRelation, relationOf, requireColumn, requireRelation } from '../catalog/lookup.js';

export type Tenancy = 'tenant-table' | 'direct' | 'fk-path' | 'derived' | 'shared';

export interface PathHop {
  /** The relation holding the foreign key. */
  from: string;
  foreignKey: string;
  columns: string[];
  references: string;
  referencedColumns: string[];
}

export interface RelationPlan {
  relation: string;
  kind: RelationKind;
  tenancy: Tenancy;
  /** Column that holds the tenant id, when the relation has one. */
  tenantColumn: string | null;
  /** For fk-path relations: the foreign keys from this relation to a relation with a tenant column. */
  path: PathHop[] | null;
  /** Why this tenancy was decided, in a sentence. */
  reason: string;
  /**
   * Rows every tenant may read by design: a permissive SELECT policy admits a row when all flags of one entry
   * hold (`or is_public`). Probes count such rows as public, not as another tenant's; the seed gives them both values.
   */
  publicRows?: RowFlag[][];
}

export interface TenantKey {
  /** The tenant table, or null when tenants exist only as values of the tenant column. */
  relation: string | null;
  column: string;
  /** format_type of the key, e.g. integer, uuid. */
  type: string;
  /** Base type name, e.g. int4, uuid, text. */
  baseType: string;
}

export interface TenancyPlan {
  role: string;
  setting: string;
  /**
   * SQL that sets the context for the current transaction, with positional parameters: `$n` stands for
   * `contextParameters[n - 1]` (the tenant id, the user id, the role name), each bound as text.
   */
  contextSql: string;
  contextParameters: ContextParameter[];
  /**
   * One role per tenant and no context SQL given: the audit itself runs `set local role <the tenant's role>`
   * (contextSql then only shows it); the application's SQL is not involved.
   */
  roleSwitch: boolean;
  /**
   * Whose SQL contextSql is: the application's (given in the scenario), which runs only through userQuery, so
   * that every run proves it left the transaction alone; or the audit's own (a discovered setting, a preset's
   * claims, a role switch).
   */
  contextOrigin: 'application' | 'audit';
  /**
   * Other contexts the policies could mean (further settings they compare with row columns): tried on the
   * seeded data when this one proves nothing; empty when the context SQL was given.
   */
  contextAlternatives: { setting: string; contextSql: string; contextParameters: ContextParameter[] }[];
  /** Who probes run as, and how users and roles relate to tenants. */
  actors: ActorPlan;
  /** The role a request without any context runs as on the platform (Supabase anon), when not the role itself. */
  anonymousRole: string | null;
  preset: Preset['name'] | null;
  /**
   * The role is reached only through an API layer (a preset, or `api: true` in the scenario): it runs no
   * TRUNCATE and no DDL of its own, so privileges only those use are out of its reach (unless a function it
   * may call runs dynamic SQL).
   */
  apiOnly: boolean;
  /** With apiOnly: the schemas the API layer exposes (null: all); see plan/api-reach.ts. */
  apiSchemas: string[] | null;
  /** The JWT claim path (in `setting`) that carries the tenant, when a claim does, e.g. [app_metadata, tenant_id]. */
  tenantClaim: string[] | null;
  tenantKey: TenantKey;
  tenantColumns: string[];
  relations: RelationPlan[];
  /** Base tables to seed, parents before children. */
  seedOrder: string[];
  /** Foreign keys left unset while seeding, to break a reference cycle. */
  deferredReferences: Dependency[];
  /** How the plan was discovered: settings, columns, tables chosen and why. */
  notes: string[];
}

const TENANT_NAME = /(^|_)(tenant|org|organi[sz]ation|account|workspace|team|company|customer|client)(_?id)?$/i;
const TENANT_TABLE_NAME = /^(tenants?|organi[sz]ations?|orgs?|accounts?|workspaces?|companies|company|teams?|customers?|clients?)$/i;

export function isTenantOwned(plan: RelationPlan): boolean {
  return plan.tenancy !== 'shared';
}

function isBaseTable(relation: Relation): boolean {
  return relation.kind === 'table' || relation.kind === 'partitioned-table';
}

/**
 * What carries the tenant, read from the analysis model: the context source (setting, JWT claim, session
 * function, current_user) that the most relations compare by equality with a row column. A source seen only
 * as a flag (`current_setting('app.bypass_rls', true) = 'on'`) or a NULL test is never the tenant's.
 */
export interface ContextChoice {
  /** The setting the context travels in (`role` for a role per tenant). */
  setting: string;
  /** Stable key of the chosen source in the analysis (`setting:app.tenant`, `role:current_user`), or null when given or assumed. */
  key: string | null;
  /** The JWT claim path that carries the tenant, when a claim does. */
  claim: string[] | null;
  /** One role per tenant: the policies compare a row column with current_user. */
  roles: boolean;
  /** Other settings compared by equality with row columns: tried on seeded data when the chosen one proves nothing. */
  alternatives: string[];
}

/** Row columns (by relation) that a context source is compared with by equality; a membership sub-select counts as the row's column it matches. */
function equalityColumns(analysis: Analysis, key: string | null): Map<string, Set<string>> {
  const columns = new Map<string, Set<string>>();
  if (!key) return columns;
  for (const reference of analysis.contextReferences) {
    if (reference.key !== key || reference.use.kind !== 'equality') continue;
    const column = reference.use.membership ? reference.use.membership.rowColumn : reference.use.relation === reference.relation ? reference.use.column : null;
    if (!column) continue;
    columns.set(reference.relation, new Set([...(columns.get(reference.relation) ?? []), column]));
  }
  return columns;
}

/**
 * Tables the policies (and the helper functions they call) join with the user identity in a membership
 * sub-select (`team_id in (select team_id from team_members where user_id = auth.uid())`), with the column
 * compared with the identity, the column the row is matched against (when known), and how many policy clauses do so.
 */
export interface PolicyMembership {
  relation: string;
  userColumn: string;
  tenantColumn: string | null;
  uses: number;
}

export function policyMemberships(analysis: Analysis, key: string | null): PolicyMembership[] {
  if (!key) return [];
  const byTable = new Map<string, PolicyMembership & { clauses: Set<string> }>();
  for (const reference of analysis.contextReferences) {
    if (reference.key !== key || reference.use.kind !== 'equality' || !reference.use.membership) continue;
    const { membership, relation, column } = reference.use;
    if (relation !== membership.table || column === '(expression)') continue;
    const entry = byTable.get(membership.table) ?? { relation: membership.table, userColumn: column, tenantColumn: null, uses: 0, clauses: new Set<string>() };
    if (membership.column !== '(expression)') entry.tenantColumn ??= membership.column;
    entry.clauses.add(`${reference.relation}\0${reference.policy}\0${reference.clause}`);
    entry.uses = entry.clauses.size;
    byTable.set(membership.table, entry);
  }
  return [...byTable.values()].map(({ clauses: _clauses, ...entry }) => entry).sort((a, b) => b.uses - a.uses || a.relation.localeCompare(b.relation));
}

function chooseContext(analysis: Analysis, scenario: Scenario, preset: Preset | null, notes: string[]): ContextChoice {
  const equality = analysis.contextReferences.filter((reference) => reference.use.kind === 'equality');
  const relationsBy = new Map<string, Set<string>>();
  for (const reference of equality) {
    const relations = relationsBy.get(reference.key);
    if (relations) relations.add(reference.relation);
    else relationsBy.set(reference.key, new Set([reference.relation]));
  }
  const sourceOf = (key: string) => equality.find((reference) => reference.key === key)!.source;
  const ranked = [...relationsBy].sort((a, b) => b[1].size - a[1].size || a[0].localeCompare(b[0]));
  const escapes = [...new Set(analysis.contextReferences.filter((reference) => reference.use.kind === 'escape' && reference.source.kind === 'setting').map((reference) => (reference.source as { setting: string }).setting))];
  const settings = ranked.filter(([key]) => sourceOf(key).kind === 'setting').map(([key]) => key);
  const settingName = (key: string) => (sourceOf(key) as { setting: string }).setting;
  if (scenario.setting) {
    const key = `setting:${scenario.setting}`;
    return { setting: scenario.setting, key: relationsBy.has(key) ? key : null, claim: null, roles: false, alternatives: [] };
  }
  // A helper the analysis could not read as one expression (a PL/pgSQL body with an exception handler): the one
  // setting or per-claim setting its body reads is what it returns.
  const helperReads = (key: string): string | null => {
    const source = sourceOf(key);
    if (source.kind !== 'function') return null;
    const name = source.function.includes('.') ? source.function : null;
    const bodies = analysis.functions.filter((body) => {
      const signature = body.name.slice(0, body.name.indexOf('('));
      return name ? signature === name : signature.split('.').pop() === source.function;
    });
    const settings = [...new Set(bodies.flatMap((body) => body.settings))];
    return bodies.length === 1 && settings.length === 1 ? settings[0]! : null;
  };
  const followed = ranked.map(([key]) => ({ key, setting: helperReads(key) })).find((entry) => entry.setting !== null);
  if (preset) {
    // A claim other than the user's own id carries the tenant (app_metadata.tenant_id, org_id); the user id alone otherwise.
    const claim = ranked.map(([key]) => sourceOf(key)).find((source) => source.kind === 'jwt-claim' && !(source.path.length === 1 && source.path[0] === 'sub'));
    const perClaim = followed?.setting?.startsWith('request.jwt.claim.') ? followed.setting.slice('request.jwt.claim.'.length) : null;
    const helperClaim = !claim && perClaim && perClaim !== 'sub' ? [perClaim] : null;
    const path = scenario.tenantClaim ?? (claim?.kind === 'jwt-claim' ? claim.path : helperClaim ?? (preset.name === 'supabase' ? ['app_metadata', 'tenant_id'] : ['tenant_id']));
    notes.push(
      `context: ${preset.name} JWT claims in ${preset.setting} (--preset ${preset.name}); the tenant travels in the claim ${path.join('.')}` +
        `${claim ? ' (discovered: compared with a row column)' : helperClaim && !scenario.tenantClaim ? ` (discovered: read by ${(sourceOf(followed!.key) as { function: string }).function}(), which the policies compare with a row column)` : ' (assumed)'}`,
    );
    if (helperClaim && !scenario.tenantClaim) return { setting: preset.setting, key: followed!.key, claim: path, roles: false, alternatives: [] };
    const key = claim ? ranked.find(([candidate]) => sourceOf(candidate) === claim)![0] : (ranked.find(([candidate]) => ['function', 'jwt-claim'].includes(sourceOf(candidate).kind))?.[0] ?? null);
    return { setting: preset.setting, key, claim: path, roles: false, alternatives: [] };
  }
  // A session helper of the catalog whose body cannot be followed to one setting gives way to a setting the policies compare directly.
  const opaque = (key: string) => sourceOf(key).kind === 'function' && analysis.functions.some((body) => body.name.startsWith(`${(sourceOf(key) as { function: string }).function}(`)) && helperReads(key) === null;
  const [top] = ranked[0] && opaque(ranked[0][0]) ? [ranked.find(([key]) => sourceOf(key).kind === 'setting') ?? ranked[0]] : ranked;
  if (!top) {
    notes.push(`no policy compares a setting with a row column; assuming the tenant setting is app.current_tenant (set it with --setting)${escapes.length ? `; ${escapes.join(', ')} only open rows as a flag and are never the tenant setting` : ''}`);
    return { setting: 'app.current_tenant', key: null, claim: null, roles: false, alternatives: [] };
  }
  const source = sourceOf(top[0]);
  const escapeNote = escapes.length ? `; ${escapes.join(', ')} only open rows as a flag (an escape hatch), never the tenant setting` : '';
  if (source.kind === 'role') {
    notes.push(`tenant = ${source.keyword}: ${top[1].size} relation(s) compare a row column with it (discovered): one database role per tenant${escapeNote}`);
    return { setting: 'role', key: top[0], claim: null, roles: true, alternatives: [] };
  }
  if (source.kind === 'jwt-claim' && source.setting) {
    notes.push(`tenant = JWT claim ${source.path.join('.')} in ${source.setting}: compared with a row column by ${top[1].size} relation(s) (discovered)${escapeNote}`);
    return { setting: source.setting, key: top[0], claim: source.path, roles: false, alternatives: [] };
  }
  if (source.kind === 'function' && followed?.key === top[0] && !followed.setting!.startsWith('request.jwt.claim')) {
    notes.push(`tenant setting ${followed.setting}: read by ${source.function}(), which ${top[1].size} relation(s) compare with a row column (discovered)${escapeNote}`);
    return { setting: followed.setting!, key: top[0], claim: null, roles: false, alternatives: [] };
  }
  if (source.kind !== 'setting') {
    throw new AuditError(
      `the policies compare rows with ${source.kind === 'function' ? `${source.function}()` : `a JWT claim read by ${source.function}()`}: give the platform with --preset supabase / --preset postgrest, or the SQL the application runs with --context-sql`,
    );
  }
  const setting = source.setting;
  const alternatives = settings.filter((key) => key !== top[0]).map(settingName);
  notes.push(
    `tenant setting ${setting}: compared with a row column by ${top[1].size} relation(s) (discovered)${alternatives.length ? `; also compared: ${alternatives.join(', ')} (tried on seeded data if ${setting} proves nothing)` : ''}${escapeNote}`,
  );
  return { setting, key: top[0], claim: null, roles: false, alternatives };
}

/**
 * The table the policies read the identity through (`tenant_id = (select id from tenants where db_user =
 * current_user)`, `author_id = (select user_id from sessions where id = <claim>)`, helpers followed): the one
 * most policy clauses use, when its value column is the tenant key (the tenant table itself) or references it.
 */
export function identityLookup(catalog: Catalog, analysis: Analysis, key: string | null, tenantKey: TenantKey, notes: string[]): IdentityLookup | null {
  if (!key) return null;
  const byLookup = new Map<string, { table: string; keyColumn: string; valueColumn: string; clauses: Set<string> }>();
  for (const reference of analysis.contextReferences) {
    if (reference.key !== key || reference.use.kind !== 'equality' || !reference.use.through) continue;
    const { through } = reference.use;
    const id = `${through.table}\0${through.keyColumn}\0${through.valueColumn}`;
    const entry = byLookup.get(id) ?? { ...through, clauses: new Set<string>() };
    entry.clauses.add(`${reference.relation}\0${reference.policy}\0${reference.clause}`);
    byLookup.set(id, entry);
  }
  const ranked = [...byLookup.values()].sort((a, b) => b.clauses.size - a.clauses.size || a.table.localeCompare(b.table));
  for (const entry of ranked) {
    const relation = findRelation(catalog, entry.table);
    if (!relation || entry.keyColumn === entry.valueColumn) continue;
    const where = `${entry.table}.${entry.keyColumn} -> ${entry.table}.${entry.valueColumn} (${entry.clauses.size} polic${entry.clauses.size === 1 ? 'y clause' : 'y clauses'}, helpers followed)`;
    if (relation.qualified === tenantKey.relation) {
      if (entry.valueColumn !== tenantKey.column) continue;
      notes.push(`identity read through the tenant table: ${where}; each tenant's row holds the key its context carries`);
      return { relation: relation.qualified, keyColumn: entry.keyColumn, valueColumn: entry.valueColumn, mode: 'tenant-row', uses: entry.clauses.size };
    }
    const toTenant = relation.foreignKeys.some(
      (foreignKey) => foreignKey.references === tenantKey.relation && foreignKey.columns.length === 1 && foreignKey.columns[0] === entry.valueColumn && foreignKey.referencedColumns[0] === tenantKey.column,
    );
    if (!toTenant) continue;
    notes.push(`identity read through ${relation.qualified}: ${where}; the audit gives each actor a row of it (as the administrator, rolled back) and puts its ${entry.keyColumn} in the context`);
    return { relation: relation.qualified, keyColumn: entry.keyColumn, valueColumn: entry.valueColumn, mode: 'own-row', uses: entry.clauses.size };
  }
  return null;
}

/** Columns a policy compares with the tenant's context source, e.g. `tenant_id` in `tenant_id = current_setting(...)::int`. */
function policyTenantColumns(policyColumns: Map<string, Set<string>>, relation: Relation): string[] {
  return [...(policyColumns.get(relation.qualified) ?? [])];
}

function chooseTenantTable(
  catalog: Catalog,
  policyColumnsOf: Map<string, Set<string>>,
  scenario: Scenario,
  preset: Preset | null,
  memberships: PolicyMembership[],
  notes: string[],
): Relation | null {
  if (scenario.tenantTable) {
    const relation = findRelation(catalog, scenario.tenantTable);
    if (!relation) throw new AuditError(`tenant table ${scenario.tenantTable} does not exist in the audited schemas: check tenantTable / the schema files`);
    return relation;
  }
  // Users belong to tenants through the table the policies join with the user identity: the tenant table is the
  // one it links users to, whatever other tables have foreign keys to both (profiles.active_team_id, documents.owner_id).
  const users = preset?.usersTable ? findRelation(catalog, preset.usersTable) : undefined;
  if (users && !scenario.actor?.membershipTable) {
    // The platform's users, or the application's users table over them (public.users.id references auth.users).
    const userTables = new Set([users.qualified, ...profileTables(catalog, users.qualified).map((profile) => profile.relation)]);
    for (const membership of memberships) {
      const relation = findRelation(catalog, membership.relation);
      if (!relation || userTables.has(relation.qualified)) continue;
      if (!relation.foreignKeys.some((foreignKey) => userTables.has(foreignKey.references) && foreignKey.columns.length === 1 && foreignKey.columns[0] === membership.userColumn)) continue;
      const link = relation.foreignKeys.find(
        (foreignKey) => !userTables.has(foreignKey.references) && foreignKey.references !== relation.qualified && foreignKey.columns.length === 1 && (membership.tenantColumn === null || foreignKey.columns[0] === membership.tenantColumn),
      );
      const tenantTable = link ? findRelation(catalog, link.references) : undefined;
      if (!tenantTable) continue;
      notes.push(`tenant table ${tenantTable.qualified}: the policies join ${relation.qualified} with the user identity (${membership.uses} polic${membership.uses === 1 ? 'y clause' : 'y clauses'}), and ${relation.qualified}.${link!.columns[0]} references it (discovered)`);
      return tenantTable;
    }
  }
  const tables = catalog.relations.filter(isBaseTable);
  // Count single-column foreign keys into each table from columns that look like, or are declared as, tenant columns.
  const votes = new Map<string, number>();
  for (const relation of tables) {
    const policyColumns = policyTenantColumns(policyColumnsOf, relation);
    for (const foreignKey of relation.foreignKeys) {
      const tenantish = foreignKey.columns.some(
        (column) => scenario.tenantColumn.includes(column) || (scenario.tenantColumn.length === 0 && (TENANT_NAME.test(column) || policyColumns.includes(column))),
      );
      if (!tenantish || foreignKey.references === relation.qualified) continue;
      votes.set(foreignKey.references, (votes.get(foreignKey.references) ?? 0) + 1);
    }
  }
  const ranked = [...votes].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
  if (ranked.length) {
    notes.push(`tenant table ${ranked[0]![0]}: referenced by the tenant column of ${ranked[0]![1]} table(s) (discovered)`);
    return findRelation(catalog, ranked[0]![0]) ?? null;
  }
  if (users && tables.some((relation) => relation.foreignKeys.some((foreignKey) => foreignKey.references === users.qualified))) {
    notes.push(`tenant table ${users.qualified}: no table points at another tenant table, and tables reference the ${preset!.name} users: each user is a tenant (set tenantTable to override)`);
    return users;
  }
  const named = tables.find((relation) => TENANT_TABLE_NAME.test(relation.name));
  if (named) {
    notes.push(`tenant table ${named.qualified}: chosen by its name; no foreign key points at it (set tenantTable to override)`);
    return named;
  }
  return null;
}

/**
 * The tenant key: the column the tenant columns reference (which need not be the primary key, e.g.
 * `tenants.tenant_id uuid` beside `id bigint`), else the single-column primary or unique key.
 */
function keyColumnOf(catalog: Catalog, relation: Relation, scenario: Scenario, notes: string[]): Column {
  if (scenario.tenantKey) {
    const given = columnOf(relation, scenario.tenantKey);
    if (!given) throw new AuditError(`tenant key ${scenario.tenantKey} is not a column of ${relation.qualified}: check --tenant-key`);
    return given;
  }
  const referenced = new Map<string, number>();
  for (const other of catalog.relations) {
    if (other.qualified === relation.qualified) continue;
    for (const foreignKey of other.foreignKeys) {
      if (foreignKey.references === relation.qualified && foreignKey.referencedColumns.length === 1) referenced.set(foreignKey.referencedColumns[0]!, (referenced.get(foreignKey.referencedColumns[0]!) ?? 0) + 1);
    }
  }
  const [top] = [...referenced].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
  if (top && !(relation.primaryKey?.length === 1 && relation.primaryKey[0] === top[0])) {
    notes.push(`tenant key ${relation.qualified}.${top[0]}: the column ${top[1]} foreign key(s) reference, not the primary key (set it with --tenant-key)`);
    return requireColumn(relation, top[0]);
  }
  const key = relation.primaryKey?.length === 1 ? relation.primaryKey[0] : relation.constraints.find((constraint) => constraint.kind === 'unique' && constraint.columns.length === 1)?.columns[0];
  const column = key === undefined ? undefined : columnOf(relation, key);
  if (!column) throw new AuditError(`tenant table ${relation.qualified} has no single-column primary key or unique key to identify a tenant: give the key with --tenant-key`);
  return column;
}

function discoverTenantColumns(catalog: Catalog, policyColumns: Map<string, Set<string>>, scenario: Scenario, tenantTable: Relation | null, notes: string[]): string[] {
  if (scenario.tenantColumn.length) return scenario.tenantColumn;
  const names = new Map<string, number>();
  const vote = (name: string) => names.set(name, (names.get(name) ?? 0) + 1);
  for (const relation of catalog.relations.filter(isBaseTable)) {
    if (relation.qualified === tenantTable?.qualified) continue;
    for (const foreignKey of relation.foreignKeys) {
      if (tenantTable && foreignKey.references === tenantTable.qualified && foreignKey.columns.length === 1) vote(foreignKey.columns[0]!);
    }
    for (const column of policyTenantColumns(policyColumns, relation)) {
      if (TENANT_NAME.test(column) || names.has(column)) vote(column);
    }
  }
  if (!names.size) {
    for (const relation of catalog.relations.filter(isBaseTable)) {
      for (const column of relation.columns) if (TENANT_NAME.test(column.name)) vote(column.name);
    }
  }
  const columns = [...names].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0])).map(([name]) => name);
  if (columns.length) notes.push(`tenant column${columns.length > 1 ? 's' : ''} ${columns.join(', ')} (discovered)`);
  return columns;
}

/**
 * The tenant id is bound as text: `$1` without a cast becomes `$1::text`, so that SQL such as
 * `json_build_object('tenant_id', $1)` has a parameter type PostgreSQL can determine.
 */
export function typedParameter(sql: string): string {
  return compileContextSql(sql).sql;
}

/** The context SQL the application most likely runs, for a setting, a JWT claim, a role per tenant or a preset. */
export function defaultContextSql(choice: Pick<ContextChoice, 'setting' | 'claim'>, preset: Preset | null): string {
  if (preset) return preset.contextSql(choice.claim ?? ['tenant_id']);
  if (choice.claim) return `select set_config(${literal(choice.setting)}, ${claimsObject(choice.claim)}::text, true)`;
  return `select set_config(${literal(choice.setting)}, $tenant, true)`;
}

const DATA_PRIVILEGES = ['SELECT', 'INSERT', 'UPDATE', 'DELETE'];

/**
 * The application role when none is given, found as a reviewer would: a role granted privileges on tenant
 * data that owns no relation and is not a superuser. Of several, the one granted the most of SELECT, INSERT,
 * UPDATE and DELETE on tenant-owned relations (a role without BYPASSRLS first), and the note names the others.
 * None: the run stops and says why (a run as a role that reaches nothing would prove nothing).
 */
function discoverRole(catalog: Catalog, relations: RelationPlan[], notes: string[]): string {
  const owners = new Set(catalog.relations.map((relation) => relation.owner));
  const roles = new Map(catalog.roles.map((role) => [role.name, role]));
  const tenantData = relations.filter((entry) => entry.tenancy !== 'shared').map((entry) => requireRelation(catalog, entry.relation));
  /** Per candidate: the relations it is granted anything on, and its SELECT/INSERT/UPDATE/DELETE grants there. */
  const candidates = new Map<string, { relations: Set<string>; data: Map<string, Set<string>> }>();
  const publicGrants = new Set<string>();
  for (const relation of tenantData) {
    for (const grant of relation.grants) {
      if (grant.grantee === 'public') {
        publicGrants.add(relation.qualified);
        continue;
      }
      if (owners.has(grant.grantee) || roles.get(grant.grantee)?.superuser) continue;
      const candidate = candidates.get(grant.grantee) ?? { relations: new Set<string>(), data: new Map<string, Set<string>>() };
      candidate.relations.add(relation.qualified);
      if (DATA_PRIVILEGES.includes(grant.privilege)) {
        const privileges = candidate.data.get(grant.privilege) ?? new Set<string>();
        privileges.add(relation.qualified);
        candidate.data.set(grant.privilege, privileges);
      }
      candidates.set(grant.grantee, candidate);
    }
  }
  if (!candidates.size) {
    const owner = [...new Set(tenantData.map((relation) => relation.owner))].sort();
    const reached = publicGrants.size ? ` (PUBLIC is granted access to ${[...publicGrants].sort().join(', ')}, which every role reaches)` : '';
    throw new AuditError(
      `no application role found: no role other than the owner of the tables (${owner.join(', ') || 'none'}) or a superuser is granted access to tenant data${reached}. ` +
        `If the application connects as ${owner.length === 1 ? owner[0] : 'an owner'}, row-level security does not apply to it unless the tables FORCE ROW LEVEL SECURITY (rls-audit lint reports it as owner-without-force). ` +
        "Create the role the application connects as and grant it what it uses (in a migration), or give it with --role NAME",
    );
  }
  const grantCount = (name: string) => [...candidates.get(name)!.data.values()].reduce((sum, set) => sum + set.size, 0);
  const ranked = [...candidates.keys()].sort(
    (a, b) =>
      Number(roles.get(a)?.bypassRls ?? false) - Number(roles.get(b)?.bypassRls ?? false) ||
      grantCount(b) - grantCount(a) ||
      candidates.get(b)!.relations.size - candidates.get(a)!.relations.size ||
      a.localeCompare(b),
  );
  const describe = (name: string) => {
    const { data, relations: granted } = candidates.get(name)!;
    const privileges = DATA_PRIVILEGES.filter((privilege) => data.has(privilege));
    const sizes = new Set(privileges.map((privilege) => data.get(privilege)!.size));
    const what = !privileges.length
      ? `no SELECT, INSERT, UPDATE or DELETE (other privileges on ${granted.size})`
      : sizes.size === 1
        ? `${privileges.join(', ')} on ${[...sizes][0]}`
        : privileges.map((privilege) => `${privilege} on ${data.get(privilege)!.size}`).join(', ');
    return `${what} of ${tenantData.length} tenant-owned relation(s)${roles.get(name)?.bypassRls ? ', BYPASSRLS' : ''}`;
  };
  const [role, ...others] = ranked;
  if (!others.length) {
    notes.push(`application role ${role}: the only role granted access to tenant data (${describe(role!)}; owners and superusers aside) (discovered; set it with --role)`);
  } else {
    const why = roles.get(role!)?.bypassRls === roles.get(others[0]!)?.bypassRls ? 'granted the most on tenant data' : 'the one without BYPASSRLS';
    notes.push(
      `application role ${role}: ${why} of the ${ranked.length} roles granted access to it, ${describe(role!)}; not audited: ${others.map((name) => `${name} (${describe(name)})`).join(', ')} (discovered; audit another with --role NAME)`,
    );
  }
  return role!;
}

/** Per relation, the visibility flags under which a permissive SELECT policy admits any tenant's row (`or is_public`). */
function publicRowsOf(analysis: Analysis): Map<string, RowFlag[][]> {
  const byRelation = new Map<string, RowFlag[][]>();
  for (const entry of analysis.policies) {
    const { policy } = entry;
    if (!policy.permissive || (policy.command !== 'SELECT' && policy.command !== 'ALL')) continue;
    for (const branch of entry.using?.branches ?? []) {
      if (!branch.publicFlags) continue;
      const known = byRelation.get(policy.relation) ?? [];
      const key = JSON.stringify(branch.publicFlags);
      if (!known.some((flags) => JSON.stringify(flags) === key)) known.push(branch.publicFlags);
      byRelation.set(policy.relation, known);
    }
  }
  return byRelation;
}

/** Decide, for every relation, whether and how it belongs to a tenant, and the order to seed it in. */
export function planTenancy(catalog: Catalog, scenario: Scenario, analysis: Analysis = analyze(catalog, scenario.role ?? null)): TenancyPlan {
  const notes: string[] = [];
  const preset = scenario.preset ? PRESETS[scenario.preset] : null;
  const choice = chooseContext(analysis, scenario, preset, notes);
  const setting = choice.setting;
  // Computed once: planning asks for the columns of every relation.
  const policyColumns = equalityColumns(analysis, choice.key);
  const memberships = policyMemberships(analysis, choice.key);
  const tenantTable = chooseTenantTable(catalog, policyColumns, scenario, preset, memberships, notes);
  const tenantColumns = discoverTenantColumns(catalog, policyColumns, scenario, tenantTable, notes);

  let tenantKey: TenantKey;
  if (tenantTable) {
    const key = keyColumnOf(catalog, tenantTable, scenario, notes);
    tenantKey = { relation: tenantTable.qualified, column: key.name, type: key.type, baseType: key.baseType };
  } else {
    const sample = catalog.relations.flatMap((relation) => relation.columns).find((column) => tenantColumns.includes(column.name));
    if (!sample) {
      throw new AuditError(
        'no tenant-owned table found: no table has a tenant column or a foreign key to a tenant table. Give the tenant column with --tenant-column NAME (and tenantTable in the scenario).',
      );
    }
    tenantKey = { relation: null, column: sample.name, type: sample.type, baseType: sample.baseType };
    notes.push(`no tenant table; tenant ids are values of ${sample.name} (${sample.type})`);
  }

  const plans = new Map<string, RelationPlan>();
  for (const relation of catalog.relations) {
    if (relation.qualified === tenantKey.relation) {
      plans.set(relation.qualified, {
        relation: relation.qualified, kind: relation.kind, tenancy: 'tenant-table', tenantColumn: tenantKey.column, path: null,
        reason: `the tenant table: each row is a tenant, identified by ${tenantKey.column}`,
      });
      continue;
    }
    // The column with a foreign key to the tenant table first; a relation's own single-column primary key
    // is its tenant column only through such a foreign key (profiles.id -> auth.users, not countries.id).
    const viaForeignKey = relation.foreignKeys.find((foreignKey) => foreignKey.references === tenantKey.relation && foreignKey.columns.length === 1 && tenantColumns.includes(foreignKey.columns[0]!))?.columns[0];
    const ownKey = relation.primaryKey?.length === 1 ? relation.primaryKey[0] : null;
    const column = viaForeignKey ?? tenantColumns.find((name) => name !== ownKey && relation.columns.some((candidate) => candidate.name === name));
    if (column) {
      plans.set(relation.qualified, {
        relation: relation.qualified, kind: relation.kind, tenancy: 'direct', tenantColumn: column, path: null,
        reason: `has the tenant column ${column}`,
      });
    }
  }
  // Foreign-key paths: breadth-first from relations whose tenant is known.
  let changed = true;
  while (changed) {
    changed = false;
    for (const relation of catalog.relations) {
      if (plans.has(relation.qualified) || !isBaseTable(relation) && relation.kind !== 'foreign-table') continue;
      for (const foreignKey of relation.foreignKeys) {
        const parent = plans.get(foreignKey.references);
        if (!parent || parent.tenancy === 'shared' || foreignKey.references === relation.qualified) continue;
        const hop: PathHop = {
          from: relation.qualified, foreignKey: foreignKey.name, columns: foreignKey.columns,
          references: foreignKey.references, referencedColumns: foreignKey.referencedColumns,
        };
        plans.set(relation.qualified, {
          relation: relation.qualified, kind: relation.kind, tenancy: 'fk-path', tenantColumn: null,
          path: [hop, ...(parent.path ?? [])],
          reason: `no tenant column; its tenant is reached through ${[hop, ...(parent.path ?? [])].map((step) => `${step.from}(${step.columns.join(', ')}) -> ${step.references}`).join(', ')}`,
        });
        changed = true;
        break;
      }
    }
  }
  // Partitions and inheritance children follow their parent; views follow what they read.
  changed = true;
  while (changed) {
    changed = false;
    for (const relation of catalog.relations) {
      if (plans.has(relation.qualified)) continue;
      const parents = [relation.partitionOf, ...relation.inheritsFrom].filter((name): name is string => Boolean(name));
      const sources = relation.kind === 'view' || relation.kind === 'materialized-view' ? relation.dependsOn : parents;
      const tenantSource = sources.find((source) => plans.get(source) && plans.get(source)!.tenancy !== 'shared');
      if (tenantSource) {
        plans.set(relation.qualified, {
          relation: relation.qualified, kind: relation.kind, tenancy: 'derived', tenantColumn: null, path: null,
          reason: `reads tenant data from ${tenantSource}; rows are attributed through seeded keys and canaries`,
        });
        changed = true;
      }
    }
  }
  const published = publicRowsOf(analysis);
  const relations = catalog.relations.map((relation): RelationPlan => {
    const plan = plans.get(relation.qualified) ?? {
      relation: relation.qualified, kind: relation.kind, tenancy: 'shared' as const, tenantColumn: null, path: null,
      reason: 'no tenant column and no foreign-key path to tenant data: shared by all tenants',
    };
    const flags = published.get(relation.qualified);
    return flags && plan.tenancy !== 'shared' ? { ...plan, publicRows: flags } : plan;
  });
  if (!relations.some((plan) => plan.tenancy === 'direct' || plan.tenancy === 'fk-path')) {
    throw new AuditError(
      'no tenant-owned table found: no table has a tenant column or a foreign-key path to the tenant table. Give the tenant column with --tenant-column NAME.',
    );
  }

  // Seed the tenant table, tenant-owned base tables, and the shared tables they reference.
  const seedable = (relation: Relation) => relation.kind === 'table' || relation.kind === 'partitioned-table';
  const needed = new Set<string>();
  const addWithParents = (name: string) => {
    if (needed.has(name)) return;
    const relation = relationOf(catalog, name);
    if (!relation || !seedable(relation)) return;
    // Partitions are seeded through their partitioned parent.
    if (relation.partitionOf) return addWithParents(relation.partitionOf);
    needed.add(name);
    for (const foreignKey of relation.foreignKeys) addWithParents(foreignKey.references);
  };
  for (const plan of relations) if (plan.tenancy !== 'shared' && plan.tenancy !== 'derived') addWithParents(plan.relation);
  for (const plan of relations) {
    const relation = requireRelation(catalog, plan.relation);
    if (plan.tenancy === 'derived' && relation.inheritsFrom.length && seedable(relation)) addWithParents(plan.relation);
  }
  const dependencies: Dependency[] = [];
  for (const name of needed) {
    const relation = requireRelation(catalog, name);
    for (const foreignKey of relation.foreignKeys) {
      const optional = foreignKey.columns.every((column) => !columnOf(relation, column)?.notNull);
      dependencies.push({ from: name, to: foreignKey.references, optional });
    }
  }
  const { order, deferred } = foreignKeyOrder([...needed], dependencies);
  const presetRole = scenario.role ? null : preset?.role(catalog, scenario);
  if (presetRole) notes.push(`application role ${presetRole} (--preset ${preset!.name}; set it with --role)`);
  const role = scenario.role ?? presetRole ?? discoverRole(catalog, relations, notes);
  if (!catalog.roles.some((candidate) => candidate.name === role)) {
    throw new AuditError(`role ${role} does not exist in the database: create it in the schema, or give the application's role with --role`);
  }
  const actorScenario = { ...(choice.roles && !scenario.contextSql ? { kind: 'role' as const } : {}), ...(scenario.actor ?? {}) };
  const roleSwitch = !scenario.contextSql && actorScenario.kind === 'role';
  const context = roleSwitch ? { sql: 'set local role <the tenant\'s role>', parameters: ['role' as const] } : compileContextSql(scenario.contextSql ?? defaultContextSql(choice, preset));
  const actors = planActors(
    catalog,
    { actor: actorScenario, parameters: context.parameters, tenantTable: tenantKey.relation, usersTable: preset?.usersTable ?? scenario.actor?.usersTable ?? null, policyMemberships: memberships },
    notes,
  );
  // A context SQL of the application's own sets what it sets: the audit maps nothing for it.
  const lookup = scenario.contextSql || actors.kind === 'user' ? null : identityLookup(catalog, analysis, choice.key, tenantKey, notes);
  if (lookup) actors.lookup = lookup;
  const anonymousRole = preset?.anonymousRole(catalog, scenario) ?? null;
  return {
    role,
    setting,
    contextSql: context.sql,
    contextParameters: context.parameters,
    roleSwitch,
    contextOrigin: scenario.contextSql ? 'application' : 'audit',
    contextAlternatives: scenario.contextSql
      ? []
      : choice.alternatives.map((alternative) => {
          const compiled = compileContextSql(defaultContextSql({ setting: alternative, claim: null }, null));
          return { setting: alternative, contextSql: compiled.sql, contextParameters: compiled.parameters };
        }),
    actors,
    anonymousRole: anonymousRole === role ? null : anonymousRole,
    preset: preset?.name ?? null,
    apiOnly: scenario.api ?? preset !== null,
    apiSchemas: (scenario.api ?? preset !== null) ? (scenario.apiSchemas ?? null) : null,
    tenantClaim: choice.claim,
    tenantKey,
    tenantColumns,
    relations,
    seedOrder: order,
    deferredReferences: deferred,
    notes,
  };
}
