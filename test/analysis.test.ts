import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { analyze, clauseAnalysis, commandAnalysis, functionAnalysis, loadParser, settingCasts, viewAnalysis, type Analysis } from '../src/analysis/index.js';
import { introspect } from '../src/catalog/introspect.js';
import type { Catalog, Relation } from '../src/catalog/types.js';
import { startEmbedded } from '../src/target/embedded.js';
import type { Target } from '../src/target/types.js';

/**
 * The analysis model on a real cluster: policy expressions as pg_get_expr prints them, view definitions as
 * pg_get_viewdef prints them, function bodies as pg_proc / pg_get_functiondef hold them.
 */
const SCHEMA = `
create role app_user nologin;
create role support nologin;
create role noinherit_app nologin noinherit;
create role auditor nologin;
grant support to app_user;
grant auditor to noinherit_app;
create schema auth;
create function auth.uid() returns uuid language sql stable as $$ select nullif(current_setting('request.jwt.claim.sub', true), '')::uuid $$;
create table tenants (id integer primary key, name text not null);
create table users (id bigserial primary key, tenant_id integer not null references tenants (id), email text not null);
create function current_tenant_id() returns integer language sql stable as $$ select nullif(current_setting('app.current_tenant', true), '')::integer $$;
create function is_member(t integer) returns boolean language sql stable as $$ select t = nullif(current_setting('app.current_tenant', true), '')::integer $$;
create table orgs (id uuid primary key);
create table members (org_id uuid not null references orgs (id), user_id uuid not null, primary key (org_id, user_id));
create function is_member_of(org uuid) returns boolean language sql stable security definer set search_path = public as $$
  select exists (select 1 from members m where m.org_id = org and m.user_id = auth.uid())
$$;
create function is_member_plpgsql(org uuid) returns boolean language plpgsql stable security definer as $$
begin
  return exists (select 1 from members m where m.org_id = org and m.user_id = auth.uid());
end $$;
create table documents (id bigserial primary key, org_id uuid not null references orgs (id), owner uuid, title text);
`;

interface Form {
  name: string;
  using?: string;
  check?: string;
  command?: string;
  table?: 'users' | 'documents';
}

