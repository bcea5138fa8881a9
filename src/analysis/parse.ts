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

/** The lexer's tokens, e.g. to find statement boundaries and comments without parsing. Throws ParseError. */
export function scanTokens(sql: string): ScanToken[] {
  ensureLoaded();
  try {
    return scanSync(sql).tokens;
  } catch (error) {
    throw asParseError(error);
  }
}
