/** function-leak: the arguments of a call (neutral values, NULLs, '%', a tenant's keys) and the statement that makes it. */
import { functionAnalysis } from '../analysis/index.js';
import type { FunctionInfo, Relation } from '../catalog/types.js';
import type { RelationPlan } from '../plan/tenancy.js';
import type { Tenant } from '../seed/ledger.js';
import { ident } from '../target/sql.js';
import { actorOf, sourcesOf } from './context.js';
import type { ProbeContext } from './types.js';
import { relationOf, requireRelation } from '../catalog/lookup.js';

const TENANT_ARGUMENT = /(^|_)(tenant|org|organi[sz]ation|account|workspace|team|company|customer|client)(_?id)?$/i;
/** An argument that names a user: `user_id`, `p_member`, `owner_id`, `uid`. */
const USER_ARGUMENT = /(^|_)(user|member|owner|author|assignee|invitee|uid)(_?id)?$/i;
const TEXT_TYPES = new Set(['text', 'character varying', 'character', 'name', 'citext']);
const NUMBER_TYPES = new Set(['integer', 'bigint', 'smallint', 'numeric', 'real', 'double precision']);
/** neutral: '' and 0; wildcard: '%' for free text (a search argument matches everything); null; foreign: another tenant's ids. */
export type Variant = 'neutral' | 'wildcard' | 'null' | 'foreign' | 'keys';
/** The argument name without the usual prefixes: `p_tenant_id` -> `tenant_id`. */
function bareName(name: string): string {
  return name.replace(/^(p_|in_|arg_|_)/i, '');
}

/** A neutral value of a type: empty text, zero, an empty array or object; undefined when there is none. */
function neutralValue(type: string): string | null | undefined {
  const base = type.replace(/\(.*\)$/, '');
  if (type.endsWith('[]')) return '{}';
  if (TEXT_TYPES.has(base)) return '';
  if (NUMBER_TYPES.has(base)) return '0';
  if (base === 'boolean') return 'false';
  if (base === 'uuid') return '00000000-0000-0000-0000-000000000000';
  if (base === 'json' || base === 'jsonb') return '{}';
  if (base === 'date' || base.startsWith('timestamp')) return '2000-01-01';
  return undefined;
}

/** Whether a value (as text) is one of a type's: a user id of uuid type does not go into an integer argument. */
function fits(value: string, base: string): boolean {
  if (base === 'uuid') return /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(value);
  if (NUMBER_TYPES.has(base)) return /^-?\d+$/.test(value);
  return TEXT_TYPES.has(base);
}

const POLYMORPHIC = /^(any|anyelement|anyarray|anynonarray|anyenum|anyrange|anymultirange|anycompatible\w*|internal|cstring|"any")$/;

/** The tenant-owned relation an id-like argument most likely names: `conversation_id` -> conversations. */
function relationForId(context: ProbeContext, argument: string, fn?: FunctionInfo): { relation: Relation; column: string } | null {
  const stem = bareName(argument).replace(/_?id$/i, '').toLowerCase();
  // A bare `id` names a row of what the function is about: accept_invitation(id) -> invitations.
  const stems = stem ? [stem] : fn ? fn.name.toLowerCase().split('_').filter((word) => word.length > 2) : [];
  if (!stems.length) return null;
  const names = new Set(stems.flatMap((word) => [word, `${word}s`, `${word}es`, word.replace(/y$/, 'ies')]));
  for (const entry of context.plan.relations) {
    if (entry.tenancy === 'shared' || entry.tenancy === 'derived') continue;
    const relation = requireRelation(context.catalog, entry.relation);
    if (!names.has(relation.name.toLowerCase())) continue;
    const key = (relation.primaryKey ?? []).filter((column) => !context.plan.tenantColumns.includes(column));
    if (key.length === 1) return { relation, column: key[0]! };
  }
  return null;
}

/**
 * Arguments for one call, or null when the function takes an argument no neutral value fits. Defaulted
 * arguments are left out (their defaults apply). `neutral`: empty text, zero, the tenant's own id and row
 * ids; `null`: NULL everywhere (functions that are not strict often read NULL as "no filter");
 * `foreign`: another tenant's id and row ids in the tenant and id arguments (a function that trusts them);
 * `keys`: the same, with a plain word in the other text arguments (a name a function may require to be non-empty).
 */
