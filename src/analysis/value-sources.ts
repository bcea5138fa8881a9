/**
 * The classifier's model of values: what a value in an expression comes from (the session's identity, the role,
 * a column of the row, a constant, a parameter), read through casts, wrappers, JSON claims and identity lookups
 * (`(select id from tenants where db_user = current_user)`), and the sub-selects those are read through.
 */
import type { Relation } from '../catalog/types.js';
import { someNode, visitNodes, type Expr, type Select } from './expression.js';
import type { ContextSource, IdentityLookup, Membership } from './model.js';
import type { Env, Scope } from './classify.js';

/** Builtins whose value does not come from the session: comparing a column with them is not a tenant check. */
const NON_SESSION_BUILTINS = new Set([
  'now', 'clock_timestamp', 'statement_timestamp', 'transaction_timestamp', 'timeofday', 'random', 'gen_random_uuid', 'uuid_generate_v4',
  'pg_backend_pid', 'txid_current', 'pg_current_xact_id', 'version', 'pg_postmaster_start_time', 'inet_client_addr', 'inet_server_addr',
]);
const ROLE_KEYWORDS: Record<string, 'current_user' | 'session_user' | 'current_role'> = {
  CURRENT_USER: 'current_user', USER: 'current_user', SESSION_USER: 'session_user', CURRENT_ROLE: 'current_role',
};
/** Functions a value passes through unchanged in what matters here ('' stays '', NULL stays NULL). */
export const PASS_THROUGH = new Set(['btrim', 'trim', 'ltrim', 'rtrim', 'lower', 'upper', 'text', 'uuid', 'int4', 'int8']);
const JSON_OPS = new Set(['->', '->>', '#>', '#>>']);

export type Value =
  /**
   * The session's identity: settings, claims, session functions (`nodes`: the reference nodes it comes from);
   * `through`: read through a table of the application's (`(select user_id from sessions where id = <claim>)`).
   */
  | { kind: 'context'; nodes: Expr[]; through?: IdentityLookup }
  /** The current role (`through`: mapped by a table, `(select id from tenants where db_user = current_user)`). */
  | { kind: 'role'; nodes: Expr[]; through?: IdentityLookup }
  | { kind: 'column'; name: string; relation: Relation | null }
  /** coalesce(context, column): the column itself when the context is NULL. */
  | { kind: 'fallback-column'; name: string; nodes: Expr[] }
  | { kind: 'constant'; value: string | null }
  /** A function parameter: whatever the caller passes. */
  | { kind: 'param' }
  /** Depends on the row in a way that is not a plain column. */
  | { kind: 'row' }
  | { kind: 'unknown' };

export function stringValue(node: Expr | undefined): string | null {
  if (!node) return null;
  if (node.kind === 'cast') return stringValue(node.arg);
  return node.kind === 'literal' && node.type === 'string' ? node.value : null;
}

/** The setting a `current_setting('x' [, missing_ok])` call reads, or null. */
export function settingCall(node: Expr | Select): { setting: string; missingOk: boolean } | null {
  if (node.kind !== 'call' || node.name !== 'current_setting') return null;
  const setting = stringValue(node.args[0]);
  if (setting === null) return null;
  const flag = node.args[1];
  // A missing_ok that is not a literal false is given the benefit of the doubt.
  const missingOk = flag !== undefined && !(flag.kind === 'literal' && (flag.value === 'false' || flag.value === 'f'));
  return { setting, missingOk };
}

/** The context source a node produces by itself (a reference node), or null. */
export function referenceSource(scope: Scope, node: Expr, schemas: string[]): ContextSource | null {
  const call = settingCall(node);
  if (call) {
    if (call.setting.startsWith('request.jwt.claim.')) return { kind: 'jwt-claim', setting: call.setting, function: null, path: [call.setting.slice('request.jwt.claim.'.length)] };
    return { kind: 'setting', setting: call.setting };
  }
  if (node.kind === 'keyword' && ROLE_KEYWORDS[node.name]) return { kind: 'role', keyword: ROLE_KEYWORDS[node.name]! };
  if (node.kind === 'call' && !node.args.length && !NON_SESSION_BUILTINS.has(node.name) && node.name !== 'current_setting') {
    const fn = scope.functionNamed(node.name, 0, schemas);
    if (!fn || scope.readsSession(fn)) return { kind: 'function', function: node.name };
  }
  return null;
}

