import { readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { loadParser, statementSpans } from './analysis/parse.js';
import { AuditError, errorMessage } from './errors.js';

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
function statementsOf(sql: string): { text: string; start: number }[] | null {
  try {
    return statementSpans(sql);
  } catch {
    return null;
  }
}

/**
 * Run each schema file statement by statement (split by PostgreSQL's parser), so that an error names the
 * file and the line of the statement that failed, as psql would, for errors found while running as well as
 * for syntax errors. A file the parser rejects runs as one script: the server then reports the position.
 */
export async function applySchemaFiles(files: SchemaFile[], execute: (sql: string) => Promise<unknown>, cwd = process.cwd()): Promise<void> {
  await loadParser();
  for (const { file, sql } of files) {
    const statements = statementsOf(sql) ?? [{ text: sql, start: 0 }];
    for (const statement of statements) {
      try {
        await execute(statement.text);
      } catch (error) {
        const failure = error as { message?: string; position?: string; where?: string };
        // The server's position (1-based) is within the statement; without one, the statement's first line.
        const within = Number(failure.position ?? 0);
        const offset = statement.start + (within > 0 ? within - 1 : statement.text.length - statement.text.trimStart().length);
        const line = sql.slice(0, offset).split('\n').length;
        const where = `${path.relative(cwd, file) || file}:${line}`;
        throw new AuditError(`${where}: ${failure.message ?? errorMessage(error)}${failure.where ? ` (${failure.where.split('\n')[0]})` : ''}. Fix the schema file and run again.`);
      }
    }
  }
}
