import pg from 'pg';
import { AuditError, AuditTimeout, errorMessage } from '../errors.js';
import { connect, DEFAULT_BOUNDS, type Bounds } from './connect.js';
import { Pacer } from './pace.js';
import { pagedQuery } from './paged.js';
import { blankComments, runScript } from './sent-sql.js';
import { ident } from './sql.js';

/** Values as PostgreSQL prints them: attribution and masking work on the exact text. */
const RAW_TYPES = { getTypeParser: () => (value: string) => value };

export type RawRow = Record<string, string | null>;

export interface QueryOutcome {
  rows: RawRow[];
  rowCount: number;
}

/** A promise whose failure is read later (or never): it does not count as an unhandled rejection meanwhile. */
export function pending<T>(promise: Promise<T>): Promise<T> {
  promise.catch(() => undefined);
  return promise;
}

/** Undo everything since savepoint `name`, and drop it: two statements, sent together. */
function undoSql(name: string): string[] {
  return [`rollback to savepoint ${name}`, `release savepoint ${name}`];
}

/**
 * The audit's one connection and one transaction. Seeding and every probe happen inside it; probes each
 * run in a savepoint that is rolled back; the transaction itself is rolled back at the end, so a `url`
 * target is left exactly as it was. The connection pipelines: a `query` is one round trip, while `send`,
 * `rolledBack` and `sendKept` put several statements on the wire at once and read their answers after.
 * Every statement is a message of its own (the extended protocol), and the connection refuses any text
 * with a comment or a second statement in it (sent-sql.ts); statements that go together are pipelined,
 * never joined with `;`.
 */
export class AuditSession {
  private savepoints = 0;
  queries = 0;
  /** The last statement sent through `query` or `send`: what an unexpected failure is reported with. */
  lastStatement: string | null = null;

  /** Set when the run's time limit is reached: every later query fails at once (see expire). */
  private expired: string | null = null;
  /** The server process of this connection, to cancel its statement. */
  private pid = 0;
  /** The savepoints of the units (rolledBack) whose rollback has been sent while their outcomes are read. */
  private readonly closing: string[] = [];
  /** The unit sending its statements now (from its turn to its rollback), or null. */
  private sending: string | null = null;
  /** The units not yet done: anything else waits for them (see idle). */
  private readonly units = new Set<Promise<unknown>>();
  /** Resolves when the last unit called has sent its rollback: the next one's turn. */
  private turn: Promise<void> = Promise.resolve();
  /** Statements sent with sendKept whose outcome has not come back (or, failed, not been undone) yet. */
  private readonly unsettled = new Set<Promise<unknown>>();
  /**
   * A savepoint left open by the last rolledBack, holding nothing: rolled back to, not yet released. The
   * next rolledBack takes it as its own (the state after `rollback to savepoint` is the state right after
   * `savepoint`), so that a probe costs one bookkeeping statement instead of three; any other statement
   * releases it first (see run), so nothing else ever runs inside it.
   */
  private standing: string | null = null;
  /** The stream is corked until the next tick (see writeTogether). */
  private corked = false;

  /**
   * On a database the audit does not own: keeps the connection's share of busy time at the scenario's pace
   * (target/pace.ts). Each query, probe, savepoint or script waits for its turn before it is sent.
   */
  readonly pacer: Pacer | null;

  constructor(
    readonly client: pg.Client,
    pace = 1,
  ) {
    this.pacer = pace < 1 ? new Pacer(pace) : null;
  }

  /** Every statement goes to the server here: the pacer counts the time it is there. */
  private run(config: string | pg.QueryConfig): Promise<pg.QueryResult<RawRow>> {
    if (this.standing) {
      // Its failure (only on a broken transaction) fails the statement behind it, which reports it.
      const release = `release savepoint ${this.standing}`;
      this.standing = null;
      pending(this.run(release));
    }
    this.writeTogether();
    const pacer = this.pacer;
    const result = this.client.query<RawRow>(config as pg.QueryConfig);
    if (!pacer) return result;
    pacer.sent();
    const answered = () => pacer.answered();
    result.then(answered, answered);
    return result;
  }

  /** Wait for the pacer's turn, then for the statements sent ahead (idle). */
  private async ready(): Promise<void> {
    await this.pacer?.turn();
    await this.idle();
  }

  /**
   * Wait for the statements sent with sendKept (settled) and for the units called before (rolledBack);
   * inside a unit that is sending (a nested savepoint), only for the former.
   */
  private async idle(): Promise<void> {
    if (this.unsettled.size) await this.settled();
    while (!this.sending && this.units.size) await Promise.allSettled([...this.units]);
  }

