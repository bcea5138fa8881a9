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
  /** prosrc: the body alone (for plpgsql, without the CREATE FUNCTION around it). */
  body: string;
  /** Argument and result types (pg_type oids): calling it casts to them, returning casts to its result type. */
  types: number[];
  /** Part of an installed extension (pg_depend deptype e). */
  extension: boolean;
}

/**
 * What PostgreSQL may call for a value of one type without the SQL naming a function: a domain's CHECK
 * constraints and default (and those of the domain under it), casts with a function, operators and operator
 * class support functions (ORDER BY, GROUP BY, DISTINCT, joins and comparisons of the type).
 */
export interface TypeFacts {
  oid: number;
  schema: string;
  name: string;
  /** The type under a domain (0 when not a domain) and the element of an array (0 when not an array). */
  base: number;
  element: number;
  /** Domain CHECK expressions (VALUE is the value) and the domain's default. */
  checks: string[];
  default: string | null;
  /** User-defined functions PostgreSQL calls for values of the type: casts, operators, support functions. */
  routines: { oid: number; via: string }[];
}

/** A relation as a write reaches it: the defaults, checks and triggers an INSERT, UPDATE or DELETE fires. */
export interface RelationFacts {
  oid: number;
  schema: string;
  name: string;
  kind: string;
  columns: { name: string; type: number; default: string | null }[];
  checks: string[];
  /** Enabled user triggers: function oid and pg_trigger.tgtype (bit 2 INSERT, 3 DELETE, 4 UPDATE, 5 TRUNCATE). */
  triggers: { name: string; function: number; events: number }[];
  /** Rewrite rules other than a view's own SELECT rule. */
  rules: boolean;
  /** Partitions and inheritance children. */
  children: number[];
  /** Tables whose foreign keys act on this one (ON UPDATE / ON DELETE other than NO ACTION, RESTRICT). */
  referencing: number[];
  /** A view's definition (pg_get_viewdef). */
  definition: string | null;
}

/** Every routine of the database by name, and what PostgreSQL calls without being named: operators, types, relations. */
export interface RoutineIndex {
  byName: Map<string, RoutineFacts[]>;
  byOid: Map<number, RoutineFacts>;
  /** Operator symbols implemented by a function outside pg_catalog. */
  userOperators: Map<string, RoutineFacts[]>;
  /** Views outside pg_catalog and information_schema: `schema.name` and bare `name` -> definition. */
  views: Map<string, string>;
  /** Types with something PostgreSQL may call (domains, casts, operators, support functions), by oid and by name. */
  types: Map<number, TypeFacts>;
  typesByName: Map<string, TypeFacts[]>;
  /** Relations outside pg_catalog and information_schema, by oid and by `schema.name` and bare `name`. */
  relations: Map<number, RelationFacts>;
  relationsByName: Map<string, RelationFacts[]>;
}

