import { readFile } from 'node:fs/promises';
import { objectSubject } from '../src/findings/finding.js';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEmbedded } from '../src/target/embedded.js';
import type { Target } from '../src/target/types.js';
import { allFindings, databaseFingerprint as fingerprint, findingsOf, ROOT, runCli, TARGETS } from './helpers.js';

const PRODUCTION_ROWS = `
insert into tenants (id, name, plan) values (1, 'Acme', 'team'), (2, 'Globex', 'free');
insert into users (tenant_id, email, display_name) values (1, 'ann@acme.test', 'Ann'), (1, 'bob@acme.test', 'Bob'), (2, 'cy@globex.test', 'Cy');
insert into conversations (tenant_id, created_by, title) select tenant_id, id, 'Hello from ' || display_name from users;
insert into messages (tenant_id, conversation_id, author_id, body) select tenant_id, id, created_by, 'first message' from conversations;
`;

describe.each(TARGETS)('--database-url on $name', ({ args }) => {
  let target: Target;

  beforeAll(async () => {
    target = await startEmbedded({ pgBin: args[1] });
    const client = new pg.Client({ connectionString: target.connectionString });
    await client.connect();
    await client.query(await readFile(path.join(ROOT, 'scenarios/chat/schema.sql'), 'utf8'));
    await client.query(PRODUCTION_ROWS);
    await client.end();
  });
  afterAll(async () => {
    await target?.close();
  });

  it('audits an existing database and leaves it exactly as it was', async () => {
    const before = await fingerprint(target.connectionString);
    // Trust authentication ignores the password; it is there to prove that no output repeats it.
    const withPassword = target.connectionString.replace('postgresql://postgres@', 'postgresql://postgres:s3cret-pw@');
    const run = await runCli(['run', '--database-url', withPassword, '--role', 'app_user', '--seed', '3', '--quiet']);
    expect(run.err).toBe('');
    expect(run.code).toBe(0);
    expect(JSON.stringify(run.report)).not.toContain('s3cret-pw');
    expect(run.report!.target.description).toContain('*****');
    expect(run.report!.summary.rowsSeeded).toBeGreaterThan(100);
    expect(run.report!.target.kind).toBe('url');
    expect(await fingerprint(target.connectionString)).toEqual(before);
  });

  it('stops with exit 2 naming the table, who holds it and what to do when a migration holds ACCESS EXCLUSIVE on a tenant table (issue 21)', async () => {
    const before = await fingerprint(target.connectionString);
    const migration = new pg.Client({ connectionString: target.connectionString, application_name: 'the-migration' });
    await migration.connect();
    try {
      await migration.query('begin');
      await migration.query('lock table conversations in access exclusive mode');
      const pid = (await migration.query('select pg_backend_pid() as pid')).rows[0].pid as number;
      const run = await runCli(['run', '--database-url', target.connectionString, '--role', 'app_user', '--seed', '3', '--quiet']);
      expect(run.code).toBe(2);
      expect(run.err).not.toMatch(/unexpected error/);
      expect(run.err).toContain(`public.conversations is locked ACCESS EXCLUSIVE by another session (pid ${pid}, application the-migration`);
      expect(run.err).toMatch(/a migration or maintenance .* holds it\. The audit waited for it at most 100 ms .* while reading the catalog, and stopped; nothing was committed\. Wait for the migration to finish .*then run the audit again/);
    } finally {
      await migration.query('rollback');
      await migration.end();
    }
    expect(await fingerprint(target.connectionString)).toEqual(before);
  });

  it('finds a leak of rows that were already there, and still leaves no trace', async () => {
    const client = new pg.Client({ connectionString: target.connectionString });
    await client.connect();
    await client.query('alter table messages disable row level security');
    await client.end();
    const before = await fingerprint(target.connectionString);
    const run = await runCli(['run', '--database-url', target.connectionString, '--role', 'app_user', '--seed', '3', '--quiet']);
    expect(run.code).toBe(1);
    const leak = allFindings(run.report!.findings).find((finding) => finding.check === 'read-isolation' && objectSubject(finding.object) === 'public.messages')!;
    expect(leak.evidence.details).toMatch(/tenant 1 \(not seeded\)|tenant 2 \(not seeded\)/);
    expect(findingsOf(run, 'read-isolation').map((finding) => objectSubject(finding.object))).toEqual(['public.messages']);
    expect(await fingerprint(target.connectionString)).toEqual(before);
  });
});
