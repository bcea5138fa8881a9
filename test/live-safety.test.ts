import { spawn } from 'node:child_process';
import { existsSync, rmSync, symlinkSync } from 'node:fs';
import { chmod, mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import net from 'node:net';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEmbedded } from '../src/target/embedded.js';
import type { Target } from '../src/target/types.js';
import { main } from '../src/cli.js';
import { connect, LIVE_BOUNDS } from '../src/target/connect.js';
import { literal } from '../src/target/sql.js';
import { allFindings, PG15_BIN, ROOT, runCli, withClient } from './helpers.js';

const CLI = path.join(ROOT, 'dist', 'cli.js');

/** A libpq connection string dblink can use to reach the same database. */
function dblinkTarget(target: Target): string {
  const url = new URL(target.connectionString);
  const host = url.searchParams.get('host') ?? url.hostname;
  return `host=${host} port=${url.port || 5432} dbname=${url.pathname.slice(1)} user=${decodeURIComponent(url.username)}`;
}

/**
 * A "live" database (a PostgreSQL 15 cluster of its own, audited with --database-url) and a second
 * connection that plays the application. Every test proves the audit left it as it was.
 */
const LIVE_SCHEMA = `
create role app_user nologin;
create table tenants (id integer primary key, name text not null);
create table notes (
  tenant_id integer not null references tenants (id),
  id bigint generated always as identity,
  body text not null,
  primary key (tenant_id, id)
);
create table audit_log (id bigserial primary key, entry text not null);
alter table tenants enable row level security;
alter table notes enable row level security;
create policy tenant_self on tenants using (id = nullif(current_setting('app.current_tenant', true), '')::integer);
create policy notes_isolation on notes using (tenant_id = nullif(current_setting('app.current_tenant', true), '')::integer);
grant select on tenants to app_user;
grant select, insert, update, delete on notes to app_user;
grant select on audit_log to app_user;
-- A context setter that also switches row security off for the session: the audit must notice and stop.
create function sneaky_setter(tenant text) returns void language plpgsql as $$
begin
  perform set_config('app.current_tenant', tenant, true);
  perform set_config('lock_timeout', '0', false);
end $$;
grant execute on function sneaky_setter(text) to app_user;
-- Weak write policies: an UPDATE or DELETE without WHERE reaches every row, the application's included.
create table tasks (tenant_id integer not null references tenants (id), id bigint generated always as identity primary key, title text not null);
alter table tasks enable row level security;
create policy tasks_read on tasks for select using (tenant_id = nullif(current_setting('app.current_tenant', true), '')::integer);
create policy tasks_insert on tasks for insert with check (tenant_id = nullif(current_setting('app.current_tenant', true), '')::integer);
create policy tasks_update on tasks for update using (true);
create policy tasks_delete on tasks for delete using (true);
grant select, insert, update, delete on tasks to app_user;
-- function-leak candidates: one that only reads (called), and four with effects outside the transaction (never called live).
create function my_notes() returns setof notes language sql stable as $$ select * from notes $$;
grant execute on function my_notes() to app_user;
create function next_invoice() returns text language sql as $$ select 'INV-' || nextval('audit_log_id_seq') $$;
create function lock_tenant() returns setof notes language sql as $$ select pg_advisory_lock(42); select * from notes $$;
create function kill_app() returns integer language sql security definer as $$
  select count(*)::int from (select pid from pg_stat_activity where application_name = 'the-app' offset 0) as app where pg_terminate_backend(pid) $$;
create function dynamic_notes(tenant_id integer) returns setof notes language plpgsql as $$
begin return query execute format('select * from notes where tenant_id = %s', tenant_id); end $$;
grant execute on all functions in schema public to app_user;
insert into tenants values (1, 'Acme'), (2, 'Globex');
insert into tasks (tenant_id, title) select 1 + i % 2, 'app task ' || i from generate_series(1, 20) as i;
insert into notes (tenant_id, body) values (1, 'acme note'), (2, 'globex note');
insert into audit_log (entry) values ('existing');
`;


