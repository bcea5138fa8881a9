import type { Catalog, FunctionInfo, Policy, Relation } from '../catalog/types.js';
import type { TenancyPlan } from '../plan/tenancy.js';
import { parseExpression, walk, type ExpressionNode, type SelectNode } from './pg-expression.js';
import { functionsNamed, inheritedBy, relationNamed, relationPlanOf, roleNamed } from './privilege-helpers.js';

/**
 * What a policy expression does with the tenant, read from its pg_get_expr text:
 * - which ways it can be true (its disjuncts, after distributing AND over OR), and for each whether it ties the
 *   row to the current tenant or lets rows through without that (always true, a plain row predicate, another
 *   setting, a missing-context branch);
 * - every current_setting call, with missing_ok, nullif(…, '') and the type it is cast to.
 * Then, across a relation's policies for one command: what the permissive policies let through once the
 * restrictive ones are ANDed in (a restrictive tenant policy fences every permissive one).
 */

export type Clause = 'using' | 'check';
export type Command = 'SELECT' | 'INSERT' | 'UPDATE' | 'DELETE';

/** How a way through an expression admits rows without matching the current tenant. */
export type OpenKind = 'always-true' | 'row-predicate' | 'other-setting' | 'fail-open';

export interface Branch {
  /** The conjunction, as SQL. */
  text: string;
  /** `tenant`: rows must belong to the current tenant; `dead`: never true for the role; `unowned`: rows with no tenant (USING only). */
  kind: 'tenant' | 'dead' | 'unowned' | OpenKind;
  /** Settings other than the tenant setting this branch depends on (other-setting). */
  settings: string[];
  /** The fragment that decides the kind, e.g. the `IS NULL` test of a fail-open branch. */
  reason: string;
}

export interface SettingUse {
  setting: string;
  /** current_setting(name, true): NULL instead of an error when the setting was never set. */
  missingOk: boolean;
  /** Wrapped in nullif(…, ''): the empty string left after a reset becomes NULL. */
  nullif: boolean;
  /** The non-text type the raw value is cast to, where '' (a reset setting) raises an error; null when it is not. */
  castTo: string | null;
  text: string;
}

export interface ExpressionAnalysis {
  text: string;
  branches: Branch[];
  /** Branches that admit rows without a tenant match. */
  open: Branch[];
}

export interface AnalysisScope {
  catalog: Catalog;
  plan: TenancyPlan;
}

// ------------------------------------------------------------------------------------------------------------
// Rendering

function renderSelect(select: SelectNode): string {
  return `(${select.text.replace(/\s+/g, ' ').trim()})`;
}

/** SQL text for a node, close to what pg_get_expr printed (whitespace normalised). */
export function render(node: ExpressionNode): string {
  switch (node.kind) {
    case 'and':
    case 'or':
      return `(${node.args.map(render).join(` ${node.kind.toUpperCase()} `)})`;
    case 'not':
      return `(NOT ${render(node.arg)})`;
    case 'op':
      return node.left ? `(${render(node.left)} ${node.op} ${render(node.right)})` : `(${node.op} ${render(node.right)})`;
    case 'null-test':
      return `(${render(node.arg)} IS ${node.negated ? 'NOT ' : ''}NULL)`;
    case 'bool-test':
      return `(${render(node.arg)} IS ${node.test})`;
    case 'distinct':
      return `(${render(node.left)} IS ${node.negated ? 'NOT ' : ''}DISTINCT FROM ${render(node.right)})`;
    case 'in':
      return `(${render(node.left)} ${node.negated ? 'NOT IN' : 'IN'} ${node.subquery ? renderSelect(node.subquery) : `(${(node.list ?? []).map(render).join(', ')})`})`;
    case 'quantified':
      return `(${render(node.left)} ${node.op} ${node.quantifier} ${node.right.kind === 'select' ? renderSelect(node.right) : `(${render(node.right)})`})`;
    case 'exists':
      return `(EXISTS ${renderSelect(node.subquery)})`;
    case 'subquery':
      return renderSelect(node.subquery);
    case 'call':
      return `${node.name}(${node.args.map(render).join(', ')})`;
    case 'cast':
      return `${render(node.arg)}::${node.type}`;
    case 'column':
      return node.qualifier ? `${node.qualifier}.${node.name}` : node.name;
    case 'literal':
      return node.type === 'string' ? `'${(node.value ?? '').replace(/'/g, "''")}'` : node.type === 'null' ? 'NULL' : node.value!;
    case 'keyword':
      return node.name;
    case 'case':
      return `CASE${node.subject ? ` ${render(node.subject)}` : ''}${node.whens.map((when) => ` WHEN ${render(when.when)} THEN ${render(when.then)}`).join('')}${node.otherwise ? ` ELSE ${render(node.otherwise)}` : ''} END`;
    case 'array':
      return `ARRAY[${node.items.map(render).join(', ')}]`;
    case 'row':
      return `ROW(${node.items.map(render).join(', ')})`;
    case 'subscript':
      return `${render(node.arg)}[${node.indexes.map(render).join(':')}]`;
    case 'opaque':
      return node.text.replace(/\s+/g, ' ').trim();
  }
}

