import { functionAnalysis } from '../analysis/index.js';
import { alterRole, fix, orInline, policyStatement, revoke, type FixStatement } from '../findings/fix.js';
import type { Analysis } from '../analysis/model.js';
import { inheritedRoles, memberships } from '../catalog/roles.js';
import type { Catalog, FunctionInfo, Grant, Policy, Relation, Role } from '../catalog/types.js';
import type { Finding } from '../findings/finding.js';
import { cause } from '../findings/cause.js';
import type { RelationPlan, TenancyPlan } from '../plan/tenancy.js';
import { PRESETS } from '../presets/index.js';
import { commentText, ident, literal, qualifiedIdent } from '../target/sql.js';
import type { RuleReport } from './types.js';

/**
 * Shared lookups for the privilege, integrity and performance rules. Every index is built once per catalog
 * (or plan) and cached, so a rule never scans all relations for each relation, policy or function it looks at.
 */


interface CatalogIndex {
  roles: Map<string, Role>;
  functionsByName: Map<string, FunctionInfo[]>;
  inherited: Map<string, Set<string>>;
  reachable: Map<string, Set<string>>;
}

const catalogIndexes = new WeakMap<Catalog, CatalogIndex>();

function catalogIndex(catalog: Catalog): CatalogIndex {
  let index = catalogIndexes.get(catalog);
  if (index) return index;
  const functionsByName = new Map<string, FunctionInfo[]>();
  for (const fn of catalog.functions) {
    for (const key of [fn.name.toLowerCase(), `${fn.schema}.${fn.name}`.toLowerCase()]) {
      const list = functionsByName.get(key);
      if (list) list.push(fn);
      else functionsByName.set(key, [fn]);
    }
  }
  index = {
    roles: new Map(catalog.roles.map((role) => [role.name, role])),
    functionsByName,
    inherited: new Map(),
    reachable: new Map(),
  };
  catalogIndexes.set(catalog, index);
  return index;
}

const planIndexes = new WeakMap<TenancyPlan, Map<string, RelationPlan>>();

export function relationPlanOf(plan: TenancyPlan, relation: string): RelationPlan | undefined {
  let index = planIndexes.get(plan);
  if (!index) {
    index = new Map(plan.relations.map((entry) => [entry.relation, entry]));
    planIndexes.set(plan, index);
  }
  return index.get(relation);
}

export function roleNamed(catalog: Catalog, name: string): Role | undefined {
  return catalogIndex(catalog).roles.get(name);
}

/** Functions with this (lower-case, optionally schema-qualified) name, every overload. */
export function functionsNamed(catalog: Catalog, name: string): FunctionInfo[] {
  return catalogIndex(catalog).functionsByName.get(name.toLowerCase()) ?? [];
}

/** Roles whose privileges the role uses without SET ROLE (itself and INHERIT memberships). Cached. */
export function inheritedBy(catalog: Catalog, role: string): Set<string> {
  const index = catalogIndex(catalog);
  let roles = index.inherited.get(role);
  if (!roles) {
    roles = inheritedRoles(catalog, role);
    index.inherited.set(role, roles);
  }
  return roles;
}

/** Roles the role is a member of, directly or not: their privileges are one SET ROLE away. Cached. */
export function reachableBy(catalog: Catalog, role: string): Set<string> {
  const index = catalogIndex(catalog);
  let roles = index.reachable.get(role);
  if (!roles) {
    roles = memberships(catalog, role);
    index.reachable.set(role, roles);
  }
  return roles;
}

/** True when a grant list (with the owner's implicit rights) lets the role, or a role it can become, use a privilege. */
export function roleHolds(catalog: Catalog, role: string, owner: string, grants: Grant[], privilege: string): boolean {
  const roles = reachableBy(catalog, role);
  if (roles.has(owner)) return true;
  return grants.some((grant) => grant.privilege === privilege && (grant.grantee === 'public' || roles.has(grant.grantee)));
}

export function canRead(catalog: Catalog, role: string, relation: Relation): boolean {
  return roleHolds(catalog, role, relation.owner, relation.grants, 'SELECT');
}

