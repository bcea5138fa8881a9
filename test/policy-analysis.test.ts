import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadParser } from '../src/analysis/parse.js';
import { introspect } from '../src/catalog/introspect.js';
import type { Catalog, Relation } from '../src/catalog/types.js';
import { planTenancy, type TenancyPlan } from '../src/plan/tenancy.js';
import { parseExpression } from '../src/rules/pg-expression.js';
import { analyzeExpression, commandPolicies, render, settingUses, type AnalysisScope } from '../src/rules/policy-analysis.js';
import { scenarioSchema } from '../src/scenario/schema.js';
import { startEmbedded } from '../src/target/embedded.js';
import type { Target } from '../src/target/types.js';

/**
 * Policy expressions as PostgreSQL prints them (pg_get_expr), from a real cluster: one policy per form, each on
 * its own table so that the analysis of a table's policies can be checked too.
 */
const SCHEMA = `
create role app_user nologin;
create role support nologin;
grant support to app_user;
create table tenants (id integer primary key, name text not null);
create table users (id bigserial primary key, tenant_id integer not null references tenants (id), email text not null);
create function current_tenant_id() returns integer language sql stable as $$ select nullif(current_setting('app.current_tenant', true), '')::integer $$;
create function is_member(t integer) returns boolean language sql stable as $$ select t = nullif(current_setting('app.current_tenant', true), '')::integer $$;
`;

interface Form {
  name: string;
  using?: string;
  check?: string;
  restrictive?: boolean;
  command?: string;
  to?: string;
  /** Extra SQL run before the policy (a child table for FK-path forms). */
  setup?: string;
  table?: string;
}

const FORMS: Form[] = [
  { name: 'initplan', using: `tenant_id = (select nullif(current_setting('app.current_tenant', true), '')::integer)` },
  { name: 'strict', using: `tenant_id = current_setting('app.current_tenant')::int` },
  { name: 'no_nullif', using: `tenant_id = current_setting('app.current_tenant', true)::integer` },
  { name: 'as_text', using: `tenant_id::text = current_setting('app.current_tenant', true)` },
  { name: 'is_null_or', using: `current_setting('app.current_tenant', true) is null or tenant_id = nullif(current_setting('app.current_tenant', true), '')::integer` },
  { name: 'coalesce_column', using: `tenant_id = coalesce(nullif(current_setting('app.current_tenant', true), '')::integer, tenant_id)` },
  { name: 'empty_branch', using: `current_setting('app.current_tenant', true) = '' or tenant_id = current_setting('app.current_tenant', true)::integer` },
  { name: 'coalesce_empty', using: `coalesce(current_setting('app.current_tenant', true), '') = '' or tenant_id::text = current_setting('app.current_tenant', true)` },
  { name: 'strict_is_null', using: `current_setting('app.current_tenant') is null or tenant_id = current_setting('app.current_tenant')::integer` },
  { name: 'always_true', using: 'true' },
  { name: 'one_equals_one', using: '1 = 1' },
  { name: 'or_true', using: `tenant_id = current_setting('app.current_tenant', true)::integer or true` },
  { name: 'and_false', using: `true and false` },
  { name: 'row_predicate', using: `tenant_id = (select nullif(current_setting('app.current_tenant', true), '')::integer) or email like '%@example.com'` },
  { name: 'admin_flag', using: `current_setting('app.is_admin', true) = 'on' or tenant_id = (select nullif(current_setting('app.current_tenant', true), '')::integer)` },
  { name: 'admin_bool', using: `current_setting('app.is_admin', true)::boolean` },
  { name: 'and_user', using: `tenant_id = current_setting('app.current_tenant', true)::integer and id = current_setting('app.user_id', true)::bigint` },
  { name: 'user_only', using: `id = current_setting('app.user_id', true)::bigint` },
  { name: 'current_user_admin', using: `tenant_id = current_setting('app.current_tenant', true)::integer or current_user = 'admin'` },
  { name: 'current_user_app', using: `current_user = 'app_user'` },
  { name: 'helper_function', using: `tenant_id = current_tenant_id()` },
  { name: 'helper_initplan', using: `tenant_id = (select current_tenant_id())` },
  { name: 'helper_boolean', using: `is_member(tenant_id)` },
  { name: 'tenant_in_subselect', using: `tenant_id in (select id from tenants where id = current_setting('app.current_tenant', true)::int)` },
  { name: 'null_tenant', using: `tenant_id = current_setting('app.current_tenant', true)::integer or tenant_id is null` },
  { name: 'tenant_any', using: `tenant_id = any (string_to_array(current_setting('app.current_tenant', true), ',')::int[])` },
  { name: 'insert_true', command: 'insert', check: 'true' },
  { name: 'check_other_column', command: 'update', using: `tenant_id = current_setting('app.current_tenant', true)::integer`, check: `email is not null` },
  { name: 'case_form', using: `case when current_setting('app.current_tenant', true) = '' then false else tenant_id = current_setting('app.current_tenant', true)::integer end` },
  { name: 'is_not_false', using: `(tenant_id = current_setting('app.current_tenant', true)::integer) is not false` },
  { name: 'magic_tenant', using: `current_setting('app.current_tenant', true) = 'all' or tenant_id = nullif(current_setting('app.current_tenant', true), '')::integer` },
  { name: 'jsonb_claim', using: `tenant_id = (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'tenant_id')::int` },
];

