/**
 * PostgreSQL's own parser (libpg-query, the server's grammar compiled to WASM). Every module that needs to
 * understand SQL text (policy expressions, view definitions, function bodies, CHECK constraints, partition
 * bounds, schema files, user SQL) goes through here; nothing under src/ reads SQL with regular expressions.
 *
 * The WASM module loads once per process (about 50 ms); `loadParser()` must be awaited before the
 * synchronous functions are used. The audit does it at start-up.
 */
import { loadModule, parsePlPgSQLSync, parseSync, scanSync, type ScanToken } from 'libpg-query';
import type { Node, ParseResult, RawStmt } from '@pgsql/types';

export type { Node, ParseResult, RawStmt, ScanToken };

let loading: Promise<void> | undefined;
let loaded = false;

/** Load the parser; idempotent and safe to call concurrently. */
export async function loadParser(): Promise<void> {
  loading ??= loadModule().then(() => {
    loaded = true;
  });
  await loading;
}

function ensureLoaded(): void {
  if (!loaded) throw new Error('the SQL parser is not loaded: await loadParser() first');
}

/** A statement the parser rejected, with the 0-based character offset of the error when known. */
export class ParseError extends Error {
  override readonly name = 'ParseError';
  constructor(
    message: string,
    readonly position: number | null,
  ) {
    super(message);
  }
}

function asParseError(error: unknown): ParseError {
  const details = (error as { sqlDetails?: { message?: string; cursorPosition?: number } }).sqlDetails;
  const message = details?.message ?? (error instanceof Error ? error.message : String(error));
  return new ParseError(message, typeof details?.cursorPosition === 'number' ? details.cursorPosition : null);
}

/** Parse SQL text (one or more statements). Throws ParseError. */
export function parseStatements(sql: string): RawStmt[] {
  ensureLoaded();
  try {
    return (parseSync(sql) as ParseResult).stmts ?? [];
  } catch (error) {
    throw asParseError(error);
  }
}

/**
 * Parse one scalar expression, as `pg_get_expr` prints a policy's USING / WITH CHECK, a CHECK
 * constraint or a column default. Returns the expression node. Throws ParseError.
 */
export function parseExpression(expression: string): Node {
  const statements = parseStatements(`SELECT (${expression})`);
  const select = statements[0]?.stmt as { SelectStmt?: { targetList?: { ResTarget?: { val?: Node } }[] } } | undefined;
  const value = select?.SelectStmt?.targetList?.[0]?.ResTarget?.val;
  if (statements.length !== 1 || !value) throw new ParseError(`not a single expression: ${expression}`, null);
  return value;
}

/** The PL/pgSQL function tree of a `CREATE FUNCTION ... LANGUAGE plpgsql` statement. Throws ParseError. */
export function parsePlpgsql(createFunction: string): unknown[] {
  ensureLoaded();
  try {
    return (parsePlPgSQLSync(createFunction) as unknown as { plpgsql_funcs?: unknown[] }).plpgsql_funcs ?? [];
  } catch (error) {
    throw asParseError(error);
  }
}

/** Character offsets for the byte offsets the parser reports (they differ once the text has non-ASCII characters). */
export function byteToChar(text: string): (byte: number) => number {
  if (Buffer.byteLength(text) === text.length) return (byte) => byte;
  const offsets: number[] = [];
  let bytes = 0;
  for (let index = 0; index < text.length; ) {
    offsets[bytes] = index;
    const codePoint = text.codePointAt(index)!;
    const width = codePoint > 0xffff ? 2 : 1;
    bytes += Buffer.byteLength(text.slice(index, index + width));
    index += width;
  }
  offsets[bytes] = text.length;
  return (byte) => offsets[byte] ?? text.length;
}

/** One statement of a script: its parse tree, and where its text is (character offsets). */
export interface StatementSpan {
  raw: RawStmt;
  start: number;
  end: number;
  text: string;
}

/** Characters of a script parsed at once by statementSpans, at least. */
const SCRIPT_CHUNK = 16_384;

/** The offset just past the first `;` at or after `from` that ends a line, or the script's end. */
function lineEndingSemicolon(sql: string, from: number): number {
  for (let at = sql.indexOf(';', from); at >= 0; at = sql.indexOf(';', at + 1)) {
    if (at + 1 === sql.length || sql[at + 1] === '\n' || sql[at + 1] === '\r') return at + 1;
  }
  return sql.length;
}

