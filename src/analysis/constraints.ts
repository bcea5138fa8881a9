/**
 * What CHECK constraints, domain checks and partition bounds say about the values a row may hold, read from
 * PostgreSQL's parse tree. The seeder plans values from this model; the parts it cannot read are `opaque`
 * atoms, which the seeder leaves to PostgreSQL to judge.
 */
import { byteToChar, parseExpression, parseStatements, ParseError, scanTokens } from './parse.js';

export type Comparison = '=' | '<>' | '<' | '<=' | '>' | '>=';

/** One condition on a row. Values are PostgreSQL input text. */
export type Atom =
  /** `column op literal`, e.g. `quantity >= 1`, `due_on < '2030-01-01'`. */
  | { kind: 'compare'; column: string; op: Comparison; value: string }
  /** `left op right [+|- offset]`, e.g. `due_on >= issued_on`, `ends_at > starts_at + '1 hour'::interval`. */
  | { kind: 'columns'; left: string; op: Comparison; right: string; offset: { sign: 1 | -1; value: string } | null }
  /** `column in (...)` / `= any (array[...])`, or its negation. A null element is dropped. */
  | { kind: 'in'; column: string; values: string[]; negated: boolean }
  /** `char_length(column) op n` (also length, octet_length, and of a trimmed column). */
  | { kind: 'length'; column: string; op: Comparison; value: number }
  /** `column ~ pattern` and its variants: regular expression (`~`, `~*`), LIKE (`~~`), SIMILAR TO; negated for `!~`. */
  | { kind: 'match'; column: string; syntax: 'regex' | 'like' | 'similar'; pattern: string; caseInsensitive: boolean; negated: boolean }
  | { kind: 'null'; column: string; isNull: boolean }
  /** `num_nonnulls(a, b, c) op n` (`num_nulls` is rewritten to this form). */
  | { kind: 'nonnulls'; columns: string[]; op: Comparison; count: number }
  /** `column = lower(column)` / `upper`, `column = btrim(column)`. */
  | { kind: 'case'; column: string; form: 'lower' | 'upper' | 'trimmed' }
  /** A boolean column, or `column is true / false`. */
  | { kind: 'boolean'; column: string; value: boolean }
  /**
   * An array column against a constant array: its elements all among `values` (`column <@ array[...]`), all of
   * `values` among its elements (`column @> array[...]`), or one of `values` among them (`column && array[...]`).
   */
  | { kind: 'elements'; column: string; relation: 'within' | 'contains' | 'overlaps'; values: string[] }
  /** `cardinality(column) op n`, `array_length(column, 1) op n`: how many elements an array column holds. */
  | { kind: 'cardinality'; column: string; op: Comparison; value: number }
  /** A part the planner does not read: PostgreSQL decides. */
  | { kind: 'opaque'; reason: string };

export interface CheckModel {
  name: string;
  /** As pg_get_constraintdef prints it, e.g. `CHECK ((due_on >= issued_on))`. */
  definition: string;
  /** The condition alone, as SQL text PostgreSQL can evaluate for candidate rows (null when unreadable). */
  expression: string | null;
  /**
   * The condition in disjunctive normal form: the check holds when every atom of one alternative holds.
   * `[[]]` always holds; `[]` never does.
   */
  alternatives: Atom[][];
  /** Every column the condition reads (also inside the parts the planner does not read). */
  columns: string[];
}

const NEGATE: Record<Comparison, Comparison> = { '=': '<>', '<>': '=', '<': '>=', '<=': '>', '>': '<=', '>=': '<' };
const FLIP: Record<Comparison, Comparison> = { '=': '=', '<>': '<>', '<': '>', '<=': '>=', '>': '<', '>=': '<=' };
const COMPARISONS = new Set<string>(['=', '<>', '!=', '<', '<=', '>', '>=']);
/** Cap on alternatives, so a wide boolean does not explode; one satisfiable alternative is enough. */
const MAX_ALTERNATIVES = 32;

type Obj = Record<string, unknown>;

