/**
 * The catalog as the effect analysis (effects.ts) reads it: every routine of the database, the user operators,
 * views, types and relations, and what PostgreSQL calls for them without being named. Read once per audit,
 * as the administrator.
 */

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
/** What the index is read through: the audit's session, whose reads of large results go in pages. */
interface PagedReader {
  queryPaged(sql: string): Promise<{ rows: Row[] }>;
}

/** Per session: the catalog does not change inside the audit's transaction, so the index is read once. */
const loaded = new WeakMap<PagedReader, Promise<RoutineIndex>>();

/** The whole index (routines, operators, views, types and relations), read as the administrator, once per session. */
export function loadRoutineIndex(session: PagedReader, serverVersionNum: number): Promise<RoutineIndex> {
  let index = loaded.get(session);
  if (!index) {
    index = readRoutineIndex(session, serverVersionNum);
    loaded.set(session, index);
    // A failed read is not kept: the next caller reads again (and meets the error itself).
    index.catch(() => loaded.delete(session));
  }
  return index;
}

async function readRoutineIndex(session: PagedReader, serverVersionNum: number): Promise<RoutineIndex> {
  const routines = await session.queryPaged(routinesSql(serverVersionNum));
  const operators = await session.queryPaged(OPERATORS_SQL);
  const views = await session.queryPaged(VIEWS_SQL);
  const types = await session.queryPaged(TYPES_SQL);
  const relations = await session.queryPaged(RELATIONS_SQL);
  return routineIndex(routines.rows, operators.rows, views.rows, types.rows, relations.rows);
}
