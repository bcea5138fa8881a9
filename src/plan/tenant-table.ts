/** Planning the tenant itself: the tenant table, its key, and the columns that carry the tenant in other tables. */
import type { Catalog, Column, Relation } from '../catalog/types.js';
import { AuditError } from '../errors.js';
import type { Scenario } from '../scenario/schema.js';
import type { Preset } from '../presets/index.js';
import { profileTables } from './actors.js';
import { columnOf, findRelation, requireColumn, singleKeyColumn } from '../catalog/lookup.js';
import type { PolicyMembership } from './context-choice.js';
import type { PlanNote } from './notes.js';

const TENANT_NAME = /(^|_)(tenant|org|organi[sz]ation|account|workspace|team|company|customer|client)(_?id)?$/i;
const TENANT_TABLE_NAME = /^(tenants?|organi[sz]ations?|orgs?|accounts?|workspaces?|companies|company|teams?|customers?|clients?)$/i;
export function isBaseTable(relation: Relation): boolean {
  return relation.kind === 'table' || relation.kind === 'partitioned-table';
}
/** Columns a policy compares with the tenant's context source, e.g. `tenant_id` in `tenant_id = current_setting(...)::int`. */
function policyTenantColumns(policyColumns: Map<string, Set<string>>, relation: Relation): string[] {
  return [...(policyColumns.get(relation.qualified) ?? [])];
}

export function chooseTenantTable(
  catalog: Catalog,
  policyColumnsOf: Map<string, Set<string>>,
  scenario: Scenario,
  preset: Preset | null,
  memberships: PolicyMembership[],
  notes: PlanNote[],
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
      notes.push({ kind: 'tenant-table', relation: tenantTable.qualified, evidence: { by: 'membership', membership: relation.qualified, column: link!.columns[0]!, uses: membership.uses } });
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
    notes.push({ kind: 'tenant-table', relation: ranked[0]![0], evidence: { by: 'references', tables: ranked[0]![1] } });
    return findRelation(catalog, ranked[0]![0]) ?? null;
  }
  if (users && tables.some((relation) => relation.foreignKeys.some((foreignKey) => foreignKey.references === users.qualified))) {
    notes.push({ kind: 'tenant-table', relation: users.qualified, evidence: { by: 'preset-users', preset: preset!.name } });
    return users;
  }
  const named = tables.find((relation) => TENANT_TABLE_NAME.test(relation.name));
  if (named) {
    notes.push({ kind: 'tenant-table', relation: named.qualified, evidence: { by: 'name' } });
    return named;
  }
  return null;
}

/**
 * The tenant key: the column the tenant columns reference (which need not be the primary key, e.g.
 * `tenants.tenant_id uuid` beside `id bigint`), else the single-column primary or unique key.
 */
export function keyColumnOf(catalog: Catalog, relation: Relation, scenario: Scenario, notes: PlanNote[]): Column {
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
    notes.push({ kind: 'tenant-key', relation: relation.qualified, column: top[0], references: top[1] });
    return requireColumn(relation, top[0]);
  }
  const column = singleKeyColumn(relation);
  if (!column) throw new AuditError(`tenant table ${relation.qualified} has no single-column primary key or unique key to identify a tenant: give the key with --tenant-key`);
  return column;
}

export function discoverTenantColumns(catalog: Catalog, policyColumns: Map<string, Set<string>>, scenario: Scenario, tenantTable: Relation | null, notes: PlanNote[]): string[] {
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
  if (columns.length) notes.push({ kind: 'tenant-columns', columns });
  return columns;
}
