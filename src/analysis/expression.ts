/**
 * Expressions and queries as the analysis sees them: libpg-query's parse tree (PostgreSQL's own grammar) reduced to
 * the shapes that matter for tenant isolation. Every construct the parser accepts becomes a node; the ones the
 * analysis does not interpret become `opaque` nodes that keep their children, so what they read (columns, settings,
 * sub-selects) is still seen.
 */
import type { Node } from './parse.js';

export type Expr =
  | { kind: 'and' | 'or'; args: Expr[] }
  | { kind: 'not'; arg: Expr }
  /** Binary operator (`=`, `<>`, `>=`, `~~`, `->>`, `||`, ...) or prefix operator (left null). */
  | { kind: 'op'; op: string; left: Expr | null; right: Expr }
  | { kind: 'null-test'; arg: Expr; negated: boolean }
  /** IS [NOT] TRUE / FALSE / UNKNOWN. */
  | { kind: 'bool-test'; arg: Expr; test: 'TRUE' | 'NOT TRUE' | 'FALSE' | 'NOT FALSE' | 'UNKNOWN' | 'NOT UNKNOWN' }
  | { kind: 'distinct'; left: Expr; right: Expr; negated: boolean }
  | { kind: 'in'; left: Expr; list: Expr[] | null; subquery: Select | null; negated: boolean }
  /** `left op ANY (right)` / `ALL`. */
  | { kind: 'quantified'; op: string; quantifier: 'ANY' | 'ALL'; left: Expr; right: Expr | Select }
  | { kind: 'exists'; subquery: Select }
  | { kind: 'subquery'; subquery: Select }
  /** A function call; `name` lower-cased as written, schema-qualified when it was (`auth.uid`). `at`: byte offset of the name. */
  | { kind: 'call'; name: string; args: Expr[]; at: number | null }
  | { kind: 'cast'; arg: Expr; type: string }
  | { kind: 'column'; qualifier: string | null; name: string }
  | { kind: 'literal'; value: string | null; type: 'string' | 'number' | 'boolean' | 'null' }
  /** CURRENT_USER, SESSION_USER, CURRENT_ROLE, USER, CURRENT_DATE, ... */
  | { kind: 'keyword'; name: string }
  /** A function parameter (`$1`, or an argument name inside a function body): chosen by the caller. */
  | { kind: 'param'; name: string }
  | { kind: 'case'; subject: Expr | null; whens: { when: Expr; then: Expr }[]; otherwise: Expr | null }
  | { kind: 'array' | 'row'; items: Expr[] }
  | { kind: 'subscript'; arg: Expr; indexes: Expr[] }
  | { kind: 'field'; arg: Expr; field: string }
  /** A helper function call replaced by its parsed body (arguments substituted); `call` is what the policy wrote. */
  | { kind: 'inlined'; function: string; call: Expr; body: Expr }
  | { kind: 'opaque'; label: string; children: Expr[] };

export interface FromItem {
  /** Relation name as written: `members`, `public.members`; null for a sub-select or function in FROM. */
  relation: string | null;
  /** The name columns are qualified with: the alias, else the unqualified relation name. */
  alias: string | null;
  /** A sub-select in FROM (or a CTE's query when `relation` names a CTE). */
  subquery: Select | null;
  /** A function in FROM (`from my_orgs() o`). */
  call: Expr | null;
}

export interface Select {
  kind: 'select';
  targets: Expr[];
  from: FromItem[];
  /** WHERE, with the ON conditions of inner joins ANDed in. */
  where: Expr | null;
  /** Everything else (GROUP BY, HAVING, LIMIT, outer-join conditions): searched, not interpreted. */
  other: Expr[];
  /** UNION / INTERSECT / EXCEPT: the arms (each a Select); `targets`/`from`/`where` are then empty. */
  setOperation: { op: 'union' | 'intersect' | 'except'; all: boolean; arms: Select[] } | null;
}

type Raw = Record<string, unknown>;