/** Rows, tables and sequences of the live database: what an audit must not change. */
function fingerprint(connectionString: string): Promise<unknown> {
  return withClient(connectionString, async (client) => ({
    tables: (await client.query(`select relname from pg_class where relnamespace = 'public'::regnamespace and relkind = 'r' order by 1`)).rows,
    notes: (await client.query(`select * from notes order by 1, 2`)).rows,
    tasks: (await client.query(`select * from tasks order by 2`)).rows,
    log: (await client.query(`select * from audit_log order by 1`)).rows,
    sequences: (await client.query(`select sequencename, last_value from pg_sequences order by 1`)).rows,
    tenants: (await client.query(`select * from tenants order by 1`)).rows,
  }));
}

/** A function that runs a program on the server; MARKER says whether it ran. */
const copyFunction = (marker: string) => `
create function export_notes() returns setof notes language plpgsql security definer as $fn$
begin
  copy (select 1) to program 'touch ${marker}';
  return query select * from notes;
end $fn$;
grant execute on function export_notes() to app_user;`;

describe('a live database (--database-url): user SQL is contained', () => {
  let live: Target;
  let before: unknown;
  const marker = path.join(os.tmpdir(), `rls-audit-copy-${process.pid}-${Date.now()}`);

  beforeAll(async () => {
    live = await startEmbedded({ pgBin: PG15_BIN });
    await withClient(live.connectionString, async (client) => {
      await client.query(LIVE_SCHEMA);
      await client.query(copyFunction(marker));
      await client.query('create extension dblink');
      // Commits a row on a connection of its own: a rollback of the audit's transaction cannot undo it.
      await client.query(`create function log_remote() returns setof notes language sql as $fn$
        select dblink_exec(${literal(dblinkTarget(live))}, 'insert into audit_log (entry) values (''from dblink'')'); select * from notes $fn$;
        grant execute on function log_remote() to app_user`);
    });
    before = await fingerprint(live.connectionString);
  });
  afterAll(async () => {
    await live?.close();
  });

  const audit = (...extra: string[]) => runCli(['run', '--database-url', live.connectionString, '--role', 'app_user', '--seed', '5', '--tenants', '2', '--rows', '3', '--quiet', ...extra]);

  it('refuses context SQL that would commit and drop a table (issue 10, problem 1)', async () => {
    const run = await audit('--context-sql', "select set_config('app.current_tenant', $1, true); commit; drop table audit_log; --");
    expect(run.code).toBe(2);
    expect(run.err).toMatch(/context SQL .* cannot run inside the audit's transaction: it holds 3 statements/);
    expect(await fingerprint(live.connectionString)).toEqual(before);
  });

  it('refuses context SQL that sets an audit setting, and named queries that are not one plain statement', async () => {
    const setting = await audit('--context-sql', "select set_config('app.current_tenant', $1, true), set_config('row_security', 'off', false)");
    expect(setting.code).toBe(2);
    expect(setting.err).toMatch(/set_config\('row_security'.*audit's own setting/);

    const dir = await import('node:fs/promises').then((fs) => fs.mkdtemp('/tmp/rls-audit-scenario-'));
    const file = `${dir}/scenario.yaml`;
    await import('node:fs/promises').then((fs) => fs.writeFile(file, 'queries:\n  - name: sneaky\n    sql: "commit"\n'));
    const query = await runCli(['run', file, '--database-url', live.connectionString, '--role', 'app_user', '--quiet']);
    expect(query.code).toBe(2);
    expect(query.err).toMatch(/query sneaky \(commit\) cannot run inside the audit's transaction: it is transaction control/);
    expect(await fingerprint(live.connectionString)).toEqual(before);
  });

  it('stops with exit 2 when the context SQL would change a setting of the audit (refused before it runs, issue 21)', async () => {
    const run = await audit('--context-sql', 'select sneaky_setter($1)');
    expect(run.code).toBe(2);
    expect(run.err).toMatch(/the context SQL \(select sneaky_setter\(\$1(::text)?\)\) is refused on this live database: it calls sneaky_setter: it calls set_config\('lock_timeout', \.\.\.\), which changes lock_timeout/);
    expect(await fingerprint(live.connectionString)).toEqual(before);
  });

  it('refuses schema files on a live database and points to --schema-from (problem 3)', async () => {
    const run = await audit('--schema', 'scenarios/chat/schema.sql');
    expect(run.code).toBe(2);
    expect(run.err).toMatch(/schema files cannot be applied to a database the audit does not own.*--schema-from URL --schema FILE/);
  });

  it('calls on a live database only functions whose bodies provably have no effect outside the transaction (problem 2)', async () => {
    const app = new pg.Client({ connectionString: live.connectionString, application_name: 'the-app' });
    await app.connect();
    try {
      const run = await audit();
      // Functions that were not called may leak: the run proved nothing about them (the weak tasks policies fail it anyway).
      expect(run.code).toBe(1);
      const reasons = run.report!.summary.inconclusive.map((entry) => entry.relation);
      expect(reasons).toEqual(expect.arrayContaining(['export_notes()', 'kill_app()', 'lock_tenant()', 'next_invoice()', 'dynamic_notes(integer)', 'log_remote()']));
      expect(reasons).not.toContain('my_notes()');
      expect(run.report!.summary.inconclusive.find((entry) => entry.relation === 'kill_app()')).toMatchObject({
        reason: expect.stringMatching(/function-leak did not call kill_app\(\) on this live database: .*pg_terminate_backend/),
        hint: 'audit a copy with --schema-from URL, where every function is called',
      });
      const calls = run.report!.probes.filter((probe) => probe.check === 'function-leak');
      const skipped = (name: string) => calls.filter((probe) => probe.relation.startsWith(`${name}(`) && probe.outcome === 'skipped').map((probe) => probe.error);
      expect(skipped('export_notes')[0]).toMatch(/not called on a live database.*COPY/);
      expect(skipped('kill_app')[0]).toMatch(/pg_terminate_backend/);
      expect(skipped('lock_tenant')[0]).toMatch(/pg_advisory_lock/);
      expect(skipped('next_invoice')[0]).toMatch(/nextval/);
      expect(skipped('dynamic_notes')[0]).toMatch(/dynamic SQL/);
      expect(skipped('log_remote')[0]).toMatch(/dblink_exec/);
      expect(calls.filter((probe) => probe.relation === 'my_notes()' && probe.outcome !== 'skipped').length).toBeGreaterThan(0);
      expect(existsSync(marker)).toBe(false);
      expect((await app.query('select 1 as alive')).rows).toEqual([{ alive: 1 }]);
      expect(await fingerprint(live.connectionString)).toEqual(before);
    } finally {
      await app.end().catch(() => undefined);
    }
  });

  it('still calls every function on a cluster of its own (the same COPY TO PROGRAM runs there)', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'rls-audit-copy-'));
    const file = path.join(dir, 'schema.sql');
    const ownMarker = path.join(dir, 'ran');
    await chmod(dir, 0o777); // the server may run as another OS user
    await writeFile(file, `${LIVE_SCHEMA}\n${copyFunction(ownMarker)}`);
    try {
      const run = await runCli(['run', '--schema', file, '--role', 'app_user', '--seed', '5', '--tenants', '2', '--rows', '3', '--quiet', '--pg-bin', PG15_BIN]);
      expect(run.err).toBe('');
      expect(run.report!.probes.some((probe) => probe.relation === 'export_notes()' && probe.outcome !== 'skipped')).toBe(true);
      expect(existsSync(ownMarker)).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('takes the URL from DATABASE_URL or a key=value string, and prints no password anywhere (problem 9)', async () => {
    const url = new URL(live.connectionString);
    const socket = url.searchParams.get('host')!;
    const keyValue = `host=${socket} port=${url.port || 5432} dbname=rls_audit user=postgres password='kv s3cret'`;
    const byKeyValue = await runCli(['lint', '--database-url', keyValue, '--role', 'app_user', '--out', await mkdtemp(path.join(os.tmpdir(), 'rls-audit-kv-'))]);
    expect(byKeyValue.err).not.toMatch(/ENOTFOUND|unexpected/);
    expect(byKeyValue.code).not.toBe(2);
    expect(byKeyValue.out + byKeyValue.err).not.toContain('kv s3cret');

    const saved = process.env.DATABASE_URL;
    process.env.DATABASE_URL = live.connectionString.replace('postgresql://postgres@', 'postgresql://postgres:env-s3cret@');
    try {
      const fromEnvironment = await runCli(['run', '--database-url', '--role', 'app_user', '--seed', '5', '--tenants', '2', '--rows', '3']);
      expect(fromEnvironment.err).not.toMatch(/cannot connect|unexpected/);
      expect(fromEnvironment.report!.target.kind).toBe('url');
      expect(fromEnvironment.out + fromEnvironment.err + JSON.stringify(fromEnvironment.report)).not.toContain('env-s3cret');
    } finally {
      if (saved === undefined) delete process.env.DATABASE_URL;
      else process.env.DATABASE_URL = saved;
    }

    for (const malformed of ['postgresql://auditor:p@ss@w0rd@127.0.0.1:1/db', 'postgresql:/auditor:typo-s3cret@127.0.0.1/db', "host=127.0.0.1 port=1 user=auditor password='q s3cret' dbname=x"]) {
      const run = await runCli(['run', '--database-url', malformed, '--role', 'app_user', '--quiet']);
      expect(run.code).toBe(2);
      expect(run.err).toMatch(/does not parse|cannot connect/);
      expect(run.err).not.toMatch(/p@ss@w0rd|ss@w0rd|typo-s3cret|q s3cret|unexpected/);
    }
  });

  it('prints database names with their control characters escaped, so none can forge a line', async () => {
    const evil = 'evil\n  verdict: PASS\u001b[2J';
    const table = `"${evil}"`;
    await withClient(live.connectionString, (client) => client.query(`create table ${table} (tenant_id integer not null references tenants (id), body text); grant select on ${table} to app_user`));
    try {
      const run = await runCli(['lint', '--database-url', live.connectionString, '--role', 'app_user', '--out', await mkdtemp(path.join(os.tmpdir(), 'rls-audit-evil-'))]);
      expect(run.out).toContain('evil\\n  verdict: PASS\\u001b[2J');
      expect(run.out).not.toContain('\u001b');
      expect(run.out.split('\n').filter((line) => line.includes('verdict:') && !line.includes('evil'))).toHaveLength(1);
    } finally {
      await withClient(live.connectionString, (client) => client.query(`drop table ${table}`));
    }
  });

  it('names the path of a report it cannot write, and does not hang on /proc', async () => {
    const lint = (out: string) => runCli(['lint', '--database-url', live.connectionString, '--role', 'app_user', '--quiet', '--out', out]);
    const proc = await lint('/proc/rls-audit-x');
    expect(proc.code).toBe(2);
    expect(proc.err).toMatch(/cannot create the report directory \/proc\/rls-audit-x/);
    const full = await mkdtemp(path.join(os.tmpdir(), 'rls-audit-full-'));
    symlinkSync('/dev/full', path.join(full, 'report.json'));
    // main() directly: the test helper would read report.json back, from /dev/full.
    let err = '';
    const code = await main(['lint', '--database-url', live.connectionString, '--role', 'app_user', '--quiet', '--out', full], { out: () => undefined, err: (text) => (err += text), cwd: os.tmpdir() });
    expect(code).toBe(2);
    expect(err).toContain(`cannot write ${path.join(full, 'report.json')}: no space left on the device (ENOSPC)`);
    rmSync(full, { recursive: true, force: true });
  });

  it('never locks or rewrites rows of the application: writes without WHERE are bounded to the audit\'s own rows (problem 4)', async () => {
    // The application holds row locks on half of its tasks for the whole audit, and updates the other half
    // in a loop with a 100 ms lock timeout: neither may ever wait on the audit.
    const holder = new pg.Client({ connectionString: live.connectionString, application_name: 'the-app' });
    const writer = new pg.Client({ connectionString: live.connectionString, application_name: 'the-app' });
    await holder.connect();
    await writer.connect();
    await holder.query(`begin; select * from tasks where tenant_id = 1 for update`);
    await writer.query(`set lock_timeout = '100ms'`);
    let running = true;
    let updates = 0;
    const failures: string[] = [];
    const loop = (async () => {
      while (running) {
        try {
          await writer.query(`update tasks set title = title where tenant_id = 2`);
          updates += 1;
        } catch (error) {
          failures.push(String(error));
        }
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
    })();
    try {
      const run = await audit();
      running = false;
      await loop;
      expect(failures).toEqual([]);
      expect(updates).toBeGreaterThan(0);
      const writes = run.report!.probes.filter((probe) => ['blind-update', 'blind-delete', 'tenant-reassignment'].includes(probe.check) && probe.relation === 'public.tasks');
      expect(writes.length).toBeGreaterThan(0);
      expect(writes.filter((probe) => /lock timeout|canceling statement/i.test(probe.error ?? ''))).toEqual([]);
      expect(writes.every((probe) => probe.check === 'tenant-reassignment' || /where current of rls_audit_row/.test(probe.sql))).toBe(true);
      // The weak policies are still proven, on the audit's own rows.
      const found = allFindings(run.report!.findings).filter((finding) => finding.object.name === 'public.tasks').map((finding) => finding.check);
      expect(found).toEqual(expect.arrayContaining(['blind-update', 'blind-delete']));
    } finally {
      running = false;
      await loop;
      await holder.query('rollback');
      await holder.end();
      await writer.end();
    }
    expect(await fingerprint(live.connectionString)).toEqual(before);
  });

  it('leaves out a table whose trigger would advance a sequence, audits the rest, and lists moved sequences when gaps are allowed (problem 5)', async () => {
    const invoices = `
      create sequence invoice_numbers;
      create table invoices (tenant_id integer not null references tenants (id), id bigint generated always as identity primary key, number text);
      create function number_invoice() returns trigger language plpgsql as $fn$ begin new.number := 'INV-' || nextval('invoice_numbers'); return new; end $fn$;
      create trigger number_invoice before insert on invoices for each row execute function number_invoice();
      alter table invoices enable row level security;
      create policy invoices_isolation on invoices using (tenant_id = nullif(current_setting('app.current_tenant', true), '')::integer);
      grant select, insert on invoices to app_user;
      grant usage on sequence invoice_numbers to app_user;
      insert into invoices (tenant_id) values (1);
      -- A trigger on UPDATE only: the table is seeded and inserted into, never updated.
      create table payments (tenant_id integer not null references tenants (id), id bigint generated always as identity primary key, amount integer, revision bigint);
      create function revise_payment() returns trigger language plpgsql as $fn$ begin new.revision := nextval('invoice_numbers'); return new; end $fn$;
      create trigger revise_payment before update on payments for each row execute function revise_payment();
      alter table payments enable row level security;
      create policy payments_isolation on payments using (tenant_id = nullif(current_setting('app.current_tenant', true), '')::integer);
      grant select, insert, update on payments to app_user;
      -- Confine the tasks policies for this test, so that no leak elsewhere decides the verdict (their blind writes are critical).
      alter policy tasks_update on tasks using (tenant_id = nullif(current_setting('app.current_tenant', true), '')::integer);
      alter policy tasks_delete on tasks using (tenant_id = nullif(current_setting('app.current_tenant', true), '')::integer);`;
    await withClient(live.connectionString, (client) => client.query(invoices));
    const numbered = () => withClient(live.connectionString, async (client) => (await client.query(`select last_value::text as value from invoice_numbers`)).rows[0]!.value as string);
    // Not --quiet: what the terminal shows.
    const run = (...extra: string[]) => runCli(['run', '--database-url', live.connectionString, '--role', 'app_user', '--seed', '5', '--tenants', '2', '--rows', '3', ...extra]);
    const insertProbes = ['foreign-insert', 'upsert-conflict', 'cross-tenant-reference'];
    try {
      const start = await numbered();
      // --fail-on critical: the high findings of the SECURITY DEFINER functions above would fail the run otherwise.
      const skipped = await run('--fail-on', 'critical');
      expect(await numbered()).toBe(start);
      const report = skipped.report!;
      // invoices: not seeded, its inserting probes skipped with the reason, the run inconclusive for it.
      expect(report.relations.find((relation) => relation.name === 'public.invoices')?.seeding).toMatchObject({
        status: 'failed',
        rows: 0,
        reason: expect.stringMatching(/not inserted into on this live database: that would advance a sequence.*trigger number_invoice \(.*\): it calls nextval/),
      });
      const invoiceWrites = report.probes.filter((probe) => probe.relation === 'public.invoices' && insertProbes.includes(probe.check));
      expect(invoiceWrites.map((probe) => probe.check).sort()).toEqual([...insertProbes].sort());
      for (const probe of invoiceWrites) {
        expect(probe.outcome).toBe('skipped');
        expect(probe.error).toMatch(/not run on this live database: INSERT would advance a sequence, which no rollback undoes \(trigger number_invoice/);
      }
      const reasons = report.summary.inconclusive.filter((entry) => entry.relation === 'public.invoices');
      expect(reasons.map((entry) => entry.reason)).toEqual(
        expect.arrayContaining([expect.stringMatching(/tenant-owned public\.invoices has no seeded row of .*trigger number_invoice.*nextval/), expect.stringMatching(/public\.invoices was not written on this live database/)]),
      );
      for (const entry of reasons) expect(entry.hint).toMatch(/--schema-from URL.*--allow-sequence-gaps/);
      // The terminal says so: the log line while running, the summary's note and inconclusive lines with what to try.
      expect(skipped.err).toMatch(/sequences: public\.invoices is not written where that would advance a sequence on this live database: trigger number_invoice \(.*\): it calls nextval \(on insert\)/);
      expect(skipped.out).toMatch(/note: public\.invoices was not seeded: not inserted into on this live database/);
      expect(skipped.out).toMatch(/inconclusive: public\.invoices was not written on this live database: .*trigger number_invoice.*\n\s+try: audit a copy instead \(--schema-from URL.*--allow-sequence-gaps/);
      expect(skipped.out).toMatch(/verdict: INCONCLUSIVE/);
      expect(skipped.code).toBe(2);
      // The other tables of the same database are still seeded and probed.
      for (const name of ['public.notes', 'public.tasks']) {
        expect(report.relations.find((relation) => relation.name === name)?.seeding?.status).toBe('seeded');
        expect(report.probes.filter((probe) => probe.relation === name && probe.check === 'read-isolation' && probe.outcome === 'pass').length).toBeGreaterThan(0);
      }
      expect(report.probes.filter((probe) => probe.relation === 'public.notes' && probe.check === 'foreign-insert' && probe.outcome === 'pass').length).toBeGreaterThan(0);
      expect(report.summary.inconclusive.some((entry) => entry.relation === 'public.notes' || entry.relation === 'public.tasks')).toBe(false);
      expect(report.notes.join('\n')).not.toMatch(/sequences that moved/);
      // payments: seeded and inserted into; its update probes skipped, for the update trigger.
      expect(report.relations.find((relation) => relation.name === 'public.payments')?.seeding?.status).toBe('seeded');
      expect(report.probes.some((probe) => probe.relation === 'public.payments' && probe.check === 'foreign-insert' && probe.outcome === 'pass')).toBe(true);
      const paymentUpdates = report.probes.filter((probe) => probe.relation === 'public.payments' && ['foreign-update', 'blind-update', 'tenant-reassignment'].includes(probe.check));
      expect(paymentUpdates.length).toBeGreaterThan(0);
      for (const probe of paymentUpdates) expect([probe.outcome, probe.error]).toEqual(['skipped', expect.stringMatching(/UPDATE would advance a sequence.*trigger revise_payment/)]);
      expect(report.summary.inconclusive.filter((entry) => entry.relation === 'public.payments').map((entry) => entry.reason)).toEqual([
        expect.stringMatching(/^public\.payments was not written on this live database: .*trigger revise_payment/),
      ]);

      // Accepted as unaudited in the scenario: the tables are still left out, and no longer make the run inconclusive.
      const dir = await mkdtemp(path.join(os.tmpdir(), 'rls-audit-unseeded-'));
      await writeFile(path.join(dir, 'scenario.yaml'), 'unseeded:\n  - relation: public.invoices\n    reason: numbered by a trigger\n  - relation: payments\n    reason: revised by a trigger\n');
      const accepted = await runCli(['run', path.join(dir, 'scenario.yaml'), '--database-url', live.connectionString, '--role', 'app_user', '--seed', '5', '--tenants', '2', '--rows', '3', '--quiet']);
      expect(await numbered()).toBe(start);
      expect(accepted.report!.probes.filter((probe) => probe.relation === 'public.invoices' && probe.check === 'foreign-insert').map((probe) => probe.outcome)).toEqual(['skipped']);
      expect(accepted.report!.summary.inconclusive.filter((entry) => ['public.invoices', 'public.payments'].includes(entry.relation ?? ''))).toEqual([]);
      rmSync(dir, { recursive: true, force: true });

      const allowed = await run('--allow-sequence-gaps');
      expect(allowed.err).not.toMatch(/sequences: public\.invoices/);
      const moved = await numbered();
      expect(Number(moved)).toBeGreaterThan(Number(start));
      expect(allowed.report!.relations.find((relation) => relation.name === 'public.invoices')?.seeding).toMatchObject({ status: 'seeded' });
      expect(allowed.report!.probes.some((probe) => probe.relation === 'public.invoices' && probe.check === 'foreign-insert' && probe.outcome === 'pass')).toBe(true);
      expect(allowed.report!.summary.inconclusive.some((entry) => entry.relation === 'public.invoices')).toBe(false);
      expect(allowed.report!.notes.join('\n')).toContain(`sequences that moved during the audit (by the audit's writes or by the application meanwhile): public.invoice_numbers ${start} -> ${moved}`);
    } finally {
      await withClient(live.connectionString, (client) =>
        client.query(`drop table invoices, payments; drop function number_invoice(); drop function revise_payment(); drop sequence invoice_numbers;
          alter policy tasks_update on tasks using (true); alter policy tasks_delete on tasks using (true)`),
      );
    }
  });

  it('bounds every wait: connect, statement, lock and idle-in-transaction timeouts on every connection (problem 6)', async () => {
    const client = await connect(live.connectionString, LIVE_BOUNDS);
    try {
      const { rows } = await client.query(
        `select current_setting('statement_timeout') as statement, current_setting('lock_timeout') as lock, current_setting('idle_in_transaction_session_timeout') as idle`,
      );
      expect(rows).toEqual([{ statement: '30s', lock: '100ms', idle: '30s' }]);
    } finally {
      await client.end();
    }
    // A port that accepts TCP and never answers.
    const silent = net.createServer(() => undefined);
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const port = (silent.address() as net.AddressInfo).port;
    try {
      await expect(connect(`postgresql://u@127.0.0.1:${port}/db`, { ...LIVE_BOUNDS, connectTimeoutMs: 300 })).rejects.toThrow(/did not answer within the connect timeout/);
    } finally {
      silent.close();
    }
  });

  it.skipIf(!existsSync(CLI))('a stopped audit (SIGSTOP) loses its session and its locks at the idle-in-transaction timeout (problem 6)', { timeout: 90_000 }, async () => {
    const out = await mkdtemp(path.join(os.tmpdir(), 'rls-audit-stopped-'));
    // The context SQL sleeps a little, so that the audit spends its time inside its transaction.
    const child = spawn(process.execPath, [CLI, 'run', '--database-url', live.connectionString, '--role', 'app_user', '--tenants', '2', '--rows', '3', '--quiet', '--out', out, '--context-sql', "select set_config('app.current_tenant', $1, true), pg_sleep(0.02)"], { stdio: 'ignore' });
    const closed = new Promise<void>((resolve) => child.on('close', () => resolve()));
    const audits = () =>
      withClient(live.connectionString, async (client) =>
        (await client.query(`select pid, state, (select count(*)::int from pg_locks l where l.pid = a.pid) as locks from pg_stat_activity a where application_name like 'rls-audit%' and xact_start is not null`)).rows as { pid: number; state: string; locks: number }[],
      );
    try {
      let inTransaction: { pid: number; locks: number }[] = [];
      for (const deadline = Date.now() + 30_000; !inTransaction.length && Date.now() < deadline; ) {
        inTransaction = (await audits()).filter((session) => session.locks > 0);
        if (!inTransaction.length) await new Promise((resolve) => setTimeout(resolve, 20));
      }
      expect(inTransaction.length).toBeGreaterThan(0);
      child.kill('SIGSTOP');
      const stopped = Date.now();
      // The server ends the stopped audit's transaction (and session) after idle_in_transaction_session_timeout.
      let left = await audits();
      while (left.length && Date.now() - stopped < LIVE_BOUNDS.idleInTransactionMs + 15_000) {
        await new Promise((resolve) => setTimeout(resolve, 500));
        left = await audits();
      }
      expect(left).toEqual([]);
      expect(Date.now() - stopped).toBeLessThan(LIVE_BOUNDS.idleInTransactionMs + 15_000);
      expect(await fingerprint(live.connectionString)).toEqual(before);
    } finally {
      child.kill('SIGCONT');
      child.kill('SIGKILL');
      await closed;
      rmSync(out, { recursive: true, force: true });
    }
  });

  it('stops at --timeout with exit 2 and writes what it did so far', async () => {
    const out = await mkdtemp(path.join(os.tmpdir(), 'rls-audit-timeout-'));
    const run = await audit('--timeout', '3s', '--out', out, '--context-sql', "select set_config('app.current_tenant', $1, true), pg_sleep(0.2)");
    expect(run.code).toBe(2);
    expect(run.err).toMatch(/the audit stopped at its time limit \(--timeout 3s\): the report holds what was done so far/);
    expect(run.report!.notes.join('\n')).toMatch(/time limit .* this report is partial/);
    expect(run.report!.summary.inconclusive.map((entry) => entry.reason).join('\n')).toMatch(/time limit/);
    expect(run.report!.summary.verdict).not.toBe('pass');
    expect(await fingerprint(live.connectionString)).toEqual(before);
    const sessions = await withClient(live.connectionString, async (client) => (await client.query(`select count(*)::int as n from pg_stat_activity where application_name like 'rls-audit%'`)).rows[0]!.n);
    expect(sessions).toBe(0);
  });
});