export function referenceKey(source: ContextSource): string {
  switch (source.kind) {
    case 'setting':
      return `setting:${source.setting}`;
    case 'jwt-claim':
      return source.setting ? `jwt:${source.setting}:${source.path.join('.')}` : `jwt-fn:${source.function}:${source.path.join('.')}`;
    case 'function':
      return `function:${source.function}`;
    case 'role':
      return `role:${source.keyword}`;
  }
}

/** A value without the wrappers that keep it: casts, nullif(x, ''), coalesce(x, ...), `(select x)`. */
function stripValue(node: Expr): Expr {
  if (node.kind === 'cast') return stripValue(node.arg);
  if (node.kind === 'call' && (node.name === 'nullif' || node.name === 'coalesce') && node.args.length) return stripValue(node.args[0]!);
  if (node.kind === 'subquery' && !node.subquery.setOperation && !node.subquery.from.length && !node.subquery.where && node.subquery.targets.length === 1) return stripValue(node.subquery.targets[0]!);
  return node;
}

export function claimPath(node: Expr): { base: Expr; path: string[] } | null {
  const stripped = stripValue(node);
  if (stripped.kind === 'op' && stripped.left && JSON_OPS.has(stripped.op)) {
    const key = stringValue(stripped.right);
    const inner = claimPath(stripped.left);
    // `#>` and `#>>` take a path: a text[] literal ('{app_metadata,tenant_id}') or an ARRAY[...].
    const byPath = stripped.op.startsWith('#');
    const keys = key !== null ? (byPath ? textArrayItems(key) : [key]) : stripped.right.kind === 'array' ? stripped.right.items.map(stringValue).filter((item): item is string => item !== null) : [];
    if (inner) return { base: inner.base, path: [...inner.path, ...keys] };
    return { base: stripValue(stripped.left), path: keys };
  }
  return null;
}

/** The items of a one-dimensional array literal's text (`{a,"b c"}`), as PostgreSQL's array input reads them. */
export function textArrayItems(text: string): string[] {
  const body = text.trim();
  if (!body.startsWith('{') || !body.endsWith('}')) return [text];
  const items: string[] = [];
  let current = '';
  let quoted = false;
  let started = false;
  for (let index = 1; index < body.length - 1; index += 1) {
    const char = body[index]!;
    if (char === '\\') {
      current += body[index + 1] ?? '';
      index += 1;
      started = true;
    } else if (char === '"') {
      quoted = !quoted;
      started = true;
    } else if (char === ',' && !quoted) {
      items.push(started ? current : current.trim());
      current = '';
      started = false;
    } else if (quoted || char.trim()) {
      current += char;
      started = true;
    }
  }
  if (started || current || items.length) items.push(current);
  return items;
}

export function isRowColumn(env: Env, node: Expr): node is Extract<Expr, { kind: 'column' }> {
  if (node.kind !== 'column') return false;
  if (node.qualifier === null) return true;
  return env.rowNames.has(node.qualifier.split('.').pop()!);
}

export function columnRelation(env: Env, node: Extract<Expr, { kind: 'column' }>): Relation | null {
  if (node.qualifier !== null) return env.aliases.get(node.qualifier.split('.').pop()!) ?? env.relation;
  if (env.relation) return env.relation;
  for (const relation of env.aliases.values()) if (relation.columns.some((column) => column.name === node.name)) return relation;
  return null;
}

interface Sources {
  row: boolean;
  context: Expr[];
  role: Expr[];
  param: boolean;
  unknownCall: boolean;
}