const FORMS: Form[] = [
  { name: 'initplan', using: `tenant_id = (select nullif(current_setting('app.current_tenant', true), '')::integer)` },
  { name: 'strict', using: `tenant_id = current_setting('app.current_tenant')::int` },
  { name: 'as_text', using: `tenant_id::text = current_setting('app.current_tenant', true)` },
  { name: 'is_null_or', using: `current_setting('app.current_tenant', true) is null or tenant_id = nullif(current_setting('app.current_tenant', true), '')::integer` },
  { name: 'coalesce_column', using: `tenant_id = coalesce(nullif(current_setting('app.current_tenant', true), '')::integer, tenant_id)` },
  { name: 'empty_branch', using: `current_setting('app.current_tenant', true) = '' or tenant_id = current_setting('app.current_tenant', true)::integer` },
  { name: 'strict_is_null', using: `current_setting('app.current_tenant') is null or tenant_id = current_setting('app.current_tenant')::integer` },
  { name: 'always_true', using: 'true' },
  { name: 'one_equals_one', using: '1 = 1' },
  { name: 'or_true', using: `tenant_id = current_setting('app.current_tenant', true)::integer or true` },
  { name: 'row_predicate', using: `tenant_id = (select nullif(current_setting('app.current_tenant', true), '')::integer) or email like '%@example.com'` },
  { name: 'bypass_setting', using: `current_setting('app.bypass_rls', true) = 'on' or tenant_id = (select nullif(current_setting('app.current_tenant', true), '')::integer)` },
  { name: 'admin_bool', using: `current_setting('app.is_admin', true)::boolean` },
  { name: 'greater_equal', using: `tenant_id >= current_setting('app.current_tenant', true)::int` },
  { name: 'length_positive', using: `length(current_setting('app.current_tenant', true)) > 0` },
  { name: 'not_tenant', using: `not (tenant_id = current_setting('app.current_tenant', true)::int)` },
  { name: 'user_only', using: `id = current_setting('app.user_id', true)::bigint` },
  { name: 'current_user_admin', using: `tenant_id = current_setting('app.current_tenant', true)::integer or current_user = 'admin'` },
  { name: 'current_user_app', using: `current_user = 'app_user'` },
  { name: 'helper_function', using: `tenant_id = current_tenant_id()` },
  { name: 'helper_initplan', using: `tenant_id = (select current_tenant_id())` },
  { name: 'helper_boolean', using: `is_member(tenant_id)` },
  { name: 'null_tenant', using: `tenant_id = current_setting('app.current_tenant', true)::integer or tenant_id is null` },
  { name: 'tenant_any', using: `tenant_id = any (string_to_array(current_setting('app.current_tenant', true), ',')::int[])` },
  { name: 'case_form', using: `case when current_setting('app.current_tenant', true) = '' then false else tenant_id = current_setting('app.current_tenant', true)::integer end` },
  { name: 'is_not_false', using: `(tenant_id = current_setting('app.current_tenant', true)::integer) is not false` },
  { name: 'jsonb_claim', using: `tenant_id = (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'tenant_id')::int` },
  { name: 'insert_true', command: 'insert', check: 'true' },
  { name: 'membership', table: 'documents', using: `org_id in (select m.org_id from members m where m.user_id = auth.uid())` },
  { name: 'membership_open', table: 'documents', using: `org_id in (select m.org_id from members m)` },
  { name: 'definer_helper', table: 'documents', using: `is_member_of(org_id)` },
  { name: 'definer_helper_plpgsql', table: 'documents', using: `is_member_plpgsql(org_id)` },
  { name: 'owner_uid', table: 'documents', using: `owner = auth.uid()` },
  { name: 'owner_claim', table: 'documents', using: `owner = ((current_setting('request.jwt.claims', true)::json ->> 'sub'))::uuid` },
];

const BODIES = `
create table projects (id bigserial primary key, tenant_id integer not null references tenants (id), name text);
create view v_filtered as select * from projects where tenant_id = current_setting('app.current_tenant', true)::int;
create view v_or_true as select * from projects where tenant_id = current_setting('app.current_tenant', true)::int or true;
create view v_union as select * from projects where tenant_id = current_setting('app.current_tenant', true)::int union all select * from projects;
create view v_not as select * from projects where not (tenant_id = current_setting('app.current_tenant', true)::int);
create view v_semicolon as select * from projects where name <> ';' and tenant_id = current_setting('app.current_tenant', true)::int;
create view v_greater as select * from projects where tenant_id >= current_setting('app.current_tenant', true)::int;
create function f_sql() returns setof projects language sql security definer as $$ select * from projects where tenant_id = current_tenant_id() $$;
create function f_param(p_tenant int) returns setof projects language sql security definer as $$ select * from projects where tenant_id = p_tenant $$;
create function f_variable() returns setof projects language plpgsql security definer as $$
declare
  v_tenant int := nullif(current_setting('app.current_tenant', true), '')::int;
begin
  return query select * from projects p where p.tenant_id = v_tenant and p.name <> ';';
end $$;
create function f_select_into() returns setof projects language plpgsql security definer as $$
declare
  t int;
begin
  select current_tenant_id() into t;
  return query select * from projects where tenant_id = t;
end $$;
create function f_execute_constant() returns setof projects language plpgsql security definer as $$
begin
  return query execute 'select * from projects where tenant_id = current_setting(''app.current_tenant'', true)::int or true';
end $$;
create function f_execute_constant_safe() returns setof projects language plpgsql security definer as $$
begin
  return query execute 'select * from projects where tenant_id = current_setting(''app.current_tenant'', true)::int';
end $$;
create function f_execute_dynamic(tbl text) returns setof projects language plpgsql security definer as $$
begin
  return query execute format('select * from %I where tenant_id = current_setting(''app.current_tenant'', true)::int', tbl);
end $$;
create function f_standard() returns bigint language sql security definer begin atomic select count(*) from projects where tenant_id = current_tenant_id(); end;
create function f_keyed(x bigint, y integer[], z uuid) returns setof projects language plpgsql security definer as $$
begin
  if not exists (select 1 from members m where m.user_id = z::uuid) then return; end if;
  return query select p.* from projects p where p.id = f_keyed.x and p.tenant_id = any (y) and p.tenant_id in (select 1);
end $$;
create function f_standard_open() returns bigint language sql security definer begin atomic select count(*) from projects; end;
`;

