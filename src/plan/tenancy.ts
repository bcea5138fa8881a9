import { analyze } from '../analysis/index.js';
import type { Analysis, ContextReference } from '../analysis/model.js';
import type { Catalog, Column, Relation, RelationKind } from '../catalog/types.js';
import { findRelation } from '../catalog/introspect.js';
import { AuditError } from '../errors.js';
import type { Scenario } from '../scenario/schema.js';
import { replacePlaceholders } from '../sql.js';
import { foreignKeyOrder, type Dependency } from './order.js';

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
  /** SQL that sets the tenant for the current transaction: `$1` is the tenant id as text. */
  contextSql: string;
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

/** The setting a context reference reads (a custom setting, or the setting JWT claims come from), or null. */
function settingOf(reference: ContextReference): string | null {
  if (reference.source.kind === 'setting') return reference.source.setting;
  if (reference.source.kind === 'jwt-claim') return reference.source.setting;
  return null;
}

function discoverSetting(analysis: Analysis, scenario: Scenario, notes: string[]): string {
  if (scenario.setting) return scenario.setting;
  // Policies per setting; a setting only ever compared with a constant (an escape hatch such as app.bypass_rls = 'on')
  // is never the tenant setting.
  const policies = new Map<string, Set<string>>();
  for (const reference of analysis.contextReferences) {
    const setting = settingOf(reference);
    if (setting === null || reference.use.kind === 'escape') continue;
    const seen = policies.get(setting) ?? new Set<string>();
    seen.add(`${reference.relation}\u0000${reference.policy}`);
    policies.set(setting, seen);
  }
  const ranked = [...policies].map(([name, seen]) => [name, seen.size] as const).sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
  if (!ranked.length) {
    notes.push('no policy reads a setting; assuming the tenant setting is app.current_tenant (set it with --setting)');
    return 'app.current_tenant';
  }
  const preferred = ranked.find(([name]) => TENANT_SETTING_WORDS.some((word) => name.toLowerCase().includes(word))) ?? ranked[0]!;
  notes.push(`tenant setting ${preferred[0]} read by ${preferred[1]} polic${preferred[1] === 1 ? 'y' : 'ies'} (discovered)`);
  return preferred[0];
}

const TENANT_SETTING_WORDS = ['tenant', 'org', 'account', 'workspace'];

/** Columns a policy compares by equality with the tenant setting, e.g. `tenant_id` in `tenant_id = current_setting(...)::int`. */
function policyTenantColumns(analysis: Analysis, relation: Relation, setting: string): string[] {
  const found = new Set<string>();
  for (const reference of analysis.contextReferences) {
    if (reference.relation !== relation.qualified || settingOf(reference) !== setting) continue;
    if (reference.use.kind === 'equality' && reference.use.relation === relation.qualified) found.add(reference.use.column);
  }
  return [...found];
}