/** INSERT or UPDATE: what it takes to probe a unique key or to point a foreign key somewhere. */
export function canWrite(catalog: Catalog, role: string, relation: Relation): boolean {
  return ['INSERT', 'UPDATE'].some((privilege) => roleHolds(catalog, role, relation.owner, relation.grants, privilege));
}

export function canExecute(catalog: Catalog, role: string, fn: FunctionInfo): boolean {
  return roleHolds(catalog, role, fn.owner, fn.grants, 'EXECUTE');
}

/** Schemas in which the role, or a role it can SET ROLE to, may create objects (CREATE, or owning the schema). */
export function creatableSchemas(catalog: Catalog, role: string): string[] {
  const roles = reachableBy(catalog, role);
  return catalog.schemas
    .filter((schema) => roles.has(schema.owner) || schema.grants.some((grant) => grant.privilege === 'CREATE' && (grant.grantee === 'public' || roles.has(grant.grantee))))
    .map((schema) => schema.name);
}

/** True when the role may create temporary objects (pg_temp functions, temporary tables): TEMPORARY on the database, PUBLIC's by default. */
export function canCreateTemporary(catalog: Catalog, role: string): boolean {
  const roles = reachableBy(catalog, role);
  return roles.has(catalog.databaseOwner) || catalog.databaseGrants.some((grant) => grant.privilege === 'TEMPORARY' && (grant.grantee === 'public' || roles.has(grant.grantee)));
}

const STATIC_LANGUAGES = new Set(['sql', 'plpgsql', 'internal', 'c']);

/**
 * Application functions (not the platform's) the role may call that run SQL built at run time (EXECUTE of a
 * non-constant string, or a procedural language such as plpython that runs any string it is given): through
 * one, a role reached only through an API layer may run statements the API layer itself never sends.
 */
export function dynamicSqlFunctions(catalog: Catalog, analysis: Analysis, plan: TenancyPlan): FunctionInfo[] {
  const platform = new Set(plan.preset ? PRESETS[plan.preset].platformSchemas : []);
  return catalog.functions.filter((fn) => {
    if (platform.has(fn.schema) || fn.returnKind === 'trigger' || !canExecute(catalog, plan.role, fn)) return false;
    if (!STATIC_LANGUAGES.has(fn.language)) return true;
    return (functionAnalysis(analysis, fn.signature)?.dynamicSql.length ?? 0) > 0;
  });
}

/**
 * Why the application role cannot run TRUNCATE or DDL (CREATE TRIGGER, CREATE TABLE, ALTER TABLE) at all, or
 * null when it can: it is reached only through an API layer (a preset, or `api: true`) that sends none of
 * them, and no function it may call runs dynamic SQL.
 */
export function apiBarrier(catalog: Catalog, analysis: Analysis, plan: TenancyPlan): string | null {
  if (!plan.apiOnly) return null;
  if (dynamicSqlFunctions(catalog, analysis, plan).length) return null;
  const layer = plan.preset ? PRESETS[plan.preset].apiLayer : 'the API layer';
  return `${plan.role} is reached only through ${layer}, which sends no TRUNCATE and no DDL, and no function it may call runs dynamic SQL`;
}

/** The same barrier, said of one function that breaks it, for messages: why the API layer is no barrier here. */
export function apiBreach(catalog: Catalog, analysis: Analysis, plan: TenancyPlan): string | null {
  if (!plan.apiOnly) return null;
  const [fn] = dynamicSqlFunctions(catalog, analysis, plan);
  return fn ? `${plan.role} is reached through an API layer, but it may call ${fn.signature}, which runs SQL built at run time` : null;
}

/**
 * Tables whose foreign keys reference the relation, transitively (what TRUNCATE ... CASCADE also empties),
 * without the relation itself.
 */