/** What an arbitrary expression reads: row columns, context references, the role, parameters. */
export function sourcesOf(env: Env, root: Expr | Select): Sources {
  const sources: Sources = { row: false, context: [], role: [], param: false, unknownCall: false };
  visitNodes(root, (node, ancestors) => {
    if (node.kind === 'select') return;
    if (node.kind === 'column') {
      // A sub-select without FROM (`(select f(team_id))`) has no columns of its own: its columns are the row's.
      const inSubselect = ancestors.some((ancestor) => ancestor.kind === 'select' && (ancestor.from.length > 0 || ancestor.setOperation !== null));
      if (!inSubselect ? isRowColumn(env, node) : node.qualifier !== null && env.rowNames.has(node.qualifier)) sources.row = true;
      return;
    }
    if (node.kind === 'param') sources.param = true;
    if (node.kind !== 'call' && node.kind !== 'keyword') return;
    const source = referenceSource(env.scope, node, env.schemas);
    if (source?.kind === 'role') sources.role.push(node);
    else if (source) sources.context.push(node);
    if (node.kind === 'call' && !source && env.scope.functionNamed(node.name, node.args.length, env.schemas)) sources.unknownCall = true;
  });
  return sources;
}

export function valueOf(env: Env, node: Expr): Value {
  const source = referenceSource(env.scope, node, env.schemas);
  if (source) return source.kind === 'role' ? { kind: 'role', nodes: [node] } : { kind: 'context', nodes: [node] };
  switch (node.kind) {
    case 'cast':
      return valueOf(env, node.arg);
    case 'inlined':
      return valueOf(env, node.body);
    case 'column':
      return isRowColumn(env, node) ? { kind: 'column', name: node.name, relation: columnRelation(env, node) } : { kind: 'unknown' };
    case 'literal':
      return { kind: 'constant', value: node.value };
    case 'param':
      return { kind: 'param' };
    case 'keyword':
      return { kind: 'constant', value: null };
    case 'subquery': {
      const select = node.subquery;
      if (!select.setOperation && !select.from.length && select.targets.length === 1 && !select.where) return valueOf(env, select.targets[0]!);
      const value = fromSources(sourcesOf(env, node), true);
      const through = value.kind === 'context' || value.kind === 'role' ? lookupOf(env, select) : null;
      return through && (value.kind === 'context' || value.kind === 'role') ? { ...value, through } : value;
    }
    case 'op': {
      if (node.left && JSON_OPS.has(node.op)) {
        const inner = valueOf(env, node.left);
        if (inner.kind === 'context') return { kind: 'context', nodes: [node] };
        return inner.kind === 'column' ? { kind: 'row' } : inner;
      }
      return fromSources(sourcesOf(env, node), false);
    }
    case 'call': {
      if (node.name === 'nullif' && node.args.length === 2) return valueOf(env, node.args[0]!);
      if (PASS_THROUGH.has(node.name) && node.args.length >= 1) return valueOf(env, node.args[0]!);
      if (node.name === 'coalesce' && node.args.length) {
        const first = valueOf(env, node.args[0]!);
        const fallbackColumn = node.args.slice(1).map((arg) => valueOf(env, arg)).find((value) => value.kind === 'column');
        if (fallbackColumn?.kind === 'column' && (first.kind === 'context' || first.kind === 'role')) return { kind: 'fallback-column', name: fallbackColumn.name, nodes: first.nodes };
        return first;
      }
      const sources = sourcesOf(env, node);
      if (!sources.row && !node.args.length) return { kind: 'constant', value: null };
      return fromSources(sources, false);
    }
    default:
      return fromSources(sourcesOf(env, node), false);
  }
}

function fromSources(sources: Sources, subselect: boolean): Value {
  if (sources.row) return { kind: 'row' };
  if (sources.context.length) return { kind: 'context', nodes: sources.context };
  if (sources.role.length) return { kind: 'role', nodes: sources.role };
  if (sources.param) return { kind: 'param' };
  return subselect ? { kind: 'unknown' } : { kind: 'constant', value: null };
}

export function constantsEqual(left: Value, right: Value): boolean | null {
  if (left.kind !== 'constant' || right.kind !== 'constant') return null;
  if (left.value === null || right.value === null) return null;
  if (left.value === right.value) return true;
  const a = Number(left.value);
  const b = Number(right.value);
  if (Number.isFinite(a) && Number.isFinite(b)) return a === b;
  return false;
}