function nodeKind(node: unknown): [string, Obj] | null {
  if (!node || typeof node !== 'object') return null;
  const [key] = Object.keys(node);
  return key ? [key, (node as Obj)[key] as Obj] : null;
}

function stringsOf(list: unknown): string[] {
  return Array.isArray(list) ? list.map((item) => ((item as { String?: { sval?: string } }).String?.sval ?? '')) : [];
}

/** Strip type casts: `(status)::text` is the column status, `'open'::text` the literal 'open'. */
function uncast(node: unknown): unknown {
  let current = node;
  for (let kind = nodeKind(current); kind?.[0] === 'TypeCast'; kind = nodeKind(current)) current = kind[1].arg;
  return current;
}

function columnName(node: unknown): string | null {
  const kind = nodeKind(uncast(node));
  if (kind?.[0] !== 'ColumnRef') return null;
  const fields = stringsOf(kind[1].fields);
  return fields.length ? fields[fields.length - 1]! : null;
}

/** A constant as PostgreSQL input text; `null` for SQL NULL; undefined when the node is not a constant. */
export function constantText(node: unknown): string | null | undefined {
  const kind = nodeKind(uncast(node));
  if (!kind) return undefined;
  if (kind[0] === 'A_Const') {
    const value = kind[1];
    if (value.isnull) return null;
    if ('ival' in value) return String((value.ival as { ival?: number }).ival ?? 0);
    if ('fval' in value) return String((value.fval as { fval?: string }).fval ?? '0');
    if ('sval' in value) return String((value.sval as { sval?: string }).sval ?? '');
    if ('boolval' in value) return (value.boolval as { boolval?: boolean }).boolval ? 'true' : 'false';
    return undefined;
  }
  // -x on a constant the parser did not fold, e.g. -(5)::numeric
  if (kind[0] === 'A_Expr' && kind[1].kind === 'AEXPR_OP' && !kind[1].lexpr && stringsOf(kind[1].name)[0] === '-') {
    const inner = constantText(kind[1].rexpr);
    return typeof inner === 'string' ? (inner.startsWith('-') ? inner.slice(1) : `-${inner}`) : undefined;
  }
  return undefined;
}

function functionCall(node: unknown): { name: string; args: unknown[] } | null {
  const kind = nodeKind(uncast(node));
  if (kind?.[0] !== 'FuncCall') return null;
  const names = stringsOf(kind[1].funcname);
  return { name: names[names.length - 1]!.toLowerCase(), args: (kind[1].args as unknown[] | undefined) ?? [] };
}

/**
 * The elements of a one-dimensional array literal such as `{read,write}` or `{"a b",c}`; undefined when it
 * is not one (nested, or with escapes).
 */
