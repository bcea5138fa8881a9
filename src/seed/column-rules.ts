/**
 * What the CHECK constraints of a relation, a column's domain and a partition's bounds say about one column's
 * values (ColumnRules), how each atom of them narrows the rules, and comparisons in the column's type.
 */
import type { Atom, CheckModel, Comparison } from '../analysis/constraints.js';
import type { Column } from '../catalog/types.js';

/** An end of a range of values, as PostgreSQL input text, compared in the column's type. */
export interface RangeEnd {
  value: string;
  inclusive: boolean;
}

/** A pattern a text value must (or must not) match, as a JavaScript regular expression. */
export interface TextPattern {
  source: string;
  flags: string;
  negated: boolean;
  /** The constraint's own text, for messages. */
  original: string;
}

/** What the CHECK constraints of a relation, the column's domain and a partition's bounds say about one column. */
export interface ColumnRules {
  /** Allowed values (`col IN (...)`, `col = 'x'`, a list partition), when restricted. */
  allowed: string[] | null;
  /** Values that are not allowed (`col <> 'x'`, `col NOT IN (...)`). */
  excluded: string[];
  /** Numeric bounds, inclusive (exclusive ones are tightened to the next value). */
  min: number | null;
  max: number | null;
  /** Bounds of other ordered types (dates, times): compared in the type. */
  low: RangeEnd | null;
  high: RangeEnd | null;
  minLength: number | null;
  maxLength: number | null;
  /** Must not be empty / blank (e.g. `title <> ''`, `length(trim(x)) > 0`). */
  nonEmpty: boolean;
  lowercase: boolean;
  uppercase: boolean;
  patterns: TextPattern[];
  /** `col IS NULL` (one alternative of a check may demand it). */
  mustBeNull: boolean;
  /** `col IS NOT NULL`. */
  mustBeSet: boolean;
  /** A boolean column that must be true or false. */
  boolean: boolean | null;
  /** An array column: what its elements may be (`<@`), must include (`@>`), must share with each list (`&&`), and how many. */
  elements: ElementRules;
}

export interface ElementRules {
  within: string[] | null;
  required: string[];
  overlaps: string[][];
  minCount: number | null;
  maxCount: number | null;
}

export function emptyRules(column: Column): ColumnRules {
  return {
    allowed: column.enumValues ? [...column.enumValues] : null, excluded: [], min: null, max: null, low: null, high: null,
    minLength: null, maxLength: column.maxLength, nonEmpty: false, lowercase: false, uppercase: false, patterns: [],
    mustBeNull: false, mustBeSet: false, boolean: null,
    elements: { within: null, required: [], overlaps: [], minCount: null, maxCount: null },
  };
}

export function copyRules(rules: ColumnRules): ColumnRules {
  const { elements } = rules;
  return {
    ...rules, allowed: rules.allowed ? [...rules.allowed] : null, excluded: [...rules.excluded], patterns: [...rules.patterns],
    elements: { ...elements, within: elements.within ? [...elements.within] : null, required: [...elements.required], overlaps: elements.overlaps.map((list) => [...list]) },
  };
}

export const TEXT_TYPES = new Set(['text', 'varchar', 'bpchar', 'citext', 'name']);
export const INTEGER_RANGES: Record<string, [number, number]> = { int2: [1, 32_000], int4: [1, 2_000_000_000], int8: [1, 9_000_000_000_000] };
export const NUMERIC_TYPES = new Set([...Object.keys(INTEGER_RANGES), 'numeric', 'float4', 'float8', 'money']);
export const TEMPORAL_TYPES = new Set(['date', 'timestamp', 'timestamptz']);

export function isNumeric(column: Column): boolean {
  return NUMERIC_TYPES.has(column.baseType);
}

export function isTemporal(column: Column): boolean {
  return TEMPORAL_TYPES.has(column.baseType);
}

export function isText(column: Column): boolean {
  return TEXT_TYPES.has(column.baseType) || (column.category === 'S' && !column.enumValues);
}

/** Milliseconds since the epoch of a date or timestamp as PostgreSQL prints it; NaN when unreadable. */
export function epochOf(text: string): number {
  if (text === 'infinity' || text === '-infinity') return NaN;
  let iso = text.trim().replace(' ', 'T');
  if (/T[\d:.]+[+-]\d\d$/.test(iso)) iso += ':00';
  else if (/T\d\d:\d\d(:\d\d(\.\d+)?)?$/.test(iso)) iso += 'Z';
  return Date.parse(iso);
}

