/**
 * Is a function free of effects outside the transaction that calls it? On a database the audit does not
 * own, function-leak calls a function only when this says so: a rolled-back savepoint undoes writes, but
 * not a program run by COPY TO PROGRAM, a session killed by pg_terminate_backend, an advisory lock held by
 * the session, a NOTIFY, a row committed by dblink on another connection, or a sequence advanced.
 *
 * Default deny. SQL and PL/pgSQL bodies are parsed (PostgreSQL's parser) and every statement, expression and
 * function call in them is checked: only SELECT statements without row locks, calling functions that are
 * themselves free of effects (built-ins that are STABLE or IMMUTABLE, a short list of VOLATILE built-ins
 * that only compute a value, and user functions that pass this same test). Dynamic EXECUTE (unless its SQL
 * is a constant that passes), data-modifying statements, COPY, and anything the parser cannot read are
 * effects. Functions in other languages: trusted languages when STABLE or IMMUTABLE; untrusted languages
 * and C never.
 */
import type { FunctionInfo } from '../catalog/types.js';
import { parsePlpgsql, parseStatements, scanTokens, type RawStmt } from './parse.js';

/** A function as the effect check needs it: every function of the database, from pg_proc. */
export interface RoutineFacts {
  oid: number;
  schema: string;
  name: string;
  language: string;
  /** pg_language.lanpltrusted: sql and plpgsql are trusted; c and internal are not. */
  trusted: boolean;
  volatility: 'immutable' | 'stable' | 'volatile';
  /** The body of a sql function (SQL-standard bodies as pg_get_function_sqlbody prints them); for plpgsql, pg_get_functiondef. */
  source: string;
}

/** Every routine of the database by name, and the functions behind user-defined operators. */
export interface RoutineIndex {
  byName: Map<string, RoutineFacts[]>;
  /** Operator symbols implemented by a function outside pg_catalog. */
  userOperators: Map<string, RoutineFacts[]>;
  /** Views outside pg_catalog and information_schema: `schema.name` and bare `name` -> definition. */
  views: Map<string, string>;
}

/** The SQL that reads what `routineIndex` needs; run once per audit, as the administrator. */
export const ROUTINES_SQL = `
select p.oid::int8::text as oid, n.nspname as schema, p.proname as name, l.lanname as language, l.lanpltrusted as trusted,
       p.provolatile as volatility,
       case when l.lanname = 'sql' then /*SQL_BODY*/ p.prosrc when l.lanname = 'plpgsql' then pg_get_functiondef(p.oid) else '' end as source
from pg_proc p join pg_namespace n on n.oid = p.pronamespace join pg_language l on l.oid = p.prolang`;

/** The SQL-standard body (PostgreSQL 14+) where there is one. */
export function routinesSql(serverVersionNum: number): string {
  return ROUTINES_SQL.replace('/*SQL_BODY*/ p.prosrc', serverVersionNum >= 140000 ? 'coalesce(pg_get_function_sqlbody(p.oid), p.prosrc)' : 'p.prosrc');
}

export const OPERATORS_SQL = `
select o.oprname as operator, o.oprcode::oid::int8::text as oid from pg_operator o
join pg_proc p on p.oid = o.oprcode where p.pronamespace <> 'pg_catalog'::regnamespace`;

export const VIEWS_SQL = `
select n.nspname as schema, c.relname as name, pg_get_viewdef(c.oid) as definition from pg_class c join pg_namespace n on n.oid = c.relnamespace
where c.relkind in ('v', 'm') and n.nspname not in ('pg_catalog', 'information_schema')`;

type Row = Record<string, unknown>;

