// This file is the vitest example in README.md, word for word: keep the two in step.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createAuditDatabase, type AuditDatabase } from 'rls-audit/vitest';

let db: AuditDatabase;

beforeAll(async () => {
  // One embedded PostgreSQL for this file; the schema is applied once.
  db = await createAuditDatabase({ schema: ['scenarios/chat/schema.sql'], role: 'app_user' });
});
afterAll(() => db?.close());

it('isolates tenants', async () => {
  // Each audit seeds, probes and rolls back in a transaction of its own.
  expect(await db.audit({ tenants: 2, rows: 5 })).toIsolateTenants();
});

it("the inbox query returns only the tenant's own messages", async () => {
  const rows = await db.asTenant('A', (app) =>
    app.query(`select m.body, c.title from messages m join conversations c on c.id = m.conversation_id order by m.created_at desc limit 50`),
  );
  expect(rows).toBelongTo('A');
});