export function referencingTables(catalog: Catalog, relation: Relation): Relation[] {
  const found = new Map<string, Relation>();
  const queue = [relation.qualified];
  while (queue.length) {
    const target = queue.shift()!;
    for (const candidate of catalog.relations) {
      if (candidate.qualified === relation.qualified || found.has(candidate.qualified)) continue;
      if (!candidate.foreignKeys.some((foreignKey) => foreignKey.references === target)) continue;
      found.set(candidate.qualified, candidate);
      queue.push(candidate.qualified);
    }
  }
  return [...found.values()];
}

/**
 * Whether TRUNCATE of a relation the role may truncate would run: directly (nothing references it), with
 * CASCADE (the role may truncate every referencing table too, which CASCADE empties as well), or not at all
 * (a referencing table the role may not truncate).
 */
export function truncateReach(catalog: Catalog, role: string, relation: Relation): { kind: 'direct' } | { kind: 'cascade'; tables: Relation[] } | { kind: 'blocked'; tables: Relation[]; blocking: Relation[] } {
  const tables = referencingTables(catalog, relation);
  if (!tables.length) return { kind: 'direct' };
  const blocking = tables.filter((table) => !roleHolds(catalog, role, table.owner, table.grants, 'TRUNCATE'));
  return blocking.length ? { kind: 'blocked', tables, blocking } : { kind: 'cascade', tables };
}

/**
 * Why a role reads every row of a table with row-level security regardless of its policies, or null when the
 * policies apply to it: a superuser or BYPASSRLS role, or the table's owner (or a role inheriting the owner's
 * rights) when RLS is not forced.
 */
export function rlsBypassReason(catalog: Catalog, role: string, relation: Relation): string | null {
  const info = roleNamed(catalog, role);
  if (info?.superuser) return `${role} is a superuser`;
  if (info?.bypassRls) return `${role} has BYPASSRLS`;
  if (!relation.rlsForced && inheritedBy(catalog, role).has(relation.owner)) {
    return relation.owner === role
      ? `${role} owns ${relation.qualified}, which does not force row-level security`
      : `${role} inherits the rights of ${relation.owner}, owner of ${relation.qualified}, which does not force row-level security`;
  }
  return null;
}

export function isBaseTable(relation: Relation): boolean {
  return relation.kind === 'table' || relation.kind === 'partitioned-table';
}

/** Tenant-owned base tables (the tenant table, tables with a tenant column or an FK path, partitions and children). */
export function tenantTables(catalog: Catalog, plan: TenancyPlan): { relation: Relation; relationPlan: RelationPlan }[] {
  const tables: { relation: Relation; relationPlan: RelationPlan }[] = [];
  for (const relation of catalog.relations) {
    if (!isBaseTable(relation)) continue;
    const relationPlan = relationPlanOf(plan, relation.qualified);
    if (relationPlan && relationPlan.tenancy !== 'shared') tables.push({ relation, relationPlan });
  }
  return tables;
}

/** `schema` and `name` literals for a qualified name, for catalog queries in evidence. */
function splitQualified(qualified: string): { schema: string; name: string } {
  const dot = qualified.indexOf('.');
  return dot < 0 ? { schema: 'public', name: qualified } : { schema: qualified.slice(0, dot), name: qualified.slice(dot + 1) };
}

export function regclassLiteral(qualified: string): string {
  return `${literal(qualifiedIdent(qualified))}::regclass`;
}

export function policyEvidenceSql(policy: Policy): string {
  const { schema, name } = splitQualified(policy.relation);
  return `select policyname, permissive, roles, cmd, qual, with_check from pg_policies where schemaname = ${literal(schema)} and tablename = ${literal(name)} and policyname = ${literal(policy.name)};`;
}

export function describePolicy(policy: Policy): string {
  const parts = [`policy ${policy.name} on ${policy.relation} (${policy.permissive ? 'permissive' : 'restrictive'}, for ${policy.command.toLowerCase()}, to ${policy.roles.join(', ')})`];
  if (policy.using !== null) parts.push(`using ${policy.using}`);
  if (policy.withCheck !== null) parts.push(`with check ${policy.withCheck}`);
  return parts.join('\n');
}