  /**
   * Stop the audit: the statement running now is cancelled (from a connection of its own, as psql's
   * Ctrl-C does) and every later query throws AuditTimeout, so that the audit unwinds to its report.
   */
  async expire(reason: string, connection: string, bounds: Bounds): Promise<void> {
    this.expired = reason;
    const canceller = await connect(connection, bounds, 'rls-audit cancel').catch(() => null);
    if (!canceller) return;
    try {
      await canceller.query('select pg_cancel_backend($1)', [this.pid]);
    } catch {
      // the statement ended meanwhile
    } finally {
      await canceller.end().catch(() => undefined);
    }
  }

  /** Why the audit was stopped (its time limit), or null. */
  get expiredReason(): string | null {
    if (!this.expired && this.deadline && Date.now() >= this.deadline.at) this.expired = this.deadline.reason;
    return this.expired;
  }

  /**
   * The run's time limit by the clock: checked before every statement and in the loops that plan rows, so
   * that the limit holds even when the timer that cancels the running statement fires late (a busy event loop).
   */
  setDeadline(at: number, reason: string): void {
    this.deadline = { at, reason };
  }

  private deadline: { at: number; reason: string } | null = null;

  /** Throws AuditTimeout once the run's time is up. */
  checkExpired(): void {
    const reason = this.expiredReason;
    if (reason) throw new AuditTimeout(reason);
  }

  /**
   * For a catch block that treats a failed statement as something to learn from or skip: a stop (the time
   * limit, whose cancelled statement fails with "canceling statement"; or any AuditError) is no such
   * failure and goes on up. Returns when `error` is an ordinary statement error.
   */
  rethrowStop(error: unknown): void {
    this.checkExpired();
    if (error instanceof AuditError) throw error;
  }

  /** What user SQL must leave as it found: the transaction, the identity and the audit's settings. */
  private static readonly STATE_SQL = `select now()::text as started, pg_current_xact_id_if_assigned()::text as xid, session_user::text as session_user,
    current_user::text as current_user, current_setting('row_security') as row_security, current_setting('lock_timeout') as lock_timeout,
    current_setting('statement_timeout') as statement_timeout, current_setting('idle_in_transaction_session_timeout') as idle_in_transaction_session_timeout,
    current_setting('transaction_read_only') as transaction_read_only, current_setting('session_replication_role') as session_replication_role,
    current_setting('search_path') as search_path, current_setting('client_encoding') as client_encoding,
    current_setting('standard_conforming_strings') as standard_conforming_strings`;

  /** `pace`: the share of time the connection may be busy on the server (1: no pause; see target/pace.ts). */
  static async open(connection: string, options: { bounds?: Bounds; readOnly?: boolean; pace?: number } = {}): Promise<AuditSession> {
    const client = await connect(connection, options.bounds ?? DEFAULT_BOUNDS, 'rls-audit', true);
    const session = new AuditSession(client, options.pace);
    // One round trip: the connection is pipelined.
    const [pid] = await Promise.all([session.run('select pg_backend_pid() as pid'), session.run(options.readOnly ? 'begin read only' : 'begin')]);
    session.pid = Number(pid.rows[0]!.pid);
    return session;
  }

  /**
   * Commit what the transaction did so far and go on in a new one. Only on a cluster that belongs to the run:
   * the seed becomes visible to the other connections that probe in parallel.
   */
  async commit(): Promise<void> {
    await this.idle();
    this.standing = null;
    await this.run('commit');
    await this.run('begin');
  }

  /** Roll the transaction back and begin another: releases every lock it held. */
  async restart(): Promise<void> {
    await this.idle();
    this.standing = null;
    await this.run('rollback');
    await this.run('begin');
  }

  async query(text: string, values: unknown[] = [], name?: string): Promise<QueryOutcome> {
    await this.ready();
    return this.dispatch(text, values, name);
  }

  /**
   * Wait until every statement sent with sendKept has answered and, where it failed, been undone: whatever
   * is sent after that must not meet a transaction that one of them aborted. Everything but `send` (which
   * pipelines on purpose) waits here first.
   */
  async settled(): Promise<void> {
    while (this.unsettled.size) await Promise.allSettled([...this.unsettled]);
  }

  private async dispatch(text: string, values: unknown[], name?: string): Promise<QueryOutcome> {
    this.checkExpired();
    // It would run after the rollback, outside the savepoint it belongs to.
    if (this.closing.length && !this.sending) throw new Error(`internal error: ${text.slice(0, 100)} was sent after the rollback of savepoint ${this.closing[0]}`);
    this.queries += 1;
    this.lastStatement = text;
    const result = await this.run({ text, values, types: RAW_TYPES, ...(name ? { name } : {}) });
    return { rows: result.rows as RawRow[], rowCount: result.rowCount ?? 0 };
  }