let target: Target;
let catalog: Catalog;
let analysis: Analysis;

function relation(name: string): Relation {
  const found = catalog.relations.find((candidate) => candidate.name === name);
  if (!found) throw new Error(`no relation ${name}`);
  return found;
}

function policyOf(form: string) {
  const found = relation(`t_${form}`).policies[0];
  if (!found) throw new Error(`no policy on t_${form}`);
  return found;
}

function kinds(form: string, clause: 'using' | 'check' = 'using'): string[] {
  return clauseAnalysis(analysis, policyOf(form), clause)!.branches.map((branch) => branch.kind);
}

function verdict(form: string, clause: 'using' | 'check' = 'using'): string {
  return clauseAnalysis(analysis, policyOf(form), clause)!.verdict;
}

beforeAll(async () => {
  await loadParser();
  target = await startEmbedded();
  const client = new pg.Client({ connectionString: target.connectionString });
  await client.connect();
  try {
    let sql = SCHEMA;
    for (const form of FORMS) {
      const table = `t_${form.name}`;
      sql += `create table ${table} (like ${form.table ?? 'users'} including defaults);\n`;
      sql += `alter table ${table} enable row level security;\n`;
      sql += `create policy ${form.name} on ${table}${form.command ? ` for ${form.command}` : ''}`;
      sql += `${form.using ? ` using (${form.using})` : ''}${form.check ? ` with check (${form.check})` : ''};\n`;
      sql += `grant select, insert, update, delete on ${table} to app_user;\n`;
    }
    sql += BODIES;
    sql += `
      create table support_only (id bigserial primary key, tenant_id integer not null);
      alter table support_only enable row level security;
      create policy tenant_isolation on support_only using (tenant_id = (select nullif(current_setting('app.current_tenant', true), '')::integer));
      create policy supporters on support_only to support using (true);
      create policy auditors on support_only to auditor using (true);
      alter table users enable row level security;
      create policy tenant_isolation on users using (tenant_id = (select nullif(current_setting('app.current_tenant', true), '')::integer));
      create table open_parent (id bigserial primary key, tenant_id integer not null references tenants (id));
      create table notes (id bigserial primary key, user_id bigint not null references users (id), body text);
      alter table notes enable row level security;
      create policy via_user on notes using (exists (select 1 from users where users.id = notes.user_id));
      create table notes_in (id bigserial primary key, user_id bigint not null references users (id), body text);
      alter table notes_in enable row level security;
      create policy via_user on notes_in using (user_id in (select users.id from users));
      create table notes_open (id bigserial primary key, parent_id bigint not null references open_parent (id), body text);
      alter table notes_open enable row level security;
      create policy via_parent on notes_open using (exists (select 1 from open_parent p where p.id = notes_open.parent_id));
      create table notes_uncorrelated (id bigserial primary key, user_id bigint not null references users (id), body text);
      alter table notes_uncorrelated enable row level security;
      create policy any_user on notes_uncorrelated using (exists (select 1 from users));
      create table fenced (id bigserial primary key, tenant_id integer not null references tenants (id));
      alter table fenced enable row level security;
      create policy everyone on fenced using (true) with check (true);
      create policy fence on fenced as restrictive using (tenant_id = (select nullif(current_setting('app.current_tenant', true), '')::integer));
      create table fenced_open (id bigserial primary key, tenant_id integer not null references tenants (id));
      alter table fenced_open enable row level security;
      create policy everyone on fenced_open using (true);
      create policy fence on fenced_open as restrictive using (current_setting('app.current_tenant', true) is null or tenant_id = nullif(current_setting('app.current_tenant', true), '')::integer);
      grant select on notes, notes_in, notes_open, notes_uncorrelated, fenced, fenced_open, support_only, users to app_user;
    `;
    await client.query(sql);
    catalog = await introspect(client);
  } finally {
    await client.end();
  }
  analysis = analyze(catalog, 'app_user');
});

