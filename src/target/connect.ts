import pg from 'pg';
import { AuditError, errorMessage } from '../errors.js';
import { guardClient } from './sent-sql.js';

/**
 * Every connection the audit opens goes through here, so that every wait is bounded: the connect itself,
 * each statement, each lock, and time idle inside a transaction (a stopped audit must not hold its locks).
 * The settings are sent in the startup packet, so they hold from the first statement.
 */
export interface Bounds {
  connectTimeoutMs: number;
  statementTimeoutMs: number;
  lockTimeoutMs: number;
  idleInTransactionMs: number;
}

export const DEFAULT_BOUNDS: Bounds = { connectTimeoutMs: 10_000, statementTimeoutMs: 60_000, lockTimeoutMs: 5_000, idleInTransactionMs: 60_000 };

/** A database the audit does not own: waits on its locks stay short, so the application never waits long on the audit. */
export const LIVE_BOUNDS: Bounds = { connectTimeoutMs: 10_000, statementTimeoutMs: 30_000, lockTimeoutMs: 100, idleInTransactionMs: 30_000 };

const KEYWORDS: Record<string, keyof pg.ClientConfig | 'sslmode' | 'ignore'> = {
  host: 'host',
  hostaddr: 'host',
  port: 'port',
  dbname: 'database',
  user: 'user',
  password: 'password',
  application_name: 'ignore',
  fallback_application_name: 'ignore',
  connect_timeout: 'ignore',
  sslmode: 'sslmode',
  options: 'options',
  // node-postgres writes UTF-8, and the audit sets the server's client_encoding to match (see connect).
  client_encoding: 'ignore',
};

/**
 * A libpq key=value connection string (`host=db port=5432 dbname=app user=audit password='a b'`): values may
 * be single-quoted, with backslash escapes. Throws AuditError (without the value of any key) when malformed.
 */
export function parseKeyValue(text: string): Record<string, string> {
  const entries: Record<string, string> = {};
  let index = 0;
  const skipSpace = () => {
    while (index < text.length && /\s/.test(text[index]!)) index += 1;
  };
  for (;;) {
    skipSpace();
    if (index >= text.length) return entries;
    const keyMatch = /^[A-Za-z_]+/.exec(text.slice(index));
    if (!keyMatch) throw new AuditError(`the connection string is not valid key=value (at character ${index + 1}): write host=... port=... dbname=... user=...`);
    const key = keyMatch[0].toLowerCase();
    index += keyMatch[0].length;
    skipSpace();
    if (text[index] !== '=') throw new AuditError(`the connection string is not valid key=value: "${key}" has no "="`);
    index += 1;
    skipSpace();
    let value = '';
    if (text[index] === "'") {
      index += 1;
      for (;;) {
        if (index >= text.length) throw new AuditError(`the connection string is not valid key=value: the quoted value of ${key} is not closed`);
        const char = text[index]!;
        if (char === '\\' && index + 1 < text.length) {
          value += text[index + 1];
          index += 2;
        } else if (char === "'") {
          index += 1;
          break;
        } else {
          value += char;
          index += 1;
        }
      }
    } else {
      while (index < text.length && !/\s/.test(text[index]!)) {
        if (text[index] === '\\' && index + 1 < text.length) index += 1;
        value += text[index];
        index += 1;
      }
    }
    entries[key] = value;
  }
}

/** True for `postgres://` and `postgresql://` URLs. */
export function isUrl(connection: string): boolean {
  return /^postgres(ql)?:\/\//i.test(connection.trim());
}

/**
 * The pg client configuration for a connection: a URL, a key=value string, or '' (the PG* environment
 * variables, as libpq reads them). Anything else (a URL typo such as `postgresql:/`) is refused with a
 * message that does not repeat it.
 */
export function clientConfig(connection: string): pg.ClientConfig {
  const text = connection.trim();
  if (text === '') return {};
  if (isUrl(text)) {
    try {
      // Validate early: pg would otherwise fail later with a message that may hold the URL.
      new URL(text);
    } catch {
      throw new AuditError('the database URL does not parse: percent-encode special characters in the user and password (@ is %40, : is %3A, / is %2F), e.g. postgresql://user:p%40ss@host:5432/db');
    }
    return { connectionString: text };
  }
  if (/^[a-z][a-z0-9+.-]*:/i.test(text) && !/^[A-Za-z_]+\s*=/.test(text)) {
    throw new AuditError('the database URL does not parse: it must start with postgresql:// (or postgres://), or be key=value pairs such as host=db dbname=app user=audit');
  }
  const config: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(parseKeyValue(text))) {
    const field = KEYWORDS[key];
    if (!field) throw new AuditError(`the connection string has an unsupported keyword ${key}: use host, port, dbname, user, password, sslmode, options`);
    if (field === 'ignore') continue;
    if (field === 'sslmode') {
      if (value === 'disable') config.ssl = false;
      else if (value === 'require' || value === 'prefer' || value === 'allow') config.ssl = { rejectUnauthorized: false };
      else config.ssl = true;
      continue;
    }
    config[field] = field === 'port' ? Number(value) : value;
  }
  return config as pg.ClientConfig;
}

