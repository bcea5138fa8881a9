import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAuditDatabase, type AuditDatabase } from 'rls-audit/vitest';
import { FIXTURES } from './helpers.js';

/**
 * The vitest API on a Supabase project: `preset: 'supabase'` creates the platform (extensions, auth, storage,
 * the realtime publication) before the migrations, and `asUser` runs the app's queries as a signed-in user.
 */
let db: AuditDatabase;

beforeAll(async () => {
  db = await createAuditDatabase({ preset: 'supabase', schema: [path.join(FIXTURES, 'projects', 'supabase', 'supabase', 'migrations')], tenants: 3, rows: 5 });
});
afterAll(() => db?.close());

describe('createAuditDatabase with the supabase preset', () => {
  it('holds what a fresh Supabase project has, and the migrations applied on it', async () => {
    const client = new pg.Client({ connectionString: db.target.connectionString });
    await client.connect();
    try {
      const one = async (sql: string) => (await client.query(sql)).rows;
      expect(await one("select e.extname, n.nspname from pg_extension e join pg_namespace n on n.oid = e.extnamespace where e.extname in ('uuid-ossp', 'pgcrypto') order by 1")).toEqual([
        { extname: 'pgcrypto', nspname: 'extensions' },
        { extname: 'uuid-ossp', nspname: 'extensions' },
      ]);
      expect(await one("select setconfig from pg_db_role_setting where setrole = 'postgres'::regrole")).toEqual([{ setconfig: ['search_path="$user", public, extensions'] }]);
      expect(await one('select pubname, schemaname, tablename from pg_publication_tables')).toEqual([{ pubname: 'supabase_realtime', schemaname: 'public', tablename: 'tasks' }]);
      expect(await one("select relname, relrowsecurity from pg_class where oid in ('storage.objects'::regclass, 'storage.buckets'::regclass, 'auth.users'::regclass, 'auth.identities'::regclass) order by 1")).toEqual([
        { relname: 'buckets', relrowsecurity: true },
        { relname: 'identities', relrowsecurity: true },
        { relname: 'objects', relrowsecurity: true },
        { relname: 'users', relrowsecurity: true },
      ]);
      expect(await one("select polname from pg_policy where polrelid = 'storage.objects'::regclass")).toEqual([{ polname: "members read their organization's files" }]);
      expect(await one("select column_name from information_schema.columns where table_schema = 'auth' and table_name = 'users' and column_name like 'raw_%' order by 1")).toEqual([{ column_name: 'raw_app_meta_data' }, { column_name: 'raw_user_meta_data' }]);
      expect(await one("select rolname, rolinherit, rolbypassrls, rolcanlogin from pg_roles where rolname in ('anon', 'authenticated', 'service_role', 'authenticator') order by 1")).toEqual([
        { rolname: 'anon', rolinherit: true, rolbypassrls: false, rolcanlogin: false },
        { rolname: 'authenticated', rolinherit: true, rolbypassrls: false, rolcanlogin: false },
        { rolname: 'authenticator', rolinherit: false, rolbypassrls: false, rolcanlogin: true },
        { rolname: 'service_role', rolinherit: true, rolbypassrls: true, rolcanlogin: false },
      ]);
      // Supabase's default privileges: the API roles may use the project's tables, not auth's.
      expect(await one("select has_table_privilege('authenticated', 'public.tasks', 'select') as tasks, has_table_privilege('authenticated', 'auth.users', 'select') as users, has_schema_privilege('anon', 'graphql_public', 'usage') as graphql")).toEqual([{ tasks: true, users: false, graphql: true }]);
      expect(await one("select storage.foldername('org/2024/report.pdf') as folders, storage.filename('org/2024/report.pdf') as file, storage.extension('org/2024/report.pdf') as ext")).toEqual([{ folders: ['org', '2024'], file: 'report.pdf', ext: 'pdf' }]);
    } finally {
      await client.end();
    }
  });

  it('applies the platform before the migrations, and the project isolates its organizations', async () => {
    expect(await db.audit()).toIsolateTenants();
  });

  it('asTenant runs as the tenant\'s signed-in user', async () => {
    const rows = await db.asTenant('A', (app) => app.query('select t.title, t.org_id from public.tasks t'));
    expect(rows.length).toBe(5);
    expect(rows).toBelongTo('A');
  });

  it('asUser: the user of one tenant, of two, and of none; auth.uid() is the user', async () => {
    const own = await db.asUser('B', async (app, user) => {
      const result = await app.query<{ uid: string; role: string }>('select auth.uid()::text as uid, auth.role() as role');
      expect(result.rows).toEqual([{ uid: user.id, role: 'authenticated' }]);
      expect(user.tenants.map((tenant) => tenant.label)).toEqual(['tenant B']);
      return app.query('select k.org_id, k.label from public.api_keys k');
    });
    expect(own).toBelongTo('B');

    const both = await db.asUser(['A', 'B'], (app) => app.query('select t.org_id, t.title from public.tasks t'));
    const owners = both.map((entry) => (entry.owner.kind === 'tenant' ? entry.owner.tenant.label : entry.owner.kind));
    expect(owners.filter((owner) => owner === 'tenant A').length).toBe(5);
    expect(owners.filter((owner) => owner === 'tenant B').length).toBe(5);
    expect(owners.length).toBe(10);

    const none = await db.asUser([], (app) => app.query('select t.org_id from public.tasks t'));
    expect(none).toEqual([]);

    await expect(db.asUser(['A', 'C'], (app) => app.query('select 1'))).rejects.toThrow(/no seeded user belongs to exactly .*: the users are /);
    await expect(db.asUser('A', (app) => app.query('rollback'))).rejects.toThrow(/asUser cannot run "rollback"/);
  });
});
