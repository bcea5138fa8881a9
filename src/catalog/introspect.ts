import type pg from 'pg';
import { domainCheckOnColumn } from '../analysis/constraints.js';
import { keyColumnsMentioned } from '../analysis/sql-text.js';
import { loadParser } from '../analysis/parse.js';
import { pagedQueries } from '../target/paged.js';
import type {
  Catalog,
  Column,
  Constraint,
  ForeignKey,
  FunctionInfo,
  Grant,
  Index,
  Policy,
  PolicyCommand,
  Relation,
  RelationKind,
  Role,
  Trigger,
  TriggerEvent,
} from './types.js';

type Queryable = Pick<pg.ClientBase, 'query'>;

const RELATION_KINDS: Record<string, RelationKind> = {
  r: 'table',
  p: 'partitioned-table',
  v: 'view',
  m: 'materialized-view',
  f: 'foreign-table',
};

const POLICY_COMMANDS: Record<string, PolicyCommand> = { '*': 'ALL', r: 'SELECT', a: 'INSERT', w: 'UPDATE', d: 'DELETE' };

/** The schemas to look at: those given, or every schema that is not a system schema or owned by an extension. */
const SCHEMA_FILTER = `
  n.nspname not in ('pg_catalog', 'information_schema') and n.nspname not like 'pg\\_toast%' and n.nspname not like 'pg\\_temp%'
  and (cardinality($1::text[]) = 0 or n.nspname = any($1::text[]))`;

const RELATIONS_SQL = `
select c.oid::int as oid, n.nspname as schema, c.relname as name, c.relkind as kind,
       pg_get_userbyid(c.relowner) as owner, c.relrowsecurity as rls_enabled, c.relforcerowsecurity as rls_forced,
       c.relispartition as is_partition,
       case when c.relispartition then pg_get_expr(c.relpartbound, c.oid) end as partition_bound,
       case when c.relkind = 'p' then pg_get_partkeydef(c.oid) end as partition_key,
       coalesce(array(select pn.nspname || '.' || pc.relname from pg_inherits i
                      join pg_class pc on pc.oid = i.inhparent join pg_namespace pn on pn.oid = pc.relnamespace
                      where i.inhrelid = c.oid order by i.inhseqno), '{}') as parents,
       case when c.relkind in ('v', 'm') then pg_get_viewdef(c.oid) end as view_definition,
       coalesce(c.reloptions, '{}') as options, greatest(c.reltuples, 0)::float8 as estimated_rows,
       coalesce(array(select case when a.grantee = 0 then 'public' else pg_get_userbyid(a.grantee) end || ':' || a.privilege_type
                      from aclexplode(c.relacl) a), '{}') as grants
from pg_class c join pg_namespace n on n.oid = c.relnamespace
where c.relkind in ('r', 'p', 'v', 'm', 'f') and ${SCHEMA_FILTER}
  and not exists (select 1 from pg_depend d where d.classid = 'pg_class'::regclass and d.objid = c.oid and d.deptype = 'e')
order by n.nspname, c.relname`;

const COLUMNS_SQL = `
with cols as (
  select a.attrelid, a.attnum, a.attname, a.atttypid, a.atttypmod, a.attnotnull, a.attidentity, a.attgenerated,
         pg_get_expr(d.adbin, d.adrelid) as default_expr, d.oid as default_oid,
         case when t.typtype = 'd' then t.typbasetype else a.atttypid end as base_oid,
         case when t.typtype = 'd' then t.typtypmod else a.atttypmod end as base_typmod,
         t.typtype = 'd' as is_domain
  from pg_attribute a join pg_type t on t.oid = a.atttypid
  left join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
  where a.attrelid = any($1::oid[]) and a.attnum > 0 and not a.attisdropped
)
select c.attrelid::int as relid, c.attnum::int as attnum, c.attname as name, quote_ident(c.attname) as quoted_name, format_type(c.atttypid, c.atttypmod) as type, c.attnotnull as not_null,
       c.default_expr, c.attidentity as identity, c.attgenerated as generated,
       array(select distinct s.oid::regclass::text from pg_depend k join pg_class s on s.oid = k.refobjid and s.relkind = 'S'
             where k.classid = 'pg_attrdef'::regclass and k.objid = c.default_oid and k.refclassid = 'pg_class'::regclass
             order by 1) as default_sequences,
       bt.typcategory = 'A' as is_array,
       coalesce(et.typname, bt.typname) as base_type, coalesce(et.typcategory, bt.typcategory) as category,
       c.base_typmod as typmod,
       array(select e.enumlabel::text from pg_enum e where e.enumtypid = coalesce(et.oid, bt.oid) order by e.enumsortorder) as enum_values,
       case when c.is_domain then array(select pg_get_constraintdef(k.oid) from pg_constraint k where k.contypid = c.atttypid and k.contype = 'c')
            else '{}'::text[] end as domain_checks
from cols c join pg_type bt on bt.oid = c.base_oid
left join pg_type et on bt.typcategory = 'A' and et.oid = bt.typelem
order by c.attrelid, c.attnum`;

