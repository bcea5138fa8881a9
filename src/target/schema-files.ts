import { readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { loadParser, statementSpans, type RawStmt, type StatementSpan } from '../analysis/parse.js';
import { AuditError, errorMessage } from '../errors.js';

export interface SchemaFile {
  file: string;
  sql: string;
}

/** A directory stands for every `*.sql` in it, in name order (e.g. supabase/migrations). */
async function expandDirectories(files: string[]): Promise<string[]> {
  const expanded: string[] = [];
  for (const file of files) {
    const info = await stat(file).catch(() => null);
    if (!info?.isDirectory()) {
      expanded.push(file);
      continue;
    }
    const names = (await readdir(file)).filter((name) => name.toLowerCase().endsWith('.sql')).sort();
    if (!names.length) throw new AuditError(`schema directory ${file} holds no .sql file`);
    expanded.push(...names.map((name) => path.join(file, name)));
  }
  return expanded;
}

export async function readSchemaFiles(files: string[]): Promise<SchemaFile[]> {
  return Promise.all(
    (await expandDirectories(files)).map(async (file) => {
      try {
        return { file, sql: await readFile(file, 'utf8') };
      } catch (error) {
        throw new AuditError(`cannot read schema file ${file}: ${errorMessage(error)}`);
      }
    }),
  );
}

/** The statements of a script with the character offset each starts at; null when the parser rejects it (PostgreSQL then says where). */
function statementsOf(sql: string): StatementSpan[] | null {
  try {
    return statementSpans(sql);
  } catch {
    return null;
  }
}

/** One statement of a schema file, or a whole file the parser rejects (`raw` null). */
interface Step {
  file: string;
  sql: string;
  text: string;
  start: number;
  raw: RawStmt | null;
}

/** Statements sent together at most, and their characters at most. */
const BATCH_STATEMENTS = 500;
const BATCH_CHARS = 1 << 20;

/**
 * How a statement may share one simple-query message with others, which PostgreSQL runs as one implicit
 * transaction: 'alone' for what must not run in a transaction block (VACUUM, CONCURRENTLY, CREATE DATABASE,
 * ALTER SYSTEM, tablespaces, subscriptions, CALL of a procedure that commits), for transaction control, and
 * for what the parser rejected; 'last' for ALTER TYPE ... ADD VALUE, whose new value later statements may
 * use only once it is committed.
 */
function placement(raw: RawStmt | null): 'batch' | 'last' | 'alone' {
  const statement = raw?.stmt as Record<string, Record<string, unknown> | undefined> | undefined;
  if (!statement) return 'alone';
  const [kind] = Object.keys(statement);
  const node = statement[kind!] ?? {};
  switch (kind) {
    case 'TransactionStmt':
    case 'VacuumStmt':
    case 'CreatedbStmt':
    case 'DropdbStmt':
    case 'AlterSystemStmt':
    case 'CreateTableSpaceStmt':
    case 'DropTableSpaceStmt':
    case 'CreateSubscriptionStmt':
    case 'AlterSubscriptionStmt':
    case 'DropSubscriptionStmt':
    case 'CallStmt':
    case 'ClusterStmt':
    case 'DiscardStmt':
      return 'alone';
    case 'IndexStmt':
    case 'DropStmt':
      return node.concurrent ? 'alone' : 'batch';
    case 'ReindexStmt':
      return JSON.stringify(node.params ?? []).includes('"concurrently"') ? 'alone' : 'batch';
    case 'AlterEnumStmt':
      return 'last';
    default:
      return 'batch';
  }
}

/**
 * The steps in order, grouped into the messages they are sent in: statements that may share an implicit
 * transaction go together, up to a bound; the rest go one by one, as do all statements between a BEGIN and
 * its end (the script's own transaction: a failed group could not be run again inside it).
 */
function groupSteps(steps: Step[]): Step[][] {
  const groups: Step[][] = [];
  let group: Step[] = [];
  let chars = 0;
  let ownTransaction = false;
  const close = () => {
    if (group.length) groups.push(group);
    group = [];
    chars = 0;
  };
  for (const step of steps) {
    const where = placement(step.raw);
    const transaction = (step.raw?.stmt as { TransactionStmt?: { kind?: string } } | undefined)?.TransactionStmt?.kind;
    if (transaction) ownTransaction = transaction === 'TRANS_STMT_BEGIN' || transaction === 'TRANS_STMT_START' || (ownTransaction && !['TRANS_STMT_COMMIT', 'TRANS_STMT_ROLLBACK', 'TRANS_STMT_PREPARE'].includes(transaction));
    if (where === 'alone' || ownTransaction || transaction) {
      close();
      groups.push([step]);
      continue;
    }
    if (group.length >= BATCH_STATEMENTS || chars + step.text.length > BATCH_CHARS) close();
    group.push(step);
    chars += step.text.length;
    if (where === 'last') close();
  }
  close();
  return groups;
}

/**
 * Run the schema files in order, as psql would, but with statements grouped into few messages: a group runs
 * as one implicit transaction, so when it fails nothing of it is kept, and it runs again statement by
 * statement (split by PostgreSQL's parser) so that the error names the file and the line of the statement
 * that failed, for errors found while running as well as for syntax errors. A file the parser rejects runs
 * as one script: the server then reports the position. `execute` runs one message and keeps its effects
 * only if all of it succeeds (on the audit's own connection, a savepoint per message).
 */
export async function applySchemaFiles(files: SchemaFile[], execute: (sql: string) => Promise<unknown>, cwd = process.cwd()): Promise<void> {
  await loadParser();
  const steps: Step[] = files.flatMap(({ file, sql }): Step[] => {
    const statements = statementsOf(sql);
    return statements ? statements.map((statement) => ({ file, sql, text: statement.text, start: statement.start, raw: statement.raw })) : [{ file, sql, text: sql, start: 0, raw: null }];
  });
  for (const group of groupSteps(steps)) {
    if (group.length > 1) {
      try {
        // A newline before each `;`: a statement may end in a line comment (the last one of a file).
        await execute(group.map((step) => step.text).join('\n;\n'));
        continue;
      } catch {
        // Rolled back whole: run it again one statement at a time to say which failed.
      }
    }
    for (const step of group) await runStep(step, execute, cwd);
  }
}

/** The extension a CREATE EXTENSION statement creates, or null for any other statement. */
function extensionCreated(raw: RawStmt | null): string | null {
  const node = (raw?.stmt as { CreateExtensionStmt?: { extname?: string } } | undefined)?.CreateExtensionStmt;
  return node?.extname ?? null;
}

/**
 * The error of a CREATE EXTENSION that this PostgreSQL build cannot run: the control file is absent
 * (58P01 before PostgreSQL 16 says so plainly; later versions say "is not available", 0A000).
 */
function missingExtension(raw: RawStmt | null, failure: { code?: string }): string | null {
  const extension = extensionCreated(raw);
  return extension && (failure.code === '58P01' || failure.code === '0A000') ? extension : null;
}

async function runStep({ file, sql, text, start, raw }: Step, execute: (sql: string) => Promise<unknown>, cwd: string): Promise<void> {
  try {
    await execute(text);
  } catch (error) {
    const failure = error as { message?: string; position?: string; where?: string; code?: string };
    // The server's position (1-based) is within the statement; without one, the statement's first line.
    const within = Number(failure.position ?? 0);
    const offset = start + (within > 0 ? within - 1 : text.length - text.trimStart().length);
    const line = sql.slice(0, offset).split('\n').length;
    const where = `${path.relative(cwd, file) || file}:${line}`;
    const extension = missingExtension(raw, failure);
    if (extension) {
      throw new AuditError(
        `${where}: the extension ${JSON.stringify(extension)} is not in this PostgreSQL build (${failure.message ?? errorMessage(error)}). ` +
          `Audit with a PostgreSQL that has it: --pg-bin DIR with the bin directory of an installation where ${extension} is installed (e.g. /usr/lib/postgresql/16/bin after installing the distribution's package of it); the embedded PostgreSQL ships the contrib extensions only.`,
      );
    }
    throw new AuditError(`${where}: ${failure.message ?? errorMessage(error)}${failure.where ? ` (${failure.where.split('\n')[0]})` : ''}. Fix the schema file and run again.`);
  }
}