afterAll(async () => {
  await target?.close();
});

describe('policy verdicts', () => {
  it.each([
    ['initplan', ['confined']],
    ['strict', ['confined']],
    ['as_text', ['confined']],
    ['helper_function', ['confined']],
    ['helper_initplan', ['confined']],
    ['helper_boolean', ['confined']],
    ['tenant_any', ['confined']],
    ['user_only', ['confined']],
    ['jsonb_claim', ['confined']],
    ['null_tenant', ['confined', 'unowned']],
    ['membership', ['confined']],
    ['definer_helper', ['confined']],
    ['definer_helper_plpgsql', ['confined']],
    ['owner_uid', ['confined']],
    ['owner_claim', ['confined']],
  ])('%s is confined', (form, expected) => {
    expect(kinds(form)).toEqual(expected);
    expect(verdict(form)).toBe('confined');
  });

  it.each([
    ['is_null_or', ['fail-open', 'confined']],
    ['coalesce_column', ['fail-open']],
    ['empty_branch', ['fail-open', 'confined']],
    ['always_true', ['always-true']],
    ['one_equals_one', ['always-true']],
    ['or_true', ['confined', 'always-true']],
    ['row_predicate', ['confined', 'row-predicate']],
    ['bypass_setting', ['escape-setting', 'confined']],
    ['admin_bool', ['escape-setting']],
    ['greater_equal', ['non-equality']],
    ['length_positive', ['always-true']],
    ['not_tenant', ['row-predicate']],
    ['current_user_app', ['always-true']],
    ['is_not_false', ['fail-open']],
    ['case_form', ['confined']],
    ['membership_open', ['row-predicate']],
  ])('%s is open', (form, expected) => {
    expect(kinds(form)).toEqual(expected);
    expect(verdict(form)).toBe(form === 'case_form' ? 'confined' : 'open');
  });

  it('treats dead branches as closed', () => {
    expect(kinds('strict_is_null')).toEqual(['dead', 'confined']);
    expect(kinds('current_user_admin')).toEqual(['confined', 'dead']);
  });

  it('reads WITH CHECK, falling back to USING', () => {
    expect(kinds('insert_true', 'check')).toEqual(['always-true']);
    expect(kinds('null_tenant', 'check')).toEqual(['confined', 'row-predicate']);
  });

  it('names the decisive fragment of an open branch', () => {
    const open = clauseAnalysis(analysis, policyOf('bypass_setting'), 'using')!.open;
    expect(open).toEqual([expect.objectContaining({ kind: 'escape-setting', settings: ['app.bypass_rls'], reason: `(current_setting('app.bypass_rls'::text, true) = 'on'::text)` })]);
    expect(clauseAnalysis(analysis, policyOf('greater_equal'), 'using')!.open[0]!.reason).toContain('>=');
  });
});