function unwrap(node: unknown): [string, Raw] | null {
  if (!node || typeof node !== 'object') return null;
  const keys = Object.keys(node as object);
  if (keys.length !== 1) return null;
  const key = keys[0]!;
  return [key, (node as Raw)[key] as Raw];
}

function strings(list: unknown): string[] {
  if (!Array.isArray(list)) return [];
  return list.map((item) => {
    const entry = unwrap(item);
    if (entry?.[0] === 'String') return String((entry[1] as { sval?: string }).sval ?? '');
    if (entry?.[0] === 'A_Star') return '*';
    return '';
  });
}

const TYPE_NAMES: Record<string, string> = {
  int2: 'smallint', int4: 'integer', int8: 'bigint', bool: 'boolean', float4: 'real', float8: 'double precision',
  varchar: 'character varying', bpchar: 'character', timestamptz: 'timestamp with time zone', timestamp: 'timestamp without time zone',
  timetz: 'time with time zone', time: 'time without time zone', numeric: 'numeric', interval: 'interval',
};

/** A TypeName as PostgreSQL prints it: `integer`, `text`, `uuid`, `integer[]`, `public.status`. */
export function typeNameText(typeName: unknown): string {
  const raw = (typeName ?? {}) as { names?: unknown; arrayBounds?: unknown[] };
  const names = strings(raw.names);
  const base = names.length === 2 && names[0] === 'pg_catalog' ? (TYPE_NAMES[names[1]!] ?? names[1]!) : names.join('.');
  return `${base}${(raw.arrayBounds ?? []).map(() => '[]').join('')}`;
}

function constant(raw: Raw): Expr {
  if (raw.isnull) return { kind: 'literal', value: null, type: 'null' };
  if (raw.sval) return { kind: 'literal', value: String((raw.sval as { sval?: string }).sval ?? ''), type: 'string' };
  if (raw.ival) return { kind: 'literal', value: String((raw.ival as { ival?: number }).ival ?? 0), type: 'number' };
  if (raw.fval) return { kind: 'literal', value: String((raw.fval as { fval?: string }).fval ?? '0'), type: 'number' };
  if (raw.boolval) return { kind: 'literal', value: (raw.boolval as { boolval?: boolean }).boolval ? 'true' : 'false', type: 'boolean' };
  if (raw.bsval) return { kind: 'literal', value: String((raw.bsval as { bsval?: string }).bsval ?? ''), type: 'string' };
  return { kind: 'literal', value: null, type: 'null' };
}

const SQL_VALUE_FUNCTIONS: Record<string, string> = {
  SVFOP_CURRENT_USER: 'CURRENT_USER', SVFOP_SESSION_USER: 'SESSION_USER', SVFOP_CURRENT_ROLE: 'CURRENT_ROLE', SVFOP_USER: 'USER',
  SVFOP_CURRENT_DATE: 'CURRENT_DATE', SVFOP_CURRENT_TIME: 'CURRENT_TIME', SVFOP_CURRENT_TIME_N: 'CURRENT_TIME',
  SVFOP_CURRENT_TIMESTAMP: 'CURRENT_TIMESTAMP', SVFOP_CURRENT_TIMESTAMP_N: 'CURRENT_TIMESTAMP', SVFOP_LOCALTIME: 'LOCALTIME',
  SVFOP_LOCALTIME_N: 'LOCALTIME', SVFOP_LOCALTIMESTAMP: 'LOCALTIMESTAMP', SVFOP_LOCALTIMESTAMP_N: 'LOCALTIMESTAMP',
  SVFOP_CURRENT_CATALOG: 'CURRENT_CATALOG', SVFOP_CURRENT_SCHEMA: 'CURRENT_SCHEMA',
};

const opaque = (label: string, children: (Expr | null | undefined)[]): Expr => ({ kind: 'opaque', label, children: children.filter((child): child is Expr => Boolean(child)) });

function list(value: unknown): unknown[] {
  if (Array.isArray(value)) return value;
  const entry = unwrap(value);
  if (entry?.[0] === 'List') return ((entry[1] as { items?: unknown[] }).items ?? []) as unknown[];
  return value === undefined || value === null ? [] : [value];
}

