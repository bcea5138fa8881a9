/** function-leak: a call in a rolled-back savepoint, with every tenant's rows counted by the administrator before and after. */
import type { Actor } from '../seed/actors.js';
import type { Tenant } from '../seed/ledger.js';
import { literal } from '../target/sql.js';
import type { RawRow } from '../target/session.js';
import { sendContext } from './context.js';
import { ownership, tenantScope } from './write-targets.js';
import type { ProbeContext } from './types.js';

/** Per call: a function that sleeps, locks or loops must not hold the audit up. */
export const CALL_TIMEOUT = '5s';

/** SQLSTATEs of a function that refuses a call: RAISE EXCEPTION (P0001) and insufficient privilege (42501). */
export const REFUSED = new Set(['P0001', '42501']);

/**
 * As the administrator, in one statement: rows per tenant of every tenant-owned base table (partitions and
 * children through their parents), with a digest of their contents, so an UPDATE shows as well as an INSERT
 * or a DELETE.
 */
export function changeCountSql(context: ProbeContext): string | null {
  const parts: string[] = [];
  for (const relation of context.catalog.relations) {
    if ((relation.kind !== 'table' && relation.kind !== 'partitioned-table') || relation.partitionOf || relation.inheritsFrom.length) continue;
    const relationPlan = ownership(context, relation);
    const scope = relationPlan && tenantScope(context, relation, relationPlan);
    if (!scope) continue;
    parts.push(
      `select ${literal(relation.qualified)}::text as relation, (${scope.tenant})::text as tenant, count(*)::text as rows, ` +
        `md5(string_agg(r::text, '|' order by r::text)) as digest from ${scope.from} group by 2`,
    );
  }
  return parts.length ? parts.join(' union all ') : null;
}

type Census = Map<string, { rows: number; digest: string }>;

function census(rows: RawRow[]): Census {
  return new Map(rows.map((row) => [`${row.relation}\u0000${row.tenant ?? ''}`, { rows: Number(row.rows), digest: row.digest ?? '' }]));
}

/** Per relation, the rows of `tenant` that were added, removed or rewritten between two censuses. */
export function changedOf(before: Census, after: Census, tenant: Tenant): Map<string, string> {
  const changed = new Map<string, string>();
  for (const key of new Set([...before.keys(), ...after.keys()])) {
    const [relation, id] = key.split('\u0000') as [string, string];
    if (id !== tenant.id) continue;
    const was = before.get(key);
    const is = after.get(key);
    if (was?.digest === is?.digest) continue;
    const delta = (is?.rows ?? 0) - (was?.rows ?? 0);
    changed.set(relation, delta > 0 ? `${delta} row${delta === 1 ? '' : 's'} added` : delta < 0 ? `${-delta} row${delta === -1 ? '' : 's'} removed` : 'rows rewritten');
  }
  return changed;
}

interface CountedCall {
  rows: RawRow[];
  before: Census;
  after: Census;
  error?: { message: string; code?: string };
}

/**
 * One call as `role` (with `actor`'s context, or none for the anonymous role), with a short statement timeout
 * (read-only on a database that is not the run's own), in a savepoint that is rolled back, in which the
 * administrator counts every tenant's rows before and after (`measure`).
 */
export async function countedCall(context: ProbeContext, role: string, actor: Actor | null, measure: string | null, statement: string, values: (string | null)[]): Promise<CountedCall> {
  const { session } = context;
  return session.rolledBack(async () => {
    const before = measure ? session.send(measure) : null;
    const ready: Promise<unknown>[] = [session.send(session.roleStatement(role))];
    if (actor) {
      const set = sendContext(context, actor);
      ready.push(set.outcome);
      if (set.mustWait) await set.outcome;
    }
    ready.push(session.send(`select set_config('statement_timeout', '${CALL_TIMEOUT}', true)`));
    if (!context.disposable) ready.push(session.send('set local transaction_read_only = on'));
    const call = session.send(statement, values);
    const reset = session.send('reset role');
    const after = measure ? session.send(measure) : null;
    return async () => {
      const counted: Census = before ? census((await before).rows) : new Map();
      for (const step of ready) await step;
      try {
        const result = await call;
        await reset;
        return { rows: result.rows, before: counted, after: after ? census((await after).rows) : counted };
      } catch (failure) {
        const error = failure as { message?: string; code?: string };
        return { rows: [] as RawRow[], before: counted, after: counted, error: { message: error.message ?? String(failure), code: error.code } };
      }
    };
  });
}