describe('context references', () => {
  const references = (form: string) => clauseAnalysis(analysis, policyOf(form), 'using')!.references;

  it('marks a setting compared by equality with a row column, with missing_ok, nullif and cast', () => {
    expect(references('initplan')).toEqual([
      expect.objectContaining({ key: 'setting:app.current_tenant', missingOk: true, nullif: true, castTo: null, use: { kind: 'equality', relation: 'public.t_initplan', column: 'tenant_id', membership: null } }),
    ]);
    expect(references('strict')).toEqual([expect.objectContaining({ missingOk: false, nullif: false, castTo: 'integer' })]);
    // Read as integer either way: the tenant ids the seeder makes must fit.
    expect(references('initplan')).toEqual([expect.objectContaining({ readAs: 'integer' })]);
    expect(settingCasts(analysis, 'app.current_tenant')).toContain('integer');
  });

  it('marks an escape setting as escape, never as equality', () => {
    const found = references('bypass_setting');
    expect(found.find((reference) => reference.key === 'setting:app.bypass_rls')?.use).toEqual({ kind: 'escape', constant: 'on' });
    expect(found.find((reference) => reference.key === 'setting:app.current_tenant')?.use.kind).toBe('equality');
    const all = analysis.contextReferences.filter((reference) => reference.key === 'setting:app.bypass_rls');
    expect(all.length).toBeGreaterThan(0);
    expect(all.every((reference) => reference.use.kind === 'escape')).toBe(true);
  });

  it('reads JWT claims from a setting and through auth.uid()', () => {
    expect(references('owner_claim')).toEqual([
      expect.objectContaining({ key: 'jwt:request.jwt.claims:sub', source: { kind: 'jwt-claim', setting: 'request.jwt.claims', function: null, path: ['sub'] }, use: expect.objectContaining({ kind: 'equality', column: 'owner' }) }),
    ]);
    expect(references('owner_uid')).toEqual([
      expect.objectContaining({ key: 'jwt:request.jwt.claim.sub:sub', via: 'auth.uid()', use: expect.objectContaining({ kind: 'equality', column: 'owner' }) }),
    ]);
  });

  it('describes membership sub-selects: the membership table column and how the row reaches it', () => {
    const [reference] = references('membership');
    expect(reference?.use).toEqual({
      kind: 'equality',
      relation: 'public.members',
      column: 'user_id',
      membership: { table: 'public.members', column: 'org_id', rowColumn: 'org_id' },
    });
    const helper = references('definer_helper');
    expect(helper[0]).toEqual(expect.objectContaining({ via: expect.stringContaining('auth.uid()'), use: expect.objectContaining({ kind: 'equality', relation: 'public.members', column: 'user_id' }) }));
  });

  it('marks non-equality and null-test uses', () => {
    expect(references('greater_equal')[0]?.use).toEqual({ kind: 'non-equality', relation: 'public.t_greater_equal', column: 'tenant_id', operator: '>=' });
    expect(references('is_null_or').map((reference) => reference.use.kind)).toEqual(['fail-open', 'equality']);
  });
});

describe('policies across relations and commands', () => {
  const first = (table: string) => clauseAnalysis(analysis, relation(table).policies[0]!, 'using')!.branches.map((branch) => branch.kind);

  it('follows foreign-key paths through sub-selects over tables whose policies confine reads', () => {
    expect(first('notes')).toEqual(['confined']);
    expect(first('notes_in')).toEqual(['confined']);
    // The parent has no row-level security: the sub-select sees every tenant's parents.
    expect(first('notes_open')).toEqual(['row-predicate']);
    // Not correlated with the row: true for every row once the tenant has any user.
    expect(first('notes_uncorrelated')).toEqual(['row-predicate']);
  });

  it('lets a restrictive policy that confines rows fence a permissive using (true)', () => {
    const fenced = commandAnalysis(analysis, 'public.fenced', 'SELECT', 'using')!;
    expect(fenced.fence?.name).toBe('fence');
    expect(fenced.open).toEqual([]);
    expect(fenced.verdict).toBe('confined');
    expect(commandAnalysis(analysis, 'public.fenced', 'INSERT', 'check')!.fence?.name).toBe('fence');
    // A fail-open fence narrows an always-true permissive policy to a missing-context leak.
    const open = commandAnalysis(analysis, 'public.fenced_open', 'SELECT', 'using')!;
    expect(open.fence).toBeNull();
    expect(open.open.map((path) => [path.policy.name, path.branch.kind, path.kind])).toEqual([['everyone', 'always-true', 'fail-open']]);
  });
});