// ------------------------------------------------------------------------------------------------------------
// current_setting calls

const TEXT_TYPES = /^(text|character varying|varchar|character|char|bpchar|name|"char"|citext|unknown)\b/;
/** Functions a setting's text passes through unchanged in what matters here ('' stays ''). */
const PASS_THROUGH = new Set(['coalesce', 'btrim', 'trim', 'ltrim', 'rtrim', 'lower', 'upper', 'text']);

function baseName(name: string): string {
  return name.startsWith('pg_catalog.') ? name.slice('pg_catalog.'.length) : name;
}

function stringValue(node: ExpressionNode | undefined): string | null {
  if (!node) return null;
  if (node.kind === 'cast') return stringValue(node.arg);
  return node.kind === 'literal' && node.type === 'string' ? node.value : null;
}

function isEmptyString(node: ExpressionNode | undefined): boolean {
  return stringValue(node) === '';
}

function settingCall(node: ExpressionNode | SelectNode): { setting: string; missingOk: boolean } | null {
  if (node.kind !== 'call' || baseName(node.name) !== 'current_setting') return null;
  const setting = stringValue(node.args[0]);
  if (setting === null) return null;
  const flag = node.args[1];
  // A missing_ok that is not a literal false is given the benefit of the doubt.
  const missingOk = flag !== undefined && !(flag.kind === 'literal' && (flag.value === 'false' || flag.value === 'f'));
  return { setting, missingOk };
}

/** Every current_setting call in the expression, sub-selects included. */
export function settingUses(root: ExpressionNode): SettingUse[] {
  const uses: SettingUse[] = [];
  for (const { node, ancestors } of walk(root)) {
    const call = settingCall(node);
    if (!call) continue;
    let nullif = false;
    let castTo: string | null = null;
    let child: ExpressionNode | SelectNode = node;
    for (let index = ancestors.length - 1; index >= 0; index -= 1) {
      const parent = ancestors[index]!;
      if (parent.kind === 'cast') {
        if (!TEXT_TYPES.test(parent.type)) {
          if (!nullif) castTo = parent.type;
          break;
        }
      } else if (parent.kind === 'call' && baseName(parent.name) === 'nullif') {
        if (parent.args[0] === child && isEmptyString(parent.args[1])) nullif = true;
        else break;
      } else if (parent.kind === 'call' && PASS_THROUGH.has(baseName(parent.name))) {
        // coalesce(setting, ''), lower(setting): the empty string passes through.
      } else if (parent.kind === 'select' || (parent.kind === 'subquery' && !parent.subquery.from.length)) {
        // ( SELECT value AS "nullif") — the initplan form.
      } else {
        break;
      }
      child = parent;
    }
    uses.push({ setting: call.setting, missingOk: call.missingOk, nullif, castTo, text: render(node as ExpressionNode) });
  }
  return uses;
}

// ------------------------------------------------------------------------------------------------------------
// Values: what a non-boolean operand is derived from

type Value =
  /** Derived from the tenant setting (or an opaque session function such as auth.tenant_id()). */
  | { kind: 'tenant' }
  /** Derived from settings other than the tenant setting. */
  | { kind: 'setting'; names: string[] }
  /** The current role (CURRENT_USER, SESSION_USER). */
  | { kind: 'role' }
  | { kind: 'column'; name: string }
  /** coalesce(session value, column): the column itself when the session value is NULL. */
  | { kind: 'fallback-column'; name: string }
  | { kind: 'constant'; value: string | null }
  /** Depends on the row in a way that is not a plain column. */
  | { kind: 'row' }
  | { kind: 'unknown' };

interface Env {
  scope: AnalysisScope;
  /** The relation the expression filters (its columns are the row's). */
  relation: Relation;
  /** Names that qualify the row's columns. */
  rowNames: Set<string>;
  /** Tenant columns of the row's relation. */
  tenantColumns: Set<string>;
  clause: Clause;
  /** Relations whose policies are being evaluated (recursion guard). */
  visiting: Set<string>;
}

/** Builtins whose value does not come from the session: comparing a tenant column with them is not a tenant check. */
const NON_SESSION_BUILTINS = new Set([
  'now', 'clock_timestamp', 'statement_timestamp', 'transaction_timestamp', 'timeofday', 'random', 'gen_random_uuid', 'uuid_generate_v4',
  'pg_backend_pid', 'txid_current', 'pg_current_xact_id', 'version', 'pg_postmaster_start_time', 'inet_client_addr', 'inet_server_addr',
]);

const ROLE_KEYWORDS = new Set(['CURRENT_USER', 'SESSION_USER', 'CURRENT_ROLE', 'USER']);
const SESSION_WORDS = /\b(current_user|session_user|current_role|jwt|auth\.|request\.)/i;
const SETTING_IN_SOURCE = /current_setting\s*\(\s*'([^']+)'/gi;

