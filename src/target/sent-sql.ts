/**
 * What may be sent to a server, checked at the one place every statement passes: the `query` of every
 * connection the audit opens (target/connect.ts). A name is data, and reaches SQL only quoted (`ident`,
 * `literal`); this is the fail-closed guard behind that rule. Every text is sent over the extended protocol
 * (Parse/Bind/Execute: one statement per message, so a second statement cannot ride along), and before it
 * is sent, PostgreSQL's own lexer (libpg-query) must find in it no comment and at most one statement.
 * Otherwise nothing is sent and the audit stops (UnsafeSqlError, an internal error): a name that ended a
 * comment or a quote would show up here as a comment or a second statement.
 *
 * The only texts that bypass it are the user's own scripts (schema files, a preset's setup), run with
 * `runScript` on a cluster the audit owns; the audit refuses schema files on a database it does not own.
 */
import type pg from 'pg';
import { loadParser, parseStatements, scanTokens } from '../analysis/parse.js';
import { AuditError } from '../errors.js';

/** SQL the audit refused to send (it holds a comment or more than one statement): a defect of the audit. */
export class UnsafeSqlError extends AuditError {}

/** Texts found safe, so that each distinct text is scanned once (a run sends thousands, most of them again and again). */
const accepted = new Set<string>();
let acceptedChars = 0;
const MAX_ACCEPTED_CHARS = 16 << 20;

/** A statement, as shown in an error: escaped, so that no control character of a name reaches a terminal. */
function shown(text: string): string {
  const short = text.length > 300 ? `${text.slice(0, 300)}...` : text;
  return JSON.stringify(short);
}

function refuse(text: string, why: string): never {
  throw new UnsafeSqlError(
    `internal error: the audit refused to send SQL that ${why}: ${shown(text)}. Nothing was sent and the audit stopped; please report this with the name shown.`,
  );
}

/**
 * Throw UnsafeSqlError unless `text` is at most one statement with no comment in it, as PostgreSQL's lexer
 * reads it. A text with no `--`, no `/*` and no `;` can hold neither a comment nor a second statement (the
 * grammar separates statements with `;`), so it needs no scan; any other is scanned, and parsed when a `;`
 * is followed by anything.
 */
export function checkSentSql(text: string): void {
  if (accepted.has(text)) return;
  if (text.includes('--') || text.includes('/*') || text.includes(';')) {
    let tokens;
    try {
      tokens = scanTokens(text);
    } catch (error) {
      refuse(text, `PostgreSQL's lexer rejects (${error instanceof Error ? error.message : String(error)})`);
    }
    if (tokens.some((token) => token.tokenName === 'SQL_COMMENT' || token.tokenName === 'C_COMMENT')) refuse(text, 'holds a comment');
    const last = tokens.length - 1;
    if (tokens.some((token, index) => token.tokenName === 'ASCII_59' && index < last)) {
      let count: number;
      try {
        count = parseStatements(text).length;
      } catch (error) {
        refuse(text, `PostgreSQL's parser rejects (${error instanceof Error ? error.message : String(error)})`);
      }
      if (count > 1) refuse(text, `holds ${count} statements`);
    }
  }
  if (acceptedChars + text.length > MAX_ACCEPTED_CHARS) {
    accepted.clear();
    acceptedChars = 0;
  }
  accepted.add(text);
  acceptedChars += text.length;
}

/** The `query` of a connection as node-postgres has it, before the guard: for runScript only. */
const unguarded = new WeakMap<pg.Client, pg.Client['query']>();

/**
 * Make every `query` of `client` pass checkSentSql and go over the extended protocol. A query that is not
 * text with optional values (a callback, a Submittable such as a cursor) is refused: the audit uses none.
 */
export async function guardClient(client: pg.Client): Promise<pg.Client> {
  await loadParser();
  const send = client.query.bind(client) as (config: pg.QueryConfig) => Promise<pg.QueryResult>;
  unguarded.set(client, client.query.bind(client) as pg.Client['query']);
  const guarded = (config: string | pg.QueryConfig, values?: unknown[]): Promise<pg.QueryResult> => {
    const query: pg.QueryConfig = typeof config === 'string' ? { text: config } : config;
    if (typeof query?.text !== 'string' || 'submit' in query || (values !== undefined && !Array.isArray(values)) || 'callback' in query) {
      throw new UnsafeSqlError('internal error: a query that is not SQL text with values was given to a guarded connection');
    }
    checkSentSql(query.text);
    return send({ ...query, values: values ?? query.values ?? [], queryMode: 'extended' } as pg.QueryConfig);
  };
  (client as unknown as { query: typeof guarded }).query = guarded;
  return client;
}

/**
 * Run the user's own script (schema files, a preset's setup: several statements, comments) as it is, in one
 * simple-protocol message. Only on a cluster the audit owns; never with a name or a value the audit put in.
 */
export async function runScript(client: pg.Client, sql: string): Promise<void> {
  const query = unguarded.get(client) ?? client.query.bind(client);
  await (query as (text: string) => Promise<unknown>)(sql);
}

/**
 * The user's SQL (context SQL, a named query) as it is sent: each comment PostgreSQL's lexer finds becomes
 * spaces (line breaks kept), so that what is sent carries no comment while every other character, and so
 * every position the server reports, stays where it was. Throws ParseError when the lexer rejects it.
 */
export function blankComments(sql: string): string {
  if (!sql.includes('--') && !sql.includes('/*')) return sql;
  let out = '';
  let at = 0;
  for (const token of scanTokens(sql)) {
    if (token.tokenName !== 'SQL_COMMENT' && token.tokenName !== 'C_COMMENT') continue;
    out += sql.slice(at, token.start) + sql.slice(token.start, token.end).replace(/[^\r\n]/gu, ' ');
    at = token.end;
  }
  return out + sql.slice(at);
}