export function routineIndex(routines: Row[], operators: Row[], views: Row[]): RoutineIndex {
  const byName = new Map<string, RoutineFacts[]>();
  const byOid = new Map<number, RoutineFacts>();
  for (const row of routines) {
    const facts: RoutineFacts = {
      oid: Number(row.oid),
      schema: String(row.schema),
      name: String(row.name),
      language: String(row.language),
      trusted: row.trusted === true || row.trusted === 't',
      volatility: row.volatility === 'i' ? 'immutable' : row.volatility === 's' ? 'stable' : 'volatile',
      source: String(row.source ?? ''),
    };
    byOid.set(facts.oid, facts);
    for (const key of [facts.name, `${facts.schema}.${facts.name}`]) byName.set(key, [...(byName.get(key) ?? []), facts]);
  }
  const userOperators = new Map<string, RoutineFacts[]>();
  for (const row of operators) {
    const facts = byOid.get(Number(row.oid));
    if (facts) userOperators.set(String(row.operator), [...(userOperators.get(String(row.operator)) ?? []), facts]);
  }
  const viewMap = new Map<string, string>();
  for (const row of views) {
    viewMap.set(`${String(row.schema)}.${String(row.name)}`, String(row.definition));
    viewMap.set(String(row.name), String(row.definition));
  }
  return { byName, userOperators, views: viewMap };
}

/**
 * VOLATILE built-ins that only compute a value: their effects, if any, end with the savepoint (set_config)
 * or are none at all. Every other VOLATILE built-in is an effect (pg_terminate_backend, pg_advisory_lock,
 * nextval, setval, pg_notify, lo_export, pg_sleep, pg_reload_conf, ...).
 */
const PURE_VOLATILE_BUILTINS = new Set([
  'random', 'random_normal', 'gen_random_uuid', 'clock_timestamp', 'timeofday', 'set_config', 'txid_current', 'pg_current_xact_id',
  'uuid_generate_v4', 'now', 'age', 'row_to_json', 'to_json', 'to_jsonb', 'json_build_object', 'jsonb_build_object', 'json_agg', 'jsonb_agg',
]);

/** Built-ins that advance or set a sequence. */
const SEQUENCE_BUILTINS = new Set(['nextval', 'setval']);

/** Statement kinds a function body may hold (besides PL/pgSQL control flow): reading only. */
const READING = new Set(['SelectStmt']);

export type EffectVerdict = { free: true } | { free: false; reason: string };

/**
 * effects: anything outside the transaction (function-leak on a live database). sequences: only what
 * advances a sequence (nextval, setval, an INSERT whose defaults may call nextval, or a body that cannot be
 * read); writes are allowed, since a rollback undoes them.
 */
type Mode = 'effects' | 'sequences';

interface Walker {
  mode: Mode;
  index: RoutineIndex;
  /** Routines under analysis (recursion is judged by the rest of the body). */
  active: Set<number>;
  verdicts: Map<number, EffectVerdict>;
  viewsSeen: Set<string>;
}

function* nodes(node: unknown): Generator<Record<string, unknown>> {
  if (Array.isArray(node)) {
    for (const item of node) yield* nodes(item);
    return;
  }
  if (!node || typeof node !== 'object') return;
  yield node as Record<string, unknown>;
  for (const value of Object.values(node)) yield* nodes(value);
}

function names(list: unknown): string[] {
  return (Array.isArray(list) ? list : []).map((part) => ((part as { String?: { sval?: string } }).String?.sval ?? '').toLowerCase());
}

function deny(reason: string): EffectVerdict {
  return { free: false, reason };
}

/** A call of `qualified` (e.g. `pg_terminate_backend`, `public.audit`): every routine it could resolve to must be free. */
function checkCall(walker: Walker, qualified: string[]): EffectVerdict {
  const name = qualified.join('.');
  const candidates = walker.index.byName.get(name) ?? [];
  if (!candidates.length) return deny(`it calls ${name}, which is not a known function`);
  for (const routine of candidates) {
    const verdict = routineVerdict(walker, routine);
    if (!verdict.free) return routine.name === name || routine.schema === 'pg_catalog' ? verdict : deny(`it calls ${name}: ${verdict.reason}`);
  }
  return { free: true };
}