export const isRowValue = (value: Value): value is Extract<Value, { kind: 'column' }> | { kind: 'row' } => value.kind === 'column' || value.kind === 'row';

/**
 * A scalar sub-select that maps the context through one table (`select id from tenants where db_user =
 * current_user`, `select user_id from app_private.sessions where id = <claim>`, helpers inlined): the table,
 * the column compared with the context and the column returned. Null for any other shape.
 */
function lookupOf(env: Env, raw: Select): IdentityLookup | null {
  const select = effectiveSelect(raw);
  if (select.setOperation || select.from.length !== 1 || select.targets.length !== 1 || !select.where) return null;
  const item = select.from[0]!;
  const table = item.relation ? resolveRelation(env, item.relation) : undefined;
  if (!table) return null;
  const names = new Set([item.alias ?? table.name, table.name]);
  const ownColumn = (node: Expr): string | null => {
    const stripped = node.kind === 'cast' ? node.arg : node;
    if (stripped.kind !== 'column' || (stripped.qualifier !== null && !names.has(stripped.qualifier.split('.').pop()!))) return null;
    return table.columns.some((column) => column.name === stripped.name) ? stripped.name : null;
  };
  const target = select.targets[0]!;
  const valueColumn = ownColumn(target);
  if (!valueColumn) return null;
  const conditions = select.where.kind === 'and' ? select.where.args : [select.where];
  for (const condition of conditions) {
    if (condition.kind !== 'op' || condition.op !== '=' || !condition.left) continue;
    for (const [column, other] of [[condition.left, condition.right], [condition.right, condition.left]] as const) {
      const keyColumn = ownColumn(column);
      if (!keyColumn) continue;
      const sources = sourcesOf({ ...env, rowNames: new Set() }, other);
      if (sources.context.length + sources.role.length && !sources.param) return { table: table.qualified, keyColumn, valueColumn };
    }
  }
  return null;
}

export function resolveRelation(env: Env, name: string): Relation | undefined {
  return env.scope.relationNamed(name, env.schemas);
}

/** The select a sub-select stands for once `select f()` and `from f()` of inlined set-returning helpers are looked through. */
export function effectiveSelect(select: Select): Select {
  if (!select.setOperation && !select.from.length && !select.where && select.targets.length === 1) {
    const target = select.targets[0]!;
    const body = target.kind === 'inlined' ? target.body : target;
    if (body.kind === 'subquery') return effectiveSelect(body.subquery);
  }
  if (!select.setOperation && select.from.length === 1 && select.from[0]!.call?.kind === 'inlined') {
    const body = (select.from[0]!.call as Extract<Expr, { kind: 'inlined' }>).body;
    if (body.kind === 'subquery' && !select.where) return effectiveSelect(body.subquery);
  }
  return select;
}

/** Does the sub-select refer to the outer row? (pg_get_expr qualifies outer columns with the relation name.) */
export function correlated(env: Env, select: Select): boolean {
  const aliases = new Set(select.from.map((item) => item.alias));
  return someNode(select, (node) => {
    if (node.kind !== 'column' || node.qualifier === null) return false;
    const qualifier = node.qualifier.split('.').pop()!;
    return env.rowNames.has(qualifier) && !aliases.has(qualifier);
  });
}

/** A bare current_setting(name) (through casts and the initplan wrapper) without missing_ok: never NULL. */
export function strictSettingCall(node: Expr): boolean {
  if (node.kind === 'cast') return strictSettingCall(node.arg);
  if (node.kind === 'subquery' && !node.subquery.from.length && node.subquery.targets.length === 1) return strictSettingCall(node.subquery.targets[0]!);
  const call = settingCall(node);
  return call !== null && !call.missingOk;
}

export function membershipFor(env: Env, left: Value, select: Select): Membership | null {
  const inner = effectiveSelect(select);
  const first = inner.from[0]?.relation ? resolveRelation(env, inner.from[0].relation) : undefined;
  if (!first) return null;
  const target = inner.targets[0];
  return { table: first.qualified, column: target?.kind === 'column' ? target.name : '(expression)', rowColumn: left.kind === 'column' ? left.name : null };
}
