/**
 * The walk behind effects.ts: SQL statements, PL/pgSQL and SQL bodies, the types they name and the writes they
 * make, each judged by the mode of the walk, with the verdicts of routines, types and writes cached per walker.
 */
import { parsePlpgsql, parseStatements, scanTokens, type RawStmt } from './parse.js';
import type { EffectVerdict } from './effects.js';
import type { RelationFacts, RoutineFacts, RoutineIndex } from './routine-index.js';

/**
 * VOLATILE built-ins that only compute a value: their effects, if any, end with the savepoint (set_config)
 * or are none at all. Every other VOLATILE built-in is an effect (pg_terminate_backend, pg_advisory_lock,
 * nextval, setval, pg_notify, lo_export, pg_sleep, pg_reload_conf, ...).
 */
const PURE_VOLATILE_BUILTINS = new Set([
  'random', 'random_normal', 'gen_random_uuid', 'clock_timestamp', 'timeofday', 'set_config', 'txid_current', 'pg_current_xact_id',
  'uuid_generate_v4', 'now', 'age', 'row_to_json', 'to_json', 'to_jsonb', 'json_build_object', 'jsonb_build_object', 'json_agg', 'jsonb_agg',
  // Waits bounded by the audit's statement timeout; they hold nothing another session waits for.
  'pg_sleep', 'pg_sleep_for', 'pg_sleep_until',
]);

/** Built-ins that advance or set a sequence. */
const SEQUENCE_BUILTINS = new Set(['nextval', 'setval']);

/** Statement kinds a function body may hold (besides PL/pgSQL control flow): reading only. */
const READING = new Set(['SelectStmt', 'CallStmt']);

/** Statement kinds user SQL and what it calls may hold: writes are rolled back with the audit's transaction. */
const USER_STATEMENTS = new Set(['SelectStmt', 'CallStmt', 'InsertStmt', 'UpdateStmt', 'DeleteStmt', 'MergeStmt', 'VariableSetStmt']);

const WRITES: Record<string, string> = { InsertStmt: 'INSERT', UpdateStmt: 'UPDATE', DeleteStmt: 'DELETE', MergeStmt: 'MERGE' };

/** pg_trigger.tgtype bits of the events a command fires. */
const TRIGGER_EVENTS: Record<string, number> = { INSERT: 1 << 2, DELETE: 1 << 3, UPDATE: 1 << 4, MERGE: (1 << 2) | (1 << 3) | (1 << 4) };

/**
 * effects: anything outside the transaction (function-leak on a live database): reading only. sequences:
 * only what advances a sequence (nextval, setval, directly or through the defaults, checks and triggers a
 * write reaches, or a body that cannot be read); writes are allowed, since a rollback undoes them. user:
 * user SQL (context SQL, scenario queries) and everything it calls: writes are allowed (rolled back) and
 * followed to their defaults, checks and triggers; every other effect is refused, sequences unless
 * --allow-sequence-gaps, and settings other than the application's own (a name with a dot).
 */
type Mode = 'effects' | 'sequences' | 'user';

export interface Walker {
  mode: Mode;
  index: RoutineIndex;
  /** user mode: nextval and setval allowed (--allow-sequence-gaps). */
  allowSequences: boolean;
  /** Routines under analysis (recursion is judged by the rest of the body). */
  active: Set<number>;
  verdicts: Map<number, EffectVerdict>;
  viewsSeen: Set<string>;
  typeVerdicts: Map<number, EffectVerdict>;
  writeVerdicts: Map<string, EffectVerdict>;
}