describe('policy scope', () => {
  it('applies the policies of roles the role inherits, not of roles it could only SET ROLE to', () => {
    const reads = commandAnalysis(analysis, 'public.support_only', 'SELECT', 'using')!;
    expect(reads.policies.map((policy) => policy.name).sort()).toEqual(['supporters', 'tenant_isolation']);
    expect(reads.verdict).toBe('open');
    const noInherit = analyze(catalog, 'noinherit_app');
    const scoped = commandAnalysis(noInherit, 'public.support_only', 'SELECT', 'using')!;
    expect(scoped.policies.map((policy) => policy.name)).toEqual(['tenant_isolation']);
    expect(scoped.verdict).toBe('confined');
  });

  it('leaves per-command verdicts empty when the role is not known yet', () => {
    const early = analyze(catalog, null);
    expect(early.relations.every((entry) => entry.commands.length === 0)).toBe(true);
    expect(early.contextReferences.length).toBe(analysis.contextReferences.length);
  });
});

describe('view definitions and function bodies', () => {
  it.each([
    ['v_filtered', 'confined'],
    ['v_semicolon', 'confined'],
    ['v_or_true', 'open'],
    ['v_union', 'open'],
    ['v_not', 'open'],
    ['v_greater', 'open'],
  ])('view %s is %s', (view, expected) => {
    const body = viewAnalysis(analysis, `public.${view}`)!;
    expect(body.verdict, body.reason).toBe(expected);
    expect(body.relations).toEqual(['public.projects']);
  });

  it.each([
    ['f_sql()', 'confined'],
    ['f_param(integer)', 'open'],
    ['f_variable()', 'confined'],
    ['f_select_into()', 'confined'],
    ['f_execute_constant()', 'open'],
    ['f_execute_constant_safe()', 'confined'],
    ['f_execute_dynamic(text)', 'unknown'],
    ['f_standard()', 'confined'],
    ['f_standard_open()', 'open'],
    ['is_member_of(uuid)', 'confined'],
  ])('function %s is %s', (signature, expected) => {
    const body = functionAnalysis(analysis, signature)!;
    expect(body.verdict, body.reason).toBe(expected);
  });

  it('names the columns each parameter is compared with (what a caller\'s argument picks rows by)', () => {
    const columns = (signature: string) => functionAnalysis(analysis, signature)!.parameterColumns.map((entry) => `${entry.parameter} ${entry.relation}.${entry.column}`).sort();
    expect(columns('f_param(integer)')).toEqual(['$1 public.projects.tenant_id']);
    expect(columns('is_member_of(uuid)')).toEqual(['$1 public.members.org_id']);
    expect(columns('is_member_plpgsql(uuid)')).toEqual(['$1 public.members.org_id']);
    // Through a cast, a name qualified by the function's, and = any (array); a sub-select is no parameter.
    expect(columns('f_keyed(bigint,integer[],uuid)')).toEqual(['$1 public.projects.id', '$2 public.projects.tenant_id', '$3 public.members.user_id']);
    expect(columns('f_sql()')).toEqual([]);
  });

  it('says why dynamic SQL is unknown and reads constant EXECUTE strings', () => {
    expect(functionAnalysis(analysis, 'f_execute_dynamic(text)')!.reason).toMatch(/^dynamic SQL not analysed/);
    expect(functionAnalysis(analysis, 'f_execute_constant()')!.relations).toEqual(['public.projects']);
  });
});
