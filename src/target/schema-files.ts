import { readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { loadParser, ParseError, statementChunks, type RawStmt, type StatementSpan } from '../analysis/parse.js';
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

/** One statement of a schema file, or a whole file the parser rejects (`raw` null). */
interface Step {
  file: string;
  sql: string;
  text: string;
  start: number;
  raw: RawStmt | null;
}

/**
 * Statements sent together at most, and their characters at most: about one chunk of the parser's
 * (statementChunks), so that the server runs one message while the next part of the script is parsed.
 */
const BATCH_STATEMENTS = 500;
const BATCH_CHARS = 1 << 14;

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
 * its end (the script's own transaction: a failed group could not be run again inside it). Steps are added
 * as they are parsed; `add` returns the groups that are complete.
 */
class StepGroups {
  private group: Step[] = [];
  private chars = 0;
  private ownTransaction = false;

  add(step: Step): Step[][] {
    const done: Step[][] = [];
    const close = () => {
      if (this.group.length) done.push(this.group);
      this.group = [];
      this.chars = 0;
    };
    const where = placement(step.raw);
    const transaction = (step.raw?.stmt as { TransactionStmt?: { kind?: string } } | undefined)?.TransactionStmt?.kind;
    if (transaction) this.ownTransaction = transaction === 'TRANS_STMT_BEGIN' || transaction === 'TRANS_STMT_START' || (this.ownTransaction && !['TRANS_STMT_COMMIT', 'TRANS_STMT_ROLLBACK', 'TRANS_STMT_PREPARE'].includes(transaction));
    if (where === 'alone' || this.ownTransaction || transaction) {
      close();
      done.push([step]);
      return done;
    }
    if (this.group.length >= BATCH_STATEMENTS || this.chars + step.text.length > BATCH_CHARS) close();
    this.group.push(step);
    this.chars += step.text.length;
    if (where === 'last') close();
    return done;
  }

  /** The group still open, at the end of the last file. */
  rest(): Step[][] {
    const done = this.group.length ? [this.group] : [];
    this.group = [];
    return done;
  }
}

/**
 * Run the schema files in order, as psql would, but with statements grouped into few messages: a group runs
 * as one implicit transaction, so when it fails nothing of it is kept, and it runs again statement by
 * statement (split by PostgreSQL's parser) so that the error names the file and the line of the statement
 * that failed, for errors found while running as well as for syntax errors. What the parser rejects (from
 * the chunk it cannot parse to the end of its file) runs as one script: the server then reports the
 * position. `execute` runs one message and keeps its effects only if all of it succeeds (on the audit's own
 * connection, a savepoint per message).
 *
 * The server runs each group while the parser reads on: a group is sent as soon as it is complete, and the
 * next one only once it has succeeded.
 */
export async function applySchemaFiles(files: SchemaFile[], execute: (sql: string) => Promise<unknown>, cwd = process.cwd()): Promise<void> {
  await loadParser();
  const groups = new StepGroups();
  let running: Promise<void> = Promise.resolve();
  const start = async (done: Step[][]) => {
    for (const group of done) {
      await running;
      running = runGroup(group, execute, cwd);
      // Its failure is awaited (and thrown) before anything else is sent; meanwhile it is not unhandled.
      running.catch(() => undefined);
    }
  };
  for (const { file, sql } of files) {
    const chunks = statementChunks(sql);
    let read = 0;
    for (;;) {
      let chunk: IteratorResult<{ spans: StatementSpan[]; end: number }>;
      try {
        chunk = chunks.next();
      } catch (error) {
        if (!(error instanceof ParseError)) throw error;
        await start(groups.add({ file, sql, text: sql.slice(read), start: read, raw: null }));
        break;
      }
      if (chunk.done) break;
      for (const statement of chunk.value.spans) await start(groups.add({ file, sql, text: statement.text, start: statement.start, raw: statement.raw }));
      read = chunk.value.end;
    }
  }
  await start(groups.rest());
  await running;
}

async function runGroup(group: Step[], execute: (sql: string) => Promise<unknown>, cwd: string): Promise<void> {
  if (group.length > 1) {
    try {
      // A newline before each `;`: a statement may end in a line comment (the last one of a file).
      await execute(group.map((step) => step.text).join('\n;\n'));
      return;
    } catch {
      // Rolled back whole: run it again one statement at a time to say which failed.
    }
  }
  for (const step of group) await runStep(step, execute, cwd);
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