/** The SQL that reads what `routineIndex` needs; run once per audit, as the administrator. */
export const ROUTINES_SQL = `
select p.oid::int8::text as oid, n.nspname as schema, p.proname as name, l.lanname as language, l.lanpltrusted as trusted,
       p.provolatile as volatility,
       case when l.lanname = 'sql' then /*SQL_BODY*/ p.prosrc when l.lanname = 'plpgsql' then pg_get_functiondef(p.oid) else '' end as source,
       case when l.lanname in ('sql', 'plpgsql') then p.prosrc else '' end as body,
       array_to_json(array_append(p.proargtypes::oid[], p.prorettype))::text as types,
       exists (select 1 from pg_depend d where d.classid = 'pg_proc'::regclass and d.objid = p.oid and d.deptype = 'e') as extension
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

/**
 * User functions PostgreSQL calls for a type: casts to it (explicit casts name it; implicit and assignment
 * casts convert into the type a column or an argument has), operators on it, support functions of its
 * operator classes (ORDER BY, GROUP BY, DISTINCT, joins).
 */
const TYPE_ROUTINES = `
  select c.casttarget as type, c.castfunc as fn, 'cast ' || format_type(c.castsource, null) || ' -> ' || format_type(c.casttarget, null) as via from pg_cast c where c.castfunc <> 0
  union all select o.oprleft, o.oprcode, 'operator ' || o.oprname from pg_operator o
  union all select o.oprright, o.oprcode, 'operator ' || o.oprname from pg_operator o
  union all select a.amproclefttype, a.amproc, 'operator family ' || f.opfname || ' (support function)' from pg_amproc a join pg_opfamily f on f.oid = a.amprocfamily
  union all select a.amprocrighttype, a.amproc, 'operator family ' || f.opfname || ' (support function)' from pg_amproc a join pg_opfamily f on f.oid = a.amprocfamily`;

export const TYPES_SQL = `
with hazards as (
  select h.type, h.fn, h.via from (${TYPE_ROUTINES}) h join pg_proc p on p.oid = h.fn where p.pronamespace <> 'pg_catalog'::regnamespace and h.type <> 0
)
select t.oid::int8::text as oid, n.nspname as schema, t.typname as name, t.typbasetype::int8::text as base, t.typelem::int8::text as element,
       case when t.typtype = 'd' then pg_get_expr(t.typdefaultbin, 0) end as "default",
       (select coalesce(json_agg(pg_get_expr(k.conbin, 0)), '[]') from pg_constraint k where k.contypid = t.oid and k.contype = 'c')::text as checks,
       (select coalesce(json_agg(json_build_object('oid', h.fn::int8, 'via', h.via)), '[]') from hazards h where h.type = t.oid)::text as routines
from pg_type t join pg_namespace n on n.oid = t.typnamespace
where t.typtype = 'd' or t.oid in (select type from hazards) or t.typelem in (select oid from pg_type where typtype = 'd' or oid in (select type from hazards))`;

export const RELATIONS_SQL = `
select c.oid::int8::text as oid, n.nspname as schema, c.relname as name, c.relkind::text as kind,
       (select coalesce(json_agg(json_build_object('name', a.attname, 'type', a.atttypid::int8, 'default', pg_get_expr(d.adbin, d.adrelid)) order by a.attnum), '[]')
          from pg_attribute a left join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
         where a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped)::text as columns,
       (select coalesce(json_agg(pg_get_expr(k.conbin, k.conrelid)), '[]') from pg_constraint k where k.conrelid = c.oid and k.contype = 'c')::text as checks,
       (select coalesce(json_agg(json_build_object('name', g.tgname, 'function', g.tgfoid::int8, 'events', g.tgtype)), '[]')
          from pg_trigger g where g.tgrelid = c.oid and not g.tgisinternal and g.tgenabled <> 'D')::text as triggers,
       exists (select 1 from pg_rewrite r where r.ev_class = c.oid and r.rulename <> '_RETURN') as rules,
       (select coalesce(json_agg(i.inhrelid::int8), '[]') from pg_inherits i where i.inhparent = c.oid)::text as children,
       (select coalesce(json_agg(k.conrelid::int8), '[]') from pg_constraint k where k.confrelid = c.oid and k.contype = 'f'
           and (k.confupdtype not in ('a', 'r') or k.confdeltype not in ('a', 'r')))::text as referencing,
       case when c.relkind in ('v', 'm') then pg_get_viewdef(c.oid) end as definition