/** Convert one expression node of the parse tree. */
export function toExpr(node: unknown): Expr {
  const entry = unwrap(node);
  if (!entry) return opaque('empty', []);
  const [type, raw] = entry;
  switch (type) {
    case 'BoolExpr': {
      const args = list(raw.args).map(toExpr);
      if (raw.boolop === 'NOT_EXPR') return { kind: 'not', arg: args[0] ?? opaque('empty', []) };
      return { kind: raw.boolop === 'OR_EXPR' ? 'or' : 'and', args };
    }
    case 'A_Expr': {
      const op = strings(raw.name).filter((part) => part !== 'pg_catalog').join('.');
      const left = raw.lexpr ? toExpr(raw.lexpr) : null;
      switch (raw.kind) {
        case 'AEXPR_OP':
          return { kind: 'op', op, left, right: toExpr(raw.rexpr) };
        case 'AEXPR_OP_ANY':
        case 'AEXPR_OP_ALL':
          return { kind: 'quantified', op, quantifier: raw.kind === 'AEXPR_OP_ANY' ? 'ANY' : 'ALL', left: left ?? opaque('empty', []), right: toExpr(raw.rexpr) };
        case 'AEXPR_DISTINCT':
        case 'AEXPR_NOT_DISTINCT':
          return { kind: 'distinct', left: left ?? opaque('empty', []), right: toExpr(raw.rexpr), negated: raw.kind === 'AEXPR_NOT_DISTINCT' };
        case 'AEXPR_NULLIF':
          return { kind: 'call', name: 'nullif', args: [left ?? opaque('empty', []), toExpr(raw.rexpr)], at: null };
        case 'AEXPR_IN':
          return { kind: 'in', left: left ?? opaque('empty', []), list: list(raw.rexpr).map(toExpr), subquery: null, negated: op === '<>' };
        case 'AEXPR_LIKE':
        case 'AEXPR_ILIKE':
        case 'AEXPR_SIMILAR':
          return { kind: 'op', op, left, right: toExpr(raw.rexpr) };
        default:
          return opaque(String(raw.kind ?? 'A_Expr').toLowerCase(), [left, ...list(raw.rexpr).map(toExpr)]);
      }
    }
    case 'NullTest':
      return { kind: 'null-test', arg: toExpr(raw.arg), negated: raw.nulltesttype === 'IS_NOT_NULL' };
    case 'BooleanTest': {
      const tests: Record<string, Extract<Expr, { kind: 'bool-test' }>['test']> = {
        IS_TRUE: 'TRUE', IS_NOT_TRUE: 'NOT TRUE', IS_FALSE: 'FALSE', IS_NOT_FALSE: 'NOT FALSE', IS_UNKNOWN: 'UNKNOWN', IS_NOT_UNKNOWN: 'NOT UNKNOWN',
      };
      return { kind: 'bool-test', arg: toExpr(raw.arg), test: tests[String(raw.booltesttype)] ?? 'TRUE' };
    }
    case 'SubLink': {
      const subquery = toSelect(raw.subselect);
      const testexpr = raw.testexpr ? toExpr(raw.testexpr) : null;
      switch (raw.subLinkType) {
        case 'EXISTS_SUBLINK':
          return { kind: 'exists', subquery };
        case 'EXPR_SUBLINK':
          return { kind: 'subquery', subquery };
        case 'ANY_SUBLINK': {
          const op = strings(raw.operName).filter((part) => part !== 'pg_catalog').join('.');
          if (!op || op === '=') return { kind: 'in', left: testexpr ?? opaque('empty', []), list: null, subquery, negated: false };
          return { kind: 'quantified', op, quantifier: 'ANY', left: testexpr ?? opaque('empty', []), right: subquery };
        }
        case 'ALL_SUBLINK':
          return { kind: 'quantified', op: strings(raw.operName).filter((part) => part !== 'pg_catalog').join('.') || '=', quantifier: 'ALL', left: testexpr ?? opaque('empty', []), right: subquery };
        default:
          return opaque('sublink', [testexpr, { kind: 'subquery', subquery }]);
      }
    }
    case 'FuncCall': {
      const name = strings(raw.funcname).join('.').toLowerCase();
      const args = list(raw.args).map(toExpr);
      return { kind: 'call', name: name.startsWith('pg_catalog.') ? name.slice('pg_catalog.'.length) : name, args, at: typeof raw.location === 'number' ? raw.location : null };
    }
    case 'CoalesceExpr':
      return { kind: 'call', name: 'coalesce', args: list(raw.args).map(toExpr), at: null };
    case 'MinMaxExpr':
      return { kind: 'call', name: raw.op === 'IS_LEAST' ? 'least' : 'greatest', args: list(raw.args).map(toExpr), at: null };
    case 'TypeCast':
      return { kind: 'cast', arg: toExpr(raw.arg), type: typeNameText(raw.typeName) };
    case 'CollateClause':
      return toExpr(raw.arg);
    case 'ColumnRef': {
      const fields = strings(raw.fields);
      const name = fields[fields.length - 1] ?? '';
      return { kind: 'column', qualifier: fields.length > 1 ? fields.slice(0, -1).join('.') : null, name };
    }
    case 'ParamRef':
      return { kind: 'param', name: `$${String(raw.number ?? 0)}` };
    case 'A_Const':
      return constant(raw);
    case 'SQLValueFunction':
      return { kind: 'keyword', name: SQL_VALUE_FUNCTIONS[String(raw.op)] ?? String(raw.op) };
    case 'CaseExpr':
      return {
        kind: 'case',
        subject: raw.arg ? toExpr(raw.arg) : null,
        whens: list(raw.args).map((when) => {
          const clause = (unwrap(when)?.[1] ?? {}) as Raw;
          return { when: toExpr(clause.expr), then: toExpr(clause.result) };
        }),
        otherwise: raw.defresult ? toExpr(raw.defresult) : null,
      };
    case 'A_ArrayExpr':
      return { kind: 'array', items: list(raw.elements).map(toExpr) };
    case 'RowExpr':
      return { kind: 'row', items: list(raw.args).map(toExpr) };
    case 'A_Indirection': {
      let result = toExpr(raw.arg);
      for (const step of list(raw.indirection)) {
        const part = unwrap(step);
        if (part?.[0] === 'String') result = { kind: 'field', arg: result, field: String((part[1] as { sval?: string }).sval ?? '') };
        else if (part?.[0] === 'A_Indices') {
          const indices = part[1] as Raw;
          result = { kind: 'subscript', arg: result, indexes: [indices.lidx, indices.uidx].filter(Boolean).map(toExpr) };
        } else result = { kind: 'field', arg: result, field: '*' };
      }
      return result;
    }
    case 'List':
      return { kind: 'row', items: list(node).map(toExpr) };
    default:
      return opaque(type, collectChildren(raw));
  }
}