/** Check parsed SQL statements: reading only, no row locks, no data-modifying CTE, every call free. */
function checkStatements(walker: Walker, statements: RawStmt[]): EffectVerdict {
  for (const statement of statements) {
    const kind = Object.keys(statement.stmt ?? {})[0] ?? 'empty';
    if (kind === 'CallStmt') {
      const call = (statement.stmt as { CallStmt: { funccall?: { funcname?: unknown } } }).CallStmt.funccall;
      const verdict = checkCall(walker, names(call?.funcname));
      if (!verdict.free) return verdict;
      continue;
    }
    const allowed = walker.mode === 'sequences' ? kind === 'SelectStmt' || kind === 'UpdateStmt' || kind === 'DeleteStmt' : READING.has(kind);
    if (!allowed) {
      const command = kind.replace(/Stmt$/, '').toUpperCase();
      if (walker.mode === 'sequences' && (kind === 'InsertStmt' || kind === 'MergeStmt')) return deny(`it inserts rows (${command}), whose defaults may call nextval`);
      return deny(['InsertStmt', 'UpdateStmt', 'DeleteStmt', 'MergeStmt'].includes(kind) ? `it writes (${command})` : `it runs ${command}`);
    }
    const verdict = checkTree(walker, statement.stmt);
    if (!verdict.free) return verdict;
  }
  return { free: true };
}

function checkTree(walker: Walker, tree: unknown): EffectVerdict {
  for (const node of nodes(tree)) {
    for (const kind of walker.mode === 'sequences' ? ['InsertStmt', 'MergeStmt'] : ['InsertStmt', 'UpdateStmt', 'DeleteStmt', 'MergeStmt']) {
      if (node[kind]) return deny(walker.mode === 'sequences' ? `it inserts rows (${kind.replace(/Stmt$/, '').toUpperCase()}), whose defaults may call nextval` : `it writes (${kind.replace(/Stmt$/, '').toUpperCase()})`);
    }
    if (walker.mode === 'effects' && Array.isArray(node.lockingClause) && node.lockingClause.length) return deny('it locks rows (SELECT ... FOR UPDATE/SHARE)');
    const call = node.FuncCall as { funcname?: unknown } | undefined;
    if (call) {
      const verdict = checkCall(walker, names(call.funcname));
      if (!verdict.free) return verdict;
    }
    const expression = node.A_Expr as { name?: unknown } | undefined;
    if (expression) {
      const operator = names(expression.name).at(-1) ?? '';
      for (const routine of walker.index.userOperators.get(operator) ?? []) {
        const verdict = routineVerdict(walker, routine);
        if (!verdict.free) return deny(`it uses the operator ${operator}, whose function ${routine.schema}.${routine.name} is not free of effects: ${verdict.reason}`);
      }
    }
    const range = node.RangeVar as { schemaname?: string; relname?: string } | undefined;
    if (range?.relname) {
      const key = range.schemaname ? `${range.schemaname}.${range.relname}` : range.relname;
      const definition = walker.index.views.get(key);
      if (definition !== undefined && !walker.viewsSeen.has(key)) {
        walker.viewsSeen.add(key);
        const verdict = checkSql(walker, definition);
        if (!verdict.free) return deny(`it reads the view ${key}, which ${verdict.reason.replace(/^it /, '')}`);
      }
    }
  }
  return { free: true };
}

function checkSql(walker: Walker, sql: string): EffectVerdict {
  let statements: RawStmt[];
  try {
    statements = parseStatements(sql);
  } catch (error) {
    return deny(`its SQL does not parse (${error instanceof Error ? error.message : String(error)})`);
  }
  return checkStatements(walker, statements);
}

/** A PL/pgSQL expression: a statement (mode 0), an expression (mode 2), or an assignment `target := expression` (modes 3-5). */
function checkPlpgsqlExpression(walker: Walker, query: string, mode: number): EffectVerdict {
  if (mode === 0) return checkSql(walker, query);
  let expression = query;
  if (mode >= 3) {
    let tokens;
    try {
      tokens = scanTokens(query);
    } catch {
      return deny(`an assignment does not parse (${query})`);
    }
    const assign = tokens.find((token) => token.text === ':=' || token.text === '=');
    if (!assign) return deny(`an assignment does not parse (${query})`);
    expression = query.slice(assign.end);
  }
  return checkSql(walker, `SELECT ${expression}`);
}