// Key columns come back as attribute numbers, named from the columns query; only a foreign key to a relation outside
// the ones read here is named on the server.
const CONSTRAINTS_SQL = `
select k.conrelid::int as relid, k.conname as name, k.contype as kind, pg_get_constraintdef(k.oid) as definition, k.condeferrable as deferrable,
       coalesce(k.conkey::int[], '{}') as keys, k.confrelid::int as referenced_oid, coalesce(k.confkey::int[], '{}') as referenced_keys,
       case when k.contype = 'f' and not k.confrelid = any($1::oid[]) then
         (select n.nspname || '.' || c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace where c.oid = k.confrelid) end as references,
       case when k.contype = 'f' and not k.confrelid = any($1::oid[]) then
         array(select a.attname::text from unnest(k.confkey) with ordinality u(attnum, ord)
               join pg_attribute a on a.attrelid = k.confrelid and a.attnum = u.attnum order by u.ord) end as referenced_columns
from pg_constraint k
where k.conrelid = any($1::oid[]) and k.contype in ('p', 'u', 'x', 'f', 'c') and k.conparentid = 0
order by k.conrelid, k.conname`;

// pg_get_indexdef costs about as much as the rest of introspection together, so the text is read only where a check
// reads it: unique indexes that back no constraint read here, partial indexes and expression indexes.
const INDEXES_SQL = `
select i.indrelid::int as relid, c.relname as name, i.indisunique as unique, i.indisprimary as primary,
       i.indpred is not null as partial, i.indkey[0:i.indnkeyatts - 1]::int[] as keys,
       case when (i.indisunique and not exists (select 1 from pg_constraint k where k.conindid = i.indexrelid and k.conrelid = i.indrelid and k.contype in ('p', 'u', 'x') and k.conparentid = 0))
                 or i.indpred is not null or i.indexprs is not null
            then pg_get_indexdef(i.indexrelid) end as definition
from pg_index i join pg_class c on c.oid = i.indexrelid
where i.indrelid = any($1::oid[])
order by i.indrelid, c.relname`;

const POLICIES_SQL = `
select p.polrelid::int as relid, p.polname as name, p.polcmd as command, p.polpermissive as permissive,
       p.polroles::int[] as role_oids,
       pg_get_expr(p.polqual, p.polrelid) as using_expr, pg_get_expr(p.polwithcheck, p.polrelid) as check_expr
from pg_policy p where p.polrelid = any($1::oid[])
order by p.polrelid, p.polname`;

const DEPENDENCIES_SQL = `
select distinct r.ev_class::int as relid, n.nspname || '.' || c.relname as depends_on
from pg_rewrite r
join pg_depend d on d.classid = 'pg_rewrite'::regclass and d.objid = r.oid and d.refclassid = 'pg_class'::regclass
join pg_class c on c.oid = d.refobjid join pg_namespace n on n.oid = c.relnamespace
where r.ev_class = any($1::oid[]) and d.refobjid <> r.ev_class and c.relkind in ('r', 'p', 'v', 'm', 'f')`;

const ROLES_SQL = `
select r.oid::int as oid, r.rolname as name, r.rolsuper as superuser, r.rolbypassrls as bypass_rls, r.rolcanlogin as can_login, r.rolinherit as inherit,
       array(select b.rolname::text from pg_auth_members m join pg_roles b on b.oid = m.roleid where m.member = r.oid order by 1)::text[] as member_of
from pg_roles r order by r.rolname`;