function arrayLiteral(text: string): (string | null)[] | undefined {
  const trimmed = text.trim();
  if (!trimmed.startsWith('{') || !trimmed.endsWith('}')) return undefined;
  const body = trimmed.slice(1, -1);
  if (!body.trim()) return [];
  const items: (string | null)[] = [];
  let index = 0;
  while (index <= body.length) {
    while (body[index] === ' ') index += 1;
    let item: string | null;
    if (body[index] === '"') {
      const close = body.indexOf('"', index + 1);
      if (close < 0) return undefined;
      item = body.slice(index + 1, close);
      if (item.includes('\\')) return undefined;
      index = close + 1;
      while (body[index] === ' ') index += 1;
    } else {
      const comma = body.indexOf(',', index);
      const raw = body.slice(index, comma < 0 ? body.length : comma).trim();
      if (/["{}\\]/.test(raw) || !raw) return undefined;
      item = /^null$/i.test(raw) ? null : raw;
      index = comma < 0 ? body.length : comma;
    }
    items.push(item);
    if (index >= body.length) break;
    if (body[index] !== ',') return undefined;
    index += 1;
  }
  return items;
}

/** Elements of `ARRAY[...]`, `(...)` lists and `'{...}'` array literals: constants only; undefined when one is not a constant. */
function constantList(node: unknown): (string | null)[] | undefined {
  const text = constantText(node);
  if (typeof text === 'string') return arrayLiteral(text);
  const inner = uncast(node);
  const kind = nodeKind(inner);
  const items = kind?.[0] === 'A_ArrayExpr' ? (kind[1].elements as unknown[] | undefined) ?? [] : kind?.[0] === 'List' ? (kind[1].items as unknown[] | undefined) ?? [] : Array.isArray(inner) ? inner : null;
  if (!items) return undefined;
  const values = items.map(constantText);
  return values.some((value) => value === undefined) ? undefined : (values as (string | null)[]);
}

const opaque = (reason: string): Atom[][] => [[{ kind: 'opaque', reason }]];
const single = (atom: Atom): Atom[][] => [[atom]];

function and(parts: Atom[][][]): Atom[][] {
  let result: Atom[][] = [[]];
  for (const part of parts) {
    const next: Atom[][] = [];
    for (const left of result) for (const right of part) if (next.length < MAX_ALTERNATIVES) next.push([...left, ...right]);
    result = next;
  }
  return result;
}

function or(parts: Atom[][][]): Atom[][] {
  return parts.flat().slice(0, MAX_ALTERNATIVES);
}

/** `length(col)`, `char_length(btrim(col))`: the column whose length is measured. */
function lengthOf(node: unknown): string | null {
  const call = functionCall(node);
  if (!call || !['length', 'char_length', 'character_length', 'octet_length'].includes(call.name) || call.args.length !== 1) return null;
  const inner = functionCall(call.args[0]);
  if (inner && ['btrim', 'trim', 'ltrim', 'rtrim'].includes(inner.name) && inner.args.length === 1) return columnName(inner.args[0]);
  return columnName(call.args[0]);
}

/** `cardinality(col)`, `array_length(col, 1)`: the array column whose elements are counted. */
function cardinalityOf(node: unknown): string | null {
  const call = functionCall(node);
  if (call?.name === 'cardinality' && call.args.length === 1) return columnName(call.args[0]);
  if (call?.name === 'array_length' && call.args.length === 2 && constantText(call.args[1]) === '1') return columnName(call.args[0]);
  return null;
}

/** `<@`, `@>`, `&&` between an array column and a constant array, as the column's relation to the constant. */
const ARRAY_RELATIONS: Record<string, { column: 'within' | 'contains' | 'overlaps'; flipped: 'within' | 'contains' | 'overlaps' }> = {
  '<@': { column: 'within', flipped: 'contains' },
  '@>': { column: 'contains', flipped: 'within' },
  '&&': { column: 'overlaps', flipped: 'overlaps' },
};

function arrayRelation(operator: string, left: unknown, right: unknown, negated: boolean): Atom[][] {
  const spec = ARRAY_RELATIONS[operator]!;
  const leftColumn = columnName(left);
  const rightColumn = columnName(right);
  const column = leftColumn ?? rightColumn;
  const list = leftColumn !== null ? constantList(right) : constantList(left);
  if (column === null || !list || negated) return opaque(`an array comparison (${operator}) the planner does not read`);
  const values = list.filter((item): item is string => item !== null);
  return single({ kind: 'elements', column, relation: leftColumn !== null ? spec.column : spec.flipped, values });
}

function comparison(op: Comparison, left: unknown, right: unknown, negated: boolean): Atom[][] {
  const effective = negated ? NEGATE[op] : op;
  // Put the column (or the function of a column) on the left.
  const leftColumn = columnName(left);
  const rightColumn = columnName(right);
  const rightConstant = constantText(right);
  const leftConstant = constantText(left);
  if (leftColumn === null && rightColumn !== null && leftConstant !== undefined) return comparison(FLIP[op], right, left, negated);
  if (leftColumn !== null) {
    if (rightConstant !== undefined) {
      if (rightConstant === null) return [];
      return single({ kind: 'compare', column: leftColumn, op: effective, value: rightConstant });
    }
    if (rightColumn !== null) return single({ kind: 'columns', left: leftColumn, op: effective, right: rightColumn, offset: null });
    // col op other_col +/- constant
    const rightKind = nodeKind(uncast(right));
    if (rightKind?.[0] === 'A_Expr' && rightKind[1].kind === 'AEXPR_OP') {
      const operator = stringsOf(rightKind[1].name)[0];
      const base = columnName(rightKind[1].lexpr);
      const offset = constantText(rightKind[1].rexpr);
      if ((operator === '+' || operator === '-') && base !== null && typeof offset === 'string') {
        return single({ kind: 'columns', left: leftColumn, op: effective, right: base, offset: { sign: operator === '+' ? 1 : -1, value: offset } });
      }
    }
    // col = lower(col), col = btrim(col)
    const call = functionCall(right);
    if (call && call.args.length === 1 && columnName(call.args[0]) === leftColumn && effective === '=') {
      const form = call.name === 'lower' ? 'lower' : call.name === 'upper' ? 'upper' : ['btrim', 'trim'].includes(call.name) ? 'trimmed' : null;
      if (form) return single({ kind: 'case', column: leftColumn, form });
    }
  }
  // lower(col) = col
  const leftCall = functionCall(left);
  if (leftCall && rightColumn !== null && leftCall.args.length === 1 && columnName(leftCall.args[0]) === rightColumn) return comparison(FLIP[op], right, left, negated);
  // cardinality(col) op n
  const counted = cardinalityOf(left);
  if (counted !== null && typeof rightConstant === 'string' && /^\d+$/.test(rightConstant)) {
    return single({ kind: 'cardinality', column: counted, op: effective, value: Number(rightConstant) });
  }
  if (cardinalityOf(right) !== null && typeof leftConstant === 'string') return comparison(FLIP[op], right, left, negated);
  // length(col) op n
  const measured = lengthOf(left);
  if (measured !== null && typeof rightConstant === 'string' && /^\d+$/.test(rightConstant)) {
    return single({ kind: 'length', column: measured, op: effective, value: Number(rightConstant) });
  }
  if (lengthOf(right) !== null && typeof leftConstant === 'string') return comparison(FLIP[op], right, left, negated);
  // num_nonnulls(a, b) op n, num_nulls(a, b) op n
  if (leftCall && (leftCall.name === 'num_nonnulls' || leftCall.name === 'num_nulls') && typeof rightConstant === 'string' && /^\d+$/.test(rightConstant)) {
    const columns = leftCall.args.map(columnName);
    if (columns.every((column): column is string => column !== null)) {
      const count = Number(rightConstant);
      if (leftCall.name === 'num_nonnulls') return single({ kind: 'nonnulls', columns, op: effective, count });
      // nulls op n  <=>  nonnulls FLIP(op) total - n
      return single({ kind: 'nonnulls', columns, op: FLIP[effective], count: columns.length - count });
    }
  }
  if (functionCall(right) && (functionCall(right)!.name === 'num_nonnulls' || functionCall(right)!.name === 'num_nulls')) return comparison(FLIP[op], right, left, negated);
  return opaque('a comparison the planner does not read');
}

const MATCH_OPERATORS: Record<string, { syntax: 'regex' | 'like'; caseInsensitive: boolean; negated: boolean }> = {
  '~': { syntax: 'regex', caseInsensitive: false, negated: false },
  '~*': { syntax: 'regex', caseInsensitive: true, negated: false },
  '!~': { syntax: 'regex', caseInsensitive: false, negated: true },
  '!~*': { syntax: 'regex', caseInsensitive: true, negated: true },
  '~~': { syntax: 'like', caseInsensitive: false, negated: false },
  '~~*': { syntax: 'like', caseInsensitive: true, negated: false },
  '!~~': { syntax: 'like', caseInsensitive: false, negated: true },
  '!~~*': { syntax: 'like', caseInsensitive: true, negated: true },
};

function expression(node: unknown, negated: boolean): Atom[][] {
  const kind = nodeKind(node);
  if (!kind) return opaque('empty expression');
  const [type, value] = kind;
  if (type === 'BoolExpr') {
    const args = (value.args as unknown[] | undefined) ?? [];
    if (value.boolop === 'NOT_EXPR') return expression(args[0], !negated);
    const isAnd = (value.boolop === 'AND_EXPR') !== negated;
    const parts = args.map((arg) => expression(arg, negated));
    return isAnd ? and(parts) : or(parts);
  }
  if (type === 'NullTest') {
    const column = columnName(value.arg);
    if (column === null) {
      const call = functionCall(value.arg);
      return call ? opaque(`a null test on ${call.name}()`) : opaque('a null test on an expression');
    }
    const isNull = (value.nulltesttype === 'IS_NULL') !== negated;
    return single({ kind: 'null', column, isNull });
  }
  if (type === 'BooleanTest') {
    const column = columnName(value.arg);
    const test = String(value.booltesttype);
    if (column === null || !['IS_TRUE', 'IS_FALSE'].includes(test)) return opaque('a boolean test');
    return single({ kind: 'boolean', column, value: (test === 'IS_TRUE') !== negated });
  }
  if (type === 'ColumnRef' || type === 'TypeCast') {
    const column = columnName(node);
    if (column !== null) return single({ kind: 'boolean', column, value: !negated });
    const constant = constantText(node);
    if (constant === 'true' || constant === 'false') return (constant === 'true') !== negated ? [[]] : [];
    if (constant === null) return [[]]; // CHECK (NULL) holds
    return opaque('an expression');
  }
  if (type === 'A_Const') {
    const constant = constantText(node);
    if (constant === null) return [[]];
    return (constant === 'true') !== negated ? [[]] : [];
  }
  if (type === 'A_Expr') {
    const exprKind = String(value.kind);
    const operator = stringsOf(value.name)[0] ?? '';
    if (exprKind === 'AEXPR_OP' && COMPARISONS.has(operator)) {
      return comparison((operator === '!=' ? '<>' : operator) as Comparison, value.lexpr, value.rexpr, negated);
    }
    if (exprKind === 'AEXPR_OP' && operator in MATCH_OPERATORS) {
      const column = columnName(value.lexpr);
      const pattern = constantText(value.rexpr);
      if (column === null || typeof pattern !== 'string') return opaque(`a pattern match (${operator}) on an expression`);
      const spec = MATCH_OPERATORS[operator]!;
      return single({ kind: 'match', column, syntax: spec.syntax, pattern, caseInsensitive: spec.caseInsensitive, negated: spec.negated !== negated });
    }
    if (exprKind === 'AEXPR_OP' && operator in ARRAY_RELATIONS) return arrayRelation(operator, value.lexpr, value.rexpr, negated);
    if (exprKind === 'AEXPR_SIMILAR') {
      const column = columnName(value.lexpr);
      const call = functionCall(value.rexpr);
      const pattern = call?.name === 'similar_to_escape' && call.args.length === 1 ? constantText(call.args[0]) : constantText(value.rexpr);
      if (column === null || typeof pattern !== 'string') return opaque('a SIMILAR TO on an expression');
      return single({ kind: 'match', column, syntax: 'similar', pattern, caseInsensitive: false, negated: (operator === '!~') !== negated });
    }
    if (exprKind === 'AEXPR_OP_ANY' || exprKind === 'AEXPR_OP_ALL' || exprKind === 'AEXPR_IN') {
      const column = columnName(value.lexpr);
      const list = constantList(value.rexpr);
      if (column === null || !list) return opaque('a list comparison the planner does not read');
      const values = list.filter((item): item is string => item !== null);
      if ((exprKind === 'AEXPR_OP_ANY' || exprKind === 'AEXPR_IN') && operator === '=') return single({ kind: 'in', column, values, negated });
      if ((exprKind === 'AEXPR_OP_ALL' && operator === '<>') || (exprKind === 'AEXPR_IN' && operator === '<>')) return single({ kind: 'in', column, values, negated: !negated });
      return opaque(`${operator} ${exprKind === 'AEXPR_OP_ALL' ? 'ALL' : 'ANY'} (...)`);
    }
    if (exprKind === 'AEXPR_BETWEEN' || exprKind === 'AEXPR_NOT_BETWEEN') {
      const bounds = (nodeKind(value.rexpr)?.[1].items as unknown[] | undefined) ?? [];
      if (bounds.length !== 2) return opaque('BETWEEN');
      const inside = exprKind === 'AEXPR_BETWEEN' ? !negated : negated;
      const low = comparison('>=', value.lexpr, bounds[0], !inside);
      const high = comparison('<=', value.lexpr, bounds[1], !inside);
      return inside ? and([low, high]) : or([low, high]);
    }
  }
  if (type === 'FuncCall') {
    const call = functionCall(node)!;
    return opaque(`${call.name}(...)`);
  }
  return opaque(type);
}

/** What `definition` is parsed in: a CHECK constraint is a clause, not a statement of its own. */
const CHECK_PREFIX = 'ALTER TABLE rls_audit_check ADD ';

/** The expression of a `CHECK (...)` definition as pg_get_constraintdef prints it. Throws ParseError. */
function checkExpression(definition: string): unknown {
  const statement = parseStatements(`${CHECK_PREFIX}${definition}`)[0]?.stmt as Obj | undefined;
  const command = ((statement?.AlterTableStmt as Obj | undefined)?.cmds as Obj[] | undefined)?.[0]?.AlterTableCmd as Obj | undefined;
  const constraint = (command?.def as Obj | undefined)?.Constraint as Obj | undefined;
  if (!constraint || constraint.contype !== 'CONSTR_CHECK') throw new ParseError(`not a CHECK constraint: ${definition}`, null);
  return constraint.raw_expr;
}

/** Byte offsets (into the parsed text) of the column references named `value`, alone: what a domain CHECK calls VALUE. */
function domainValueLocations(node: unknown, found: number[] = []): number[] {
  if (Array.isArray(node)) {
    for (const item of node) domainValueLocations(item, found);
    return found;
  }
  if (!node || typeof node !== 'object') return found;
  const kind = nodeKind(node);
  if (kind?.[0] === 'ColumnRef') {
    const fields = kind[1].fields as unknown[] | undefined;
    if (fields?.length === 1 && stringsOf(fields)[0] === 'value' && typeof kind[1].location === 'number') found.push(kind[1].location);
    return found;
  }
  for (const child of Object.values(node as Obj)) if (child && typeof child === 'object') domainValueLocations(child, found);
  return found;
}

/**
 * A domain's CHECK (`CHECK ((VALUE > 0))`, as pg_get_constraintdef prints it) as a check on a column of the
 * domain: each reference to the domain's value becomes `quotedColumn`. PostgreSQL reads a column reference
 * named `value`, alone, as the value; so does this, in the parse tree: `VALUE` in a string literal, a
 * function or a type named value stays as it is. A definition that does not parse is returned unchanged
 * (readCheck then reads it as opaque).
 */
export function domainCheckOnColumn(definition: string, quotedColumn: string): string {
  let locations: number[];
  let tokens: ReturnType<typeof scanTokens>;
  try {
    locations = domainValueLocations(checkExpression(definition));
    tokens = scanTokens(definition);
  } catch {
    return definition;
  }
  const prefixBytes = Buffer.byteLength(CHECK_PREFIX);
  const toChar = byteToChar(definition);
  const starts = new Set(locations.map((location) => toChar(location - prefixBytes)));
  let text = '';
  let at = 0;
  for (const token of tokens) {
    if (!starts.has(token.start)) continue;
    text += definition.slice(at, token.start) + quotedColumn;
    at = token.end;
  }
  return text + definition.slice(at);
}

/** The text inside the parentheses of `CHECK (...)`, found with the lexer (quotes and nesting respected). */
function conditionText(definition: string): string | null {
  const tokens = scanTokens(definition);
  const open = tokens.findIndex((token) => token.text === '(');
  if (open < 0) return null;
  let depth = 0;
  for (let index = open; index < tokens.length; index += 1) {
    if (tokens[index]!.text === '(') depth += 1;
    if (tokens[index]!.text === ')') depth -= 1;
    if (depth === 0) return definition.slice(tokens[open]!.end, tokens[index]!.start);
  }
  return null;
}

/** The columns an expression reads (the last name of every column reference). */
function columnsRead(node: unknown, found: Set<string> = new Set()): Set<string> {
  if (Array.isArray(node)) {
    for (const item of node) columnsRead(item, found);
    return found;
  }
  if (!node || typeof node !== 'object') return found;
  const kind = nodeKind(node);
  if (kind?.[0] === 'ColumnRef') {
    const name = columnName(node);
    if (name !== null) found.add(name);
    return found;
  }
  for (const child of Object.values(node as Obj)) if (child && typeof child === 'object') columnsRead(child, found);
  return found;
}

/** Read a CHECK constraint (relation or domain). Never throws: what cannot be parsed is one opaque atom. */
export function readCheck(name: string, definition: string): CheckModel {
  let text: string | null = null;
  try {
    text = conditionText(definition);
    const condition = checkExpression(definition);
    return { name, definition, expression: text, alternatives: expression(condition, false), columns: [...columnsRead(condition)] };
  } catch (error) {
    return { name, definition, expression: text, alternatives: opaque(error instanceof Error ? error.message : String(error)), columns: [] };
  }
}

/**
 * An upper bound of the absolute value of an arithmetic expression over columns and constants, such as a
 * generated column's `quantity * unit_price_cents`, given one for each column it reads (null: unbounded).
 * Null when the expression is anything but `+ - * /`, casts and abs/round/coalesce/greatest/least.
 */
export function magnitudeBound(text: string, columnBound: (column: string) => number | null): number | null {
  let root: unknown;
  try {
    root = parseExpression(text);
  } catch {
    return null;
  }
  const bound = (node: unknown): number | null => {
    const kind = nodeKind(uncast(node));
    if (!kind) return null;
    const [type, value] = kind;
    if (type === 'ColumnRef') {
      const column = columnName(node);
      return column === null ? null : columnBound(column);
    }
    if (type === 'A_Const') {
      const number = Number(constantText(node));
      return Number.isFinite(number) ? Math.abs(number) : null;
    }
    if (type === 'A_Expr' && value.kind === 'AEXPR_OP') {
      const operator = stringsOf(value.name)[0];
      const right = bound(value.rexpr);
      if (right === null) return null;
      if (!value.lexpr) return operator === '-' || operator === '+' ? right : null;
      if (operator === '/') {
        const divisor = Number(constantText(value.rexpr));
        const left = bound(value.lexpr);
        return left !== null && Number.isFinite(divisor) && Math.abs(divisor) >= 1 ? left / Math.abs(divisor) : null;
      }
      const left = bound(value.lexpr);
      if (left === null) return null;
      if (operator === '+' || operator === '-') return left + right;
      if (operator === '*') return left * right;
      return null;
    }
    if (type === 'FuncCall') {
      const call = functionCall(node)!;
      if (!['abs', 'round', 'trunc', 'floor', 'ceil', 'ceiling', 'coalesce', 'greatest', 'least'].includes(call.name)) return null;
      const bounds = (['round', 'trunc'].includes(call.name) ? call.args.slice(0, 1) : call.args).map(bound);
      return bounds.length && bounds.every((item): item is number => item !== null) ? Math.max(...bounds) : null;
    }
    return null;
  };
  return bound(root);
}

/** Columns an atom constrains. */
export function atomColumns(atom: Atom): string[] {
  switch (atom.kind) {
    case 'columns':
      return [atom.left, atom.right];
    case 'nonnulls':
      return atom.columns;
    case 'opaque':
      return [];
    default:
      return [atom.column];
  }
}

// ---------------------------------------------------------------------------------------------------
// Partitions

export type BoundValue = { value: string | null } | { infinite: 'min' | 'max' };

export type PartitionBound =
  | { kind: 'range'; from: BoundValue[]; to: BoundValue[] }
  | { kind: 'list'; values: (string | null)[] }
  | { kind: 'hash'; modulus: number; remainder: number }
  | { kind: 'default' };

export interface PartitionKey {
  strategy: 'range' | 'list' | 'hash';
  /** Key columns in order; null where the key is an expression. */
  columns: (string | null)[];
}

function boundValues(list: unknown): BoundValue[] {
  return ((list as unknown[] | undefined) ?? []).map((item) => {
    const column = columnName(item);
    if (column === 'minvalue' || column === 'maxvalue') return { infinite: column === 'minvalue' ? 'min' : 'max' };
    const constant = constantText(item);
    if (constant === undefined) throw new ParseError('a partition bound that is not a constant', null);
    return { value: constant };
  });
}

/** Read `pg_get_expr(relpartbound)`, e.g. `FOR VALUES FROM ('2024-01-01') TO ('2025-01-01')`. Null when unreadable. */
export function readPartitionBound(bound: string): PartitionBound | null {
  try {
    const statement = parseStatements(`CREATE TABLE rls_audit_partition PARTITION OF rls_audit_parent ${bound}`)[0]?.stmt as Obj | undefined;
    const spec = (statement?.CreateStmt as Obj | undefined)?.partbound as Obj | undefined;
    if (!spec) return null;
    if (spec.is_default) return { kind: 'default' };
    if (spec.strategy === 'r') return { kind: 'range', from: boundValues(spec.lowerdatums), to: boundValues(spec.upperdatums) };
    if (spec.strategy === 'l') return { kind: 'list', values: ((spec.listdatums as unknown[] | undefined) ?? []).map((item) => constantText(item) ?? null) };
    if (spec.strategy === 'h') return { kind: 'hash', modulus: Number(spec.modulus ?? 1), remainder: Number(spec.remainder ?? 0) };
    return null;
  } catch {
    return null;
  }
}

/** Read `pg_get_partkeydef`, e.g. `RANGE (created_at)`. Null when unreadable. */
export function readPartitionKey(definition: string): PartitionKey | null {
  try {
    const statement = parseStatements(`CREATE TABLE rls_audit_parent () PARTITION BY ${definition}`)[0]?.stmt as Obj | undefined;
    const spec = (statement?.CreateStmt as Obj | undefined)?.partspec as Obj | undefined;
    if (!spec) return null;
    const strategy = String(spec.strategy).replace('PARTITION_STRATEGY_', '').toLowerCase();
    if (strategy !== 'range' && strategy !== 'list' && strategy !== 'hash') return null;
    const columns = ((spec.partParams as Obj[] | undefined) ?? []).map((param) => {
      const element = param.PartitionElem as Obj | undefined;
      return typeof element?.name === 'string' ? element.name : null;
    });
    return { strategy, columns };
  } catch {
    return null;
  }
}

// ---------------------------------------------------------------------------------------------------
// Column defaults

const sequenceDefaults = new Map<string, boolean>();

function callsNextval(node: unknown): boolean {
  if (Array.isArray(node)) return node.some(callsNextval);
  if (!node || typeof node !== 'object') return false;
  const call = functionCall(node);
  if (call?.name === 'nextval') return true;
  return Object.values(node as Obj).some((child) => child !== null && typeof child === 'object' && callsNextval(child));
}

/** Whether a column default (as pg_get_expr prints it) draws from a sequence: `nextval('x_id_seq'::regclass)`. */
export function isSequenceDefault(expression: string | null): boolean {
  if (!expression) return false;
  let result = sequenceDefaults.get(expression);
  if (result === undefined) {
    try {
      result = callsNextval(parseExpression(expression));
    } catch {
      result = false;
    }
    sequenceDefaults.set(expression, result);
  }
  return result;
}