const functionValues = new WeakMap<TenancyPlan, Map<string, Value | null>>();

/**
 * What a function called from a policy reads: the tenant setting, other settings, or the session (opaque
 * functions such as auth.uid() are given the benefit of the doubt); null when it is an ordinary function whose
 * value follows from its arguments. Cached per plan.
 */
function functionValue(scope: AnalysisScope, name: string, arity: number, depth = 0): Value | null {
  let cache = functionValues.get(scope.plan);
  if (!cache) {
    cache = new Map();
    functionValues.set(scope.plan, cache);
  }
  const key = `${name}/${arity}`;
  if (cache.has(key)) return cache.get(key)!;
  const value = readFunction(scope, name, arity, depth);
  if (depth === 0) cache.set(key, value);
  return value;
}

function readFunction(scope: AnalysisScope, name: string, arity: number, depth: number): Value | null {
  const fn: FunctionInfo | undefined = functionsNamed(scope.catalog, name).find(
    (candidate) => candidate.argumentTypes.length >= arity && candidate.argumentTypes.length - candidate.defaultArguments <= arity,
  ) ?? functionsNamed(scope.catalog, baseName(name))[0];
  if (!fn) return arity === 0 && !NON_SESSION_BUILTINS.has(baseName(name)) ? { kind: 'tenant' } : null;
  const settings = [...fn.source.matchAll(SETTING_IN_SOURCE)].map((match) => match[1]!);
  if (settings.includes(scope.plan.setting)) return { kind: 'tenant' };
  if (settings.length) return { kind: 'setting', names: [...new Set(settings)] };
  if (!fn.source || SESSION_WORDS.test(fn.source)) return { kind: 'tenant' };
  if (depth < 3) {
    for (const other of scope.catalog.functions) {
      if (other.oid === fn.oid || !new RegExp(`\\b${other.name.replace(/[$]/g, '\\$')}\\s*\\(`, 'i').test(fn.source)) continue;
      const inner = functionValue(scope, `${other.schema}.${other.name}`, other.argumentTypes.length - other.defaultArguments, depth + 1);
      if (inner) return inner;
    }
  }
  return null;
}

function isRowColumn(env: Env, node: ExpressionNode): node is Extract<ExpressionNode, { kind: 'column' }> {
  return node.kind === 'column' && (node.qualifier === null || env.rowNames.has(node.qualifier.split('.').pop()!));
}

interface Sources {
  row: boolean;
  tenant: boolean;
  settings: string[];
  role: boolean;
}

/** What an arbitrary expression reads: row columns, the tenant setting, other settings, the role. */
function sourcesOf(env: Env, root: ExpressionNode): Sources {
  const sources: Sources = { row: false, tenant: false, settings: [], role: false };
  for (const { node, ancestors } of walk(root)) {
    if (node.kind === 'select') continue;
    const inSubselect = ancestors.some((ancestor) => ancestor.kind === 'select');
    if (node.kind === 'column' && (!inSubselect ? isRowColumn(env, node) : node.qualifier !== null && env.rowNames.has(node.qualifier))) sources.row = true;
    const call = settingCall(node);
    if (call) {
      if (call.setting === env.scope.plan.setting) sources.tenant = true;
      else sources.settings.push(call.setting);
    } else if (node.kind === 'call' && baseName(node.name) !== 'current_setting') {
      const value = functionValue(env.scope, node.name, node.args.length);
      if (value?.kind === 'tenant') sources.tenant = true;
      if (value?.kind === 'setting') sources.settings.push(...value.names);
    }
    if (node.kind === 'keyword' && ROLE_KEYWORDS.has(node.name)) sources.role = true;
    if (node.kind === 'opaque') {
      for (const match of node.text.matchAll(SETTING_IN_SOURCE)) {
        if (match[1] === env.scope.plan.setting) sources.tenant = true;
        else sources.settings.push(match[1]!);
      }
      if (env.relation.columns.some((column) => new RegExp(`(^|[^A-Za-z0-9_."])"?${column.name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}"?([^A-Za-z0-9_"(]|$)`).test(node.text))) sources.row = true;
    }
  }
  sources.settings = [...new Set(sources.settings)];
  return sources;
}