const FUNCTIONS_SQL = `
select p.oid::int as oid, n.nspname as schema, p.proname as name, p.oid::regprocedure::text as signature,
       pg_get_userbyid(p.proowner) as owner, l.lanname as language, p.prosecdef as security_definer,
       p.provolatile as volatility, p.proisstrict as strict, p.proretset as returns_set,
       format_type(p.prorettype, null) as return_type, rt.typtype as return_typtype, rt.typname as return_typname,
       coalesce('t' = any(p.proargmodes), false) as returns_table,
       array(select format_type(t, null) from unnest(p.proargtypes) t) as argument_types,
       coalesce(p.proargnames, '{}') as argument_names, coalesce(p.proargmodes::text[], '{}') as argument_modes,
       p.pronargdefaults as default_arguments, coalesce(p.proconfig, '{}') as config,
       case when l.lanname in ('sql', 'plpgsql') then /*SQL_BODY*/ p.prosrc else '' end as source,
       case when l.lanname = 'plpgsql' then pg_get_functiondef(p.oid) else '' end as definition,
       case when p.proacl is null then array['public:EXECUTE', pg_get_userbyid(p.proowner) || ':EXECUTE']
            else array(select case when a.grantee = 0 then 'public' else pg_get_userbyid(a.grantee) end || ':' || a.privilege_type from aclexplode(p.proacl) a) end as grants
from pg_proc p join pg_namespace n on n.oid = p.pronamespace join pg_language l on l.oid = p.prolang
join pg_type rt on rt.oid = p.prorettype
where p.prokind = 'f' and ${SCHEMA_FILTER}
  and not exists (select 1 from pg_depend d where d.classid = 'pg_proc'::regclass and d.objid = p.oid and d.deptype = 'e')
order by signature`;

const SCHEMAS_SQL = `
select n.nspname as name, pg_get_userbyid(n.nspowner) as owner,
       coalesce(array(select case when a.grantee = 0 then 'public' else pg_get_userbyid(a.grantee) end || ':' || a.privilege_type
                      from aclexplode(coalesce(n.nspacl, acldefault('n', n.nspowner))) a), '{}') as grants
from pg_namespace n
where n.nspname not in ('pg_catalog', 'information_schema') and n.nspname !~ '^pg_(toast|temp_|toast_temp_)'
order by n.nspname`;

const DATABASE_SQL = `
select pg_get_userbyid(d.datdba) as owner,
       coalesce(array(select case when a.grantee = 0 then 'public' else pg_get_userbyid(a.grantee) end || ':' || a.privilege_type
                      from aclexplode(coalesce(d.datacl, acldefault('d', d.datdba))) a), '{}') as grants
from pg_database d where d.datname = current_database()`;

/** The events of a trigger from pg_trigger.tgtype: TRIGGER_TYPE_INSERT (1 << 2), DELETE (1 << 3), UPDATE (1 << 4), TRUNCATE (1 << 5). */
function triggerEvents(type: number): TriggerEvent[] {
  const bits: [number, TriggerEvent][] = [
    [1 << 2, 'INSERT'],
    [1 << 4, 'UPDATE'],
    [1 << 3, 'DELETE'],
    [1 << 5, 'TRUNCATE'],
  ];
  return bits.filter(([bit]) => (type & bit) !== 0).map(([, event]) => event);
}

const TRIGGERS_SQL = `
select t.tgname as name, n.nspname || '.' || c.relname as relation, t.tgfoid::regprocedure::text as function, t.tgfoid::int as function_oid,
       pg_get_triggerdef(t.oid) as definition, t.tgenabled <> 'D' as enabled, t.tgtype::int as type
from pg_trigger t join pg_class c on c.oid = t.tgrelid join pg_namespace n on n.oid = c.relnamespace
where not t.tgisinternal and t.tgrelid = any($1::oid[])
order by relation, t.tgname`;

function parseGrants(entries: string[]): Grant[] {
  return entries.map((entry) => {
    const at = entry.lastIndexOf(':');
    return { grantee: entry.slice(0, at), privilege: entry.slice(at + 1) };
  });
}

function groupBy<T>(rows: T[], key: (row: T) => number): Map<number, T[]> {
  const groups = new Map<number, T[]>();
  for (const row of rows) {
    const id = key(row);
    const list = groups.get(id);
    if (list) list.push(row);
    else groups.set(id, [row]);
  }
  return groups;
}

interface ColumnRow {
  relid: number;
  attnum: number;
  name: string;
  quoted_name: string;
  type: string;
  not_null: boolean;
  default_expr: string | null;
  /** Sequences the default names (nextval('s'), in any expression), from pg_depend, as regclass prints them. */
  default_sequences: string[];
  identity: string;
  generated: string;
  is_array: boolean;
  base_type: string;
  category: string;
  typmod: number;
  enum_values: string[];
  domain_checks: string[];
}

