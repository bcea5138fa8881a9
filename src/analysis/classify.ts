/**
 * What a boolean expression does with the current tenant or actor: its ways of being true (disjunctive normal form)
 * and, for each, whether it ties the row to a context reference by equality (`confined`) or lets rows through
 * without that (`open`, with the kind and the decisive fragment), or cannot be decided (`unknown`).
 *
 * Used for policy USING / WITH CHECK (rows of the policy's relation) and for the filters of statements in view
 * definitions and function bodies (rows of the relations in FROM).
 */
import type { Catalog, FunctionInfo, Relation } from '../catalog/types.js';
import { constantsOf, render, type Expr, type Select } from './expression.js';
import type { Branch, BranchKind, Clause, ContextSource, ContextUse, Membership, OpenKind, RowFlag } from './model.js';
import { equalityUse, settingNames, use } from './context-references.js';
import { rowFlag } from './row-flags.js';
import { constantsEqual, correlated, effectiveSelect, isRowValue, membershipFor, resolveRelation, sourcesOf, strictSettingCall, valueOf, type Value } from './value-sources.js';

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
// Atoms: one condition of a conjunction

type AtomKind = BranchKind | 'context-check';

interface Atom {
  kind: AtomKind;
  settings: string[];
  reason?: string;
}

const atom = (kind: AtomKind, settings: string[] = [], reason?: string): Atom => ({ kind, settings, ...(reason ? { reason } : {}) });

function roleHas(env: Env, name: string | null): boolean | null {
  if (name === null || env.scope.inherited === null) return null;
  return env.scope.inherited.has(name);
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
      constants: conjunction.flatMap(constantsOf),
    };
  });
}

export function isOpenKind(kind: BranchKind): kind is OpenKind {
  return kind === 'always-true' || kind === 'row-predicate' || kind === 'escape-setting' || kind === 'fail-open' || kind === 'non-equality';
}

export const OPEN_WIDTH = WIDTH;
