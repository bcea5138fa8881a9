import pg from 'pg';
import { ident } from './sql.js';

/** Values as PostgreSQL prints them: attribution and masking work on the exact text. */
const RAW_TYPES = { getTypeParser: () => (value: string) => value };

export type RawRow = Record<string, string | null>;

export interface QueryOutcome {
  rows: RawRow[];
  rowCount: number;
}

/**
 * The audit's one connection and one transaction. Seeding and every probe happen inside it; probes each
 * run in a savepoint that is rolled back; the transaction itself is rolled back at the end, so a `url`
 * target is left exactly as it was.
 */
export class AuditSession {
  private savepoints = 0;
  queries = 0;

  constructor(readonly client: pg.Client) {}

  static async open(connectionString: string, options: { lockTimeoutMs?: number; statementTimeoutMs?: number; readOnly?: boolean } = {}): Promise<AuditSession> {
    const client = new pg.Client({ connectionString, application_name: 'rls-audit' });
    client.on('error', () => undefined);
    await client.connect();
    const session = new AuditSession(client);
    await client.query(options.readOnly ? 'begin read only' : 'begin');
    await client.query(`select set_config('statement_timeout', $1, true), set_config('lock_timeout', $2, true)`, [
      String(options.statementTimeoutMs ?? 60_000),
      String(options.lockTimeoutMs ?? 5_000),
    ]);
    return session;
  }

  async query(text: string, values: unknown[] = [], name?: string): Promise<QueryOutcome> {
    this.queries += 1;
    const result = await this.client.query({ text, values, types: RAW_TYPES, ...(name ? { name } : {}) });
    return { rows: result.rows as RawRow[], rowCount: result.rowCount ?? 0 };
  }

  /**
   * Run `work` in a savepoint. Keep its effects when `keep` is true and it succeeds; roll back otherwise.
   * `prelude` statements (no parameters) run right after the savepoint is taken, in the same round trip.
   */
  async savepoint<T>(work: () => Promise<T>, keep = false, prelude: string[] = []): Promise<T> {
    const name = `rls_audit_${++this.savepoints}`;
    const undo = `rollback to savepoint ${name}; release savepoint ${name}`;
    try {
      await this.client.query([`savepoint ${name}`, ...prelude].join('; '));
    } catch (error) {
      await this.client.query(undo);
      throw error;
    }
    try {
      const result = await work();
      await this.client.query(keep ? `release savepoint ${name}` : undo);
      return result;
    } catch (error) {
      await this.client.query(undo);
      throw error;
    }
  }

  /** `set local role`, for a savepoint's prelude. */
  roleStatement(role: string): string {
    return `set local role ${ident(role)}`;
  }

  /** Become the application role for the rest of the current savepoint. */
  async becomeRole(role: string): Promise<void> {
    await this.client.query(`set local role ${ident(role)}`);
  }

  async end(): Promise<void> {
    try {
      await this.client.query('rollback');
    } finally {
      await this.client.end().catch(() => undefined);
    }
  }
}