function valueOf(env: Env, node: ExpressionNode): Value {
  switch (node.kind) {
    case 'cast':
      return valueOf(env, node.arg);
    case 'column':
      return isRowColumn(env, node) ? { kind: 'column', name: node.name } : { kind: 'unknown' };
    case 'literal':
      return { kind: 'constant', value: node.value };
    case 'keyword':
      return ROLE_KEYWORDS.has(node.name) ? { kind: 'role' } : { kind: 'unknown' };
    case 'subquery': {
      const select = node.subquery;
      if (!select.from.length && select.targets.length === 1 && !select.where) return valueOf(env, select.targets[0]!);
      return fromSources(sourcesOf(env, node), true);
    }
    case 'call': {
      const name = baseName(node.name);
      const call = settingCall(node);
      if (call) return call.setting === env.scope.plan.setting ? { kind: 'tenant' } : { kind: 'setting', names: [call.setting] };
      if (name === 'nullif' && node.args.length === 2) return valueOf(env, node.args[0]!);
      if (PASS_THROUGH.has(name) && name !== 'coalesce' && node.args.length >= 1) return valueOf(env, node.args[0]!);
      if (name === 'coalesce' && node.args.length) {
        const first = valueOf(env, node.args[0]!);
        const fallbackColumn = node.args.slice(1).map((arg) => valueOf(env, arg)).find((value) => value.kind === 'column');
        if (fallbackColumn?.kind === 'column' && (first.kind === 'tenant' || first.kind === 'setting' || first.kind === 'role')) {
          return { kind: 'fallback-column', name: fallbackColumn.name };
        }
        return first;
      }
      const sources = sourcesOf(env, node);
      if (!sources.row && !node.args.length) {
        const value = functionValue(env.scope, node.name, 0);
        return value ?? { kind: 'constant', value: null };
      }
      return fromSources(sources, false);
    }
    default:
      return fromSources(sourcesOf(env, node), false);
  }
}

function fromSources(sources: Sources, subselect: boolean): Value {
  if (sources.row) return { kind: 'row' };
  if (sources.tenant) return { kind: 'tenant' };
  if (sources.settings.length) return { kind: 'setting', names: sources.settings };
  if (sources.role) return { kind: 'role' };
  return subselect ? { kind: 'unknown' } : { kind: 'constant', value: null };
}

// ------------------------------------------------------------------------------------------------------------
// Atoms: one condition of a conjunction

type AtomKind = Branch['kind'] | 'context-check';

interface Atom {
  kind: AtomKind;
  settings: string[];
}

const atom = (kind: AtomKind, settings: string[] = []): Atom => ({ kind, settings });

function isSessionValue(value: Value): boolean {
  return value.kind === 'tenant' || value.kind === 'setting' || value.kind === 'role';
}

function roleHas(env: Env, name: string | null): boolean {
  if (name === null) return false;
  return inheritedBy(env.scope.catalog, env.scope.plan.role).has(name);
}

function constantsEqual(left: Value, right: Value): boolean | null {
  if (left.kind !== 'constant' || right.kind !== 'constant') return null;
  if (left.value === null || right.value === null) return null;
  if (left.value === right.value) return true;
  const a = Number(left.value);
  const b = Number(right.value);
  if (Number.isFinite(a) && Number.isFinite(b)) return a === b;
  return false;
}

function compareAtom(env: Env, op: string, leftNode: ExpressionNode, rightNode: ExpressionNode): Atom {
  const left = valueOf(env, leftNode);
  const right = valueOf(env, rightNode);
  const pairs: [Value, Value][] = [
    [left, right],
    [right, left],
  ];
  if (op === '=') {
    const equal = constantsEqual(left, right);
    if (equal !== null) return atom(equal ? 'always-true' : 'dead');
    if (left.kind === 'column' && right.kind === 'column' && left.name === right.name) return atom('always-true');
    for (const [a, b] of pairs) {
      if (a.kind === 'fallback-column' && b.kind === 'column' && a.name === b.name) return atom('fail-open');
      if ((a.kind === 'column' || a.kind === 'row') && b.kind === 'tenant') return atom('tenant');
      if ((a.kind === 'column' || a.kind === 'row') && b.kind === 'role') return atom('tenant');
      // A column compared with another setting (`owner_id = current_setting('app.user_id')::int`) scopes rows to a
      // session identity: spoofing it takes another tenant's id, exactly like spoofing the tenant setting. Only a
      // setting compared with a constant (a flag such as app.is_admin = 'on') opens every tenant at once.
      if ((a.kind === 'column' || a.kind === 'row') && b.kind === 'setting') return atom('tenant');
      // `= ''` is the missing tenant; any other constant is a magic tenant value that opens every row (a flag).
      if (a.kind === 'tenant' && b.kind === 'constant') return b.value === '' ? atom('fail-open') : atom('other-setting', [env.scope.plan.setting]);
      if (a.kind === 'setting' && b.kind === 'constant') return atom('other-setting', a.names);
      if (a.kind === 'role' && b.kind === 'constant') return atom(roleHas(env, b.value) ? 'always-true' : 'dead');
      if (a.kind === 'tenant' && b.kind === 'tenant') return atom('always-true');
    }
    if (left.kind === 'unknown' || right.kind === 'unknown') return fallbackAtom(env, { kind: 'op', op, left: leftNode, right: rightNode });
    return atom('row-predicate');
  }
  if (op === '<>' || op === '!=') {
    for (const [a, b] of pairs) {
      if (a.kind === 'tenant' && b.kind === 'constant' && b.value === '') return atom('context-check');
      if (a.kind === 'setting' && b.kind === 'constant') return atom('other-setting', a.names);
      if (a.kind === 'role' && b.kind === 'constant') return atom(roleHas(env, b.value) ? 'dead' : 'always-true');
    }
    const equal = constantsEqual(left, right);
    if (equal !== null) return atom(equal ? 'dead' : 'always-true');
    return atom('row-predicate');
  }
  return fallbackAtom(env, { kind: 'op', op, left: leftNode, right: rightNode });
}

