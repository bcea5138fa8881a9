import path from 'node:path';
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