export function argumentsFor(context: ProbeContext, fn: FunctionInfo, variant: Variant, tenant: Tenant): { values: (string | null)[]; pointed: boolean; keys: string[] } | null {
  const count = fn.argumentTypes.length - fn.defaultArguments;
  const values: (string | null)[] = [];
  /** What each keyed argument holds: `team: tenant B's id`, `member_id: the user of tenant B`. */
  const keys: string[] = [];
  let pointed = false;
  for (let index = 0; index < count; index += 1) {
    const type = fn.argumentTypes[index]!;
    const name = fn.argumentNames[index] ?? '';
    if (POLYMORPHIC.test(type)) return null;
    if (variant === 'null') {
      values.push(null);
      continue;
    }
    const base = type.replace(/\(.*\)$/, '');
    const idType = TEXT_TYPES.has(base) || NUMBER_TYPES.has(base) || base === 'uuid';
    // What the body compares it with: the value that column holds in a seeded row of the tenant.
    const compared = idType ? comparedKey(context, fn, index, tenant, base) : null;
    if (compared) {
      values.push(compared.value);
      keys.push(`${name || `$${index + 1}`}: ${compared.what}`);
      pointed = true;
      continue;
    }
    if (idType && name && (TENANT_ARGUMENT.test(bareName(name)) || context.plan.tenantColumns.includes(bareName(name)))) {
      values.push(tenant.id);
      keys.push(`${name}: ${tenant.label}'s id`);
      pointed = true;
      continue;
    }
    const target = idType && name ? relationForId(context, name, fn) : null;
    const owned = target ? context.ledger.rows(target.relation.qualified, tenant.id)[0]?.values[target.column] : undefined;
    if (owned !== undefined && owned !== null) {
      values.push(owned);
      keys.push(`${name}: a key of ${target!.relation.qualified} of ${tenant.label}`);
      pointed = true;
      continue;
    }
    // A user of that tenant: its actor's user id, when the value fits the argument's type.
    const user = idType && name && USER_ARGUMENT.test(bareName(name)) ? actorOf(context, tenant).user : null;
    if (user !== null && fits(user, base)) {
      values.push(user);
      keys.push(`${name}: the user of ${tenant.label}`);
      pointed = true;
      continue;
    }
    const neutral = neutralValue(type);
    if (neutral === undefined) {
      if (fn.strict) return null;
      values.push(null);
      continue;
    }
    if (variant === 'keys' && TEXT_TYPES.has(base)) {
      values.push('rls-audit probe');
      continue;
    }
    if (variant === 'wildcard' && TEXT_TYPES.has(base)) {
      values.push('%');
      pointed = true;
      continue;
    }
    values.push(neutral);
  }
  return { values, pointed, keys };
}

/**
 * A key of `tenant` for argument `index` from what the function's body compares it with (analysis: parameterColumns):
 * the value of that column in a seeded row of the tenant (its id in a tenant column or the tenant table's key, the
 * key of one of its rows, the id of one of its users in a membership). Null when the body compares it with no
 * column of a tenant-owned relation, or the body could not be read.
 */
function comparedKey(context: ProbeContext, fn: FunctionInfo, index: number, tenant: Tenant, base: string): { value: string; what: string } | null {
  const columns = functionAnalysis(context.analysis, fn.signature)?.parameterColumns.filter((entry) => entry.parameter === `$${index + 1}`) ?? [];
  const user = actorOf(context, tenant).user;
  for (const { relation, column } of columns) {
    const rows = context.ledger.rows(relation, tenant.id);
    // A column that holds the tenant's user: that user (its actor), rather than whichever seeded user comes first.
    if (user !== null && fits(user, base) && rows.some((candidate) => candidate.values[column] === user)) return { value: user, what: `the user of ${tenant.label} (${relation}.${column})` };
    const row = rows.find((candidate) => candidate.values[column] !== undefined && candidate.values[column] !== null);
    const value = row?.values[column];
    if (value === undefined || value === null || !fits(value, base)) continue;
    return { value, what: `${relation}.${column} of ${tenant.label}` };
  }
  return null;
}

export function callStatement(context: ProbeContext, fn: FunctionInfo, count: number): string {
  const call = `${ident(fn.schema)}.${ident(fn.name)}(${fn.argumentTypes
    .slice(0, count)
    .map((type, index) => `$${index + 1}::${type}`)
    .join(', ')})`;
  const limit = context.scenario.maxRowsPerQuery + 1;
  if (fn.returnKind === 'void') return `select ${call}`;
  return fn.returnKind === 'composite' ? `select * from ${call} limit ${limit}` : `select (${call})::text as ${ident(fn.name)} limit ${limit}`;
}

/** The table a function returns rows of (`setof messages`), so its rows are attributed by seeded key too. */
export function returnedRelation(context: ProbeContext, fn: FunctionInfo): { relation: Relation; relationPlan: RelationPlan; sources: string[] } | undefined {
  const relation = relationOf(context.catalog, fn.returnType) ?? relationOf(context.catalog, `${fn.schema}.${fn.returnType}`);
  const relationPlan = relation && context.plan.relations.find((entry) => entry.relation === relation.qualified);
  return relation && relationPlan ? { relation, relationPlan, sources: sourcesOf(context, relation) } : undefined;
}
/** ` (member_id: the user of tenant B)`, or nothing when no argument held a key. */
export function keyed(keys: readonly string[]): string {
  return keys.length ? ` (${keys.join(', ')})` : '';
}
