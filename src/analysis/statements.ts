/**
 * What a piece of user SQL is, read with PostgreSQL's own parser: the audit runs SQL it did not write
 * (the application's context setter, the scenario's named queries, schema files) inside its own
 * transaction, and that SQL must never end, commit or reconfigure that transaction.
 *
 * Default deny: each use of user SQL allows a short list of statement kinds and nothing else.
 */
import { parseStatements, ParseError, type Node, type RawStmt } from './parse.js';

/** Settings the audit relies on: user SQL may not change them (SET, RESET, set_config). */
export const AUDIT_SETTINGS = new Set([
  'row_security',
  'lock_timeout',
  'statement_timeout',
  'idle_in_transaction_session_timeout',
  'idle_session_timeout',
  'transaction_timeout',
  'role',
  'session_authorization',
  'session_replication_role',
  'transaction_read_only',
  'default_transaction_read_only',
  'transaction_isolation',
  'default_transaction_isolation',
  'search_path',
]);

export type UserSqlKind = 'context' | 'query';

/** Statement kinds each use allows. Context SQL sets the tenant (a SELECT of set_config or a setter function, or CALL). */
const ALLOWED: Record<UserSqlKind, Set<string>> = {
  context: new Set(['SelectStmt', 'CallStmt', 'VariableSetStmt']),
  query: new Set(['SelectStmt', 'InsertStmt', 'UpdateStmt', 'DeleteStmt', 'MergeStmt']),
};

const DESCRIPTION: Record<string, string> = {
  TransactionStmt: 'transaction control (BEGIN, COMMIT, ROLLBACK, SAVEPOINT, ...)',
  VariableSetStmt: 'SET / RESET',
  DiscardStmt: 'DISCARD',
  PrepareStmt: 'PREPARE',
  ExecuteStmt: 'EXECUTE',
  DeallocateStmt: 'DEALLOCATE',
  CopyStmt: 'COPY',
  DoStmt: 'DO',
  LockStmt: 'LOCK',
  ListenStmt: 'LISTEN',
  NotifyStmt: 'NOTIFY',
  UnlistenStmt: 'UNLISTEN',
  CheckPointStmt: 'CHECKPOINT',
  VacuumStmt: 'VACUUM / ANALYZE',
};

/** The node type of a statement, e.g. `SelectStmt`. */
export function statementKind(statement: RawStmt): string {
  return Object.keys(statement.stmt ?? {})[0] ?? 'empty';
}

function describe(kind: string): string {
  return DESCRIPTION[kind] ?? kind.replace(/Stmt$/, '').replace(/([a-z])([A-Z])/g, '$1 $2').toUpperCase();
}

/** Every node in a parse tree, depth first. */
function* walk(node: unknown): Generator<Record<string, unknown>> {
  if (Array.isArray(node)) {
    for (const item of node) yield* walk(item);
    return;
  }
  if (!node || typeof node !== 'object') return;
  yield node as Record<string, unknown>;
  for (const value of Object.values(node)) yield* walk(value);
}

function stringValue(node: Node | undefined): string | null {
  const constant = (node as { A_Const?: { sval?: { sval?: string } } } | undefined)?.A_Const;
  return constant?.sval?.sval ?? null;
}

function funcName(call: { funcname?: Node[] }): string {
  return (call.funcname ?? []).map((part) => (part as { String?: { sval?: string } }).String?.sval ?? '').join('.').toLowerCase();
}

/**
 * Why `sql` may not run as `kind` inside the audit's transaction, or null when it may. Exactly one
 * statement of an allowed kind; no SET of anything but the application's own custom settings (a name with
 * a dot, e.g. app.current_tenant); no set_config of an audit setting.
 */
export function userSqlProblem(sql: string, kind: UserSqlKind): string | null {
  let statements: RawStmt[];
  try {
    statements = parseStatements(sql);
  } catch (error) {
    return `it does not parse: ${error instanceof ParseError ? error.message : String(error)}`;
  }
  if (statements.length === 0) return 'it holds no statement';
  if (statements.length > 1) {
    return `it holds ${statements.length} statements (${statements.map((statement) => describe(statementKind(statement))).join(', ')}); give exactly one`;
  }
  const statement = statements[0]!;
  const type = statementKind(statement);
  if (!ALLOWED[kind].has(type)) {
    return `it is ${describe(type)}, which may not run inside the audit's transaction (allowed: ${[...ALLOWED[kind]].map(describe).join(', ')})`;
  }
  if (type === 'VariableSetStmt') {
    const set = (statement.stmt as { VariableSetStmt: { kind?: string; name?: string; is_local?: boolean } }).VariableSetStmt;
    const name = (set.name ?? '').toLowerCase();
    if (!name.includes('.') || set.kind === 'VAR_RESET_ALL') return `it is SET/RESET of ${name || 'ALL'}: only the application's own settings (a name with a dot) may be set`;
  }
  for (const node of walk(statement.stmt)) {
    const call = node.FuncCall as { funcname?: Node[]; args?: Node[] } | undefined;
    if (!call) continue;
    const name = funcName(call);
    if (name !== 'set_config' && name !== 'pg_catalog.set_config') continue;
    const setting = stringValue(call.args?.[0]);
    if (setting === null) return 'it calls set_config with a setting name that is not a constant';
    if (AUDIT_SETTINGS.has(setting.toLowerCase())) return `it calls set_config('${setting}', ...): ${setting} is the audit's own setting`;
  }
  return null;
}

/** The procedure a context SQL of the form `CALL name(args)` calls, or null when it is not a CALL. */
export function contextCall(sql: string): { schema: string | null; name: string; arguments: number } | null {
  let statements: RawStmt[];
  try {
    statements = parseStatements(sql);
  } catch {
    return null;
  }
  const call = (statements[0]?.stmt as { CallStmt?: { funccall?: { funcname?: Node[]; args?: Node[] } } } | undefined)?.CallStmt?.funccall;
  if (!call || statements.length !== 1) return null;
  const parts = (call.funcname ?? []).map((part) => (part as { String?: { sval?: string } }).String?.sval ?? '');
  return { schema: parts.length > 1 ? parts.at(-2)! : null, name: parts.at(-1) ?? '', arguments: call.args?.length ?? 0 };
}
