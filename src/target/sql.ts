import { ParseError, scanTokens } from '../analysis/parse.js';
import type { Relation } from '../catalog/types.js';

/** PostgreSQL holds no NUL in a name or a text value, and a NUL would end the message's text early: refused. */
function refuseNul(text: string, what: string): void {
  if (text.includes('\0')) throw new Error(`internal error: ${what} ${JSON.stringify(text)} holds a NUL character, which PostgreSQL cannot hold`);
}

/**
 * Quote an identifier, always (design rule: identifiers are always quoted). Inside double quotes every
 * character but NUL stands for itself (line breaks, `--`, `/*`, quotes, backslashes, `$$`, `;`, control and
 * non-ASCII characters alike); a double quote is doubled. A name read from the catalog is at most 63 bytes,
 * so PostgreSQL does not truncate it.
 */
export function ident(name: string): string {
  refuseNul(name, 'the name');
  return `"${name.replace(/"/g, '""')}"`;
}

/**
 * A `--` comment for SQL people read and paste (evidence, fixes), never for SQL that is sent: a line break
 * in `text` (a name, a tenant id, a label) would end the comment and make the rest SQL, so it is written
 * as `\n` (and `\r`).
 */
export function lineComment(text: string): string {
  return `-- ${commentText(text)}`;
}

/** `text` (a name, an expression, a label) for the inside of a `--` comment: line breaks written as `\n` and `\r`. */
export function commentText(text: string): string {
  return text.replace(/\r/g, '\\r').replace(/\n/g, '\\n');
}

/** `"schema"."name"` for a relation. */
export function relationIdent(relation: Pick<Relation, 'schema' | 'name'>): string {
  return `${ident(relation.schema)}.${ident(relation.name)}`;
}

/** `"schema"."name"` for a qualified name such as `public.messages` (split at the first dot). */
export function qualifiedIdent(qualified: string): string {
  const dot = qualified.indexOf('.');
  return dot < 0 ? ident(qualified) : `${ident(qualified.slice(0, dot))}.${ident(qualified.slice(dot + 1))}`;
}

/**
 * A text[] literal (`{"a","b",NULL}`), to pass as one parameter: built with one join, where node-postgres
 * concatenates element by element (which made most of the garbage of seeding a million rows).
 */
export function textArrayLiteral(items: readonly (string | null)[]): string {
  const quoted = items.map((item) => (item === null ? 'NULL' : `"${item.includes('"') || item.includes('\\') ? item.replace(/[\\"]/g, '\\$&') : item}"`));
  return `{${quoted.join(',')}}`;
}

/**
 * A SQL string literal. A single quote is doubled; a value with a backslash is an escape string (E'...')
 * with the backslash doubled, which reads the same whether standard_conforming_strings is on or off (with it
 * off, a backslash in '...' would escape the quote that follows).
 */
export function literal(value: string | number | boolean | null): string {
  if (value === null) return 'null';
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  refuseNul(value, 'the value');
  const quoted = value.replace(/'/g, "''");
  return value.includes('\\') ? `E'${quoted.replace(/\\/g, '\\\\')}'` : `'${quoted}'`;
}

/** Where the placeholders of a statement text are (null: the lexer rejects it), by text: probes show the same statement with many values. */
const placeholderCache = new Map<string, { start: number; end: number; position: number }[] | null>();
const PLACEHOLDER_CACHE_ENTRIES = 4096;

function placeholdersOf(sql: string): { start: number; end: number; position: number }[] | null {
  const cached = placeholderCache.get(sql);
  if (cached !== undefined) return cached;
  // The placeholders are the lexer's: `$1` in a string, a dollar quote, a quoted name or a comment is text.
  let found: { start: number; end: number; position: number }[] | null;
  try {
    found = scanTokens(sql)
      .filter((token) => token.tokenName === 'PARAM')
      .map((token) => ({ start: token.start, end: token.end, position: Number(token.text.slice(1)) }));
  } catch (error) {
    if (!(error instanceof ParseError)) throw error;
    found = null;
  }
  if (placeholderCache.size >= PLACEHOLDER_CACHE_ENTRIES) placeholderCache.clear();
  placeholderCache.set(sql, found);
  return found;
}

/** Replace `$1`, `$2`, ... in SQL with literals, for evidence that can be pasted into psql. */
export function inlineParameters(sql: string, params: readonly (string | number | boolean | null)[]): string {
  const placeholders = placeholdersOf(sql);
  if (!placeholders) return sql; // shown as written; the server reports the error where it runs
  let out = '';
  let at = 0;
  for (const { start, end, position } of placeholders) {
    if (!(position >= 1 && position <= params.length)) continue;
    out += sql.slice(at, start) + literal(params[position - 1]!);
    at = end;
  }
  return out + sql.slice(at);
}