/** When the shape is not one we know: decide by what the condition reads. */
function fallbackAtom(env: Env, node: ExpressionNode): Atom {
  const sources = sourcesOf(env, node);
  if (sources.tenant) return atom('tenant');
  if (sources.settings.length) return atom(sources.row ? 'tenant' : 'other-setting', sources.settings);
  if (sources.role && sources.row) return atom('tenant');
  return atom('row-predicate');
}

function resolveRelation(env: Env, name: string): Relation | undefined {
  const { catalog } = env.scope;
  if (name.includes('.')) return relationNamed(catalog, name);
  return (
    relationNamed(catalog, `${env.relation.schema}.${name}`) ??
    relationNamed(catalog, `public.${name}`) ??
    (() => {
      const matches = catalog.relations.filter((relation) => relation.name === name);
      return matches.length === 1 ? matches[0] : undefined;
    })()
  );
}

/** True when the rows a sub-select reads are limited to the current tenant: by its WHERE, or by the RLS of what it reads. */
function subselectRestricted(env: Env, select: SelectNode): boolean {
  const aliases = new Set(select.from.map((item) => item.alias).filter((alias): alias is string => Boolean(alias)));
  const resolved = select.from.map((item) => (item.relation ? resolveRelation(env, item.relation) : undefined));
  if (select.where) {
    const inner: Env = {
      ...env,
      rowNames: aliases,
      tenantColumns: new Set(resolved.flatMap((relation) => (relation ? [...tenantColumnsOf(env.scope, relation)] : []))),
    };
    const branches = analyzeNode(inner, select.where).branches;
    if (branches.length && branches.every((branch) => branch.kind === 'tenant' || branch.kind === 'dead')) return true;
  }
  return resolved.some((relation) => relation !== undefined && rlsRestrictsReads(env.scope, relation, env.visiting));
}

/** Does the sub-select refer to the outer row? (pg_get_expr qualifies outer columns with the relation name.) */
function correlated(env: Env, select: SelectNode): boolean {
  const aliases = new Set(select.from.map((item) => item.alias));
  for (const { node } of walk(select)) {
    if (node.kind === 'column' && node.qualifier !== null) {
      const qualifier = node.qualifier.split('.').pop()!;
      if (env.rowNames.has(qualifier) && !aliases.has(qualifier)) return true;
    }
  }
  return false;
}

/** A bare current_setting(name) (through casts and the initplan wrapper) without missing_ok. */
function strictSettingCall(node: ExpressionNode): boolean {
  if (node.kind === 'cast') return strictSettingCall(node.arg);
  if (node.kind === 'subquery' && !node.subquery.from.length && node.subquery.targets.length === 1) return strictSettingCall(node.subquery.targets[0]!);
  const call = settingCall(node);
  return call !== null && !call.missingOk;
}