export function newWalker(mode: Mode, index: RoutineIndex, allowSequences = false): Walker {
  return { mode, index, allowSequences, active: new Set(), verdicts: new Map(), viewsSeen: new Set(), typeVerdicts: new Map(), writeVerdicts: new Map() };
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

export function deny(reason: string): EffectVerdict {
  return { free: false, reason };
}

const clause = (reason: string) => reason.replace(/^it /, '');

/** A call of `qualified` (e.g. `pg_terminate_backend`, `public.audit`): every routine it could resolve to must be free. */
function checkCall(walker: Walker, qualified: string[]): EffectVerdict {
  const name = qualified.join('.');
  const candidates = walker.index.byName.get(name) ?? [];
  if (!candidates.length) return deny(`it calls ${name}, which is not a known function`);
  for (const routine of candidates) {
    const verdict = routineVerdict(walker, routine);
    if (verdict.free) continue;
    // A built-in, or a function whose reason already names it: as is; a user function: say which was called.
    return routine.schema === 'pg_catalog' || verdict.reason.startsWith(`it calls ${routine.schema}.${routine.name}`) ? verdict : deny(`it calls ${name}: ${verdict.reason}`);
  }
  return { free: true };
}

/** A setting user SQL may change: the application's own (a name with a dot, e.g. app.current_tenant). */
function ownSetting(name: string): boolean {
  return name.includes('.');
}

/** user mode: set_config of a constant setting of the application's own, nothing else. */
function checkSetConfig(call: { args?: unknown[] }): EffectVerdict {
  const constant = (call.args?.[0] as { A_Const?: { sval?: { sval?: string } } } | undefined)?.A_Const?.sval?.sval;
  if (constant === undefined) return deny('it calls set_config with a setting name that is not a constant, which could change search_path or a setting of the audit');
  if (!ownSetting(constant)) return deny(`it calls set_config('${constant}', ...), which changes ${constant} for the rest of the audit's transaction: only the application's own settings (a name with a dot) may be set`);
  return { free: true };
}

/** Check parsed SQL statements: each of a kind the mode allows, then everything in it. */
export function checkStatements(walker: Walker, statements: RawStmt[]): EffectVerdict {
  for (const statement of statements) {
    const kind = Object.keys(statement.stmt ?? {})[0] ?? 'empty';
    const allowed = walker.mode === 'effects' ? READING.has(kind) : walker.mode === 'user' ? USER_STATEMENTS.has(kind) : READING.has(kind) || kind in WRITES;
    if (!allowed) {
      const command = kind.replace(/Stmt$/, '').toUpperCase();
      return deny(kind in WRITES ? `it writes (${command})` : `it runs ${command}`);
    }
    if (kind === 'VariableSetStmt') {
      const set = (statement.stmt as { VariableSetStmt: { kind?: string; name?: string } }).VariableSetStmt;
      const name = (set.name ?? '').toLowerCase();
      if (!ownSetting(name) || set.kind === 'VAR_RESET_ALL') return deny(`it runs SET/RESET of ${name || 'ALL'}: only the application's own settings (a name with a dot) may be set`);
    }
    const verdict = checkTree(walker, statement.stmt);
    if (!verdict.free) return verdict;
  }
  return { free: true };
}

/** Types named in the tree (casts, declarations): each may call a domain CHECK, a cast, an operator. */
function checkTypeName(walker: Walker, typeName: { names?: unknown }): EffectVerdict {
  const parts = names(typeName.names);
  const qualified = parts.join('.');
  const candidates = walker.index.typesByName.get(qualified) ?? walker.index.typesByName.get(parts.at(-1) ?? '') ?? [];
  for (const type of candidates) {
    const verdict = typeVerdict(walker, type.oid);
    if (!verdict.free) return verdict;
  }
  return { free: true };
}

function checkTree(walker: Walker, tree: unknown): EffectVerdict {
  for (const node of nodes(tree)) {
    for (const [kind, command] of Object.entries(WRITES)) {
      const write = node[kind] as { relation?: { schemaname?: string; relname?: string } } | undefined;
      if (!write) continue;
      if (walker.mode === 'effects') return deny(`it writes (${command})`);
      const verdict = checkWrite(walker, write.relation, command);
      if (!verdict.free) return verdict;
    }
    if (walker.mode !== 'sequences' && Array.isArray(node.lockingClause) && node.lockingClause.length) return deny('it locks rows (SELECT ... FOR UPDATE/SHARE)');
    const call = node.FuncCall as { funcname?: unknown; args?: unknown[] } | undefined;
    if (call) {
      const qualified = names(call.funcname);
      if (walker.mode === 'user' && (qualified.join('.') === 'set_config' || qualified.join('.') === 'pg_catalog.set_config')) {
        const verdict = checkSetConfig(call);
        if (!verdict.free) return verdict;
      }
      const verdict = checkCall(walker, qualified);
      if (!verdict.free) return verdict;
    }
    // A type name: wrapped (`TypeName`) or as a field (`typeName` of a TypeCast, a column definition).
    const typeName = (node.TypeName ?? node.typeName) as { names?: unknown } | undefined;
    if (typeName && typeof typeName === 'object') {
      const verdict = checkTypeName(walker, typeName);
      if (!verdict.free) return verdict;
    }
    const expression = node.A_Expr as { name?: unknown } | undefined;
    if (expression) {
      // The operator cannot be resolved without the operands' types: every user operator of that symbol counts.
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
        if (!verdict.free) return deny(`it reads the view ${key}, which ${clause(verdict.reason)}`);
      }
      // Sorting, grouping, comparing or casting its columns calls what their types define.
      for (const relation of walker.index.relationsByName.get(key) ?? []) {
        for (const column of relation.columns) {
          const verdict = typeVerdict(walker, column.type);
          if (!verdict.free) return deny(`it reads ${relation.schema}.${relation.name}, whose column ${column.name} ${clause(verdict.reason)}`);
        }
      }
    }
  }
  return { free: true };
}

