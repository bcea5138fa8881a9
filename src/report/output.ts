/**
 * What the audit writes to a terminal or a file system: never a password, never a control character that
 * came from the database (a table named "x\n  verdict: PASS" must not forge a line), and file-system
 * errors that name the path.
 */
import { mkdir, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { AuditError, errorMessage } from '../errors.js';
import { passwordsIn, redact } from '../target/connect.js';

/** The passwords this run knows of: from the URLs it was given and the environment. */
export class Secrets {
  private readonly values = new Set<string>();

  constructor(env: NodeJS.ProcessEnv = process.env) {
    if (env.PGPASSWORD) this.values.add(env.PGPASSWORD);
    if (env.DATABASE_URL) this.addConnection(env.DATABASE_URL);
  }

  addConnection(connection: string | undefined): void {
    if (connection) for (const secret of passwordsIn(connection)) this.values.add(secret);
  }

  redact(text: string): string {
    return this.values.size ? redact(text, this.values) : text;
  }

  /**
   * A report with every known password removed from every string in it. String by string, not over the
   * JSON text: a password that matches part of an escape sequence (`\n`, `\u001b`) would corrupt the JSON.
   */
  redactValue<T>(value: T): T {
    return this.values.size ? mapStrings(value, (text) => this.redact(text)) : value;
  }
}

const CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;
const LINE_BREAKS = /[\n\r]/g;

/** One line of terminal text: control characters, line breaks and bidi overrides shown as escapes, not obeyed. */
export function terminalLine(text: string): string {
  return text.replace(LINE_BREAKS, (char) => (char === '\n' ? '\\n' : '\\r')).replace(CONTROL, (char) => `\\u${char.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** `value` with every string in it (at any depth of arrays and plain objects) passed through `change`. */
function mapStrings<T>(value: T, change: (text: string) => string): T {
  if (typeof value === 'string') return change(value) as T;
  if (Array.isArray(value)) return value.map((item) => mapStrings(item, change)) as T;
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, mapStrings(item, change)])) as T;
  }
  return value;
}

/** Every string in `value` made safe for a terminal (names, messages, notes as the console prints them). */
export function terminalSafe<T>(value: T): T {
  return mapStrings(value, terminalLine);
}

function fsProblem(error: unknown): string {
  const code = (error as { code?: string }).code;
  const meaning: Record<string, string> = {
    ENOSPC: 'no space left on the device',
    EDQUOT: 'disk quota exceeded',
    EACCES: 'permission denied',
    EPERM: 'operation not permitted',
    EROFS: 'read-only file system',
    ENOENT: 'no such directory (or it cannot be created there)',
    ENOTDIR: 'a part of the path is a file, not a directory',
    EISDIR: 'it is a directory',
  };
  return code && meaning[code] ? `${meaning[code]} (${code})` : errorMessage(error);
}

/**
 * Create `dir` and its parents one level at a time (Node's recursive mkdir never returns on some pseudo
 * file systems, e.g. /proc). Errors are AuditErrors that name the path.
 */
export async function ensureDirectory(dir: string): Promise<void> {
  const absolute = path.resolve(dir);
  const parts = absolute.split(path.sep).filter(Boolean);
  let current = path.parse(absolute).root;
  for (const part of parts) {
    current = path.join(current, part);
    try {
      const info = await stat(current);
      if (!info.isDirectory()) throw new AuditError(`cannot write the reports to ${absolute}: ${current} is a file, not a directory. Give another --out directory.`);
      continue;
    } catch (error) {
      if (error instanceof AuditError) throw error;
      if ((error as { code?: string }).code !== 'ENOENT') throw new AuditError(`cannot write the reports to ${absolute}: ${current}: ${fsProblem(error)}. Give another --out directory.`);
    }
    try {
      await mkdir(current);
    } catch (error) {
      if ((error as { code?: string }).code === 'EEXIST') continue;
      throw new AuditError(`cannot create the report directory ${current}: ${fsProblem(error)}. Give another --out directory.`);
    }
  }
}

/** writeFile, with an error that names the file. */
export async function writeNamedFile(file: string, data: string): Promise<void> {
  try {
    await writeFile(file, data);
  } catch (error) {
    throw new AuditError(`cannot write ${file}: ${fsProblem(error)}. Free space or give another --out directory.`);
  }
}