function classifyAtom(env: Env, node: ExpressionNode): Atom {
  switch (node.kind) {
    case 'literal':
      if (node.type === 'boolean') return atom(node.value === 'true' ? 'always-true' : 'dead');
      if (node.type === 'null') return atom('dead');
      return atom('row-predicate');
    case 'and': {
      const parts = node.args.map((arg) => classifyAtom(env, arg));
      if (parts.some((part) => part.kind === 'dead')) return atom('dead');
      if (parts.some((part) => part.kind === 'tenant')) return atom('tenant');
      return combine(parts, env.clause);
    }
    case 'or': {
      const parts = node.args.map((arg) => classifyAtom(env, arg)).filter((part) => part.kind !== 'dead');
      if (!parts.length) return atom('dead');
      const open = parts.filter((part) => part.kind !== 'tenant' && !(part.kind === 'unowned' && env.clause === 'using'));
      if (!open.length) return atom('tenant');
      return widest(open);
    }
    case 'not': {
      const inner = classifyAtom(env, node.arg);
      switch (inner.kind) {
        case 'dead':
          return atom('always-true');
        case 'always-true':
          return atom('dead');
        case 'fail-open':
          return atom('context-check');
        case 'context-check':
          return atom('fail-open');
        case 'other-setting':
          return inner;
        default:
          return atom('row-predicate');
      }
    }
    case 'null-test': {
      // current_setting(name) without missing_ok is never NULL: it raises an error instead.
      if (!node.negated && strictSettingCall(node.arg)) return atom('dead');
      const value = valueOf(env, node.arg);
      if (value.kind === 'tenant') return atom(node.negated ? 'context-check' : 'fail-open');
      if (value.kind === 'setting') return atom('other-setting', value.names);
      if (value.kind === 'column' && !node.negated && env.tenantColumns.has(value.name)) return atom('unowned');
      if (value.kind === 'constant') return atom((value.value === null) !== node.negated ? 'always-true' : 'dead');
      return fallbackAtom(env, node);
    }
    case 'bool-test': {
      const inner = classifyAtom(env, node.arg);
      switch (node.test) {
        case 'TRUE':
          return inner;
        case 'FALSE':
        case 'NOT TRUE':
          return classifyAtom(env, { kind: 'not', arg: node.arg });
        case 'NOT FALSE':
        case 'UNKNOWN':
          // A tenant comparison is NULL, not false, when the tenant is missing: these forms let it through.
          return inner.kind === 'tenant' ? atom('fail-open') : node.test === 'NOT FALSE' ? inner : fallbackAtom(env, node);
        default:
          return fallbackAtom(env, node);
      }
    }
    case 'op':
      if (node.left && ['=', '<>', '!='].includes(node.op)) return compareAtom(env, node.op, node.left, node.right);
      return fallbackAtom(env, node);
    case 'distinct':
      return node.negated ? compareAtom(env, '=', node.left, node.right) : compareAtom(env, '<>', node.left, node.right);
    case 'quantified': {
      const left = valueOf(env, node.left);
      if (node.right.kind === 'select') {
        if (node.op === '=' && (left.kind === 'column' || left.kind === 'row') && subselectRestricted(env, node.right)) return atom('tenant');
        return fallbackAtom(env, node.left);
      }
      const right = valueOf(env, node.right);
      if (node.op === '=' && (left.kind === 'column' || left.kind === 'row') && isSessionValue(right)) return atom('tenant');
      return fallbackAtom(env, node);
    }
    case 'in': {
      if (node.negated) return classifyAtom(env, { kind: 'not', arg: { ...node, negated: false } });
      const left = valueOf(env, node.left);
      if (node.subquery) {
        if ((left.kind === 'column' || left.kind === 'row') && subselectRestricted(env, node.subquery)) return atom('tenant');
        const sources = sourcesOf(env, { kind: 'subquery', subquery: node.subquery });
        if (!sources.tenant && sources.settings.length) return atom('other-setting', sources.settings);
        return atom('row-predicate');
      }
      const list = node.list ?? [];
      if (!list.length) return atom('dead');
      return classifyAtom(env, { kind: 'or', args: list.map((item): ExpressionNode => ({ kind: 'op', op: '=', left: node.left, right: item })) });
    }
    case 'exists': {
      const select = node.subquery;
      if (correlated(env, select)) return subselectRestricted(env, select) ? atom('tenant') : atom('row-predicate');
      const sources = sourcesOf(env, { kind: 'subquery', subquery: select });
      if (sources.settings.length && !sources.tenant) return atom('other-setting', sources.settings);
      return atom('row-predicate');
    }
    case 'column':
      return atom('row-predicate');
    default:
      return fallbackAtom(env, node);
  }
}

const WIDTH: Record<OpenKind, number> = { 'always-true': 4, 'row-predicate': 3, 'other-setting': 2, 'fail-open': 2 };

function widest(atoms: Atom[]): Atom {
  const open = atoms.filter((part): part is Atom & { kind: OpenKind } => part.kind in WIDTH);
  if (!open.length) return atom(atoms.some((part) => part.kind === 'context-check') ? 'always-true' : 'row-predicate');
  return open.reduce((best, part) => (WIDTH[part.kind] > WIDTH[best.kind] ? part : best));
}

/** A conjunction with no tenant condition: its narrowest condition decides how it admits rows. */
function combine(atoms: Atom[], clause: Clause): Atom {
  const settings = [...new Set(atoms.flatMap((part) => part.settings))];
  if (atoms.some((part) => part.kind === 'fail-open')) return atom('fail-open', settings);
  if (atoms.some((part) => part.kind === 'other-setting')) return atom('other-setting', settings);
  if (atoms.some((part) => part.kind === 'unowned')) return atom(clause === 'using' ? 'unowned' : 'row-predicate');
  if (atoms.some((part) => part.kind === 'row-predicate')) return atom('row-predicate');
  return atom('always-true');
}

const MAX_BRANCHES = 64;

/** Disjunctive normal form: the ways the expression can be true, each a list of conditions that must all hold. */
function branchesOf(node: ExpressionNode): ExpressionNode[][] {
  if (node.kind === 'or') {
    const out = node.args.flatMap(branchesOf);
    return out.length > MAX_BRANCHES ? [[node]] : out;
  }
  if (node.kind === 'and') {
    let out: ExpressionNode[][] = [[]];
    for (const arg of node.args) {
      const options = branchesOf(arg);
      if (out.length * options.length > MAX_BRANCHES) return [[node]];
      out = out.flatMap((prefix) => options.map((option) => [...prefix, ...option]));
    }
    return out;
  }
  return [[node]];
}

function reasonFor(env: Env, atoms: ExpressionNode[], kind: Branch['kind']): string {
  const decisive = atoms.find((node) => {
    const classified = classifyAtom(env, node).kind;
    return kind === 'always-true' ? classified === 'always-true' || classified === 'context-check' : classified === kind;
  });
  return decisive ? render(decisive) : atoms.map(render).join(' AND ');
}