function toColumn(row: ColumnRow): Column {
  const lengthTypes = new Set(['varchar', 'bpchar', 'bit', 'varbit']);
  const maxLength = lengthTypes.has(row.base_type) && row.typmod > 4 ? row.typmod - 4 : null;
  const numeric = row.base_type === 'numeric' && row.typmod > 4;
  return {
    name: row.name,
    type: row.type,
    baseType: row.base_type,
    category: row.category,
    isArray: row.is_array,
    notNull: row.not_null,
    default: row.default_expr,
    identity: row.identity === 'a' ? 'always' : row.identity === 'd' ? 'by-default' : null,
    generated: row.generated !== '' && row.generated !== null,
    enumValues: row.enum_values.length ? row.enum_values : null,
    maxLength,
    numericPrecision: numeric ? ((row.typmod - 4) >> 16) & 0xffff : null,
    numericScale: numeric ? (row.typmod - 4) & 0xffff : null,
    domainChecks: row.domain_checks.map((check) => domainCheckOnColumn(check, row.quoted_name)),
  };
}

const CONSTRAINT_KINDS: Record<string, Constraint['kind']> = { p: 'primary-key', u: 'unique', x: 'exclusion', f: 'foreign-key', c: 'check' };

/**
 * Run the queries in pages (target/paged.ts) and return their results in order. On a pipelined connection
 * (the audit's, see target/connect.ts) they are all sent at once, so that a catalog that fits in a page per
 * query costs one round trip; on any other, one after the other (node-postgres runs one query at a time
 * there). The first failure is thrown.
 */
function inTurn(client: Queryable, queries: [string, unknown[]?][]): Promise<{ rows: pg.QueryResultRow[] }[]> {
  return pagedQueries<pg.QueryResultRow>((text, values) => client.query(text, values), queries, (client as { pipeline?: unknown }).pipeline === true);
}