from pg_class c join pg_namespace n on n.oid = c.relnamespace
where c.relkind in ('r', 'p', 'v', 'm', 'f') and n.nspname not in ('pg_catalog', 'information_schema') and n.nspname not like 'pg\_toast%'`;

type Row = Record<string, unknown>;

function json<T>(value: unknown, fallback: T): T {
  if (value === null || value === undefined) return fallback;
  if (typeof value !== 'string') return value as T;
  return JSON.parse(value) as T;
}

function addTo<T>(map: Map<string, T[]>, key: string, value: T): void {
  map.set(key, [...(map.get(key) ?? []), value]);
}

export function routineIndex(routines: Row[], operators: Row[], views: Row[], typeRows: Row[] = [], relationRows: Row[] = []): RoutineIndex {
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
      body: String(row.body ?? ''),
      types: json<number[]>(row.types, []).map(Number),
      extension: row.extension === true || row.extension === 't',
    };
    byOid.set(facts.oid, facts);
    for (const key of [facts.name, `${facts.schema}.${facts.name}`]) addTo(byName, key, facts);
  }
  const userOperators = new Map<string, RoutineFacts[]>();
  for (const row of operators) {
    const facts = byOid.get(Number(row.oid));
    if (facts) addTo(userOperators, String(row.operator), facts);
  }
  const viewMap = new Map<string, string>();
  for (const row of views) {
    viewMap.set(`${String(row.schema)}.${String(row.name)}`, String(row.definition));
    viewMap.set(String(row.name), String(row.definition));
  }
  const types = new Map<number, TypeFacts>();
  const typesByName = new Map<string, TypeFacts[]>();
  for (const row of typeRows) {
    const facts: TypeFacts = {
      oid: Number(row.oid),
      schema: String(row.schema),
      name: String(row.name),
      base: Number(row.base ?? 0),
      element: Number(row.element ?? 0),
      checks: json<string[]>(row.checks, []),
      default: row.default === null || row.default === undefined ? null : String(row.default),
      routines: json<{ oid: number; via: string }[]>(row.routines, []).map((entry) => ({ oid: Number(entry.oid), via: entry.via })),
    };
    types.set(facts.oid, facts);
    for (const name of typeNames(facts)) addTo(typesByName, name, facts);
  }
  const relations = new Map<number, RelationFacts>();
  const relationsByName = new Map<string, RelationFacts[]>();
  for (const row of relationRows) {
    const facts: RelationFacts = {
      oid: Number(row.oid),
      schema: String(row.schema),
      name: String(row.name),
      kind: String(row.kind),
      columns: json<{ name: string; type: number; default: string | null }[]>(row.columns, []).map((column) => ({ ...column, type: Number(column.type) })),
      checks: json<string[]>(row.checks, []),
      triggers: json<{ name: string; function: number; events: number }[]>(row.triggers, []).map((trigger) => ({ ...trigger, function: Number(trigger.function), events: Number(trigger.events) })),
      rules: row.rules === true || row.rules === 't',
      children: json<number[]>(row.children, []).map(Number),
      referencing: json<number[]>(row.referencing, []).map(Number),
      definition: row.definition === null || row.definition === undefined ? null : String(row.definition),
    };
    relations.set(facts.oid, facts);
    for (const key of [facts.name, `${facts.schema}.${facts.name}`]) addTo(relationsByName, key, facts);
  }
  return { byName, byOid, userOperators, views: viewMap, types, typesByName, relations, relationsByName };
}

/** SQL spellings of built-in types, as a body may write them. */
const TYPE_ALIASES: Record<string, string[]> = {
  int4: ['integer', 'int'], int2: ['smallint'], int8: ['bigint'], bool: ['boolean'], float4: ['real'], float8: ['float', 'double'],
  varchar: ['varchar'], bpchar: ['char', 'character'], numeric: ['decimal'], timestamptz: ['timestamptz'], timestamp: ['timestamp'],
};

/** The names a body may use for a type: its name, qualified name and SQL spellings (an array's element is found through its own name). */
function typeNames(facts: TypeFacts): string[] {
  const names = [facts.name, `${facts.schema}.${facts.name}`];
  if (facts.schema === 'pg_catalog') names.push(...(TYPE_ALIASES[facts.name] ?? []));
  return names;
}

/** Query functions the index is read with: an AuditSession or a client. */
type Query = (sql: string) => Promise<{ rows: Row[] }>;

/** Read the whole index (routines, operators, views, types and relations), as the administrator. */
export async function loadRoutineIndex(query: Query, serverVersionNum: number): Promise<RoutineIndex> {
  const routines = await query(routinesSql(serverVersionNum));
  const operators = await query(OPERATORS_SQL);
  const views = await query(VIEWS_SQL);
  const types = await query(TYPES_SQL);
  const relations = await query(RELATIONS_SQL);
  return routineIndex(routines.rows, operators.rows, views.rows, types.rows, relations.rows);
}

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

export type EffectVerdict = { free: true } | { free: false; reason: string };

/**
 * effects: anything outside the transaction (function-leak on a live database): reading only. sequences:
 * only what advances a sequence (nextval, setval, directly or through the defaults, checks and triggers a
 * write reaches, or a body that cannot be read); writes are allowed, since a rollback undoes them. user:
 * user SQL (context SQL, scenario queries) and everything it calls: writes are allowed (rolled back) and
 * followed to their defaults, checks and triggers; every other effect is refused, sequences unless
 * --allow-sequence-gaps, and settings other than the application's own (a name with a dot).
 */
type Mode = 'effects' | 'sequences' | 'user';

interface Walker {
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

function newWalker(mode: Mode, index: RoutineIndex, allowSequences = false): Walker {
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

function deny(reason: string): EffectVerdict {
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
function checkStatements(walker: Walker, statements: RawStmt[]): EffectVerdict {
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
function typeVerdict(walker: Walker, oid: number): EffectVerdict {
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

function routineVerdict(walker: Walker, routine: RoutineFacts): EffectVerdict {
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

/**
 * Judge each function: free of effects outside the transaction, or why not. One walker per call, so the
 * verdicts of shared helpers are computed once.
 */
export function functionEffects(index: RoutineIndex, functions: FunctionInfo[]): Map<number, EffectVerdict> {
  const walker = newWalker('effects', index);
  const result = new Map<number, EffectVerdict>();
  for (const fn of functions) {
    const routine = index.byOid.get(fn.oid);
    result.set(fn.oid, routine ? routineVerdict(walker, routine) : deny('it is not in pg_proc'));
  }
  return result;
}

/**
 * User SQL (the context SQL, a scenario query) as a live database would run it inside the audit's
 * transaction: free when nothing it reaches acts outside that transaction (see Mode `user`), or why not.
 * `allowSequences`: --allow-sequence-gaps.
 */
export function userSqlEffects(index: RoutineIndex, sql: string, allowSequences: boolean): EffectVerdict {
  return checkSql(newWalker('user', index, allowSequences), sql);
}

/**
 * Judges what may advance a sequence, for one audit: a routine (a trigger function), an expression (a
 * column default) or a type (a domain's default). `free: false` carries how: nextval or setval (directly or
 * through what it calls or writes), or a body that cannot be read.
 */
export class SequenceUse {
  private readonly walker: Walker;

  constructor(private readonly index: RoutineIndex) {
    this.walker = newWalker('sequences', index);
  }

  routine(oid: number): EffectVerdict {
    const routine = this.index.byOid.get(oid);
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
    return checkStatements(this.walker, statements);
  }

  /** A column's type: a domain whose default or CHECK calls nextval, directly or through a domain under it. */
  type(oid: number): EffectVerdict {
    return typeVerdict(this.walker, oid);
  }
}

/**
 * Judges what a write of the audit (seeding, a write probe) reaches that acts outside the transaction other
 * than a sequence (sequences are SequenceUse's): a trigger, a column default, a CHECK, a column's domain.
 * Writes inside are allowed: the audit's transaction is rolled back.
 */
export class WriteEffects {
  private readonly walker: Walker;

  constructor(private readonly index: RoutineIndex) {
    this.walker = newWalker('user', index, true);
  }

  routine(oid: number): EffectVerdict {
    const routine = this.index.byOid.get(oid);
    return routine ? routineVerdict(this.walker, routine) : deny('its function is not in pg_proc');
  }

  expression(expression: string): EffectVerdict {
    return checkSql(this.walker, `SELECT ${expression}`);
  }

  type(oid: number): EffectVerdict {
    return typeVerdict(this.walker, oid);
  }
}