/** A constant string expression (`'select 1'`), as PL/pgSQL writes a constant EXECUTE. */
function constantString(query: string): string | null {
  try {
    const statement = parseStatements(`SELECT ${query}`)[0]?.stmt as { SelectStmt?: { targetList?: { ResTarget?: { val?: { A_Const?: { sval?: { sval?: string } } } } }[] } };
    const list = statement?.SelectStmt?.targetList ?? [];
    return list.length === 1 ? (list[0]?.ResTarget?.val?.A_Const?.sval?.sval ?? null) : null;
  } catch {
    return null;
  }
}

function checkPlpgsql(walker: Walker, routine: RoutineFacts): EffectVerdict {
  let tree: unknown[];
  try {
    tree = parsePlpgsql(routine.source);
  } catch (error) {
    return deny(`its PL/pgSQL body does not parse (${error instanceof Error ? error.message : String(error)})`);
  }
  for (const node of nodes(tree)) {
    for (const dynamic of ['PLpgSQL_stmt_dynexecute', 'PLpgSQL_stmt_dynfors']) {
      const statement = node[dynamic] as { query?: { PLpgSQL_expr?: { query?: string } } } | undefined;
      if (!statement) continue;
      const constant = constantString(statement.query?.PLpgSQL_expr?.query ?? '');
      if (constant === null) return deny('it runs dynamic SQL (EXECUTE of a computed string), which cannot be read before it runs');
      const verdict = checkSql(walker, constant);
      if (!verdict.free) return verdict;
    }
    // OPEN ... FOR EXECUTE, RETURN QUERY EXECUTE: the statement's `dynquery`.
    for (const statement of Object.values(node)) {
      const dynquery = (statement as { dynquery?: { PLpgSQL_expr?: { query?: string } } } | null)?.dynquery;
      if (!dynquery) continue;
      const constant = constantString(dynquery.PLpgSQL_expr?.query ?? '');
      if (constant === null) return deny('it runs dynamic SQL (EXECUTE of a computed string), which cannot be read before it runs');
      const verdict = checkSql(walker, constant);
      if (!verdict.free) return verdict;
    }
    if (node.PLpgSQL_stmt_commit || node.PLpgSQL_stmt_rollback) return deny('it ends the transaction (COMMIT / ROLLBACK)');
  }
  for (const node of nodes(tree)) {
    const expression = node.PLpgSQL_expr as { query?: string; parseMode?: number } | undefined;
    if (!expression?.query) continue;
    const verdict = checkPlpgsqlExpression(walker, expression.query, expression.parseMode ?? 0);
    if (!verdict.free) return verdict;
  }
  return { free: true };
}

/** A SQL function's body: statements, `RETURN expression` or `BEGIN ATOMIC ... END` (SQL-standard bodies). */
function checkSqlBody(walker: Walker, source: string): EffectVerdict {
  let tokens;
  try {
    tokens = scanTokens(source);
  } catch (error) {
    return deny(`its SQL body does not parse (${error instanceof Error ? error.message : String(error)})`);
  }
  const first = tokens[0]?.text.toLowerCase();
  if (first === 'return') return checkSql(walker, `SELECT ${source.slice(tokens[0]!.end)}`);
  if (first === 'begin' && tokens[1]?.text.toLowerCase() === 'atomic') {
    const last = tokens.at(-1)!;
    const end = last.text.toLowerCase() === 'end' ? last.start : source.length;
    const inner = source.slice(tokens[1]!.end, end);
    let statements: RawStmt[];
    try {
      statements = parseStatements(inner);
    } catch (error) {
      return deny(`its SQL body does not parse (${error instanceof Error ? error.message : String(error)})`);
    }
    // A RETURN inside BEGIN ATOMIC does not parse as a statement on its own: it is read as SELECT.
    return checkStatements(walker, statements);
  }
  return checkSql(walker, source);
}