/** What a value of type `oid` may make PostgreSQL call: domain CHECKs and defaults (of domains under domains too), casts, operators, support functions. */
export function typeVerdict(walker: Walker, oid: number): EffectVerdict {
  const known = walker.typeVerdicts.get(oid);
  if (known) return known;
  const type = walker.index.types.get(oid);
  if (!type) return { free: true };
  // A cycle (a domain's CHECK casting to the domain) is judged by the rest.
  walker.typeVerdicts.set(oid, { free: true });
  const label = `${type.schema}.${type.name}`;
  let verdict: EffectVerdict = { free: true };
  for (const check of type.checks) {
    const inner = checkSql(walker, `SELECT ${check}`);
    if (!inner.free) verdict = deny(`it uses the domain ${label}, whose CHECK (${check}) ${clause(inner.reason)}`);
    if (!verdict.free) break;
  }
  if (verdict.free && type.default !== null) {
    const inner = checkSql(walker, `SELECT ${type.default}`);
    if (!inner.free) verdict = deny(`it uses the domain ${label}, whose default (${type.default}) ${clause(inner.reason)}`);
  }
  for (const entry of verdict.free ? type.routines : []) {
    const routine = walker.index.byOid.get(entry.oid);
    const inner = routine ? routineVerdict(walker, routine) : deny('its function is not in pg_proc');
    if (!inner.free) {
      verdict = deny(`it uses the type ${label}, whose ${entry.via} calls ${routine ? `${routine.schema}.${routine.name}` : `function ${entry.oid}`}: ${inner.reason}`);
      break;
    }
  }
  for (const under of verdict.free ? [type.base, type.element] : []) {
    if (!under) continue;
    const inner = typeVerdict(walker, under);
    if (!inner.free) verdict = under === type.base ? deny(`it uses the domain ${label}, over a type that ${clause(inner.reason)}`) : inner;
    if (!verdict.free) break;
  }
  walker.typeVerdicts.set(oid, verdict);
  return verdict;
}

/** A write to a relation named in a statement: every relation it could resolve to. */
function checkWrite(walker: Walker, range: { schemaname?: string; relname?: string } | undefined, command: string): EffectVerdict {
  if (!range?.relname) return deny(`it writes (${command}) a relation it does not name`);
  const key = range.schemaname ? `${range.schemaname}.${range.relname}` : range.relname;
  const candidates = walker.index.relationsByName.get(key) ?? [];
  if (!candidates.length) return deny(`it writes ${key} (${command}), which is not a known relation`);
  for (const relation of candidates) {
    const verdict = writeVerdict(walker, relation, command);
    if (!verdict.free) return verdict;
  }
  return { free: true };
}

