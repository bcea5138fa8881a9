/** How the parse tree of a CHECK condition reads as atoms in disjunctive normal form (the model of constraints.ts). */
import type { Atom, Comparison } from './constraints.js';
import { columnName, constantText, functionCall, nodeKind, stringsOf, uncast } from './parse-nodes.js';

const NEGATE: Record<Comparison, Comparison> = { '=': '<>', '<>': '=', '<': '>=', '<=': '>', '>': '<=', '>=': '<' };
const FLIP: Record<Comparison, Comparison> = { '=': '=', '<>': '<>', '<': '>', '<=': '>=', '>': '<', '>=': '<=' };
const COMPARISONS = new Set<string>(['=', '<>', '!=', '<', '<=', '>', '>=']);
/** Cap on alternatives, so a wide boolean does not explode; one satisfiable alternative is enough. */
const MAX_ALTERNATIVES = 32;

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

export const opaque = (reason: string): Atom[][] => [[{ kind: 'opaque', reason }]];
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

export function expression(node: unknown, negated: boolean): Atom[][] {
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