/**
 * The password a connection string carries, even when it does not parse, so that every output can hide
 * it: the URL's password (up to the LAST @, since an unencoded @ in a password is a common mistake), the
 * `password=` value of a key=value string or of a URL query.
 */
export function passwordsIn(connection: string): string[] {
  const found = new Set<string>();
  const text = connection.trim();
  const url = /^[a-z][a-z0-9+.-]*:\/*([^:@/\s]*):(.*)@[^@]*$/i.exec(text);
  if (url?.[2]) {
    found.add(url[2]);
    try {
      found.add(decodeURIComponent(url[2]));
    } catch {
      // not percent-encoded
    }
  }
  for (const match of text.matchAll(/password\s*=\s*('(?:[^'\\]|\\.)*'|[^\s&]+)/gi)) {
    const value = match[1]!;
    found.add(value);
    if (value.startsWith("'")) found.add(value.slice(1, -1).replace(/\\(.)/g, '$1'));
  }
  return [...found].filter((value) => value.length > 0);
}

/** `text` with every secret replaced by *****. */
export function redact(text: string, secrets: Iterable<string>): string {
  let out = text;
  for (const secret of [...secrets].sort((a, b) => b.length - a.length)) {
    if (secret) out = out.split(secret).join('*****');
  }
  return out;
}

/**
 * Open a connection with every wait bounded. Errors are AuditErrors that say what to check. `pipeline`:
 * each query is written when it is made, not when the one before has been answered (node-postgres'
 * pipeline mode), so that statements sent together cost one round trip.
 *
 * Every query of the connection is guarded (sent-sql.ts): one statement per message (the extended
 * protocol), no comment. The client encoding is UTF8, the encoding node-postgres writes in: under
 * another one (GBK, SJIS, BIG5 set for the role or database) the server would read a multibyte character
 * where a quoted name or value has a backslash.
 */
export async function connect(connection: string, bounds: Bounds = DEFAULT_BOUNDS, applicationName = 'rls-audit', pipeline = false): Promise<pg.Client> {
  const client = new pg.Client({
    ...clientConfig(connection),
    pipeline,
    application_name: applicationName,
    connectionTimeoutMillis: bounds.connectTimeoutMs,
    keepAlive: true,
    keepAliveInitialDelayMillis: 10_000,
    statement_timeout: bounds.statementTimeoutMs,
    lock_timeout: bounds.lockTimeoutMs,
    idle_in_transaction_session_timeout: bounds.idleInTransactionMs,
  });
  client.on('error', () => undefined);
  try {
    await client.connect();
  } catch (error) {
    await client.end().catch(() => undefined);
    throw new AuditError(`cannot connect to the database: ${describeConnectionError(error)}. Check the URL, that the server is running, and the credentials.`);
  }
  try {
    await guardClient(client);
    await client.query(`set client_encoding to 'UTF8'`);
  } catch (error) {
    await client.end().catch(() => undefined);
    throw error;
  }
  return client;
}

/** A connection-level failure said in words: what happened and not "Client has encountered a connection error". */
export function describeConnectionError(error: unknown): string {
  const message = errorMessage(error);
  const code = (error as { code?: string }).code;
  if (/timeout expired|Connection terminated due to connection timeout/i.test(message)) return 'the server did not answer within the connect timeout';
  if (code === 'ECONNREFUSED') return 'connection refused (nothing listens at that host and port)';
  if (code === 'ENOTFOUND') return `the host name does not resolve (${message.replace(/^getaddrinfo ENOTFOUND\s*/, '')})`;
  return message;
}

/** True when an error means the connection to the server is gone (not an SQL error). */
export function isConnectionLost(error: unknown): boolean {
  const message = errorMessage(error);
  const code = (error as { code?: string }).code;
  return (
    code === '57P01' || code === '57P02' || code === '57P03' || code === 'ECONNRESET' || code === 'EPIPE' ||
    /Connection terminated|connection error|Client was closed|not queryable|terminating connection/i.test(message)
  );
}