let target: Target;
let catalog: Catalog;
let plan: TenancyPlan;
let scope: AnalysisScope;

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

/** The kinds of the branches of a form's USING (or WITH CHECK) expression. */
function kinds(form: string, clause: 'using' | 'check' = 'using'): string[] {
  const policy = policyOf(form);
  const text = clause === 'using' ? policy.using! : (policy.withCheck ?? policy.using!);
  return analyzeExpression(scope, relation(`t_${form}`), text, clause).branches.map((branch) => branch.kind);
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
      sql += `create table ${table} (id bigserial primary key, tenant_id integer references tenants (id), email text);\n`;
      sql += `alter table ${table} enable row level security;\n`;
      sql += `create policy ${form.name} on ${table}${form.restrictive ? ' as restrictive' : ''}${form.command ? ` for ${form.command}` : ''}${form.to ? ` to ${form.to}` : ''}`;
      sql += `${form.using ? ` using (${form.using})` : ''}${form.check ? ` with check (${form.check})` : ''};\n`;
      sql += `grant select, insert, update, delete on ${table} to app_user;\n`;
    }
    // Foreign-key paths: a child whose policy reads its parent through a sub-select.
    sql += `
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
      create table support_only (id bigserial primary key, tenant_id integer not null references tenants (id));
      alter table support_only enable row level security;
      create policy tenant_isolation on support_only using (tenant_id = (select nullif(current_setting('app.current_tenant', true), '')::integer));
      create role auditor nologin;
      create policy auditors on support_only to auditor using (true);
      grant select on notes, notes_in, notes_open, notes_uncorrelated, fenced, fenced_open, support_only, users to app_user;
    `;
    await client.query(sql);
    catalog = await introspect(client);
  } finally {
    await client.end();
  }
  plan = planTenancy(catalog, scenarioSchema.parse({ role: 'app_user', schema: ['x.sql'], setting: 'app.current_tenant' }));
  scope = { catalog, plan };
});

afterAll(async () => {
  await target?.close();
});