function chooseTenantTable(catalog: Catalog, analysis: Analysis, scenario: Scenario, setting: string, notes: string[]): Relation | null {
  if (scenario.tenantTable) {
    const relation = findRelation(catalog, scenario.tenantTable);
    if (!relation) throw new AuditError(`tenant table ${scenario.tenantTable} does not exist in the audited schemas: check tenantTable / the schema files`);
    return relation;
  }
  const tables = catalog.relations.filter(isBaseTable);
  // Count single-column foreign keys into each table from columns that look like, or are declared as, tenant columns.
  const votes = new Map<string, number>();
  for (const relation of tables) {
    const policyColumns = policyTenantColumns(analysis, relation, setting);
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
  const named = tables.find((relation) => TENANT_TABLE_NAME.test(relation.name));
  if (named) {
    notes.push(`tenant table ${named.qualified}: chosen by its name; no foreign key points at it (set tenantTable to override)`);
    return named;
  }
  return null;
}

function keyColumnOf(relation: Relation): Column {
  const key = relation.primaryKey?.length === 1 ? relation.primaryKey[0] : relation.constraints.find((constraint) => constraint.kind === 'unique' && constraint.columns.length === 1)?.columns[0];
  const column = relation.columns.find((candidate) => candidate.name === key);
  if (!column) throw new AuditError(`tenant table ${relation.qualified} has no single-column primary key or unique key to identify a tenant: give tenantTable / tenantColumn`);
  return column;
}

function discoverTenantColumns(catalog: Catalog, analysis: Analysis, scenario: Scenario, tenantTable: Relation | null, setting: string, notes: string[]): string[] {
  if (scenario.tenantColumn.length) return scenario.tenantColumn;
  const names = new Map<string, number>();
  const vote = (name: string) => names.set(name, (names.get(name) ?? 0) + 1);
  for (const relation of catalog.relations.filter(isBaseTable)) {
    if (relation.qualified === tenantTable?.qualified) continue;
    for (const foreignKey of relation.foreignKeys) {
      if (tenantTable && foreignKey.references === tenantTable.qualified && foreignKey.columns.length === 1) vote(foreignKey.columns[0]!);
    }
    for (const column of policyTenantColumns(analysis, relation, setting)) {
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
  return replacePlaceholders(sql, (position, rest) => (position === 1 && !/^\s*::/.test(rest) ? '$1::text' : `$${position}`));
}

/** The application role when none is given: the one role, other than owners, granted access to tenant data. */
function discoverRole(catalog: Catalog, relations: RelationPlan[], notes: string[]): string {
  const owners = new Set(catalog.relations.map((relation) => relation.owner));
  const candidates = new Set<string>();
  for (const entry of relations) {
    if (entry.tenancy === 'shared') continue;
    const relation = catalog.relations.find((candidate) => candidate.qualified === entry.relation)!;
    for (const grant of relation.grants) if (grant.grantee !== 'public' && !owners.has(grant.grantee)) candidates.add(grant.grantee);
  }
  if (candidates.size === 1) {
    const [role] = candidates;
    notes.push(`application role ${role}: the only role granted access to tenant data (discovered; set it with --role)`);
    return role!;
  }
  throw new AuditError(
    candidates.size
      ? `several roles may be the application's (${[...candidates].sort().join(', ')}): give the one it connects as with --role`
      : "no role is granted access to tenant data: give the application's role with --role",
  );
}

/**
 * Decide, for every relation, whether and how it belongs to a tenant, and the order to seed it in. The setting and
 * the tenant columns the policies use come from the analysis' context references (computed here when not given;
 * the parser must be loaded).
 */
export function planTenancy(catalog: Catalog, scenario: Scenario, analysis: Analysis = analyze(catalog, scenario.role ?? null)): TenancyPlan {
  const notes: string[] = [];
  const setting = discoverSetting(analysis, scenario, notes);
  const tenantTable = chooseTenantTable(catalog, analysis, scenario, setting, notes);
  const tenantColumns = discoverTenantColumns(catalog, analysis, scenario, tenantTable, setting, notes);
  const byName = new Map(catalog.relations.map((relation) => [relation.qualified, relation]));

  let tenantKey: TenantKey;
  if (tenantTable) {
    const key = keyColumnOf(tenantTable);
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
    const column = tenantColumns.find((name) => relation.columns.some((candidate) => candidate.name === name));
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
  const relations = catalog.relations.map(
    (relation) =>
      plans.get(relation.qualified) ?? {
        relation: relation.qualified, kind: relation.kind, tenancy: 'shared' as const, tenantColumn: null, path: null,
        reason: 'no tenant column and no foreign-key path to tenant data: shared by all tenants',
      },
  );
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
    const relation = byName.get(name);
    if (!relation || !seedable(relation)) return;
    // Partitions are seeded through their partitioned parent.
    if (relation.partitionOf) return addWithParents(relation.partitionOf);
    needed.add(name);
    for (const foreignKey of relation.foreignKeys) addWithParents(foreignKey.references);
  };
  for (const plan of relations) if (plan.tenancy !== 'shared' && plan.tenancy !== 'derived') addWithParents(plan.relation);
  for (const plan of relations) {
    const relation = byName.get(plan.relation)!;
    if (plan.tenancy === 'derived' && relation.inheritsFrom.length && seedable(relation)) addWithParents(plan.relation);
  }
  const dependencies: Dependency[] = [];
  for (const name of needed) {
    const relation = byName.get(name)!;
    for (const foreignKey of relation.foreignKeys) {
      const optional = foreignKey.columns.every((column) => !relation.columns.find((candidate) => candidate.name === column)?.notNull);
      dependencies.push({ from: name, to: foreignKey.references, optional });
    }
  }
  const { order, deferred } = foreignKeyOrder([...needed], dependencies);
  const role = scenario.role ?? discoverRole(catalog, relations, notes);
  if (!catalog.roles.some((candidate) => candidate.name === role)) {
    throw new AuditError(`role ${role} does not exist in the database: create it in the schema, or give the application's role with --role`);
  }
  return {
    role,
    setting,
    contextSql: typedParameter(scenario.contextSql ?? `select set_config('${setting.replace(/'/g, "''")}', $1, true)`),
    tenantKey,
    tenantColumns,
    relations,
    seedOrder: order,
    deferredReferences: deferred,
    notes,
  };
}