/**
 * What a write of `command` to `relation` makes PostgreSQL call: column defaults (INSERT, also through
 * DEFAULT), the domains of its columns, CHECK constraints, triggers, the tables under a view, partitions and
 * children, and the writes foreign keys cascade to. Rewrite rules are not followed: they fail closed.
 */
function writeVerdict(walker: Walker, relation: RelationFacts, command: string): EffectVerdict {
  const cacheKey = `${relation.oid}:${command}`;
  const known = walker.writeVerdicts.get(cacheKey);
  if (known) return known;
  walker.writeVerdicts.set(cacheKey, { free: true });
  const label = `${relation.schema}.${relation.name}`;
  const fail = (what: string, inner: EffectVerdict & { free: false }) => deny(`it writes ${label} (${command}), whose ${what} ${clause(inner.reason)}`);
  const inserts = command === 'INSERT' || command === 'MERGE';
  const changes = inserts || command === 'UPDATE';
  const verdict = ((): EffectVerdict => {
    if (relation.rules) return deny(`it writes ${label} (${command}), which has rewrite rules (not followed)`);
    for (const column of relation.columns) {
      if (inserts && column.default !== null) {
        const inner = checkSql(walker, `SELECT ${column.default}`);
        if (!inner.free) return fail(`default of ${column.name} (${column.default})`, inner);
      }
      if (changes) {
        const inner = typeVerdict(walker, column.type);
        if (!inner.free) return fail(`column ${column.name}`, inner);
      }
    }
    for (const check of changes ? relation.checks : []) {
      const inner = checkSql(walker, `SELECT ${check}`);
      if (!inner.free) return fail(`CHECK (${check})`, inner);
    }
    for (const trigger of relation.triggers) {
      if (!(trigger.events & (TRIGGER_EVENTS[command] ?? 0))) continue;
      const routine = walker.index.byOid.get(trigger.function);
      const inner = routine ? routineVerdict(walker, routine) : deny('its function is not in pg_proc');
      if (!inner.free) return fail(`trigger ${trigger.name}${routine ? ` (${routine.schema}.${routine.name}())` : ''}`, inner);
    }
    for (const child of relation.children) {
      const facts = walker.index.relations.get(child);
      if (!facts) return deny(`it writes ${label} (${command}), whose partition or child ${child} is not known`);
      const inner = writeVerdict(walker, facts, command);
      if (!inner.free) return inner;
    }
    if (relation.definition !== null) {
      // An updatable view writes the relations it reads.
      let statements: RawStmt[];
      try {
        statements = parseStatements(relation.definition);
      } catch {
        return deny(`it writes the view ${label}, whose definition does not parse`);
      }
      for (const node of nodes(statements)) {
        const range = node.RangeVar as { schemaname?: string; relname?: string } | undefined;
        if (!range?.relname) continue;
        const key = range.schemaname ? `${range.schemaname}.${range.relname}` : range.relname;
        for (const base of walker.index.relationsByName.get(key) ?? []) {
          const inner = writeVerdict(walker, base, command);
          if (!inner.free) return deny(`it writes the view ${label}, which ${clause(inner.reason)}`);
        }
      }
    }
    if (command !== 'INSERT') {
      for (const other of relation.referencing) {
        const facts = walker.index.relations.get(other);
        if (!facts) continue;
        for (const cascaded of ['UPDATE', 'DELETE']) {
          const inner = writeVerdict(walker, facts, cascaded);
          if (!inner.free) return deny(`it writes ${label} (${command}), whose foreign keys act on ${facts.schema}.${facts.name}: ${inner.reason}`);
        }
      }
    }
    return { free: true };
  })();
  walker.writeVerdicts.set(cacheKey, verdict);
  return verdict;
}