describe('pg-expression parser', () => {
  it('reads the initplan form PostgreSQL prints', () => {
    const text = `(tenant_id = ( SELECT (NULLIF(current_setting('app.current_tenant'::text, true), ''::text))::integer AS "nullif"))`;
    const node = parseExpression(text);
    expect(node.kind).toBe('op');
    expect(render(node)).toBe(`(tenant_id = (SELECT (NULLIF(current_setting('app.current_tenant'::text, true), ''::text))::integer AS "nullif"))`);
  });

  it('reads sub-selects with FROM, WHERE and outer references', () => {
    const node = parseExpression(`(EXISTS ( SELECT 1\n   FROM t\n  WHERE ((t.id = child.t_id) AND (t.tenant_id = (current_setting('app.current_tenant'::text, true))::integer))))`);
    expect(node.kind).toBe('exists');
    if (node.kind !== 'exists') return;
    expect(node.subquery.from).toEqual([{ relation: 't', alias: 't' }]);
    expect(node.subquery.where?.kind).toBe('and');
  });

  it('reads casts to multi-word and array types, IN lists, ANY and CASE', () => {
    for (const text of [
      `((created_at)::timestamp with time zone > now())`,
      `(name)::character varying(40) = 'x'::character varying`,
      `(tenant_id = ANY ((string_to_array(current_setting('app.tenants'::text, true), ','::text))::integer[]))`,
      `(status = ANY (ARRAY['a'::text, 'b'::text]))`,
      `(id IN (1, 2, 3))`,
      `CASE WHEN (current_setting('x'::text, true) = ''::text) THEN false ELSE (tenant_id = 1) END`,
      `((payload ->> 'tenant'::text) = current_setting('app.current_tenant'::text, true))`,
      `(EXTRACT(year FROM created_at) > (2020)::numeric)`,
    ]) {
      expect(parseExpression(text).kind, text).not.toBe('opaque');
    }
  });

  it('keeps text it cannot read as one opaque node instead of throwing', () => {
    const node = parseExpression(`(a = ))`);
    expect(node).toEqual({ kind: 'opaque', text: '(a = ))', children: [] });
  });

  it('finds current_setting calls with missing_ok, nullif and the cast that fails on an empty string', () => {
    const uses = (text: string) => settingUses(parseExpression(text)).map(({ setting, missingOk, nullif, castTo }) => ({ setting, missingOk, nullif, castTo }));
    expect(uses(`(tenant_id = ( SELECT (NULLIF(current_setting('app.current_tenant'::text, true), ''::text))::integer AS "nullif"))`)).toEqual([
      { setting: 'app.current_tenant', missingOk: true, nullif: true, castTo: null },
    ]);
    expect(uses(`(tenant_id = (current_setting('app.current_tenant'::text))::integer)`)).toEqual([
      { setting: 'app.current_tenant', missingOk: false, nullif: false, castTo: 'integer' },
    ]);
    expect(uses(`(tenant_id = (current_setting('app.current_tenant'::text, true))::integer)`)).toEqual([
      { setting: 'app.current_tenant', missingOk: true, nullif: false, castTo: 'integer' },
    ]);
    expect(uses(`((tenant_id)::text = current_setting('app.current_tenant'::text, true))`)).toEqual([
      { setting: 'app.current_tenant', missingOk: true, nullif: false, castTo: null },
    ]);
    expect(uses(`(org_id = (COALESCE(current_setting('app.org'::text, true), ''::text))::uuid)`)).toEqual([
      { setting: 'app.org', missingOk: true, nullif: false, castTo: 'uuid' },
    ]);
  });
});