/** Expression children of a node the analysis does not interpret (so their reads are still seen). */
function collectChildren(raw: unknown): Expr[] {
  const out: Expr[] = [];
  const visit = (value: unknown) => {
    if (Array.isArray(value)) {
      value.forEach(visit);
      return;
    }
    const entry = unwrap(value);
    if (!entry) {
      if (value && typeof value === 'object') Object.values(value).forEach(visit);
      return;
    }
    if (EXPRESSION_NODES.has(entry[0])) out.push(toExpr(value));
    else if (entry[0] === 'SelectStmt') out.push({ kind: 'subquery', subquery: toSelect(value) });
    else Object.values(entry[1] ?? {}).forEach(visit);
  };
  visit(raw);
  return out;
}

const EXPRESSION_NODES = new Set([
  'BoolExpr', 'A_Expr', 'NullTest', 'BooleanTest', 'SubLink', 'FuncCall', 'CoalesceExpr', 'MinMaxExpr', 'TypeCast', 'CollateClause',
  'ColumnRef', 'ParamRef', 'A_Const', 'SQLValueFunction', 'CaseExpr', 'A_ArrayExpr', 'RowExpr', 'A_Indirection',
]);

const EMPTY_SELECT = (): Select => ({ kind: 'select', targets: [], from: [], where: null, other: [], setOperation: null });