function analyzeNode(env: Env, root: ExpressionNode): ExpressionAnalysis {
  const branches: Branch[] = branchesOf(root).map((conjunction) => {
    const atoms = conjunction.map((node) => classifyAtom(env, node));
    let result: Atom;
    if (atoms.some((part) => part.kind === 'dead')) result = atom('dead');
    else if (atoms.some((part) => part.kind === 'tenant')) result = atom('tenant');
    else result = combine(atoms, env.clause);
    const kind = result.kind === 'context-check' ? 'always-true' : result.kind;
    return {
      text: conjunction.map(render).join(' AND '),
      kind,
      settings: result.settings,
      reason: kind === 'tenant' || kind === 'dead' ? '' : reasonFor(env, conjunction, kind),
    };
  });
  return {
    text: render(root),
    branches,
    open: branches.filter((branch): branch is Branch & { kind: OpenKind } => branch.kind in WIDTH),
  };
}

// ------------------------------------------------------------------------------------------------------------
// Public API

/** Columns that hold the relation's tenant: its planned tenant column, the tenant key of the tenant table, tenant columns it has. */
export function tenantColumnsOf(scope: AnalysisScope, relation: Relation): Set<string> {
  const columns = new Set<string>();
  const relationPlan = relationPlanOf(scope.plan, relation.qualified);
  if (relationPlan?.tenantColumn) columns.add(relationPlan.tenantColumn);
  for (const column of relation.columns) if (scope.plan.tenantColumns.includes(column.name)) columns.add(column.name);
  return columns;
}

const analyses = new WeakMap<TenancyPlan, Map<string, ExpressionAnalysis>>();
const parsed = new Map<string, { node: ExpressionNode; settings: SettingUse[] }>();

/** Parse (and find the setting uses of) pg_get_expr text once: the same expression repeats across tables. */
function parsedExpression(text: string): { node: ExpressionNode; settings: SettingUse[] } {
  let entry = parsed.get(text);
  if (!entry) {
    if (parsed.size > 10_000) parsed.clear();
    const node = parseExpression(text);
    entry = { node, settings: settingUses(node) };
    parsed.set(text, entry);
  }
  return entry;
}

function environment(scope: AnalysisScope, relation: Relation, clause: Clause, visiting: Set<string>): Env {
  return { scope, relation, rowNames: new Set([relation.name]), tenantColumns: tenantColumnsOf(scope, relation), clause, visiting };
}

/** Analyse one pg_get_expr text of a policy on `relation`. Cached per plan. */
export function analyzeExpression(scope: AnalysisScope, relation: Relation, text: string, clause: Clause, visiting: Set<string> = new Set()): ExpressionAnalysis {
  let cache = analyses.get(scope.plan);
  if (!cache) {
    cache = new Map();
    analyses.set(scope.plan, cache);
  }
  const key = `${relation.qualified}\u0000${clause}\u0000${text}`;
  const cached = cache.get(key);
  if (cached) return cached;
  const result = analyzeNode(environment(scope, relation, clause, new Set([...visiting, relation.qualified])), parsedExpression(text).node);
  // Results that depended on a relation being visited (a cycle) are not cached.
  if (!visiting.size) cache.set(key, result);
  return result;
}

/** Policies that apply to the role for a command: PUBLIC's and those of roles whose rights it has without SET ROLE. */
export function applyingPolicies(scope: AnalysisScope, relation: Relation, command: Command): Policy[] {
  const roles = inheritedBy(scope.catalog, scope.plan.role);
  return relation.policies.filter(
    (policy) => (policy.command === 'ALL' || policy.command === command) && policy.roles.some((role) => role === 'public' || roles.has(role)),
  );
}

/** The expression a policy applies for a clause: WITH CHECK falls back to USING (ALL and UPDATE policies). */
export function clauseText(policy: Policy, clause: Clause): string | null {
  return clause === 'using' ? policy.using : (policy.withCheck ?? policy.using);
}

export interface OpenPath {
  /** The permissive policy whose branch lets rows through. */
  policy: Policy;
  branch: Branch;
  /** What gets through once the restrictive policies are ANDed in. */
  kind: OpenKind;
  /** Restrictive policies that apply and did not fence this branch. */
  restrictive: Policy[];
}

export interface CommandPolicies {
  /** A restrictive policy that ties every row to the tenant: no permissive policy can widen access. */
  fence: Policy | null;
  open: OpenPath[];
}