/** One read-only pass over pg_catalog. Pure data: no judgement about tenancy or safety. */
export async function introspect(client: Queryable, schemas: string[] = []): Promise<Catalog> {
  await loadParser(); // domain CHECKs and the columns of index expressions are read with it
  const [info, relationResult] = await inTurn(client, [
    [`select current_setting('server_version') as version, current_setting('server_version_num') as num, current_database() as database, current_user as user`],
    [RELATIONS_SQL, [schemas]],
  ]);
  const relationRows = relationResult.rows as {
    oid: number; schema: string; name: string; kind: string; owner: string; rls_enabled: boolean; rls_forced: boolean;
    is_partition: boolean; partition_bound: string | null; partition_key: string | null; parents: string[]; view_definition: string | null; options: string[]; estimated_rows: number; grants: string[];
  }[];
  const oids = relationRows.map((row) => row.oid);
  // SQL-standard bodies (BEGIN ATOMIC, PostgreSQL 14+) leave prosrc empty; their text is in prosqlbody.
  const sqlBody = Number(info.rows[0]!.num) >= 140000 ? 'coalesce(pg_get_function_sqlbody(p.oid), p.prosrc)' : 'p.prosrc';
  const [columns, constraints, indexes, policies, dependencies, roles, functions, triggers, schemaResult, databaseResult] = await inTurn(client, [
    [COLUMNS_SQL, [oids]],
    [CONSTRAINTS_SQL, [oids]],
    [INDEXES_SQL, [oids]],
    [POLICIES_SQL, [oids]],
    [DEPENDENCIES_SQL, [oids]],
    [ROLES_SQL],
    [FUNCTIONS_SQL.replace('/*SQL_BODY*/ p.prosrc', sqlBody), [schemas]],
    [TRIGGERS_SQL, [oids]],
    [SCHEMAS_SQL],
    [DATABASE_SQL],
  ]);

  const columnsByRelation = groupBy(columns.rows as ColumnRow[], (row) => row.relid);
  const attributeNames = new Map<number, Map<number, string>>();
  for (const [relid, rows] of columnsByRelation) attributeNames.set(relid, new Map(rows.map((row) => [row.attnum, row.name])));
  const qualifiedNames = new Map(relationRows.map((row) => [row.oid, `${row.schema}.${row.name}`]));
  const named = (relid: number, keys: number[]): string[] => keys.map((attnum) => attributeNames.get(relid)?.get(attnum) ?? `#${attnum}`);
  const constraintsByRelation = groupBy(
    (
      constraints.rows as {
        relid: number; name: string; kind: string; definition: string; deferrable: boolean; keys: number[];
        referenced_oid: number; referenced_keys: number[]; references: string | null; referenced_columns: string[] | null;
      }[]
    ).map((row) => ({
      ...row,
      columns: named(row.relid, row.keys),
      references: row.kind === 'f' ? row.references ?? qualifiedNames.get(row.referenced_oid) ?? null : null,
      referenced_columns: row.referenced_columns ?? named(row.referenced_oid, row.referenced_keys),
    })),
    (row) => row.relid,
  );
  const indexesByRelation = groupBy(
    (indexes.rows as { relid: number; name: string; unique: boolean; primary: boolean; partial: boolean; definition: string | null; keys: number[] }[]).map(
      (row) => ({ ...row, columns: row.keys.map((attnum) => (attnum === 0 ? null : attributeNames.get(row.relid)?.get(attnum) ?? null)) }),
    ),
    (row) => row.relid,
  );
  // Every role, the built-in pg_* ones too, names the roles a policy applies to; the catalog lists the others.
  const roleRows = roles.rows as { oid: number; name: string; superuser: boolean; bypass_rls: boolean; can_login: boolean; inherit: boolean; member_of: string[] }[];
  const roleNames = new Map(roleRows.map((role) => [role.oid, role.name]));
  const policiesByRelation = groupBy(
    policies.rows as { relid: number; name: string; command: string; permissive: boolean; role_oids: number[]; using_expr: string | null; check_expr: string | null }[],
    (row) => row.relid,
  );
  const dependenciesByRelation = groupBy(dependencies.rows as { relid: number; depends_on: string }[], (row) => row.relid);

  const relations: Relation[] = relationRows.map((row) => {
    const qualified = `${row.schema}.${row.name}`;
    const relationConstraints = constraintsByRelation.get(row.oid) ?? [];
    const options = new Map(row.options.map((option) => option.split('=') as [string, string]));
    const primary = relationConstraints.find((constraint) => constraint.kind === 'p');
    const foreignKeys: ForeignKey[] = relationConstraints
      .filter((constraint) => constraint.kind === 'f' && constraint.references)
      .map((constraint) => ({
        name: constraint.name,
        columns: constraint.columns,
        references: constraint.references!,
        referencedColumns: constraint.referenced_columns,
        definition: constraint.definition,
        deferrable: constraint.deferrable,
      }));
    const relationPolicies: Policy[] = (policiesByRelation.get(row.oid) ?? []).map((policy) => ({
      name: policy.name,
      relation: qualified,
      command: POLICY_COMMANDS[policy.command] ?? 'ALL',
      permissive: policy.permissive,
      roles: policy.role_oids.map((oid) => (oid === 0 ? 'public' : roleNames.get(oid) ?? `role ${oid}`)),
      using: policy.using_expr,
      withCheck: policy.check_expr,
    }));
    const relationIndexes: Index[] = (indexesByRelation.get(row.oid) ?? []).map((index) => ({
      name: index.name,
      columns: index.columns,
      unique: index.unique,
      primary: index.primary,
      partial: index.partial,
      definition: index.definition,
      mentions: [...new Set([...index.columns.filter((column): column is string => column !== null), ...(index.definition ? keyColumnsMentioned(index.definition, 'index') : [])])],
    }));
    return {
      oid: row.oid,
      schema: row.schema,
      name: row.name,
      qualified,
      kind: RELATION_KINDS[row.kind] ?? 'table',
      owner: row.owner,
      rlsEnabled: row.rls_enabled,
      rlsForced: row.rls_forced,
      partitionOf: row.is_partition ? row.parents[0] ?? null : null,
      partitionBound: row.partition_bound,
      partitionKey: row.partition_key,
      inheritsFrom: row.is_partition ? [] : row.parents,
      columns: (columnsByRelation.get(row.oid) ?? []).map(toColumn),
      primaryKey: primary ? primary.columns : null,
      constraints: relationConstraints.map((constraint): Constraint => {
        const kind = CONSTRAINT_KINDS[constraint.kind]!;
        // An exclusion constraint's expression element has no column (attnum 0).
        if (kind === 'exclusion') return { name: constraint.name, kind, columns: constraint.keys.map((attnum) => (attnum === 0 ? null : attributeNames.get(row.oid)?.get(attnum) ?? null)), definition: constraint.definition };
        return { name: constraint.name, kind, columns: constraint.columns, definition: constraint.definition };
      }),
      foreignKeys,
      indexes: relationIndexes,
      policies: relationPolicies,
      grants: parseGrants(row.grants),
      viewDefinition: row.view_definition,
      securityInvoker: ['true', 'on', '1', 'yes'].includes((options.get('security_invoker') ?? '').toLowerCase()),
      securityBarrier: ['true', 'on', '1', 'yes'].includes((options.get('security_barrier') ?? '').toLowerCase()),
      dependsOn: (dependenciesByRelation.get(row.oid) ?? []).map((dependency) => dependency.depends_on).sort(),
      estimatedRows: row.estimated_rows,
    };
  });

  const roleList: Role[] = roleRows.filter((row) => !row.name.startsWith('pg_')).map(
    (row) => ({ name: row.name, superuser: row.superuser, bypassRls: row.bypass_rls, canLogin: row.can_login, inherit: row.inherit, memberOf: row.member_of }),
  );

  const functionList: FunctionInfo[] = (
    functions.rows as {
      oid: number; schema: string; name: string; signature: string; owner: string; language: string; security_definer: boolean;
      volatility: string; strict: boolean; returns_set: boolean; return_type: string; return_typtype: string; return_typname: string;
      returns_table: boolean; argument_types: string[]; argument_names: string[]; argument_modes: string[]; default_arguments: number;
      config: string[]; source: string; definition: string; grants: string[];
    }[]
  ).map((row) => {
    const inputNames = row.argument_modes.length
      ? row.argument_names.filter((_, index) => ['i', 'b', 'v'].includes(row.argument_modes[index] ?? 'i'))
      : row.argument_names;
    let returnKind: FunctionInfo['returnKind'] = 'scalar';
    if (row.return_typname === 'trigger' || row.return_typname === 'event_trigger') returnKind = 'trigger';
    else if (row.return_typname === 'void') returnKind = 'void';
    else if (row.returns_table || row.return_typtype === 'c') returnKind = 'composite';
    else if (row.return_typname === 'record') returnKind = 'record';
    return {
      oid: row.oid,
      schema: row.schema,
      name: row.name,
      signature: row.signature,
      owner: row.owner,
      language: row.language,
      securityDefiner: row.security_definer,
      volatility: row.volatility === 'i' ? 'immutable' : row.volatility === 's' ? 'stable' : 'volatile',
      strict: row.strict,
      returnsSet: row.returns_set,
      returnType: row.return_type,
      returnKind,
      argumentTypes: row.argument_types,
      argumentNames: inputNames,
      defaultArguments: row.default_arguments,
      config: row.config,
      source: row.source,
      definition: row.definition,
      grants: parseGrants(row.grants),
    };
  });

  const triggerList: Trigger[] = (
    triggers.rows as { name: string; relation: string; function: string; function_oid: number; definition: string; enabled: boolean; type: number }[]
  ).map((row) => ({ name: row.name, relation: row.relation, function: row.function, functionOid: row.function_oid, definition: row.definition, enabled: row.enabled, events: triggerEvents(row.type) }));

  const sequenceUsers = new Map<string, { relations: Set<string>; columns: { relation: string; column: string }[] }>();
  for (const relation of relations) {
    if (relation.partitionOf || relation.inheritsFrom.length) continue;
    for (const row of columnsByRelation.get(relation.oid) ?? []) {
      for (const sequence of row.default_sequences) {
        const users = sequenceUsers.get(sequence) ?? { relations: new Set<string>(), columns: [] };
        users.relations.add(relation.qualified);
        users.columns.push({ relation: relation.qualified, column: row.name });
        sequenceUsers.set(sequence, users);
      }
    }
  }
  const schemaRows = schemaResult.rows as { name: string; owner: string; grants: string[] }[];
  const databaseRow = databaseResult.rows[0] as { owner: string; grants: string[] };
  return {
    serverVersion: info.rows[0]!.version,
    serverVersionNum: Number(info.rows[0]!.num),
    database: info.rows[0]!.database,
    currentUser: info.rows[0]!.user,
    schemas: schemaRows.map((row) => ({ name: row.name, owner: row.owner, grants: parseGrants(row.grants) })),
    databaseOwner: databaseRow.owner,
    databaseGrants: parseGrants(databaseRow.grants),
    relations,
    roles: roleList,
    functions: functionList,
    triggers: triggerList,
    sharedSequences: [...sequenceUsers]
      .filter(([, users]) => users.relations.size > 1)
      // Relations in the order of their names (as `relations`), columns in their table's order.
      .map(([sequence, users]) => ({ sequence, relations: [...users.relations].sort(), columns: users.columns.sort((a, b) => (a.relation < b.relation ? -1 : a.relation > b.relation ? 1 : 0)) })),
  };
}