function andAll(parts: (Expr | null)[]): Expr | null {
  const present = parts.filter((part): part is Expr => part !== null);
  if (!present.length) return null;
  return present.length === 1 ? present[0]! : { kind: 'and', args: present };
}

/** Read FROM items: relations with their aliases, sub-selects, functions; inner-join conditions go to `quals`. */
function fromItems(nodes: unknown[], ctes: Map<string, Select>, quals: Expr[], other: Expr[]): FromItem[] {
  const items: FromItem[] = [];
  const visit = (node: unknown) => {
    const entry = unwrap(node);
    if (!entry) return;
    const [type, raw] = entry;
    if (type === 'RangeVar') {
      const name = [raw.schemaname, raw.relname].filter(Boolean).join('.');
      const alias = ((raw.alias as { aliasname?: string } | undefined)?.aliasname ?? String(raw.relname ?? '')) || null;
      const cte = raw.schemaname ? undefined : ctes.get(String(raw.relname));
      items.push(cte ? { relation: null, alias, subquery: cte, call: null } : { relation: name, alias, subquery: null, call: null });
    } else if (type === 'RangeSubselect') {
      items.push({ relation: null, alias: (raw.alias as { aliasname?: string } | undefined)?.aliasname ?? null, subquery: toSelect(raw.subquery, ctes), call: null });
    } else if (type === 'RangeFunction') {
      const functions = list(raw.functions).flatMap((pair) => list(pair)).filter((part) => unwrap(part)?.[0] === 'FuncCall');
      for (const fn of functions) items.push({ relation: null, alias: (raw.alias as { aliasname?: string } | undefined)?.aliasname ?? null, subquery: null, call: toExpr(fn) });
    } else if (type === 'JoinExpr') {
      visit(raw.larg);
      visit(raw.rarg);
      if (raw.quals) (raw.jointype === 'JOIN_INNER' || !raw.jointype ? quals : other).push(toExpr(raw.quals));
    } else {
      other.push(...collectChildren(raw));
    }
  };
  nodes.forEach(visit);
  return items;
}

/** Convert a SelectStmt (possibly wrapped) into a Select. CTEs are resolved into the FROM items that name them. */
export function toSelect(node: unknown, outerCtes: Map<string, Select> = new Map()): Select {
  const entry = unwrap(node);
  if (!entry || entry[0] !== 'SelectStmt') return { ...EMPTY_SELECT(), other: entry ? collectChildren(entry[1]) : [] };
  const raw = entry[1];
  const ctes = new Map(outerCtes);
  for (const cte of list((raw.withClause as Raw | undefined)?.ctes)) {
    const definition = (unwrap(cte)?.[1] ?? {}) as Raw;
    const query = unwrap(definition.ctequery);
    if (query?.[0] === 'SelectStmt') ctes.set(String(definition.ctename), toSelect(definition.ctequery, ctes));
    else ctes.set(String(definition.ctename), { ...EMPTY_SELECT(), other: collectChildren(definition.ctequery) });
  }
  if (raw.op && raw.op !== 'SETOP_NONE') {
    const op = raw.op === 'SETOP_UNION' ? 'union' : raw.op === 'SETOP_INTERSECT' ? 'intersect' : 'except';
    return { ...EMPTY_SELECT(), setOperation: { op, all: Boolean(raw.all), arms: [toSelect({ SelectStmt: raw.larg }, ctes), toSelect({ SelectStmt: raw.rarg }, ctes)] } };
  }
  if (raw.valuesLists) {
    return { ...EMPTY_SELECT(), targets: list(raw.valuesLists).flatMap((row) => list(row).map(toExpr)) };
  }
  const quals: Expr[] = [];
  const other: Expr[] = [];
  const from = fromItems(list(raw.fromClause), ctes, quals, other);
  const targets = list(raw.targetList).map((target) => {
    const value = ((unwrap(target)?.[1] ?? {}) as Raw).val;
    return value ? toExpr(value) : opaque('empty', []);
  });
  for (const key of ['groupClause', 'havingClause', 'limitCount', 'limitOffset', 'sortClause', 'distinctClause']) {
    if (raw[key]) other.push(...collectChildren(raw[key]));
  }
  return { kind: 'select', targets, from, where: andAll([raw.whereClause ? toExpr(raw.whereClause) : null, ...quals]), other, setOperation: null };
}

