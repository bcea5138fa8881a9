/** Planning the tenant context: which source carries the tenant (setting, JWT claim, role), the tables the policies read the identity through, and the context SQL. */
import type { Catalog } from '../catalog/types.js';
import { AuditError } from '../errors.js';
import type { Scenario } from '../scenario/schema.js';
import { compileContextSql } from '../analysis/context-sql.js';
import type { Analysis } from '../analysis/index.js';
import { claimsObject, type Preset } from '../presets/index.js';
import type { IdentityLookup } from './actors.js';
import { literal } from '../target/sql.js';
import { findRelation } from '../catalog/lookup.js';
import type { TenantKey } from './tenancy.js';
import type { PlanNote } from './notes.js';

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
export function equalityColumns(analysis: Analysis, key: string | null): Map<string, Set<string>> {
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

export function chooseContext(analysis: Analysis, scenario: Scenario, preset: Preset | null, notes: PlanNote[]): ContextChoice {
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
    const path = scenario.tenantClaim ?? (claim?.kind === 'jwt-claim' ? claim.path : helperClaim ?? preset.defaultTenantClaim);
    notes.push({
      kind: 'context', source: 'preset', preset: preset.name, setting: preset.setting, claim: path,
      evidence: claim ? { by: 'compared' } : helperClaim && !scenario.tenantClaim ? { by: 'helper', function: (sourceOf(followed!.key) as { function: string }).function } : { by: 'assumed' },
    });
    if (helperClaim && !scenario.tenantClaim) return { setting: preset.setting, key: followed!.key, claim: path, roles: false, alternatives: [] };
    const key = claim ? ranked.find(([candidate]) => sourceOf(candidate) === claim)![0] : (ranked.find(([candidate]) => ['function', 'jwt-claim'].includes(sourceOf(candidate).kind))?.[0] ?? null);
    return { setting: preset.setting, key, claim: path, roles: false, alternatives: [] };
  }
  // A session helper of the catalog whose body cannot be followed to one setting gives way to a setting the policies compare directly.
  const opaque = (key: string) => sourceOf(key).kind === 'function' && analysis.functions.some((body) => body.name.startsWith(`${(sourceOf(key) as { function: string }).function}(`)) && helperReads(key) === null;
  const [top] = ranked[0] && opaque(ranked[0][0]) ? [ranked.find(([key]) => sourceOf(key).kind === 'setting') ?? ranked[0]] : ranked;
  if (!top) {
    notes.push({ kind: 'setting', source: 'assumed', setting: 'app.current_tenant', escapes });
    return { setting: 'app.current_tenant', key: null, claim: null, roles: false, alternatives: [] };
  }
  const source = sourceOf(top[0]);
  if (source.kind === 'role') {
    notes.push({ kind: 'context', source: 'role', keyword: source.keyword, relations: top[1].size, escapes });
    return { setting: 'role', key: top[0], claim: null, roles: true, alternatives: [] };
  }
  if (source.kind === 'jwt-claim' && source.setting) {
    notes.push({ kind: 'context', source: 'jwt-claim', path: source.path, setting: source.setting, relations: top[1].size, escapes });
    return { setting: source.setting, key: top[0], claim: source.path, roles: false, alternatives: [] };
  }
  if (source.kind === 'function' && followed?.key === top[0] && !followed.setting!.startsWith('request.jwt.claim')) {
    notes.push({ kind: 'setting', source: 'helper', setting: followed.setting!, function: source.function, relations: top[1].size, escapes });
    return { setting: followed.setting!, key: top[0], claim: null, roles: false, alternatives: [] };
  }
  if (source.kind !== 'setting') {
    throw new AuditError(
      `the policies compare rows with ${source.kind === 'function' ? `${source.function}()` : `a JWT claim read by ${source.function}()`}: give the platform with --preset supabase / --preset postgrest, or the SQL the application runs with --context-sql`,
    );
  }
  const setting = source.setting;
  const alternatives = settings.filter((key) => key !== top[0]).map(settingName);
  notes.push({ kind: 'setting', source: 'compared', setting, relations: top[1].size, alternatives, escapes });
  return { setting, key: top[0], claim: null, roles: false, alternatives };
}
/**
 * The table the policies read the identity through (`tenant_id = (select id from tenants where db_user =
 * current_user)`, `author_id = (select user_id from sessions where id = <claim>)`, helpers followed): the one
 * most policy clauses use, when its value column is the tenant key (the tenant table itself) or references it.
 */
export function identityLookup(catalog: Catalog, analysis: Analysis, key: string | null, tenantKey: TenantKey, notes: PlanNote[]): IdentityLookup | null {
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
    if (relation.qualified === tenantKey.relation) {
      if (entry.valueColumn !== tenantKey.column) continue;
      notes.push({ kind: 'identity', mode: 'tenant-row', relation: entry.table, keyColumn: entry.keyColumn, valueColumn: entry.valueColumn, clauses: entry.clauses.size });
      return { relation: relation.qualified, keyColumn: entry.keyColumn, valueColumn: entry.valueColumn, mode: 'tenant-row', uses: entry.clauses.size };
    }
    const toTenant = relation.foreignKeys.some(
      (foreignKey) => foreignKey.references === tenantKey.relation && foreignKey.columns.length === 1 && foreignKey.columns[0] === entry.valueColumn && foreignKey.referencedColumns[0] === tenantKey.column,
    );
    if (!toTenant) continue;
    notes.push({ kind: 'identity', mode: 'own-row', relation: relation.qualified, keyColumn: entry.keyColumn, valueColumn: entry.valueColumn, clauses: entry.clauses.size });
    return { relation: relation.qualified, keyColumn: entry.keyColumn, valueColumn: entry.valueColumn, mode: 'own-row', uses: entry.clauses.size };
  }
  return null;
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