/** `alter policy ... using (...) with check (...)` with each present expression rewritten. */
export function alterPolicy(policy: Policy, rewrite: (expression: string) => string): FixStatement {
  const parts = [`alter policy ${ident(policy.name)} on ${qualifiedIdent(policy.relation)}`];
  if (policy.using !== null) parts.push(`  using (${rewrite(policy.using)})`);
  if (policy.withCheck !== null) parts.push(`  with check (${rewrite(policy.withCheck)})`);
  return policyStatement('alter-policy', { name: policy.name, table: policy.relation }, `${parts.join('\n')};`, qualifiedIdent(policy.relation));
}

/** The function's effective search_path from its proconfig, or null when it has none. */
export function fixedSearchPath(fn: FunctionInfo): string | null {
  const entry = fn.config.find((setting) => setting.toLowerCase().startsWith('search_path='));
  return entry === undefined ? null : entry.slice('search_path='.length);
}

/** The membership chain from a role to one it can SET ROLE to (`[from, ..., to]`), or null. */
export function membershipPath(catalog: Catalog, from: string, to: string): string[] | null {
  const previous = new Map<string, string | null>([[from, null]]);
  const queue = [from];
  while (queue.length) {
    const current = queue.shift()!;
    if (current === to) {
      const path: string[] = [];
      for (let step: string | null = to; step !== null; step = previous.get(step) ?? null) path.unshift(step);
      return path;
    }
    for (const parent of roleNamed(catalog, current)?.memberOf ?? []) {
      if (previous.has(parent)) continue;
      previous.set(parent, current);
      queue.push(parent);
    }
  }
  return null;
}

/** Roles that are, or that the application role can SET ROLE to, and carry a role attribute. Attributes are never inherited. */
export function elevatedRoleFindings(
  catalog: Catalog,
  plan: TenancyPlan,
  report: RuleReport,
  attribute: 'superuser' | 'bypassRls',
): Finding[] {
  const findings: Finding[] = [];
  const appRole = plan.role;
  const label = attribute === 'superuser' ? 'a superuser' : 'a role with BYPASSRLS';
  const option = attribute === 'superuser' ? 'nosuperuser' : 'nobypassrls';
  const reachable = [...reachableBy(catalog, appRole)].sort((a, b) => (a === appRole ? -1 : b === appRole ? 1 : a.localeCompare(b)));
  for (const name of reachable) {
    const role = roleNamed(catalog, name);
    if (!role || !role[attribute]) continue;
    // A superuser also bypasses RLS: superuser-role reports it, bypassrls-role does not repeat it.
    if (attribute === 'bypassRls' && role.superuser) continue;
    const sql = `select rolname, rolsuper, rolbypassrls, rolinherit, pg_has_role(${literal(appRole)}, oid, 'MEMBER') as app_role_can_set_role from pg_roles where rolname = ${literal(name)};`;
    if (name === appRole) {
      findings.push(
        report({
          severity: 'critical',
          object: appRole,
          message: `The application role ${appRole} is ${label}: no row-level security policy applies to it, on any table.`,
          sql,
          details: `pg_roles: ${appRole} rolsuper=${role.superuser} rolbypassrls=${role.bypassRls}`,
          fix: fix([alterRole(ident(appRole), option)]),
          cause: cause('role-bypasses-rls', { kind: 'role', name: appRole }),
        }),
      );
      continue;
    }
    const path = membershipPath(catalog, appRole, name) ?? [appRole, name];
    findings.push(
      report({
        severity: 'critical',
        object: name,
        message: `The application role ${appRole} can SET ROLE to ${name}, ${label} (membership ${path.join(' -> ')}): one statement and no policy applies to it, on any table.`,
        sql,
        details: `membership chain: ${path.join(' is a member of ')}; ${name}: rolsuper=${role.superuser} rolbypassrls=${role.bypassRls}`,
        fix: fix([revoke(ident(path[1]!), null, ident(appRole))], [orInline(`, if ${commentText(name)} does not need it:`, alterRole(ident(name), option))]),
      }),
    );
  }
  return findings;
}
