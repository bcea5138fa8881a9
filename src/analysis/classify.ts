/**
 * What a boolean expression does with the current tenant or actor: its ways of being true (disjunctive normal form)
 * and, for each, whether it ties the row to a context reference by equality (`confined`) or lets rows through
 * without that (`open`, with the kind and the decisive fragment), or cannot be decided (`unknown`).
 *
 * Used for policy USING / WITH CHECK (rows of the policy's relation) and for the filters of statements in view
 * definitions and function bodies (rows of the relations in FROM).
 */
import type { Catalog, FunctionInfo, Relation } from '../catalog/types.js';
import { childrenOf, render, someNode, visitNodes, type Expr, type Select } from './expression.js';
import type { Branch, BranchKind, Clause, ContextReference, ContextSource, ContextUse, IdentityLookup, Membership, OpenKind, RowFlag } from './model.js';
import { columnOf } from '../catalog/lookup.js';

/** What the classifier needs from the rest of the analysis (kept as an interface so there is no import cycle). */
export interface Scope {
  catalog: Catalog;
  /** Roles whose privileges the analysed role has without SET ROLE (for `current_user = 'x'`); null when no role. */
  inherited: Set<string> | null;
  relationNamed(name: string, schemas: string[]): Relation | undefined;
  /** A catalog function called by `name` with `arity` arguments. */
  functionNamed(name: string, arity: number, schemas: string[]): FunctionInfo | undefined;
  /** The parsed body of a function as one expression of its parameters ($1..$n), or null when it is not that simple. */
  inlineBody(fn: FunctionInfo): Expr | null;
  /** True when the function's body reads the session (a setting, a claim, the role, a session function). */
  readsSession(fn: FunctionInfo): boolean;
  /** Reading this relation as the role returns only context rows (its SELECT policies confine them). */
  readsConfined(relation: Relation, visiting: Set<string>): boolean;
  /** Replace calls of helper functions by their bodies; `rowName` qualifies the row's columns passed to them. */
  expand(root: Expr, rowName: string | null, schemas: string[]): Expr;
}

export interface Env {
  scope: Scope;
  /** The relation whose rows are filtered; null in a statement over several relations. */
  relation: Relation | null;
  /** Schemas unqualified names resolve in. */
  schemas: string[];
  /** Qualifiers of the row's columns (the relation name or the FROM aliases); unqualified columns are row columns too. */
  rowNames: Set<string>;
  /** alias -> relation for the FROM items of the filtered statement. */
  aliases: Map<string, Relation>;
  /** Columns compared with the context elsewhere in the relation's policies: `col IS NULL` on them admits unowned rows. */
  keyColumns: Set<string>;
  clause: Clause;
  visiting: Set<string>;
  /** Collected context references (by node), with their use. */
  references: Map<Expr, { source: ContextSource; via: string | null; use: ContextUse }>;
  /** Membership sub-select being classified (for references found in it). */
  membership: Membership | null;
}

// ------------------------------------------------------------------------------------------------------------
// Values

/** Builtins whose value does not come from the session: comparing a column with them is not a tenant check. */
const NON_SESSION_BUILTINS = new Set([
  'now', 'clock_timestamp', 'statement_timestamp', 'transaction_timestamp', 'timeofday', 'random', 'gen_random_uuid', 'uuid_generate_v4',
  'pg_backend_pid', 'txid_current', 'pg_current_xact_id', 'version', 'pg_postmaster_start_time', 'inet_client_addr', 'inet_server_addr',
]);
const ROLE_KEYWORDS: Record<string, 'current_user' | 'session_user' | 'current_role'> = {
  CURRENT_USER: 'current_user', USER: 'current_user', SESSION_USER: 'session_user', CURRENT_ROLE: 'current_role',
};
/** Functions a value passes through unchanged in what matters here ('' stays '', NULL stays NULL). */
const PASS_THROUGH = new Set(['btrim', 'trim', 'ltrim', 'rtrim', 'lower', 'upper', 'text', 'uuid', 'int4', 'int8']);
const JSON_OPS = new Set(['->', '->>', '#>', '#>>']);
const TEXT_TYPES = new Set(['text', 'character varying', 'varchar', 'character', 'char', 'bpchar', 'name', '"char"', 'citext', 'unknown']);

