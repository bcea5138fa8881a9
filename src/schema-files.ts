import { readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
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

/** Run each schema file as one script; an error names the file and the line, as psql would. */
export async function applySchemaFiles(files: SchemaFile[], execute: (sql: string) => Promise<unknown>, cwd = process.cwd()): Promise<void> {
  for (const { file, sql } of files) {
    try {
      await execute(sql);
    } catch (error) {
      const failure = error as { message?: string; position?: string; internalPosition?: string; where?: string };
      const offset = Number(failure.position ?? 0);
      const line = offset > 0 ? sql.slice(0, offset - 1).split('\n').length : null;
      const where = `${path.relative(cwd, file) || file}${line ? `:${line}` : ''}`;
      throw new AuditError(`${where}: ${failure.message ?? errorMessage(error)}${failure.where ? ` (${failure.where.split('\n')[0]})` : ''}. Fix the schema file and run again.`);
    }
  }
}
