/** Rows per page: a few tens of kilobytes for catalog rows, far below a socket's buffers. */
export const PAGE_ROWS = 100;

let cursors = 0;

type Run<R> = (text: string, values?: unknown[]) => Promise<{ rows: R[] }>;

/**
 * Run reads whose results may be large (every routine of the database, the catalog of a big schema) in
 * pages, through cursors. Why: a stopped audit (SIGSTOP, Ctrl-Z, a debugger) no longer reads its socket.
 * Had the server still a result larger than the socket's buffers to write, it would stay blocked writing
 * it (wait event ClientWrite): active, holding its locks, out of reach of statement_timeout and
 * idle_in_transaction_session_timeout. Read in pages, it has at most a page per query to write; then it
 * waits for the next FETCH idle in transaction, which the idle timeout ends. WITH HOLD lets a caller
 * outside a transaction block (a library user's client) page too; inside one, the cursors are closed before
 * the transaction ends, and a rollback drops them.
 *
 * `together`: the connection pipelines (target/connect.ts), so every query's DECLARE and first FETCH go
 * out at once, one round trip for a catalog that fits in one page per query; otherwise one after the other.
 * The first failure is thrown.
 */
export async function pagedQueries<R>(run: Run<R>, queries: readonly (readonly [string, unknown[]?])[], together = false): Promise<{ rows: R[] }[]> {
  const names = queries.map(() => `rls_audit_page_${(cursors += 1)}`);
  const fetch = (name: string) => run(`fetch forward ${PAGE_ROWS} from ${name}`);
  const open = ([text, values]: readonly [string, unknown[]?], index: number) => {
    // Both go on the wire at once; a failed DECLARE answers first, and its error is the one thrown.
    return Promise.all([run(`declare ${names[index]} no scroll cursor with hold for ${text}`, values ?? []), fetch(names[index]!)]).then(([, first]) => first);
  };
  const firsts: { rows: R[] }[] = [];
  if (together) firsts.push(...(await Promise.all(queries.map(open))));
  else for (const [index, query] of queries.entries()) firsts.push(await openInTurn(run, query, names[index]!));
  const results = firsts.map((page) => ({ rows: [...page.rows] }));
  for (const [index, page] of firsts.entries()) {
    let last = page;
    while (last.rows.length === PAGE_ROWS) {
      last = await fetch(names[index]!);
      results[index]!.rows.push(...last.rows);
    }
  }
  if (together) await Promise.all(names.map((name) => run(`close ${name}`)));
  else for (const name of names) await run(`close ${name}`);
  return results;
}

async function openInTurn<R>(run: Run<R>, [text, values]: readonly [string, unknown[]?], name: string): Promise<{ rows: R[] }> {
  await run(`declare ${name} no scroll cursor with hold for ${text}`, values ?? []);
  return run(`fetch forward ${PAGE_ROWS} from ${name}`);
}

/** One read in pages (see pagedQueries). */
export async function pagedQuery<R>(run: Run<R>, text: string, values: unknown[] = []): Promise<{ rows: R[] }> {
  const [result] = await pagedQueries(run, [[text, values]]);
  return result!;
}