type Value =
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

function stringValue(node: Expr | undefined): string | null {
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

function claimPath(node: Expr): { base: Expr; path: string[] } | null {
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

function isRowColumn(env: Env, node: Expr): node is Extract<Expr, { kind: 'column' }> {
  if (node.kind !== 'column') return false;
  if (node.qualifier === null) return true;
  return env.rowNames.has(node.qualifier.split('.').pop()!);
}

function columnRelation(env: Env, node: Extract<Expr, { kind: 'column' }>): Relation | null {
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
function sourcesOf(env: Env, root: Expr | Select): Sources {
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

function valueOf(env: Env, node: Expr): Value {
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

// ------------------------------------------------------------------------------------------------------------
// Atoms: one condition of a conjunction

type AtomKind = BranchKind | 'context-check';

interface Atom {
  kind: AtomKind;
  settings: string[];
  reason?: string;
}

const atom = (kind: AtomKind, settings: string[] = [], reason?: string): Atom => ({ kind, settings, ...(reason ? { reason } : {}) });

/** Record how the reference nodes of a value are used (first use wins: a node is classified the same way each time). */
function use(env: Env, nodes: Expr[], how: ContextUse): void {
  for (const node of nodes) {
    if (env.references.has(node)) continue;
    const source = sourceOfValueNode(env, node);
    if (source) env.references.set(node, { source, via: null, use: how });
  }
}

function sourceOfValueNode(env: Env, node: Expr): ContextSource | null {
  const direct = referenceSource(env.scope, node, env.schemas);
  if (direct) return direct;
  const claim = claimPath(node);
  if (claim) {
    const base = referenceSource(env.scope, claim.base, env.schemas) ?? inlinedSessionFunction(env, claim.base);
    if (base?.kind === 'setting') return { kind: 'jwt-claim', setting: base.setting, function: null, path: claim.path };
    if (base?.kind === 'function') return { kind: 'jwt-claim', setting: null, function: base.function, path: claim.path };
    if (base) return base;
  }
  return null;
}

/**
 * A session function without arguments that the analysis inlined (`auth.jwt()`, whose body reads request.jwt.claims):
 * the claims a JSON operator reads from it are that function's claims (`auth.jwt() -> 'user_metadata' ->> 'org_id'`).
 */
function inlinedSessionFunction(env: Env, node: Expr): ContextSource | null {
  if (node.kind !== 'inlined' || node.call.kind !== 'call' || node.call.args.length) return null;
  const fn = env.scope.functionNamed(node.call.name, 0, env.schemas);
  return fn && env.scope.readsSession(fn) ? { kind: 'function', function: node.call.name } : null;
}

function settingNames(env: Env, nodes: Expr[]): string[] {
  const names = new Set<string>();
  for (const node of nodes) {
    const source = sourceOfValueNode(env, node);
    if (source?.kind === 'setting' || (source?.kind === 'jwt-claim' && source.setting)) names.add(source.setting!);
    else if (source?.kind === 'jwt-claim' && source.function) names.add(`${source.function}()`);
    else if (source?.kind === 'function') names.add(`${source.function}()`);
  }
  return [...names];
}

function roleHas(env: Env, name: string | null): boolean | null {
  if (name === null || env.scope.inherited === null) return null;
  return env.scope.inherited.has(name);
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

const isRowValue = (value: Value): value is Extract<Value, { kind: 'column' }> | { kind: 'row' } => value.kind === 'column' || value.kind === 'row';

function equalityUse(env: Env, value: Value, context?: Value): ContextUse {
  const relation = value.kind === 'column' ? (value.relation ?? env.relation) : env.relation;
  const column = value.kind === 'column' ? value.name : '(expression)';
  const through = context && (context.kind === 'context' || context.kind === 'role') ? context.through : undefined;
  return { kind: 'equality', relation: relation?.qualified ?? '(unknown)', column, membership: env.membership, ...(through ? { through } : {}) };
}

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

function isBooleanLiteral(node: Expr): node is Extract<Expr, { kind: 'literal' }> {
  return node.kind === 'literal' && node.type === 'boolean';
}

function compareAtom(env: Env, op: string, leftNode: Expr, rightNode: Expr): Atom {
  // A condition compared with a boolean constant (`is_member_of(team_id) = true`) is that condition, or its negation.
  if (op === '=' || op === '<>' || op === '!=') {
    for (const [condition, constant] of [[leftNode, rightNode], [rightNode, leftNode]] as const) {
      if (!isBooleanLiteral(constant) || isBooleanLiteral(condition)) continue;
      return (constant.value === 'true') === (op === '=') ? classifyAtom(env, condition) : classifyAtom(env, { kind: 'not', arg: condition });
    }
  }
  const left = valueOf(env, leftNode);
  const right = valueOf(env, rightNode);
  const pairs: [Value, Value][] = [
    [left, right],
    [right, left],
  ];
  if (op === '=') {
    const equal = constantsEqual(left, right);
    if (equal !== null) return atom(equal ? 'always-true' : 'dead');
    if (left.kind === 'column' && right.kind === 'column' && left.name === right.name && left.relation === right.relation) return atom('always-true');
    for (const [a, b] of pairs) {
      if (a.kind === 'fallback-column' && b.kind === 'column' && a.name === b.name) {
        use(env, a.nodes, { kind: 'fail-open' });
        return atom('fail-open');
      }
      if (isRowValue(a) && (b.kind === 'context' || b.kind === 'role')) {
        use(env, b.nodes, equalityUse(env, a, b));
        return atom('confined');
      }
      // `= ''` is the missing context; any other constant is a flag or a magic value that opens every row.
      if (b.kind === 'constant' && a.kind === 'context') {
        if (b.value === '') {
          use(env, a.nodes, { kind: 'fail-open' });
          return atom('fail-open');
        }
        use(env, a.nodes, { kind: 'escape', constant: b.value });
        return atom('escape-setting', settingNames(env, a.nodes));
      }
      if (a.kind === 'role' && b.kind === 'constant') {
        use(env, a.nodes, { kind: 'escape', constant: b.value });
        const has = roleHas(env, b.value);
        return has === null ? atom('escape-setting', [], 'role test') : atom(has ? 'always-true' : 'dead');
      }
      if ((a.kind === 'context' || a.kind === 'role') && (b.kind === 'context' || b.kind === 'role')) {
        use(env, [...a.nodes, ...b.nodes], { kind: 'other' });
        return atom('context-check');
      }
      if (isRowValue(a) && b.kind === 'param') return atom('row-predicate', [], 'compared with a parameter the caller chooses');
    }
    if (left.kind === 'unknown' || right.kind === 'unknown') return fallbackAtom(env, { kind: 'op', op, left: leftNode, right: rightNode });
    return atom('row-predicate');
  }
  if (op === '<>' || op === '!=') {
    for (const [a, b] of pairs) {
      if (a.kind === 'context' && b.kind === 'constant' && b.value === '') {
        use(env, a.nodes, { kind: 'other' });
        return atom('context-check');
      }
      if (a.kind === 'context' && b.kind === 'constant') {
        use(env, a.nodes, { kind: 'escape', constant: b.value });
        return atom('escape-setting', settingNames(env, a.nodes));
      }
      if (a.kind === 'role' && b.kind === 'constant') {
        use(env, a.nodes, { kind: 'escape', constant: b.value });
        const has = roleHas(env, b.value);
        return has === null ? atom('escape-setting', [], 'role test') : atom(has ? 'dead' : 'always-true');
      }
    }
    const equal = constantsEqual(left, right);
    if (equal !== null) return atom(equal ? 'dead' : 'always-true');
  }
  // Any other comparison: a row compared with the context by an operator other than equality lets through every
  // tenant on one side of it; the context compared with a constant (`length(<ctx>) > 0`) is true for every row.
  for (const [a, b] of pairs) {
    if (isRowValue(a) && (b.kind === 'context' || b.kind === 'role')) {
      const relation = a.kind === 'column' ? (a.relation ?? env.relation) : env.relation;
      use(env, b.nodes, { kind: 'non-equality', relation: relation?.qualified ?? '(unknown)', column: a.kind === 'column' ? a.name : '(expression)', operator: op });
      return atom('non-equality', [], `the row is compared with the context by ${op}, not =`);
    }
    if ((a.kind === 'context' || a.kind === 'role') && (b.kind === 'constant' || b.kind === 'context' || b.kind === 'role')) {
      use(env, a.nodes, { kind: 'other' });
      return atom('context-check');
    }
  }
  if (op === '<>' || op === '!=') return atom('row-predicate');
  return fallbackAtom(env, { kind: 'op', op, left: leftNode, right: rightNode });
}

/** When the shape is not one we know: decide by what the condition reads. */
function fallbackAtom(env: Env, node: Expr): Atom {
  const sources = sourcesOf(env, node);
  if (sources.context.length || sources.role.length) {
    use(env, [...sources.context, ...sources.role], { kind: 'other' });
    if (sources.row) return atom('unknown', [], `cannot tell how ${render(node)} relates the row to the context`);
    return atom('context-check');
  }
  if (sources.unknownCall && sources.row) return atom('unknown', [], `${render(node)} calls a function whose body could not be read`);
  return atom('row-predicate');
}

function resolveRelation(env: Env, name: string): Relation | undefined {
  return env.scope.relationNamed(name, env.schemas);
}

/** The select a sub-select stands for once `select f()` and `from f()` of inlined set-returning helpers are looked through. */
function effectiveSelect(select: Select): Select {
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

/** True when the rows a sub-select reads are limited to the context: by its WHERE, or by the RLS of what it reads. */
function subselectRestricted(env: Env, raw: Select, membership: Membership | null): boolean {
  const select = effectiveSelect(raw);
  if (select.setOperation) return select.setOperation.op === 'intersect' ? select.setOperation.arms.some((arm) => subselectRestricted(env, arm, membership)) : select.setOperation.arms.every((arm) => subselectRestricted(env, arm, membership));
  const aliases = new Map<string, Relation>();
  const resolved: (Relation | undefined)[] = [];
  for (const item of select.from) {
    const relation = item.relation ? resolveRelation(env, item.relation) : undefined;
    resolved.push(relation);
    if (relation && item.alias) aliases.set(item.alias, relation);
  }
  const innerMembership: Membership | null =
    membership ?? (resolved[0] ? { table: resolved[0].qualified, column: select.targets[0]?.kind === 'column' ? select.targets[0].name : '(expression)', rowColumn: null } : null);
  if (select.where) {
    const inner: Env = {
      ...env,
      relation: resolved.length === 1 ? (resolved[0] ?? null) : null,
      rowNames: new Set([...aliases.keys()]),
      aliases,
      keyColumns: new Set(),
      membership: innerMembership,
    };
    const branches = analyzeExpr(inner, select.where);
    if (branches.length && branches.every((branch) => branch.kind === 'confined' || branch.kind === 'dead')) return true;
  }
  for (const item of select.from) if (item.subquery && subselectRestricted(env, item.subquery, innerMembership)) return true;
  return resolved.some((relation) => relation !== undefined && env.scope.readsConfined(relation, env.visiting));
}

/** Does the sub-select refer to the outer row? (pg_get_expr qualifies outer columns with the relation name.) */
function correlated(env: Env, select: Select): boolean {
  const aliases = new Set(select.from.map((item) => item.alias));
  return someNode(select, (node) => {
    if (node.kind !== 'column' || node.qualifier === null) return false;
    const qualifier = node.qualifier.split('.').pop()!;
    return env.rowNames.has(qualifier) && !aliases.has(qualifier);
  });
}

/** A bare current_setting(name) (through casts and the initplan wrapper) without missing_ok: never NULL. */
function strictSettingCall(node: Expr): boolean {
  if (node.kind === 'cast') return strictSettingCall(node.arg);
  if (node.kind === 'subquery' && !node.subquery.from.length && node.subquery.targets.length === 1) return strictSettingCall(node.subquery.targets[0]!);
  const call = settingCall(node);
  return call !== null && !call.missingOk;
}

function membershipFor(env: Env, left: Value, select: Select): Membership | null {
  const inner = effectiveSelect(select);
  const first = inner.from[0]?.relation ? resolveRelation(env, inner.from[0].relation) : undefined;
  if (!first) return null;
  const target = inner.targets[0];
  return { table: first.qualified, column: target?.kind === 'column' ? target.name : '(expression)', rowColumn: left.kind === 'column' ? left.name : null };
}

/** CASE WHEN a THEN x WHEN b THEN y ELSE z END as (a AND x) OR (NOT a AND b AND y) OR (NOT a AND NOT b AND z). */
function caseAsBranches(node: Extract<Expr, { kind: 'case' }>): Expr {
  const conditions = node.whens.map((when) => (node.subject ? ({ kind: 'op', op: '=', left: node.subject, right: when.when } as Expr) : when.when));
  const args: Expr[] = [];
  node.whens.forEach((when, index) => {
    args.push({ kind: 'and', args: [...conditions.slice(0, index).map((condition): Expr => ({ kind: 'not', arg: condition })), conditions[index]!, when.then] });
  });
  args.push({ kind: 'and', args: [...conditions.map((condition): Expr => ({ kind: 'not', arg: condition })), node.otherwise ?? { kind: 'literal', value: null, type: 'null' }] });
  return { kind: 'or', args };
}

function classifyAtom(env: Env, node: Expr): Atom {
  switch (node.kind) {
    case 'literal':
      if (node.type === 'boolean') return atom(node.value === 'true' ? 'always-true' : 'dead');
      if (node.type === 'null') return atom('dead');
      return atom('row-predicate');
    case 'inlined':
      return classifyAtom(env, node.body);
    case 'subquery': {
      // `(select is_member_of(team_id))`, the form Supabase advises for helpers: evaluated once per statement, it
      // means what its one value means.
      const select = node.subquery;
      if (!select.setOperation && !select.from.length && !select.where && select.targets.length === 1 && !select.other.length) return classifyAtom(env, select.targets[0]!);
      return fallbackAtom(env, node);
    }
    case 'and': {
      const parts = node.args.map((arg) => classifyAtom(env, arg));
      if (parts.some((part) => part.kind === 'dead')) return atom('dead');
      if (parts.some((part) => part.kind === 'confined')) return atom('confined');
      return combine(parts, env.clause);
    }
    case 'or': {
      const parts = node.args.map((arg) => classifyAtom(env, arg)).filter((part) => part.kind !== 'dead');
      if (!parts.length) return atom('dead');
      const open = parts.filter((part) => part.kind !== 'confined' && !(part.kind === 'unowned' && env.clause === 'using'));
      if (!open.length) return atom('confined');
      return widest(open);
    }
    case 'case':
      return classifyAtom(env, caseAsBranches(node));
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
        case 'escape-setting':
        case 'unknown':
          return inner;
        default:
          // NOT (tenant_id = <ctx>) is every other tenant's rows.
          return atom('row-predicate', [], inner.kind === 'confined' ? 'negates the tenant condition' : undefined);
      }
    }
    case 'null-test': {
      // current_setting(name) without missing_ok is never NULL: it raises an error instead.
      if (!node.negated && strictSettingCall(node.arg)) return atom('dead');
      const value = valueOf(env, node.arg);
      if (value.kind === 'context' || value.kind === 'role') {
        use(env, value.nodes, node.negated ? { kind: 'other' } : { kind: 'fail-open' });
        return atom(node.negated ? 'context-check' : 'fail-open');
      }
      if (value.kind === 'column' && !node.negated && env.keyColumns.has(value.name)) return atom('unowned');
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
          return inner.kind === 'confined' ? atom('fail-open') : node.test === 'NOT FALSE' ? inner : fallbackAtom(env, node);
        default:
          return fallbackAtom(env, node);
      }
    }
    case 'op':
      if (node.left && ['=', '<>', '!=', '<', '>', '<=', '>=', '~~', '~~*', '!~~', '!~~*', '~', '~*', '@>', '<@', '&&'].includes(node.op)) {
        return compareAtom(env, node.op, node.left, node.right);
      }
      return fallbackAtom(env, node);
    case 'distinct':
      return node.negated ? compareAtom(env, '=', node.left, node.right) : compareAtom(env, '<>', node.left, node.right);
    case 'quantified': {
      const left = valueOf(env, node.left);
      if (node.right.kind === 'select') {
        if (node.op === '=' && node.quantifier === 'ANY' && isRowValue(left) && subselectRestricted(env, node.right, membershipFor(env, left, node.right))) return atom('confined');
        return fallbackAtom(env, node.left);
      }
      const right = valueOf(env, node.right);
      if (node.op === '=' && node.quantifier === 'ANY' && isRowValue(left) && (right.kind === 'context' || right.kind === 'role')) {
        use(env, right.nodes, equalityUse(env, left, right));
        return atom('confined');
      }
      if (node.op === '=' && node.quantifier === 'ANY' && right.kind === 'constant') return atom('row-predicate');
      return fallbackAtom(env, node);
    }
    case 'in': {
      if (node.negated) return classifyAtom(env, { kind: 'not', arg: { ...node, negated: false } });
      const left = valueOf(env, node.left);
      if (node.subquery) {
        if (isRowValue(left) && subselectRestricted(env, node.subquery, membershipFor(env, left, node.subquery))) return atom('confined');
        const sources = sourcesOf(env, { kind: 'subquery', subquery: node.subquery });
        if (sources.context.length && !sources.row) return atom('row-predicate', [], 'the sub-select is not limited to the context');
        return atom('row-predicate');
      }
      const items = node.list ?? [];
      if (!items.length) return atom('dead');
      return classifyAtom(env, { kind: 'or', args: items.map((item): Expr => ({ kind: 'op', op: '=', left: node.left, right: item })) });
    }
    case 'exists': {
      const select = node.subquery;
      if (correlated(env, select)) return subselectRestricted(env, select, null) ? atom('confined') : atom('row-predicate');
      const sources = sourcesOf(env, { kind: 'subquery', subquery: select });
      if (sources.context.length && !subselectRestricted(env, select, null)) return atom('row-predicate');
      return atom('row-predicate');
    }
    case 'column':
      return atom('row-predicate');
    case 'call': {
      const sources = sourcesOf(env, node);
      if (sources.context.length || sources.role.length) {
        // A bare session value used as a boolean: a flag such as current_setting('app.is_admin')::boolean.
        if (!sources.row) {
          use(env, [...sources.context, ...sources.role], { kind: 'escape', constant: null });
          return atom('escape-setting', settingNames(env, sources.context));
        }
      }
      return fallbackAtom(env, node);
    }
    case 'cast': {
      const value = valueOf(env, node.arg);
      if (value.kind === 'context' || value.kind === 'role') {
        use(env, value.nodes, { kind: 'escape', constant: null });
        return atom('escape-setting', settingNames(env, value.nodes));
      }
      return classifyAtom(env, node.arg);
    }
    default:
      return fallbackAtom(env, node);
  }
}

const WIDTH: Record<OpenKind | 'unknown', number> = { 'always-true': 5, 'row-predicate': 4, 'non-equality': 3, 'escape-setting': 2, 'fail-open': 2, unknown: 1 };

function isOpenOrUnknown(kind: AtomKind): kind is OpenKind | 'unknown' {
  return kind in WIDTH;
}

function widest(atoms: Atom[]): Atom {
  const open = atoms.filter((part) => isOpenOrUnknown(part.kind));
  if (!open.length) return atom(atoms.some((part) => part.kind === 'context-check') ? 'always-true' : 'row-predicate');
  return open.reduce((best, part) => (WIDTH[part.kind as OpenKind] > WIDTH[best.kind as OpenKind] ? part : best));
}

/** A conjunction with no confining condition: its narrowest condition decides how it admits rows. */
function combine(atoms: Atom[], clause: Clause): Atom {
  const settings = [...new Set(atoms.flatMap((part) => part.settings))];
  if (atoms.some((part) => part.kind === 'fail-open')) return atom('fail-open', settings);
  if (atoms.some((part) => part.kind === 'escape-setting')) return atom('escape-setting', settings);
  if (atoms.some((part) => part.kind === 'unknown')) return atom('unknown', settings, atoms.find((part) => part.kind === 'unknown')!.reason);
  if (atoms.some((part) => part.kind === 'non-equality')) return atom('non-equality', settings);
  if (atoms.some((part) => part.kind === 'unowned')) return atom(clause === 'using' ? 'unowned' : 'row-predicate');
  if (atoms.some((part) => part.kind === 'row-predicate')) return atom('row-predicate');
  return atom('always-true');
}

const MAX_BRANCHES = 64;

/** Disjunctive normal form: the ways the expression can be true, each a list of conditions that must all hold. */
function branchesOf(node: Expr): Expr[][] {
  if (node.kind === 'inlined') return branchesOf(node.body);
  if (node.kind === 'or') {
    const out = node.args.flatMap(branchesOf);
    return out.length > MAX_BRANCHES ? [[node]] : out;
  }
  if (node.kind === 'and') {
    let out: Expr[][] = [[]];
    for (const arg of node.args) {
      const options = branchesOf(arg);
      if (out.length * options.length > MAX_BRANCHES) return [[node]];
      out = out.flatMap((prefix) => options.map((option) => [...prefix, ...option]));
    }
    return out;
  }
  return [[node]];
}

function reasonFor(env: Env, conjunction: Expr[], kind: BranchKind): string {
  for (const node of conjunction) {
    const classified = classifyAtom(env, node);
    const matches = kind === 'always-true' ? classified.kind === 'always-true' || classified.kind === 'context-check' : classified.kind === kind;
    if (matches) return classified.reason && kind === 'unknown' ? classified.reason : render(node);
  }
  return conjunction.map(render).join(' AND ');
}

const PUBLIC_FLAG = /(^|_)(public|published|shared|listed|global)$/i;
const PRIVATE_FLAG = /(^|_)(private|unlisted|hidden|secret)$/i;
const VISIBILITY_COLUMN = /(^|_)(visibility|privacy|access|audience|sharing)$/i;
const PUBLIC_VALUE = /^(public|everyone|all|global|shared)$/i;

/** The row's column a node reads (through casts), with its catalog column, or null. */
function flagColumn(env: Env, node: Expr): { name: string; type: string } | null {
  const inner = node.kind === 'cast' ? node.arg : node;
  if (inner.kind !== 'column' || !isRowColumn(env, inner)) return null;
  const column = columnOf(columnRelation(env, inner), inner.name);
  return column ? { name: column.name, type: column.baseType } : null;
}

function literalOf(node: Expr): Extract<Expr, { kind: 'literal' }> | null {
  const inner = node.kind === 'cast' ? node.arg : node;
  return inner.kind === 'literal' && inner.value !== null ? inner : null;
}

/**
 * A condition that admits a row by a visibility flag of its own: a boolean column named like `is_public` that is
 * true, one named like `private` that is false, or a column named like `visibility` equal to `'public'`.
 */
function rowFlag(env: Env, node: Expr): RowFlag | null {
  const boolean = (column: { name: string; type: string } | null, value: boolean): RowFlag | null => {
    if (!column || column.type !== 'bool') return null;
    if (value && PUBLIC_FLAG.test(column.name)) return { column: column.name, value: 'true' };
    if (!value && PRIVATE_FLAG.test(column.name)) return { column: column.name, value: 'false' };
    return null;
  };
  switch (node.kind) {
    case 'column':
      return boolean(flagColumn(env, node), true);
    case 'not':
      return boolean(flagColumn(env, node.arg), false);
    case 'bool-test':
      return node.test === 'TRUE' ? boolean(flagColumn(env, node.arg), true) : node.test === 'FALSE' ? boolean(flagColumn(env, node.arg), false) : null;
    case 'op': {
      if (node.op !== '=' || !node.left) return null;
      for (const [columnNode, valueNode] of [[node.left, node.right], [node.right, node.left]] as const) {
        const column = flagColumn(env, columnNode);
        const literal = literalOf(valueNode);
        if (!column || !literal) continue;
        if (literal.type === 'boolean') return boolean(column, literal.value === 'true');
        if (literal.type === 'string' && VISIBILITY_COLUMN.test(column.name) && PUBLIC_VALUE.test(literal.value!)) return { column: column.name, value: literal.value! };
      }
      return null;
    }
    default:
      return null;
  }
}

/** Classify every branch of an expression. */
export function analyzeExpr(env: Env, root: Expr): Branch[] {
  return branchesOf(root).map((conjunction) => {
    const atoms = conjunction.map((node) => classifyAtom(env, node));
    let result: Atom;
    if (atoms.some((part) => part.kind === 'dead')) result = atom('dead');
    else if (atoms.some((part) => part.kind === 'confined')) result = atom('confined');
    else result = combine(atoms, env.clause);
    const kind: BranchKind = result.kind === 'context-check' ? 'always-true' : result.kind;
    const flags = kind === 'row-predicate' ? conjunction.map((node) => rowFlag(env, node)) : [];
    return {
      text: conjunction.map(render).join(' AND '),
      kind,
      settings: result.settings,
      reason: kind === 'confined' || kind === 'dead' ? '' : reasonFor(env, conjunction, kind),
      publicFlags: flags.length && flags.every((flag) => flag !== null) ? (flags as RowFlag[]) : null,
    };
  });
}

export function isOpenKind(kind: BranchKind): kind is OpenKind {
  return kind === 'always-true' || kind === 'row-predicate' || kind === 'escape-setting' || kind === 'fail-open' || kind === 'non-equality';
}

export const OPEN_WIDTH = WIDTH;

// ------------------------------------------------------------------------------------------------------------
// Context references

interface SettingShape {
  missingOk: boolean | null;
  nullif: boolean;
  castTo: string | null;
  readAs: string | null;
}

/** missing_ok, the nullif(…, '') guard and the non-text cast of a setting reference, from its ancestors. */
export function settingShape(node: Expr, ancestors: (Expr | Select)[]): SettingShape {
  const call = settingCall(node);
  let nullif = false;
  let castTo: string | null = null;
  let readAs: string | null = null;
  let child: Expr | Select = node;
  for (let index = ancestors.length - 1; index >= 0; index -= 1) {
    const parent = ancestors[index]!;
    if (parent.kind === 'cast') {
      if (!TEXT_TYPES.has(parent.type)) {
        if (!nullif) castTo = parent.type;
        readAs = parent.type;
        break;
      }
    } else if (parent.kind === 'call' && parent.name === 'nullif') {
      if (parent.args[0] === child && stringValue(parent.args[1]) === '') nullif = true;
      else break;
    } else if (parent.kind === 'call' && (PASS_THROUGH.has(parent.name) || parent.name === 'coalesce')) {
      // coalesce(setting, ''), lower(setting): the empty string passes through.
    } else if (parent.kind === 'select' || (parent.kind === 'subquery' && !parent.subquery.from.length)) {
      // ( SELECT value AS "nullif") — the initplan form.
    } else {
      break;
    }
    child = parent;
  }
  return { missingOk: call ? call.missingOk : null, nullif, castTo, readAs };
}

/**
 * Every context reference under `root` with its use: the uses recorded while classifying, `other` for the rest.
 * Setting details (missing_ok, nullif, cast) come from the reference's place in the tree.
 */
export function collectReferences(env: Env, root: Expr, where: { relation: string; policy: string; clause: Clause }): ContextReference[] {
  const out: ContextReference[] = [];
  const seen = new Set<Expr>();
  const visit = (node: Expr | Select, ancestors: (Expr | Select)[], via: string | null) => {
    if (node.kind !== 'select' && !seen.has(node)) {
      const recorded = env.references.get(node);
      const source = recorded?.source ?? (node.kind === 'op' ? null : referenceSource(env.scope, node, env.schemas));
      if (source) {
        seen.add(node);
        // The setting call itself, for claims read through ->> from a setting.
        let settingNode: Expr | null = settingCall(node) ? node : null;
        let settingAncestors = ancestors;
        if (!settingNode && node.kind === 'op') {
          const claim = claimPath(node);
          if (claim && settingCall(claim.base)) {
            settingNode = claim.base;
            settingAncestors = [...ancestors, node];
          }
        }
        const shape = settingNode ? settingShape(settingNode, settingAncestors) : settingShape(node, ancestors);
        out.push({
          key: referenceKey(source),
          source,
          text: render(node),
          missingOk: settingNode ? (settingCall(settingNode)?.missingOk ?? null) : null,
          nullif: shape.nullif,
          castTo: settingNode ? shape.castTo : null,
          readAs: settingNode ? shape.readAs : null,
          via,
          use: recorded?.use ?? { kind: 'other' },
          ...where,
        });
        if (recorded) return;
      }
    }
    const next = [...ancestors, node];
    if (node.kind === 'inlined') {
      visit(node.body, next, node.function);
      return;
    }
    for (const { node: child, ancestors: childAncestors } of directChildren(node, next)) visit(child, childAncestors, via);
  };
  visit(root, [], null);
  return out;
}

function directChildren(node: Expr | Select, ancestors: (Expr | Select)[]): { node: Expr | Select; ancestors: (Expr | Select)[] }[] {
  return childrenOf(node).map((child) => ({ node: child, ancestors }));
}
