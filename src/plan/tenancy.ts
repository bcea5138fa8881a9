import type { Catalog, Relation, RelationKind } from '../catalog/types.js';
import { AuditError } from '../errors.js';
import type { Scenario } from '../scenario/schema.js';
import { compileContextSql, type ContextParameter } from '../analysis/context-sql.js';
import { analyze, type Analysis } from '../analysis/index.js';
import type { RowFlag } from '../analysis/model.js';
import { PRESETS, type Preset } from '../presets/index.js';
import { planActors, type ActorPlan } from './actors.js';
import { foreignKeyOrder, type Dependency } from './order.js';
import { columnOf, relationOf, requireRelation } from '../catalog/lookup.js';
import { chooseContext, defaultContextSql, equalityColumns, identityLookup, policyMemberships } from './context-choice.js';
import { chooseTenantTable, discoverTenantColumns, isBaseTable, keyColumnOf } from './tenant-table.js';
import { discoverRole } from './role.js';
import type { PlanNote } from './notes.js';

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
  /** How the plan was discovered: settings, columns, tables chosen and why (in words: `planNoteText`). */
  notes: PlanNote[];
}

export function isTenantOwned(plan: RelationPlan): boolean {
  return plan.tenancy !== 'shared';
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
  const notes: PlanNote[] = [];
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
    notes.push({ kind: 'tenant-values', column: sample.name, type: sample.type });
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
  if (presetRole) notes.push({ kind: 'role', source: 'preset', role: presetRole, preset: preset!.name });
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
