/**
 * A lock the audit could not get in time (lock_timeout, SQLSTATE 55P03): on a database it does not own,
 * the audit waits a moment at most for a lock and then stops, rather than make the application queue
 * behind it. Said in words: which relation, who holds it, what the audit was doing, and what to do.
 */
import { describeDumpStatement } from '../analysis/dump.js';
import { loadParser, parseStatements } from '../analysis/parse.js';
import { AuditError, errorMessage } from '../errors.js';
import { connect, type Bounds } from './connect.js';

/** True for a statement cancelled because a lock was not granted in time (lock_timeout, NOWAIT). */
export function isLockTimeout(error: unknown): boolean {
  return (error as { code?: string } | null)?.code === '55P03';
}

interface Holder {
  relation: string;
  mode: string;
  pid: number;
  application: string | null;
  seconds: number | null;
}

/** Relations (schema.name) a statement names, read with PostgreSQL's parser; none when it does not parse. */
async function relationsOf(statement: string | null): Promise<string[]> {
  if (!statement) return [];
  try {
    await loadParser();
    return parseStatements(statement).flatMap((raw) => describeDumpStatement(raw).relations);
  } catch {
    return [];
  }
}

/**
 * Relation locks other sessions hold in this database in a mode that blocks someone (every mode but
 * ACCESS SHARE and ROW SHARE blocks the audit's reads or writes), strongest first. Read from pg_locks,
 * which any role may read, on a connection of its own (the audit's transaction may be aborted).
 */
async function lockHolders(connection: string, bounds: Bounds): Promise<Holder[]> {
  const client = await connect(connection, bounds, 'rls-audit lock check').catch(() => null);
  if (!client) return [];
  try {
    const { rows } = await client.query<{ relation: string; mode: string; pid: number; application: string | null; seconds: number | null }>(
      `select format('%I.%I', n.nspname, c.relname) as relation, l.mode, l.pid, nullif(a.application_name, '') as application,
              extract(epoch from now() - a.xact_start)::int as seconds
       from pg_locks l join pg_class c on c.oid = l.relation join pg_namespace n on n.oid = c.relnamespace
       left join pg_stat_activity a on a.pid = l.pid
       where l.locktype = 'relation' and l.granted and l.pid <> pg_backend_pid()
         and l.database = (select oid from pg_database where datname = current_database())
         and l.mode in ('AccessExclusiveLock', 'ExclusiveLock', 'ShareRowExclusiveLock', 'ShareLock', 'ShareUpdateExclusiveLock')
         and n.nspname not in ('pg_catalog', 'information_schema') and n.nspname not like 'pg_toast%'
       order by case l.mode when 'AccessExclusiveLock' then 0 when 'ExclusiveLock' then 1 when 'ShareRowExclusiveLock' then 2 when 'ShareLock' then 3 else 4 end, 1`,
    );
    return rows;
  } catch {
    return [];
  } finally {
    await client.end().catch(() => undefined);
  }
}

const MODE_NAMES: Record<string, string> = {
  AccessExclusiveLock: 'ACCESS EXCLUSIVE',
  ExclusiveLock: 'EXCLUSIVE',
  ShareRowExclusiveLock: 'SHARE ROW EXCLUSIVE',
  ShareLock: 'SHARE',
  ShareUpdateExclusiveLock: 'SHARE UPDATE EXCLUSIVE',
};

/**
 * The AuditError for a lock timeout: the relation the statement waited for (a relation it names that
 * another session holds locked; else any relation another session holds locked in a blocking mode), the
 * holder (pid, application, for how long), what the audit was doing, and what to do.
 */
export async function lockTimeoutError(error: unknown, options: { connection: string; bounds: Bounds; doing: string; statement: string | null }): Promise<AuditError> {
  const named = await relationsOf(options.statement);
  const holders = await lockHolders(options.connection, options.bounds);
  const relevant = holders.filter((holder) => named.includes(holder.relation));
  const shown = (relevant.length ? relevant : holders).slice(0, 3);
  const wait = `${options.bounds.lockTimeoutMs} ms`;
  if (!shown.length) {
    const where = named.filter((relation) => !relation.startsWith('pg_catalog.'));
    return new AuditError(
      `a lock the audit needed${where.length ? ` on ${where.join(', ')}` : ''} was held by another session for longer than the audit waits (lock_timeout ${wait}) while ${options.doing} (${errorMessage(error)}); that session has let it go since. ` +
        'Nothing was committed. Run the audit again; if it happens again, run it when no migration or maintenance runs.',
      { cause: error },
    );
  }
  const described = shown.map(
    (holder) =>
      `${holder.relation} is locked ${MODE_NAMES[holder.mode] ?? holder.mode} by another session (pid ${holder.pid}${holder.application ? `, application ${holder.application}` : ''}${holder.seconds !== null ? `, its transaction open for ${holder.seconds} s` : ''})`,
  );
  const strongest = shown[0]!;
  const likely = strongest.mode === 'AccessExclusiveLock' ? ': a migration or maintenance (ALTER TABLE, DROP, TRUNCATE, VACUUM FULL, REINDEX, LOCK TABLE) holds it' : '';
  return new AuditError(
    `${described.join('; ')}${likely}. The audit waited for it at most ${wait} (lock_timeout: on a database it does not own it never makes the application queue behind it) while ${options.doing}, and stopped; nothing was committed. ` +
      `Wait for the migration to finish (or end session ${strongest.pid}: select pg_terminate_backend(${strongest.pid})), then run the audit again.`,
    { cause: error },
  );
}