  /** A read whose result may be large, in pages through a cursor (target/paged.ts says why). */
  async queryPaged(text: string, values: unknown[] = []): Promise<QueryOutcome> {
    await this.ready();
    const result = await pagedQuery((page, pageValues = []) => this.dispatch(page, pageValues), text, values);
    return { rows: result.rows, rowCount: result.rows.length };
  }

  private async state(): Promise<Record<string, string | null>> {
    return (await this.run({ text: AuditSession.STATE_SQL, types: RAW_TYPES })).rows[0] as Record<string, string | null>;
  }

  /**
   * The user's own script (schema files, a preset's setup) as written, in one simple-protocol message: only
   * on a cluster the audit owns or the library's caller gave it (the audit refuses schema files on a
   * database it does not own), never with a name or value the audit put in.
   */
  async script(sql: string): Promise<void> {
    this.checkExpired();
    await this.ready();
    this.queries += 1;
    this.lastStatement = sql;
    await runScript(this.client, sql);
  }

  /**
   * Run SQL the audit did not write (the application's context setter, a named query) as one statement
   * over the extended protocol, which runs exactly one statement; its comments are sent as spaces. The caller has classified it
   * (analysis/statements.ts). Afterwards the transaction must be the same one, and the identity and the
   * audit's settings what they were; otherwise the audit stops (AuditError), since nothing it measured
   * after that point could be trusted.
   */
  async userQuery(text: string, values: unknown[] = [], what = 'user SQL', /** Roles the SQL may switch to (a role per tenant). */ roles: string[] = []): Promise<QueryOutcome> {
    this.checkExpired();
    await this.settled();
    const before = await this.state();
    this.queries += 1;
    const result = await this.run({ text: blankComments(text), values, types: RAW_TYPES });
    let after: Record<string, string | null>;
    try {
      after = await this.state();
    } catch (error) {
      throw new AuditError(`${what} (${text}) left the audit's transaction unusable: ${errorMessage(error)}. The audit stopped; nothing it did is kept.`);
    }
    const changed = Object.keys(before).filter((key) => key !== 'xid' && before[key] !== after[key] && !(key === 'current_user' && roles.includes(after[key] ?? '')));
    if (before.xid !== null && before.xid !== after.xid) changed.push('xid');
    if (changed.length) {
      const detail = changed.map((key) => (key === 'started' || key === 'xid' ? 'the transaction (it ended and another began)' : `${key} (${before[key]} -> ${after[key]})`));
      throw new AuditError(
        `${what} (${text}) changed ${detail.join(', ')}. User SQL may not end the audit's transaction or change its settings; the audit stopped. Give SQL that only sets the application's context.`,
      );
    }
    return { rows: result.rows as RawRow[], rowCount: result.rowCount ?? 0 };
  }

  /**
   * Run `work` in a savepoint. Keep its effects when `keep` is true and it succeeds; roll back otherwise.
   * `prelude` statements (no parameters) run right after the savepoint is taken, in the same round trip as
   * the work's first statement.
   */
  async savepoint<T>(work: () => Promise<T>, keep = false, prelude: string[] = []): Promise<T> {
    this.checkExpired();
    await this.ready();
    const name = `rls_audit_${++this.savepoints}`;
    const undo = undoSql(name);
    // Not waited for: the work's first statement goes out right behind it, in the same write.
    const opened = pending(this.pipelined([`savepoint ${name}`, ...prelude]));
    try {
      const result = await work();
      await opened;
      await this.pipelined(keep ? [`release savepoint ${name}`] : undo);
      return result;
    } catch (error) {
      await this.pipelined(undo);
      // When the savepoint or its prelude failed, the work failed behind it: the first failure is the one to report.
      throw await opened.then(() => error, (failure: unknown) => failure);
    }
  }

  /**
   * A statement sent now, without waiting for the answers to those sent before it (the connection
   * pipelines); its outcome is read later. Read outcomes in the order sent: after a failure, the statements
   * that follow it in the same transaction fail too ("current transaction is aborted").
   */
  send(text: string, values: unknown[] = [], name?: string): Promise<QueryOutcome> {
    return pending(this.dispatch(text, values, name));
  }

  /**
   * What is sent until this tick ends leaves in one write: on a local socket, a system call per statement
   * was most of the audit's own time. The stream is uncorked on the next tick, before any wait for I/O.
   * Every statement goes through here (run), so statements sent in the same tick (units called together,
   * queries started at once) share a write.
   */
  private writeTogether(): void {
    if (this.corked) return;
    const stream = (this.client as unknown as { connection?: { stream?: { cork?: () => void; uncork?: () => void } } }).connection?.stream;
    if (!stream?.cork || !stream.uncork) return;
    this.corked = true;
    stream.cork();
    process.nextTick(() => {
      this.corked = false;
      stream.uncork!();
    });
  }

