/** Rows per page: a few tens of kilobytes for catalog rows, far below a socket's buffers. */
export const PAGE_ROWS = 200;

let cursors = 0;

/**
 * Run a read whose result may be large (every routine of the database, the catalog of a big schema) in
 * pages, through a cursor. Why: a stopped audit (SIGSTOP, Ctrl-Z, a
 * debugger) no longer reads its socket. Had the server still a result larger than the socket's buffers to
 * write, it would stay blocked writing it (wait event ClientWrite): active, holding its locks, out of reach
 * of statement_timeout and idle_in_transaction_session_timeout. Read in pages, it has at most one page to
 * write; then it waits for the next FETCH idle in transaction, which the idle timeout ends. WITH HOLD lets
 * a caller outside a transaction block (a library user's client) page too; inside one, the cursor is closed
 * before the transaction ends, and a rollback drops it.
 */
export async function pagedQuery<R>(run: (text: string, values?: unknown[]) => Promise<{ rows: R[] }>, text: string, values: unknown[] = []): Promise<{ rows: R[] }> {
  cursors += 1;
  const cursor = `rls_audit_page_${cursors}`;
  await run(`declare ${cursor} no scroll cursor with hold for ${text}`, values);
  const rows: R[] = [];
  for (;;) {
    const page = await run(`fetch forward ${PAGE_ROWS} from ${cursor}`);
    rows.push(...page.rows);
    if (page.rows.length < PAGE_ROWS) break;
  }
  await run(`close ${cursor}`);
  return { rows };
}
