import { passwordsIn, redact } from './connect.js';
import type { CopyFailure } from './schema-from.js';

export type TargetKind = 'embedded' | 'url' | 'container';

/** A live database to audit: an admin connection string and a way to let it go. */
export interface Target {
  kind: TargetKind;
  /** Connection string of a superuser (embedded, container) or of the given user (url). */
  connectionString: string;
  /** Where the database is, safe to print: passwords are masked. */
  description: string;
  /** True when the database belongs to this run and may be changed freely (schema applied and committed). */
  disposable: boolean;
  /** For an embedded cluster: the PostgreSQL bin directory it runs from (psql, pg_dump are looked up there). */
  binDir?: string;
  /** What the report should say about how the database was made (e.g. objects --schema-from could not copy). */
  notes?: string[];
  /** --schema-from: the statements of the source's dump the copy could not recreate. */
  copyFailures?: CopyFailure[];
  close(): Promise<void>;
}

/**
 * Replace the password in a connection string, so it can be printed or stored in a report: URLs (also
 * those that do not parse, e.g. an unencoded @ in the password), key=value strings, `?password=`.
 */
export function maskConnectionString(connection: string): string {
  return redact(connection, passwordsIn(connection));
}