export function checkSql(walker: Walker, sql: string): EffectVerdict {
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

/**
 * Types a PL/pgSQL body names (variable declarations, casts), found with PostgreSQL's lexer: a variable
 * of a domain type checks the domain on every assignment. A name that is also a type counts (fail closed).
 */
function checkNamedTypes(walker: Walker, body: string): EffectVerdict {
  let tokens;
  try {
    tokens = scanTokens(body);
  } catch (error) {
    return deny(`its body does not scan (${error instanceof Error ? error.message : String(error)})`);
  }
  const word = (text: string) => (text.startsWith('"') ? text.slice(1, -1).replace(/""/g, '"') : text.toLowerCase());
  for (let index = 0; index < tokens.length; index += 1) {
    const token = tokens[index]!;
    if (token.tokenName === 'SCONST' || token.tokenName === 'PARAM' || token.tokenName === 'ICONST' || token.tokenName === 'FCONST') continue;
    let name = word(token.text);
    if (tokens[index + 1]?.text === '.' && tokens[index + 2]) name = `${name}.${word(tokens[index + 2]!.text)}`;
    for (const type of walker.index.typesByName.get(name) ?? walker.index.typesByName.get(word(token.text)) ?? []) {
      const verdict = typeVerdict(walker, type.oid);
      if (!verdict.free) return verdict;
    }
  }
  return { free: true };
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
  return checkNamedTypes(walker, routine.body);
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

export function routineVerdict(walker: Walker, routine: RoutineFacts): EffectVerdict {
  const known = walker.verdicts.get(routine.oid);
  if (known) return known;
  if (walker.active.has(routine.oid)) return { free: true };
  walker.active.add(routine.oid);
  let verdict: EffectVerdict;
  if (routine.schema === 'pg_catalog' && walker.mode === 'sequences') {
    verdict = SEQUENCE_BUILTINS.has(routine.name) ? deny(`it calls ${routine.name}`) : { free: true };
  } else if (routine.schema === 'pg_catalog' && walker.mode === 'user' && walker.allowSequences && SEQUENCE_BUILTINS.has(routine.name)) {
    verdict = { free: true };
  } else if (routine.schema === 'pg_catalog') {
    verdict =
      routine.volatility !== 'volatile' || PURE_VOLATILE_BUILTINS.has(routine.name)
        ? { free: true }
        : deny(`it calls ${routine.name}, a volatile built-in that can act outside the transaction`);
  } else {
    // Calling it casts its arguments to their types, and its result to the result type.
    verdict = { free: true };
    for (const type of routine.types) {
      const inner = typeVerdict(walker, type);
      if (!inner.free) {
        verdict = deny(`it calls ${routine.schema}.${routine.name}, whose arguments or result ${clause(inner.reason)}`);
        break;
      }
    }
    if (verdict.free) verdict = bodyVerdict(walker, routine);
  }
  walker.active.delete(routine.oid);
  walker.verdicts.set(routine.oid, verdict);
  return verdict;
}

function bodyVerdict(walker: Walker, routine: RoutineFacts): EffectVerdict {
  if (routine.language === 'sql') return checkSqlBody(walker, routine.source);
  if (routine.language === 'plpgsql') return checkPlpgsql(walker, routine);
  if (routine.trusted && routine.volatility !== 'volatile') return { free: true };
  // Code of an installed extension (citext, pgcrypto, PostGIS) declared IMMUTABLE or STABLE is held to what PostgreSQL requires of those: no changes to the database.
  if (routine.extension && routine.volatility !== 'volatile') return { free: true };
  if (routine.language === 'c' || routine.language === 'internal') {
    return deny(`it calls ${routine.schema}.${routine.name}, a ${routine.volatility} function in C whose effects cannot be read (e.g. dblink)`);
  }
  return deny(`it calls ${routine.schema}.${routine.name}, written in ${routine.language}${routine.trusted ? ' and VOLATILE' : ', an untrusted language'}, whose body cannot be read`);
}