  /**
   * Statements without parameters sent at once, each a message of its own, their answers read in order:
   * the first failure is thrown (the statements after it in the same transaction fail with it).
   */
  private async pipelined(statements: readonly string[]): Promise<void> {
    const answers = statements.map((text) => pending(this.run({ text, types: RAW_TYPES })));
    for (const answer of answers) await answer;
  }

  /**
   * Run work in a savepoint that is rolled back, pipelined. `issue` sends its statements (`send`) and returns
   * how to read their outcomes; the savepoint with its prelude goes before them and the rollback after, all
   * in one write, so that the whole costs one round trip. The savepoint is left open for the next unit to
   * take over (see standing). `issue` waits only where a statement must not be sent before an earlier one
   * has answered (the application's own SQL, which is checked after it runs). If the savepoint or its
   * prelude fails, that error is thrown; the rollback is always waited for.
   *
   * Units called together (without waiting for each other) go out one after the other, each as soon as the
   * one before it has sent its rollback, and their outcomes are read as they come: many units, one write.
   * Anything else sent on the session waits until every unit is done.
   */
  rolledBack<T>(issue: () => Promise<() => Promise<T>>, prelude: string[] = []): Promise<T> {
    const unit = pending(this.unit(issue, prelude));
    this.units.add(unit);
    const done = () => this.units.delete(unit);
    unit.then(done, done);
    return unit;
  }

  private async unit<T>(issue: () => Promise<() => Promise<T>>, prelude: string[]): Promise<T> {
    const previous = this.turn;
    let pass!: () => void;
    this.turn = new Promise((resolve) => (pass = resolve));
    try {
      await previous;
      this.checkExpired();
      await this.pacer?.turn();
      if (this.unsettled.size) await this.settled();
    } catch (error) {
      pass();
      throw error;
    }
    // The savepoint the last unit rolled back to, if nothing has run since, is this one's.
    const name = this.standing ?? `rls_audit_${++this.savepoints}`;
    const opening = this.standing ? prelude : [`savepoint ${name}`, ...prelude];
    this.standing = null;
    this.sending = name;
    const opened = pending(this.pipelined(opening));
    let settle: (() => Promise<T>) | null = null;
    let failure: { error: unknown } | null = null;
    try {
      settle = await issue();
    } catch (error) {
      failure = { error };
    }
    const undone = pending(this.pipelined([`rollback to savepoint ${name}`]));
    // Left open for the next unit (released by whatever else is sent first).
    this.standing = name;
    this.sending = null;
    this.closing.push(name);
    pass();
    try {
      await opened;
      if (failure) throw failure.error;
      return await settle!();
    } finally {
      this.closing.splice(this.closing.indexOf(name), 1);
      await undone;
    }
  }

  /**
   * Send `text` in a savepoint that is kept when it succeeds, without waiting: savepoint, statement and
   * release go out together, behind whatever was sent before. The returned reader gives the outcome; when
   * the statement failed, it first rolls back to the savepoint, so whatever is sent after the failure is
   * seen runs as if the statement had never been sent. When the savepoint itself could not be taken (a
   * statement sent before it failed and aborted the transaction), the statement never ran: the reader
   * throws that error (25P02) and undoes nothing.
   */
  sendKept(text: string, values: unknown[] = []): () => Promise<QueryOutcome> {
    this.checkExpired();
    const name = `rls_audit_${++this.savepoints}`;
    const opened = pending(this.run(`savepoint ${name}`));
    const outcome = this.send(text, values);
    const released = pending(this.run(`release savepoint ${name}`));
    const settled = pending(
      (async () => {
        await opened;
        try {
          const result = await outcome;
          await released;
          return result;
        } catch (error) {
          await this.pipelined(undoSql(name));
          throw error;
        }
      })(),
    );
    this.unsettled.add(settled);
    const done = () => this.unsettled.delete(settled);
    settled.then(done, done);
    return () => settled;
  }

  /** One statement in a unit of its own (rolledBack), `prelude` before it (e.g. the role it runs as). */
  readRolledBack(text: string, prelude: string[] = []): Promise<QueryOutcome> {
    return this.rolledBack(async () => {
      const read = this.send(text);
      return () => read;
    }, prelude);
  }

  /** `set local role`, for a savepoint's prelude. */
  roleStatement(role: string): string {
    return `set local role ${ident(role)}`;
  }

  /** Become the application role for the rest of the current savepoint. */
  async becomeRole(role: string): Promise<void> {
    await this.run(`set local role ${ident(role)}`);
  }

  async end(): Promise<void> {
    await this.idle();
    this.standing = null;
    try {
      await this.run('rollback');
    } finally {
      await this.client.end().catch(() => undefined);
    }
  }
}
