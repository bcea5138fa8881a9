import { readFile } from 'node:fs/promises';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadParser } from '../src/analysis/parse.js';
import { introspect } from '../src/catalog/introspect.js';
import type { Catalog } from '../src/catalog/types.js';
import { AuditError } from '../src/errors.js';
import { planTenancy } from '../src/plan/tenancy.js';
import { typedParameter } from '../src/plan/context-choice.js';
import { scenarioSchema } from '../src/scenario/schema.js';
import { startEmbedded } from '../src/target/embedded.js';
import type { Target } from '../src/target/types.js';
import { FIXTURES, ROOT } from './helpers.js';

let target: Target;
let counter = 0;

/** Each schema in its own database of one cluster; role names are suffixed so they do not collide. */
async function catalogOf(sql: string, schemas: string[] = []): Promise<{ catalog: Catalog; role: string }> {
  counter += 1;
  const database = `fixture_${counter}`;
  const role = `app_user_${counter}`;
  const admin = new pg.Client({ connectionString: target.connectionString });
  await admin.connect();
  await admin.query(`create database ${database}`);
  await admin.end();
  const url = new URL(target.connectionString);
  url.pathname = `/${database}`;
  const client = new pg.Client({ connectionString: url.toString() });
  await client.connect();
  try {
    await client.query(sql.replace(/\bapp_user\b/g, role));
    return { catalog: await introspect(client, schemas), role };
  } finally {
    await client.end();
  }
}

const fixture = (name: string) => readFile(path.join(FIXTURES, name, 'schema.sql'), 'utf8');
const scenario = (role: string, extra: Record<string, unknown> = {}) => scenarioSchema.parse({ role, schema: ['x.sql'], ...extra });

beforeAll(async () => {
  await loadParser();
  target = await startEmbedded();
});
afterAll(async () => {
  await target?.close();
});

describe('planTenancy', () => {
  it('discovers the chat schema: tenant table, column, setting, type, FK order', async () => {
    const { catalog, role } = await catalogOf(await readFile(path.join(ROOT, 'scenarios/chat/schema.sql'), 'utf8'));
    const plan = planTenancy(catalog, scenario(role));
    expect(plan.setting).toBe('app.current_tenant');
    expect(plan.tenantKey).toEqual({ relation: 'public.tenants', column: 'id', type: 'integer', baseType: 'int4' });
    expect(plan.tenantColumns).toEqual(['tenant_id']);
    expect(Object.fromEntries(plan.relations.map((entry) => [entry.relation, entry.tenancy]))).toEqual({
      'public.conversations': 'direct',
      'public.messages': 'direct',
      'public.tenants': 'tenant-table',
      'public.users': 'direct',
    });
    expect(plan.seedOrder).toEqual(['public.tenants', 'public.users', 'public.conversations', 'public.messages']);
    expect(plan.contextSql).toBe("select set_config('app.current_tenant', $1::text, true)");
  });

  it('follows a foreign-key path to a table with no tenant column', async () => {
    const { catalog, role } = await catalogOf(await fixture('fk-path'));
    const attachments = planTenancy(catalog, scenario(role)).relations.find((entry) => entry.relation === 'public.attachments')!;
    expect(attachments.tenancy).toBe('fk-path');
    expect(attachments.path).toEqual([
      { from: 'public.attachments', foreignKey: 'attachments_message_id_fkey', columns: ['message_id'], references: 'public.messages', referencedColumns: ['id'] },
    ]);
  });

  it('discovers uuid tenants under another name and setting', async () => {
    const { catalog, role } = await catalogOf(await fixture('uuid-tenants'));
    const plan = planTenancy(catalog, scenario(role));
    expect(plan.setting).toBe('app.org_id');
    expect(plan.tenantKey).toMatchObject({ relation: 'public.organizations', column: 'id', type: 'uuid' });
    expect(plan.tenantColumns).toEqual(['org_id']);
  });

  it('reports a lookup table as shared and seeds it before its referrers', async () => {
    const { catalog, role } = await catalogOf(await fixture('shared-lookup'));
    const plan = planTenancy(catalog, scenario(role));
    expect(plan.relations.find((entry) => entry.relation === 'public.countries')!.tenancy).toBe('shared');
    expect(plan.seedOrder.indexOf('public.countries')).toBeLessThan(plan.seedOrder.indexOf('public.customers'));
  });

  it('seeds partitions through their parent, and attributes views through what they read', async () => {
    const partitions = await catalogOf(await fixture('partition-direct'));
    const plan = planTenancy(partitions.catalog, scenario(partitions.role));
    expect(plan.seedOrder).toContain('public.measurements');
    expect(plan.seedOrder).not.toContain('public.measurements_p0');
    expect(plan.relations.find((entry) => entry.relation === 'public.measurements_p0')!.tenancy).toBe('direct');
    const views = await catalogOf(await fixture('definer-view'));
    expect(planTenancy(views.catalog, scenario(views.role)).relations.find((entry) => entry.relation === 'public.recent_messages')!.tenancy).toBe('derived');
  });

  it('works without a tenant table, from the tenant column alone', async () => {
    const { catalog, role } = await catalogOf(`create role app_user; create table items (id serial primary key, workspace_id text not null, name text);
      alter table items enable row level security; create policy p on items using (workspace_id = current_setting('app.workspace', true));`);
    const plan = planTenancy(catalog, scenario(role));
    expect(plan.tenantKey).toEqual({ relation: null, column: 'workspace_id', type: 'text', baseType: 'text' });
    expect(plan.setting).toBe('app.workspace');
  });

  it('honours the scenario over discovery', async () => {
    const { catalog, role } = await catalogOf(await fixture('rls-disabled'));
    const plan = planTenancy(catalog, scenario(role, { setting: 'app.tenant', tenantColumn: ['tenant_id'], tenantTable: 'public.tenants', contextSql: 'select app.set_tenant($1)' }));
    expect(plan.setting).toBe('app.tenant');
    expect(plan.contextSql).toBe('select app.set_tenant($1::text)');
  });

  it('refuses an unknown role and a schema with no tenant-owned table', async () => {
    const { catalog } = await catalogOf(await fixture('rls-disabled'));
    expect(() => planTenancy(catalog, scenario('nobody_here'))).toThrow(AuditError);
    expect(() => planTenancy(catalog, scenario('nobody_here'))).toThrow(/role nobody_here does not exist/);
    const flat = await catalogOf('create role app_user; create table settings (key text primary key, value text);');
    expect(() => planTenancy(flat.catalog, scenario(flat.role))).toThrow(/no tenant-owned table found/);
  });
});

