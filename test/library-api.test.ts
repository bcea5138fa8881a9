import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { audit, createAuditDatabase, type AuditDatabase } from 'rls-audit/vitest';
import { loadScenario } from '../src/scenario/load.js';
import { allFindings, ROOT } from './helpers.js';

/** The demo scenario: the hardened chat schema plus one planted leak (a view with its owner's rights). */
let db: AuditDatabase;

beforeAll(async () => {
  db = await createAuditDatabase(await loadScenario(path.join(ROOT, 'scenarios/demo.yaml')));
});
afterAll(() => db?.close());

describe('createAuditDatabase and the matchers', () => {
  it('audits the same database twice, each audit in a transaction of its own; toIsolateTenants lists the finding and its fix', async () => {
    const first = await db.audit({ tenants: 2, rows: 5 });
    const second = await db.audit({ tenants: 2, rows: 5 });
    const leaks = (report: typeof first) => allFindings(report.findings).filter((finding) => finding.check === 'read-isolation').map((finding) => finding.object.name);
    expect(leaks(first)).toEqual(['public.recent_messages']);
    expect(leaks(second)).toEqual(leaks(first));
    expect(first).not.toIsolateTenants();
    expect(() => expect(first).toIsolateTenants()).toThrow(
      /to prove tenant isolation, but its verdict is FAIL \(fail on high and above: \d+ findings?\)\n(.*\n)*  HIGH definer-view on public\.recent_messages: .*\n    fix:\n      alter view "public"\."recent_messages" set \(security_invoker/,
    );
  });

  it('toIsolateTenants says why a run proved nothing: an inconclusive verdict is not a pass', async () => {
    const report = await db.lint();
    const inconclusive = {
      ...report,
      findings: [],
      summary: { ...report.summary, verdict: 'inconclusive' as const, failing: 0, inconclusive: [{ relation: 'public.messages', reason: 'tenant A saw none of its 5 rows', hint: 'check --context-sql' }] },
    };
    expect(() => expect(inconclusive).toIsolateTenants()).toThrow(/verdict is INCONCLUSIVE .*\n {2}INCONCLUSIVE public\.messages: tenant A saw none of its 5 rows\n {4}try: check --context-sql$/);
  });

  it('audit() takes a partial scenario; on a borrowed target its schema files are applied in the audit and rolled back', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'rls-audit-library-'));
    const fix = path.join(dir, 'fix.sql');
    await writeFile(fix, 'alter view recent_messages set (security_invoker = true);\n');
    for (let run = 0; run < 2; run += 1) {
      const fixed = await audit({ schema: [fix], role: 'app_user', tenants: 2, rows: 5 }, { target: db.target });
      expect(fixed).toIsolateTenants();
    }
    const client = new pg.Client({ connectionString: db.target.connectionString });
    await client.connect();
    try {
      const view = await client.query(`select reloptions from pg_class where oid = 'public.recent_messages'::regclass`);
      expect(view.rows).toEqual([{ reloptions: null }]);
      expect((await client.query('select count(*)::int as n from messages')).rows).toEqual([{ n: 0 }]);
    } finally {
      await client.end();
    }
    await expect(audit({ rows: 0 }, { target: db.target })).rejects.toThrow(/the scenario object is not a valid scenario:\n {2}rows:/);
  });

  it('asTenant runs the application\'s query as a tenant and attributes each row; toBelongTo names the rows of other tenants', async () => {
    const leaked = await db.asTenant('A', (app) => app.query('select conversation_id, body from recent_messages'));
    expect(leaked).toHaveLength(60);
    expect(new Set(leaked.map(({ owner }) => (owner.kind === 'tenant' ? `${owner.tenant.label} by ${owner.via}` : owner.kind)))).toEqual(
      new Set(['tenant A by canary', 'tenant B by canary', 'tenant C by canary']),
    );
    expect(() => expect(leaked).toBelongTo('A')).toThrow(/^expected every row to belong to A, but 40 of 60 do not:\n {2}\{"conversation_id":.*\n {4}belongs to tenant [BC] \(\d+, by canary\)/);

    const own = await db.asTenant('tenant B', (app, tenant) => app.query('select * from messages where tenant_id = $1', [tenant.id]));
    expect(own).toHaveLength(20);
    expect(own).toBelongTo('B');
    expect(own.every(({ owner }) => owner.kind === 'tenant' && owner.via === 'tenant column')).toBe(true);

    const none = await db.asTenant('C', (app) => app.query('select * from messages where false'));
    expect(() => expect(none).toBelongTo('C')).toThrow(/expected rows of C, but the query returned none/);
    await expect(db.asTenant('A', (app) => app.query('commit'))).rejects.toThrow(/asTenant cannot run "commit": it is transaction control/);
    await expect(db.asTenant('Z', (app) => app.query('select 1'))).rejects.toThrow(/no seeded tenant Z: the tenants are tenant A \(\d+\), tenant B/);
  });

  it("README's vitest example is test/vitest-example.test.ts, word for word", async () => {
    const example = (await readFile(path.join(ROOT, 'test/vitest-example.test.ts'), 'utf8')).split('\n').slice(1).join('\n');
    expect(await readFile(path.join(ROOT, 'README.md'), 'utf8')).toContain(`\`\`\`ts\n${example}\`\`\``);
  });
});