/** A string LIKE or SIMILAR TO pattern as a JavaScript regular expression source. */
function likeToRegExp(pattern: string, syntax: 'like' | 'similar'): string {
  let source = '';
  for (let index = 0; index < pattern.length; index += 1) {
    const char = pattern[index]!;
    if (char === '\\' && index + 1 < pattern.length) {
      source += pattern[index + 1]!.replace(/[.*+?^${}()|[\]\\/-]/g, '\\$&');
      index += 1;
    } else if (char === '%') source += '[\\s\\S]*';
    else if (char === '_') source += '[\\s\\S]';
    else if (syntax === 'similar' && '|*+?{}()[]'.includes(char)) source += char;
    else source += char.replace(/[.*+?^${}()|[\]\\/-]/g, '\\$&');
  }
  return `^(?:${source})$`;
}

const POSIX_CLASSES: Record<string, string> = {
  alpha: 'a-zA-Z', digit: '0-9', alnum: 'a-zA-Z0-9', upper: 'A-Z', lower: 'a-z', space: ' \\t\\n\\r\\f\\v', xdigit: '0-9a-fA-F',
  punct: '!-\\/:-@\\[-`{-~', word: '\\w', blank: ' \\t', cntrl: '\\x00-\\x1f', print: ' -~', graph: '!-~',
};

/**
 * A PostgreSQL (ARE) regular expression as a JavaScript one: POSIX classes inside brackets, the word-boundary
 * escapes \m \M \y, \A and \Z, and embedded options `(?i)`. Returns null when JavaScript cannot compile it.
 */
export function regexFromPostgres(pattern: string, caseInsensitive: boolean): { source: string; flags: string } | null {
  let source = pattern;
  let flags = caseInsensitive ? 'i' : '';
  const options = /^\(\?([a-z]+)\)/.exec(source);
  if (options) {
    if (options[1]!.includes('i')) flags = 'i';
    source = source.slice(options[0].length);
  }
  source = source
    .replace(/\[:([a-z]+):\]/g, (whole, name: string) => POSIX_CLASSES[name] ?? whole)
    .replace(/\\[mMy]/g, '\\b')
    .replace(/\\A/g, '^')
    .replace(/\\Z/g, '$');
  try {
    new RegExp(source, flags);
    return { source, flags };
  } catch {
    return null;
  }
}

/** Apply one atom about a single column to its rules; false when it plainly contradicts them. */
export function applyAtom(rules: ColumnRules, column: Column, atom: Atom): boolean {
  switch (atom.kind) {
    case 'compare': {
      if (atom.op === '=') return restrictAllowed(rules, [atom.value]);
      if (atom.op === '<>') {
        rules.excluded.push(atom.value);
        return !rules.allowed || rules.allowed.some((value) => value !== atom.value);
      }
      if (isNumeric(column)) {
        const value = Number(atom.value);
        if (!Number.isFinite(value)) return true;
        const integer = column.baseType in INTEGER_RANGES;
        const step = integer ? 1 : Number.isInteger(value) ? 0.01 : 10 ** -Math.min(6, (atom.value.split('.')[1] ?? '').length + 1);
        if (atom.op === '>=' || atom.op === '>') rules.min = Math.max(rules.min ?? -Infinity, atom.op === '>' ? value + step : value);
        else rules.max = Math.min(rules.max ?? Infinity, atom.op === '<' ? value - step : value);
        if (integer) {
          if (rules.min !== null) rules.min = Math.ceil(rules.min);
          if (rules.max !== null) rules.max = Math.floor(rules.max);
        }
        return rules.min === null || rules.max === null || rules.min <= rules.max;
      }
      const end = { value: atom.value, inclusive: atom.op === '>=' || atom.op === '<=' };
      if (atom.op === '>=' || atom.op === '>') {
        if (!rules.low || compareValues(column, atom.value, rules.low.value) > 0) rules.low = end;
      } else if (!rules.high || compareValues(column, atom.value, rules.high.value) < 0) rules.high = end;
      return true;
    }
    case 'in':
      if (atom.negated) {
        rules.excluded.push(...atom.values);
        return !rules.allowed || rules.allowed.some((value) => !atom.values.includes(value));
      }
      return restrictAllowed(rules, atom.values);
    case 'length': {
      const value = atom.value;
      if (atom.op === '>=') rules.minLength = Math.max(rules.minLength ?? 0, value);
      if (atom.op === '>') rules.minLength = Math.max(rules.minLength ?? 0, value + 1);
      if (atom.op === '<=') rules.maxLength = Math.min(rules.maxLength ?? Infinity, value);
      if (atom.op === '<') rules.maxLength = Math.min(rules.maxLength ?? Infinity, value - 1);
      if (atom.op === '=') {
        rules.minLength = Math.max(rules.minLength ?? 0, value);
        rules.maxLength = Math.min(rules.maxLength ?? Infinity, value);
      }
      if (atom.op === '<>' && value === 0) rules.nonEmpty = true;
      return (rules.minLength ?? 0) <= (rules.maxLength ?? Infinity);
    }
    case 'match': {
      const converted = atom.syntax === 'regex' ? regexFromPostgres(atom.pattern, atom.caseInsensitive) : { source: likeToRegExp(atom.pattern, atom.syntax), flags: atom.caseInsensitive ? 'i' : '' };
      if (!converted) return true; // JavaScript cannot read it: PostgreSQL judges the generated value
      rules.patterns.push({ ...converted, negated: atom.negated, original: atom.pattern });
      return true;
    }
    case 'null':
      if (atom.isNull) {
        if (column.notNull || rules.mustBeSet) return false;
        rules.mustBeNull = true;
      } else {
        if (rules.mustBeNull) return false;
        rules.mustBeSet = true;
      }
      return true;
    case 'case':
      if (atom.form === 'lower') rules.lowercase = true;
      if (atom.form === 'upper') rules.uppercase = true;
      return !(rules.lowercase && rules.uppercase);
    case 'boolean':
      if (rules.boolean !== null && rules.boolean !== atom.value) return false;
      rules.boolean = atom.value;
      return true;
    case 'elements': {
      const elements = rules.elements;
      if (atom.relation === 'within') elements.within = elements.within ? elements.within.filter((value) => atom.values.includes(value)) : [...atom.values];
      else if (atom.relation === 'contains') elements.required.push(...atom.values.filter((value) => !elements.required.includes(value)));
      else elements.overlaps.push([...atom.values]);
      return elementsPossible(elements);
    }
    case 'cardinality': {
      const elements = rules.elements;
      const { op, value } = atom;
      if (op === '>=' || op === '>' || op === '=') elements.minCount = Math.max(elements.minCount ?? 0, op === '>' ? value + 1 : value);
      if (op === '<=' || op === '<' || op === '=') elements.maxCount = Math.min(elements.maxCount ?? Infinity, op === '<' ? value - 1 : value);
      if (op === '<>' && value === 0) elements.minCount = Math.max(elements.minCount ?? 0, 1);
      return elementsPossible(elements);
    }
    default:
      return true;
  }
}