/** What the role's policies for a command let through, permissive ORed, restrictive ANDed. */
export function commandPolicies(scope: AnalysisScope, relation: Relation, command: Command, clause: Clause, visiting: Set<string> = new Set()): CommandPolicies {
  const applying = applyingPolicies(scope, relation, command);
  const permissive = applying.filter((policy) => policy.permissive && clauseText(policy, clause) !== null);
  // A restrictive policy without the clause restricts nothing for it.
  const restrictive = applying.filter((policy) => !policy.permissive && clauseText(policy, clause) !== null);
  const restrictiveOpen = restrictive.map((policy) => ({ policy, open: analyzeExpression(scope, relation, clauseText(policy, clause)!, clause, visiting).open }));
  const fence = restrictiveOpen.find((entry) => !entry.open.length)?.policy ?? null;
  const open: OpenPath[] = [];
  if (!fence) {
    for (const policy of permissive) {
      for (const branch of analyzeExpression(scope, relation, clauseText(policy, clause)!, clause, visiting).open) {
        let kind = branch.kind as OpenKind;
        for (const entry of restrictiveOpen) {
          const allowed = entry.open.reduce((best, candidate) => (WIDTH[candidate.kind as OpenKind] > WIDTH[best.kind as OpenKind] ? candidate : best));
          if (WIDTH[allowed.kind as OpenKind] < WIDTH[kind]) kind = allowed.kind as OpenKind;
        }
        open.push({ policy, branch, kind, restrictive });
      }
    }
  }
  return { fence, open };
}

/** Row-level security applies to the role on this relation (not a superuser, BYPASSRLS or unforced owner). */
export function rlsApplies(scope: AnalysisScope, relation: Relation): boolean {
  if (!relation.rlsEnabled) return false;
  const role = roleNamed(scope.catalog, scope.plan.role);
  if (role?.superuser || role?.bypassRls) return false;
  return relation.rlsForced || !inheritedBy(scope.catalog, scope.plan.role).has(relation.owner);
}

/** True when reading the relation as the role returns only the current tenant's rows (used for FK-path sub-selects). */
function rlsRestrictsReads(scope: AnalysisScope, relation: Relation, visiting: Set<string>): boolean {
  if (visiting.has(relation.qualified) || !rlsApplies(scope, relation)) return false;
  const reads = commandPolicies(scope, relation, 'SELECT', 'using', visiting);
  // No permissive policy: the role reads nothing, which is restricted too.
  return reads.open.every((path) => path.kind === 'fail-open' || path.kind === 'other-setting');
}

/** Every current_setting use in the policies that apply to the role on a relation. */
export function policySettingUses(scope: AnalysisScope, relation: Relation): { policy: Policy; uses: SettingUse[] }[] {
  const roles = inheritedBy(scope.catalog, scope.plan.role);
  return relation.policies
    .filter((policy) => policy.roles.some((role) => role === 'public' || roles.has(role)))
    .map((policy) => ({
      policy,
      uses: [policy.using, policy.withCheck].filter((text): text is string => text !== null).flatMap((text) => parsedExpression(text).settings),
    }))
    .filter((entry) => entry.uses.length);
}

export interface CommandClause {
  command: Command;
  clause: Clause;
}

/** Where a policy decides which rows a command may touch (USING) and which rows it may write (WITH CHECK). */
export const READ_CLAUSES: readonly CommandClause[] = [
  { command: 'SELECT', clause: 'using' },
  { command: 'UPDATE', clause: 'using' },
  { command: 'DELETE', clause: 'using' },
];
export const WRITE_CLAUSES: readonly CommandClause[] = [
  { command: 'INSERT', clause: 'check' },
  { command: 'UPDATE', clause: 'check' },
];
export const ALL_CLAUSES: readonly CommandClause[] = [...READ_CLAUSES, ...WRITE_CLAUSES];

export interface OpenPolicy {
  policy: Policy;
  /** Commands (and clauses) through which the policy lets rows through. */
  uses: CommandClause[];
  /** Its open branches, with the kind that gets through once restrictive policies are ANDed in. */
  branches: { branch: Branch; kind: OpenKind }[];
  /** Restrictive policies that apply and do not fence it. */
  restrictive: Policy[];
}

/**
 * Permissive policies that let rows through without the tenant, for the commands the role may run, keeping the
 * branches whose effective kind is one of `kinds`. Empty unless row-level security is enabled on the relation.
 */
export function openPolicies(scope: AnalysisScope, relation: Relation, clauses: readonly CommandClause[], kinds: readonly OpenKind[], commands: readonly Command[]): OpenPolicy[] {
  if (!relation.rlsEnabled) return [];
  const byPolicy = new Map<string, OpenPolicy>();
  for (const { command, clause } of clauses) {
    if (!commands.includes(command)) continue;
    const result = commandPolicies(scope, relation, command, clause);
    for (const path of result.open) {
      if (!kinds.includes(path.kind)) continue;
      let entry = byPolicy.get(path.policy.name);
      if (!entry) {
        entry = { policy: path.policy, uses: [], branches: [], restrictive: path.restrictive };
        byPolicy.set(path.policy.name, entry);
      }
      if (!entry.uses.some((use) => use.command === command && use.clause === clause)) entry.uses.push({ command, clause });
      if (!entry.branches.some((known) => known.branch.text === path.branch.text && known.kind === path.kind)) entry.branches.push({ branch: path.branch, kind: path.kind });
    }
  }
  return [...byPolicy.values()];
}