/**
 * Parse a script and give each statement its text: the parser reports byte offsets, and a length of 0 (or
 * none) for the last statement, which runs to the end. Throws ParseError.
 *
 * A long script is parsed in chunks of about SCRIPT_CHUNK characters that end with a `;` at the end of a
 * line: the parse tree of a whole script is one JSON text and one tree at once (a 1,000-table schema
 * peaked 21 MB higher than in chunks). A chunk that does not parse may end inside a string, comment, body or
 * parenthesis, so it is extended to twice its length (to the next such `;`) and parsed again; only a chunk
 * that runs to the script's end reports its error (which is then the script's own). A prefix that parses
 * ends at a statement boundary.
 */
export function statementSpans(sql: string): StatementSpan[] {
  const spans: StatementSpan[] = [];
  for (const chunk of statementChunks(sql)) spans.push(...chunk.spans);
  return spans;
}

/**
 * statementSpans one chunk at a time, as each is parsed: `end` is the character offset up to which the
 * script has been read, so that a caller can act on a chunk (send it to the server) while the next one is
 * parsed. The ParseError of a script the parser rejects is thrown at the chunk that runs to its end.
 */
export function* statementChunks(sql: string): Generator<{ spans: StatementSpan[]; end: number }> {
  for (let from = 0, bytesBefore = 0; from < sql.length; ) {
    let end = lineEndingSemicolon(sql, Math.min(sql.length, from + SCRIPT_CHUNK));
    let raws: RawStmt[];
    for (;;) {
      try {
        raws = parseStatements(sql.slice(from, end));
        break;
      } catch (error) {
        if (end < sql.length) {
          // Twice as long each time: a function body with a `;` on every line costs a few parses, not one per line.
          end = lineEndingSemicolon(sql, from + 2 * (end - from));
          continue;
        }
        const failure = error as ParseError;
        throw new ParseError(failure.message, failure.position === null ? null : failure.position + from);
      }
    }
    const chunk = sql.slice(from, end);
    const toChar = byteToChar(chunk);
    const spans: StatementSpan[] = [];
    for (const raw of raws) {
      const location = raw.stmt_location ?? 0;
      const start = from + toChar(location);
      const stop = raw.stmt_len ? from + toChar(location + raw.stmt_len) : end;
      spans.push({ raw: { ...raw, stmt_location: bytesBefore + location }, start, end: stop, text: sql.slice(start, stop) });
    }
    bytesBefore += Buffer.byteLength(chunk);
    from = end;
    yield { spans, end };
  }
}

/** Control characters the scanner copies into its JSON unescaped (it escapes only tab, newline and return). */
function isBareControl(code: number): boolean {
  return code < 0x20 && code !== 0x09 && code !== 0x0a && code !== 0x0d;
}

/** Tokens inside which any character is content: quoted strings and identifiers, and comments. */
const QUOTED = new Set(['SCONST', 'USCONST', 'BCONST', 'XCONST', 'SQL_COMMENT', 'C_COMMENT']);

/**
 * The lexer's tokens, e.g. to find statement boundaries and comments without parsing, with `start` / `end`
 * as character offsets into `sql` and `text` sliced from it. Throws ParseError.
 *
 * The scanner's JSON output leaves control characters other than tab, newline and return unescaped, so
 * they are masked with a letter (same width, and inside a quoted token or comment a letter lexes alike,
 * even after a backslash) and the token texts are taken from the original. A control character outside
 * a quoted token is a lexical error in PostgreSQL, and is one here.
 */
export function scanTokens(sql: string): ScanToken[] {
  ensureLoaded();
  const controls: number[] = [];
  let masked = sql;
  for (let index = 0; index < sql.length; index += 1) if (isBareControl(sql.charCodeAt(index))) controls.push(index);
  if (controls.length) masked = [...sql].map((char) => (char.length === 1 && isBareControl(char.charCodeAt(0)) ? 'x' : char)).join('');
  let tokens: ScanToken[];
  try {
    tokens = scanSync(masked).tokens;
  } catch (error) {
    throw asParseError(error);
  }
  const toChar = byteToChar(sql);
  tokens = tokens.map((token) => {
    const start = toChar(token.start);
    const end = toChar(token.end);
    return { ...token, start, end, text: sql.slice(start, end) };
  });
  for (const at of controls) {
    const token = tokens.find((candidate) => candidate.start <= at && at < candidate.end);
    const quoted = token && (QUOTED.has(token.tokenName) || (token.tokenName === 'IDENT' || token.tokenName === 'UIDENT') && (token.text.startsWith('"') || token.text.toLowerCase().startsWith('u&"')));
    if (!quoted) throw new ParseError(`syntax error at or near control character U+${sql.charCodeAt(at).toString(16).padStart(4, '0').toUpperCase()}`, at);
  }
  return tokens;
}
