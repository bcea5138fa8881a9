/**
 * What CHECK constraints, domain checks and partition bounds say about the values a row may hold, read from
 * PostgreSQL's parse tree. The seeder plans values from this model; the parts it cannot read are `opaque`
 * atoms, which the seeder leaves to PostgreSQL to judge.
 */
import { expression, opaque } from './check-atoms.js';
import { byteToChar, parseExpression, parseStatements, ParseError, scanTokens } from './parse.js';
import { columnName, constantText, functionCall, nodeKind, stringsOf, uncast, type Obj } from './parse-nodes.js';

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