export const emptySelect = EMPTY_SELECT;

// ------------------------------------------------------------------------------------------------------------
// Walking and rendering

/** The direct children of a node (an inlined helper's child is its body). */
export function childrenOf(node: Expr | Select): (Expr | Select)[] {
  switch (node.kind) {
    case 'select':
      if (node.setOperation) return node.setOperation.arms;
      return [
        ...node.targets,
        ...node.from.flatMap((item) => [item.subquery, item.call].filter((child): child is Expr | Select => child !== null)),
        ...(node.where ? [node.where] : []),
        ...node.other,
      ];
    case 'and':
    case 'or':
      return node.args;
    case 'not':
    case 'null-test':
    case 'bool-test':
    case 'cast':
      return [node.arg];
    case 'op':
      return node.left ? [node.left, node.right] : [node.right];
    case 'distinct':
      return [node.left, node.right];
    case 'in':
      return [node.left, ...(node.subquery ? [node.subquery] : node.list ?? [])];
    case 'quantified':
      return [node.left, node.right];
    case 'exists':
    case 'subquery':
      return [node.subquery];
    case 'call':
      return node.args;
    case 'case':
      return [...(node.subject ? [node.subject] : []), ...node.whens.flatMap((when) => [when.when, when.then]), ...(node.otherwise ? [node.otherwise] : [])];
    case 'array':
    case 'row':
      return node.items;
    case 'subscript':
      return [node.arg, ...node.indexes];
    case 'field':
      return [node.arg];
    case 'inlined':
      return [node.body];
    case 'opaque':
      return node.children;
    default:
      return [];
  }
}

/**
 * Call `visit` for every node under `root` (itself included), depth first. `ancestors` (outermost first) is the
 * walker's own stack: copy it to keep it.
 */
export function visitNodes(root: Expr | Select, visit: (node: Expr | Select, ancestors: readonly (Expr | Select)[]) => void): void {
  const stack: (Expr | Select)[] = [];
  const step = (node: Expr | Select) => {
    visit(node, stack);
    stack.push(node);
    for (const child of childrenOf(node)) step(child);
    stack.pop();
  };
  step(root);
}

/** True when some node under `root` (itself included) satisfies `test`. */
export function someNode(root: Expr | Select, test: (node: Expr | Select) => boolean): boolean {
  if (test(root)) return true;
  return childrenOf(root).some((child) => someNode(child, test));
}

function quoteLiteral(value: string): string {
  return `'${value.split("'").join("''")}'`;
}

function renderSelect(select: Select): string {
  if (select.setOperation) {
    const { op, all, arms } = select.setOperation;
    return arms.map(renderSelect).join(` ${op.toUpperCase()}${all ? ' ALL' : ''} `);
  }
  const parts = [`SELECT ${select.targets.map(render).join(', ')}`];
  if (select.from.length) {
    parts.push(
      `FROM ${select.from
        .map((item) => {
          const source = item.relation ?? (item.subquery ? `(${renderSelect(item.subquery)})` : item.call ? render(item.call) : '?');
          return item.alias && item.alias !== item.relation?.split('.').pop() ? `${source} ${item.alias}` : source;
        })
        .join(', ')}`,
    );
  }
  if (select.where) parts.push(`WHERE ${render(select.where)}`);
  return parts.join(' ');
}