describe('policy expression analysis on real pg_get_expr output', () => {
  it('prints the forms the way the analysis expects', () => {
    expect(policyOf('initplan').using).toBe(`(tenant_id = ( SELECT (NULLIF(current_setting('app.current_tenant'::text, true), ''::text))::integer AS "nullif"))`);
    expect(policyOf('is_null_or').using).toContain('IS NULL) OR');
  });

  it.each([
    ['initplan', ['tenant']],
    ['strict', ['tenant']],
    ['no_nullif', ['tenant']],
    ['as_text', ['tenant']],
    ['helper_function', ['tenant']],
    ['helper_initplan', ['tenant']],
    ['helper_boolean', ['tenant']],
    ['tenant_in_subselect', ['tenant']],
    ['tenant_any', ['tenant']],
    ['and_user', ['tenant']],
    // A session identity other than the tenant: as hard to spoof as the tenant setting itself.
    ['user_only', ['tenant']],
    ['jsonb_claim', ['tenant']],
    ['case_form', ['tenant']],
    ['null_tenant', ['tenant', 'unowned']],
  ])('%s ties rows to the tenant', (form, expected) => {
    expect(kinds(form)).toEqual(expected);
  });

  it.each([
    ['is_null_or', ['fail-open', 'tenant']],
    ['coalesce_column', ['fail-open']],
    ['empty_branch', ['fail-open', 'tenant']],
    ['coalesce_empty', ['fail-open', 'tenant']],
    ['always_true', ['always-true']],
    ['one_equals_one', ['always-true']],
    ['or_true', ['tenant', 'always-true']],
    ['row_predicate', ['tenant', 'row-predicate']],
    ['admin_flag', ['other-setting', 'tenant']],
    ['admin_bool', ['other-setting']],
    ['current_user_app', ['always-true']],
    ['is_not_false', ['fail-open']],
    ['magic_tenant', ['other-setting', 'tenant']],
  ])('%s lets rows through without the tenant', (form, expected) => {
    expect(kinds(form)).toEqual(expected);
  });

  it('treats dead branches as closed: a strict setting is never NULL, another role is not the application', () => {
    expect(kinds('strict_is_null')).toEqual(['dead', 'tenant']);
    expect(kinds('current_user_admin')).toEqual(['tenant', 'dead']);
    expect(kinds('and_false')).toEqual(['dead']);
  });

  it('reads WITH CHECK, falling back to USING, and counts NULL-tenant rows as open for writes', () => {
    expect(kinds('insert_true', 'check')).toEqual(['always-true']);
    expect(kinds('check_other_column', 'check')).toEqual(['row-predicate']);
    expect(kinds('null_tenant', 'check')).toEqual(['tenant', 'row-predicate']);
  });

  it('names the other settings and the decisive fragment', () => {
    const analysis = analyzeExpression(scope, relation('t_admin_flag'), policyOf('admin_flag').using!, 'using');
    expect(analysis.open).toEqual([
      expect.objectContaining({ kind: 'other-setting', settings: ['app.is_admin'], reason: `(current_setting('app.is_admin'::text, true) = 'on'::text)` }),
    ]);
  });

  it('follows foreign-key paths through sub-selects over tables whose policies restrict reads', () => {
    expect(kinds2('notes')).toEqual(['tenant']);
    expect(kinds2('notes_in')).toEqual(['tenant']);
    // The parent has no row-level security: the sub-select sees every tenant's parents.
    expect(kinds2('notes_open')).toEqual(['row-predicate']);
    // Not correlated with the row: true for every row once the tenant has any user.
    expect(kinds2('notes_uncorrelated')).toEqual(['row-predicate']);
  });

  it('lets a restrictive tenant policy fence a permissive using (true)', () => {
    const fenced = commandPolicies(scope, relation('fenced'), 'SELECT', 'using');
    expect(fenced.fence?.name).toBe('fence');
    expect(fenced.open).toEqual([]);
    const insert = commandPolicies(scope, relation('fenced'), 'INSERT', 'check');
    expect(insert.fence?.name).toBe('fence');
    // A fail-open fence narrows an always-true permissive policy to a missing-context leak.
    const open = commandPolicies(scope, relation('fenced_open'), 'SELECT', 'using');
    expect(open.fence).toBeNull();
    expect(open.open.map((path) => [path.policy.name, path.branch.kind, path.kind])).toEqual([['everyone', 'always-true', 'fail-open']]);
  });

  it('ignores policies for roles the application role does not have', () => {
    expect(commandPolicies(scope, relation('support_only'), 'SELECT', 'using').open).toEqual([]);
  });
});

function kinds2(table: string): string[] {
  const policy = relation(table).policies[0]!;
  return analyzeExpression(scope, relation(table), policy.using!, 'using').branches.map((branch) => branch.kind);
}