function routineVerdict(walker: Walker, routine: RoutineFacts): EffectVerdict {
  const known = walker.verdicts.get(routine.oid);
  if (known) return known;
  if (walker.active.has(routine.oid)) return { free: true };
  walker.active.add(routine.oid);
  let verdict: EffectVerdict;
  if (routine.schema === 'pg_catalog' && walker.mode === 'sequences') {
    verdict = SEQUENCE_BUILTINS.has(routine.name) ? deny(`it calls ${routine.name}`) : { free: true };
  } else if (routine.schema === 'pg_catalog') {
    verdict =
      routine.volatility !== 'volatile' || PURE_VOLATILE_BUILTINS.has(routine.name)
        ? { free: true }
        : deny(`it calls ${routine.name}, a volatile built-in that can act outside the transaction`);
  } else if (routine.language === 'sql') {
    verdict = checkSqlBody(walker, routine.source);
  } else if (routine.language === 'plpgsql') {
    verdict = checkPlpgsql(walker, routine);
  } else if (routine.trusted && routine.volatility !== 'volatile') {
    verdict = { free: true };
  } else if (routine.language === 'c' || routine.language === 'internal') {
    verdict = deny(`it calls ${routine.schema}.${routine.name}, a ${routine.volatility} function in C whose effects cannot be read (e.g. dblink)`);
  } else {
    verdict = deny(`it calls ${routine.schema}.${routine.name}, written in ${routine.language}${routine.trusted ? ' and VOLATILE' : ', an untrusted language'}, whose body cannot be read`);
  }
  walker.active.delete(routine.oid);
  walker.verdicts.set(routine.oid, verdict);
  return verdict;
}

/**
 * Judge each function: free of effects outside the transaction, or why not. One walker per call, so the
 * verdicts of shared helpers are computed once.
 */
export function functionEffects(index: RoutineIndex, functions: FunctionInfo[]): Map<number, EffectVerdict> {
  const walker: Walker = { mode: 'effects', index, active: new Set(), verdicts: new Map(), viewsSeen: new Set() };
  const byOid = new Map<number, RoutineFacts>();
  for (const list of index.byName.values()) for (const routine of list) byOid.set(routine.oid, routine);
  const result = new Map<number, EffectVerdict>();
  for (const fn of functions) {
    const routine = byOid.get(fn.oid);
    result.set(fn.oid, routine ? routineVerdict(walker, routine) : deny('it is not in pg_proc'));
  }
  return result;
}

/**
 * Judges what may advance a sequence, for one audit: a routine (a trigger function) or an expression (a
 * column default). `free: false` carries how: nextval or setval (directly or through what it calls), an
 * INSERT (whose defaults may call nextval), or a body that cannot be read.
 */
export class SequenceUse {
  private readonly walker: Walker;
  private readonly byOid = new Map<number, RoutineFacts>();

  constructor(index: RoutineIndex) {
    this.walker = { mode: 'sequences', index, active: new Set(), verdicts: new Map(), viewsSeen: new Set() };
    for (const list of index.byName.values()) for (const routine of list) this.byOid.set(routine.oid, routine);
  }

  routine(oid: number): EffectVerdict {
    const routine = this.byOid.get(oid);
    return routine ? routineVerdict(this.walker, routine) : deny('its function is not in pg_proc');
  }

  /** A column default the audit does not fill itself: every function it calls counts. */
  expression(expression: string): EffectVerdict {
    let statements: RawStmt[];
    try {
      statements = parseStatements(`SELECT ${expression}`);
    } catch (error) {
      return deny(`its default does not parse (${error instanceof Error ? error.message : String(error)})`);
    }
    for (const node of nodes(statements)) {
      const call = node.FuncCall as { funcname?: unknown } | undefined;
      if (!call) continue;
      const verdict = checkCall(this.walker, names(call.funcname));
      if (!verdict.free) return verdict;
    }
    return { free: true };
  }
}