/** SQL text for a node (a normalised rendering for messages; not the user's original spelling). */
export function render(node: Expr | Select): string {
  switch (node.kind) {
    case 'select':
      return `(${renderSelect(node)})`;
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
      return `(${render(node.left)} ${node.negated ? 'NOT IN' : 'IN'} ${node.subquery ? render(node.subquery) : `(${(node.list ?? []).map(render).join(', ')})`})`;
    case 'quantified':
      return `(${render(node.left)} ${node.op} ${node.quantifier} ${node.right.kind === 'select' ? render(node.right) : `(${render(node.right)})`})`;
    case 'exists':
      return `(EXISTS ${render(node.subquery)})`;
    case 'subquery':
      return render(node.subquery);
    case 'call':
      return `${node.name}(${node.args.map(render).join(', ')})`;
    case 'cast':
      return `${render(node.arg)}::${node.type}`;
    case 'column':
      return node.qualifier ? `${node.qualifier}.${node.name}` : node.name;
    case 'literal':
      return node.type === 'string' ? quoteLiteral(node.value ?? '') : node.type === 'null' ? 'NULL' : node.value!;
    case 'keyword':
      return node.name;
    case 'param':
      return node.name;
    case 'case':
      return `CASE${node.subject ? ` ${render(node.subject)}` : ''}${node.whens.map((when) => ` WHEN ${render(when.when)} THEN ${render(when.then)}`).join('')}${node.otherwise ? ` ELSE ${render(node.otherwise)}` : ''} END`;
    case 'array':
      return `ARRAY[${node.items.map(render).join(', ')}]`;
    case 'row':
      return `ROW(${node.items.map(render).join(', ')})`;
    case 'subscript':
      return `${render(node.arg)}[${node.indexes.map(render).join(':')}]`;
    case 'field':
      return `(${render(node.arg)}).${node.field}`;
    case 'inlined':
      return render(node.call);
    case 'opaque':
      return `${node.label}(${node.children.map(render).join(', ')})`;
  }
}

const SETTING_FUNCTIONS = new Set(['current_setting', 'set_config']);

/**
 * The constants an expression shows (as `render` prints it: a helper's call, not its body), other than NULL,
 * booleans, the empty string and setting names (the first argument of current_setting / set_config, through
 * casts): the values by which it may single out a tenant.
 */
export function constantsOf(node: Expr | Select): string[] {
  const constants: string[] = [];
  const visit = (current: Expr | Select, settingName: boolean): void => {
    switch (current.kind) {
      case 'literal':
        if (!settingName && (current.type === 'string' || current.type === 'number') && current.value !== null && current.value !== '') constants.push(current.value);
        return;
      case 'cast':
        return visit(current.arg, settingName);
      case 'call': {
        const setting = SETTING_FUNCTIONS.has(current.name.split('.').pop()!);
        current.args.forEach((argument, index) => visit(argument, setting && index === 0));
        return;
      }
      case 'inlined':
        return visit(current.call, false);
      case 'select': {
        // What `render` prints of a sub-select: not GROUP BY, HAVING, LIMIT, outer-join conditions, nor a CTE's query.
        if (current.setOperation) return current.setOperation.arms.forEach((arm) => visit(arm, false));
        const from = current.from.flatMap((item): (Expr | Select)[] => (item.relation !== null ? [] : item.subquery ? [item.subquery] : item.call ? [item.call] : []));
        const parts: (Expr | Select)[] = [...current.targets, ...from, ...(current.where ? [current.where] : [])];
        for (const child of parts) visit(child, false);
        return;
      }
      default:
        for (const child of childrenOf(current)) visit(child, false);
    }
  };
  visit(node, false);
  return constants;
}

/** The parse tree node type of a raw node, e.g. `SelectStmt`. */
export function nodeType(node: Node | unknown): string | null {
  return unwrap(node)?.[0] ?? null;
}

export function nodeBody(node: Node | unknown): Raw {
  return (unwrap(node)?.[1] ?? {}) as Raw;
}

export { list as nodeList, strings as nodeStrings };