describe('typedParameter', () => {
  it('binds the tenant id as text unless the SQL casts it', () => {
    expect(typedParameter("select set_config('app.tenant', $1, true)")).toBe("select set_config('app.tenant', $1::text, true)");
    expect(typedParameter('select app.set_tenant($1::uuid)')).toBe('select app.set_tenant($1::uuid)');
    expect(typedParameter("select set_config('a', $1 , true), '$1'")).toBe("select set_config('a', $1::text , true), '$1'");
    // Named parameters become positional, in the order tenant, user, role; inside a literal they are text.
    expect(typedParameter("select set_config('c', json_build_object('sub', $user, 'org', $tenant, 'x', '$role')::text, true)")).toBe(
      "select set_config('c', json_build_object('sub', $2::text, 'org', $1::text, 'x', '$role')::text, true)",
    );
    expect(() => typedParameter("select set_config('a', $2, true)")).toThrow(/not a context parameter/);
  });
});

describe('introspect', () => {
  it('names key columns by attribute number (past dropped columns), and reads definitions only where checks read them', async () => {
    const { catalog } = await catalogOf(`
      create role app_user;
      create schema other;
      create table other.accounts (dropped int, tenant_id int not null, id int not null, primary key (tenant_id, id));
      alter table other.accounts drop column dropped;
      create table items (gone text, id int primary key, tenant_id int not null, account_id int not null, email text, note text,
        foreign key (account_id, tenant_id) references other.accounts (id, tenant_id));
      alter table items drop column gone;
      create index items_tenant_idx on items (tenant_id, note);
      create unique index items_email_key on items (tenant_id, lower(email));
      create index items_note_partial on items (note) where note is not null;
      create table children (id int primary key, item_id int references items (id));
      alter table items enable row level security;
      create policy readers on items to app_user, pg_read_all_data using (true);
    `);
    const items = catalog.relations.find((relation) => relation.qualified === 'public.items')!;
    const accounts = catalog.relations.find((relation) => relation.qualified === 'other.accounts')!;
    expect(accounts.primaryKey).toEqual(['tenant_id', 'id']);
    expect(items.primaryKey).toEqual(['id']);
    expect(items.foreignKeys).toEqual([expect.objectContaining({ references: 'other.accounts', columns: ['account_id', 'tenant_id'], referencedColumns: ['id', 'tenant_id'] })]);
    expect(catalog.relations.find((relation) => relation.name === 'children')!.foreignKeys).toEqual([
      expect.objectContaining({ references: 'public.items', columns: ['item_id'], referencedColumns: ['id'] }),
    ]);
    const indexes = Object.fromEntries(items.indexes.map((index) => [index.name, index]));
    expect(indexes.items_tenant_idx).toMatchObject({ columns: ['tenant_id', 'note'], unique: false, definition: null });
    expect(indexes.items_pkey).toMatchObject({ columns: ['id'], primary: true, definition: null });
    expect(indexes.items_email_key).toMatchObject({ columns: ['tenant_id', null], unique: true, definition: expect.stringContaining('lower(email)') });
    expect(indexes.items_note_partial).toMatchObject({ partial: true, definition: expect.stringContaining('WHERE (note IS NOT NULL)') });
    expect(items.policies[0]!.roles.sort()).toEqual([expect.stringMatching(/^app_user_\d+$/), 'pg_read_all_data']);
    expect(catalog.roles.some((role) => role.name.startsWith('pg_'))).toBe(false);

    // Introspecting one schema only: the referenced table outside it is still named, with its columns.
    const { catalog: narrow } = await catalogOf(`
      create schema other;
      create table other.accounts (dropped int, id int primary key);
      alter table other.accounts drop column dropped;
      create table items (id int primary key, account_id int references other.accounts (id));
    `, ['public']);
    expect(narrow.relations.map((relation) => relation.qualified)).toEqual(['public.items']);
    expect(narrow.relations.find((relation) => relation.qualified === 'public.items')!.foreignKeys[0]).toMatchObject({ references: 'other.accounts', referencedColumns: ['id'] });
  });
});