/** Whether some array meets the element rules: the required elements allowed, every overlap reachable, the counts in order. */
function elementsPossible(elements: ElementRules): boolean {
  const { within, required, overlaps, minCount, maxCount } = elements;
  if (within && required.some((value) => !within.includes(value))) return false;
  if (within && overlaps.some((list) => !list.some((value) => within.includes(value)))) return false;
  if (overlaps.some((list) => !list.length)) return false;
  if (maxCount !== null && (maxCount < (minCount ?? 0) || maxCount < required.length)) return false;
  return !(within && minCount !== null && minCount > within.length);
}

function restrictAllowed(rules: ColumnRules, values: string[]): boolean {
  rules.allowed = rules.allowed ? rules.allowed.filter((value) => values.includes(value)) : [...values];
  return rules.allowed.length > 0;
}

/** Order two values of a column's type: numbers numerically, dates by time, the rest as strings. */
export function compareValues(column: Column, left: string, right: string): number {
  if (isNumeric(column)) return Number(left) - Number(right);
  if (isTemporal(column)) return epochOf(left) - epochOf(right);
  return left < right ? -1 : left > right ? 1 : 0;
}

/** Whether `left op right` holds in the column's type (numbers, dates, text, booleans). */
export function holds(column: Column, left: string, op: Comparison, right: string): boolean {
  const order = column.baseType === 'bool' ? Number(left.startsWith('t')) - Number(right.startsWith('t')) : compareValues(column, left, right);
  if (Number.isNaN(order)) return true;
  switch (op) {
    case '=': return order === 0;
    case '<>': return order !== 0;
    case '<': return order < 0;
    case '<=': return order <= 0;
    case '>': return order > 0;
    case '>=': return order >= 0;
  }
}

/**
 * What the checks say about one column alone, taking the first alternative of each check that mentions
 * nothing but this column (enough for a probe's single row; the seeder plans whole rows).
 */
export function columnRules(column: Column, checks: CheckModel[]): ColumnRules {
  const rules = emptyRules(column);
  for (const check of checks) {
    const alternative = check.alternatives.find((atoms) => atoms.every((atom) => atom.kind !== 'opaque' && atom.kind !== 'columns' && atom.kind !== 'nonnulls'));
    for (const atom of alternative ?? []) if ('column' in atom && atom.column === column.name) applyAtom(rules, column, atom);
  }
  return rules;
}
