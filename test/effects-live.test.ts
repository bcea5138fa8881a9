import { existsSync, rmSync } from 'node:fs';
import { chmod, mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEmbedded } from '../src/target/embedded.js';
import type { Target } from '../src/target/types.js';
import { literal } from '../src/target/sql.js';
import { PG15_BIN, runCli, withClient } from './helpers.js';

/**
 * A live database (--database-url) where effects hide where a body analysis does not look: a domain CHECK,
 * a cast with a function, user SQL that calls dblink or takes an advisory lock, sequences reached through
 * defaults the seeder does not fill. Each marker file is created only if a program ran on the server.
 */
const SCHEMA = (markers: { domain: string; cast: string }, dblink: string) => `
create role app_user nologin;
create table tenants (id integer primary key, name text not null);
create table notes (tenant_id integer not null references tenants (id), id bigint generated always as identity, body text not null, primary key (tenant_id, id));
create table audit_log (id integer primary key, entry text not null);
alter table tenants enable row level security;
alter table notes enable row level security;
create policy tenant_self on tenants using (id = nullif(current_setting('app.current_tenant', true), '')::integer);
create policy notes_isolation on notes using (tenant_id = nullif(current_setting('app.current_tenant', true), '')::integer);
grant select on tenants to app_user;
grant select, insert, update, delete on notes to app_user;
grant select, insert on audit_log to app_user;
-- A domain whose CHECK runs a program on the server, and a function that only reads, casting to it.
create function touch_domain(value text) returns boolean language plpgsql security definer as $fn$
begin copy (select 1) to program ${literal(`touch ${markers.domain}`)}; return true; end $fn$;
create domain checked_text as text check (touch_domain(value));
create function checked_notes() returns setof text language sql stable as $fn$ select body::checked_text from notes $fn$;
-- A cast with a function that runs a program, and a function that only reads, casting with it.
create type label as (value text);
create function to_label(value text) returns label language plpgsql security definer as $fn$
begin copy (select 1) to program ${literal(`touch ${markers.cast}`)}; return row(value)::label; end $fn$;
create cast (text as label) with function to_label(text);
create function labelled_notes() returns setof label language sql stable as $fn$ select body::label from notes $fn$;
-- A clean reader, called as before.
create function my_notes() returns setof notes language sql stable as $fn$ select * from notes $fn$;
-- Context setters: a procedure (CALL), and one that also moves search_path.
create procedure set_tenant(tenant integer) language plpgsql as $fn$ begin perform set_config('app.current_tenant', tenant::text, true); end $fn$;
create function set_tenant_and_path(tenant text) returns void language plpgsql as $fn$
begin perform set_config('app.current_tenant', tenant, true); perform set_config('search_path', 'pg_temp, public', true); end $fn$;
-- A helper that looks like it reads, but notifies.
create function shout(tenant text) returns text language plpgsql as $fn$ begin perform pg_notify('tenants', tenant); return tenant; end $fn$;
create function remote_log() returns text language sql as $fn$ select dblink_exec(${literal(dblink)}, 'insert into audit_log values (999, ''from dblink'')') $fn$;
grant execute on all functions in schema public to app_user;
grant execute on procedure set_tenant(integer) to app_user;
insert into tenants values (1, 'Acme'), (2, 'Globex');
insert into notes (tenant_id, body) values (1, 'acme note'), (2, 'globex note');
insert into audit_log values (1, 'existing');
`;

const SEQUENCES = `
create sequence invoice_numbers;
create table invoices (tenant_id integer not null references tenants (id), id bigint generated always as identity primary key,
  number text not null default 'INV-' || nextval('invoice_numbers'));
create sequence order_numbers;
create table orders (tenant_id integer not null references tenants (id), id numeric primary key default nextval('order_numbers'), item text);
create sequence ticket_numbers;
create domain ticket_number as bigint default nextval('ticket_numbers');
create table tickets (tenant_id integer not null references tenants (id), id bigint generated always as identity primary key, number ticket_number);
alter table invoices enable row level security;
alter table orders enable row level security;
alter table tickets enable row level security;
create policy invoices_isolation on invoices using (tenant_id = nullif(current_setting('app.current_tenant', true), '')::integer);
create policy orders_isolation on orders using (tenant_id = nullif(current_setting('app.current_tenant', true), '')::integer);
create policy tickets_isolation on tickets using (tenant_id = nullif(current_setting('app.current_tenant', true), '')::integer);
grant select, insert, update, delete on invoices, orders, tickets to app_user;
grant usage on sequence invoice_numbers, order_numbers, ticket_numbers to app_user;
select nextval('invoice_numbers'), nextval('order_numbers'), nextval('ticket_numbers');
`;

function dblinkTarget(target: Target): string {
  const url = new URL(target.connectionString);
  const host = url.searchParams.get('host') ?? url.hostname;
  return `host=${host} port=${url.port || 5432} dbname=${url.pathname.slice(1)} user=${decodeURIComponent(url.username)}`;
}

function fingerprint(connectionString: string): Promise<unknown> {
  return withClient(connectionString, async (client) => ({
    notes: (await client.query(`select * from notes order by 1, 2`)).rows,
    log: (await client.query(`select * from audit_log order by 1`)).rows,
    sequences: (await client.query(`select sequencename, last_value from pg_sequences order by 1`)).rows,
    locks: (await client.query(`select count(*)::int as n from pg_locks where locktype = 'advisory'`)).rows,
  }));
}

describe('a live database: effects behind domains, casts, user SQL and defaults are seen before anything runs (issue 21)', () => {
  let live: Target;
  let dir: string;
  let markers: { domain: string; cast: string };
  let before: unknown;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'rls-audit-effects-'));
    await chmod(dir, 0o777); // the server may run as another OS user
    markers = { domain: path.join(dir, 'domain-check-ran'), cast: path.join(dir, 'cast-ran') };
    live = await startEmbedded({ pgBin: PG15_BIN });
    await withClient(live.connectionString, async (client) => {
      await client.query('create extension dblink');
      await client.query(SCHEMA(markers, dblinkTarget(live)));
    });
    before = await fingerprint(live.connectionString);
  });
  afterAll(async () => {
    await live?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const audit = (...extra: string[]) => runCli(['run', '--database-url', live.connectionString, '--role', 'app_user', '--seed', '5', '--tenants', '2', '--rows', '3', '--quiet', ...extra]);

  it('does not call a reading function whose domain CHECK or cast runs a program, and says why', async () => {
    const run = await audit();
    expect(existsSync(markers.domain)).toBe(false);
    expect(existsSync(markers.cast)).toBe(false);
    const skipped = (name: string) => run.report!.probes.filter((probe) => probe.check === 'function-leak' && probe.relation.startsWith(`${name}(`)).map((probe) => [probe.outcome, probe.error]);
    expect(skipped('checked_notes')[0]).toEqual(['skipped', expect.stringMatching(/not called on a live database.*domain public\.checked_text, whose CHECK .*touch_domain.*COPY/)]);
    expect(skipped('labelled_notes')[0]).toEqual(['skipped', expect.stringMatching(/not called on a live database.*type public\.label, whose cast text -> label calls public\.to_label.*COPY/)]);
    expect(run.report!.summary.inconclusive.map((entry) => entry.relation)).toEqual(expect.arrayContaining(['checked_notes()', 'labelled_notes()']));
    expect(run.report!.probes.some((probe) => probe.check === 'function-leak' && probe.relation === 'my_notes()' && probe.outcome !== 'skipped')).toBe(true);
    expect(await fingerprint(live.connectionString)).toEqual(before);
  });

  it('refuses context SQL and scenario queries with effects (dblink, advisory locks, NOTIFY), exit 2, before anything runs', async () => {
    const dblink = await audit('--context-sql', `select set_config('app.current_tenant', $1, true), dblink_exec(${literal(dblinkTarget(live))}, 'insert into audit_log values (998, ''x'')')`);
    expect(dblink.code).toBe(2);
    expect(dblink.err).toMatch(/the context SQL .* is refused on this live database: it calls public\.dblink_exec, a volatile function in C/);
    const lock = await audit('--context-sql', "select set_config('app.current_tenant', $1, true), pg_advisory_lock(42)");
    expect(lock.code).toBe(2);
    expect(lock.err).toMatch(/refused on this live database: it calls pg_advisory_lock, a volatile built-in/);
    const nested = await audit('--context-sql', "select set_config('app.current_tenant', shout($1), true)");
    expect(nested.code).toBe(2);
    expect(nested.err).toMatch(/refused on this live database: it calls shout: it calls pg_notify/);

    const file = path.join(dir, 'scenario.yaml');
    await writeFile(file, 'queries:\n  - name: remote\n    sql: "select remote_log()"\n');
    const query = await runCli(['run', file, '--database-url', live.connectionString, '--role', 'app_user', '--quiet']);
    expect(query.code).toBe(2);
    expect(query.err).toMatch(/the query remote \(select remote_log\(\)\) is refused on this live database: .*dblink_exec/);
    expect(await fingerprint(live.connectionString)).toEqual(before);
  });

  it('accepts CALL set_tenant($1) as context SQL when the procedure is clean; refuses a setter that moves search_path', async () => {
    const call = await audit('--context-sql', 'call set_tenant($1)');
    expect(call.err).not.toMatch(/context SQL/);
    expect(call.report!.probes.filter((probe) => probe.check === 'read-isolation' && probe.relation === 'public.notes' && probe.outcome === 'pass').length).toBeGreaterThan(0);
    const path = await audit('--context-sql', 'select set_tenant_and_path($1)');
    expect(path.code).toBe(2);
    expect(path.err).toMatch(/the context SQL .* is refused on this live database: it calls set_tenant_and_path: it calls set_config\('search_path', \.\.\.\), which changes search_path/);
    expect(await fingerprint(live.connectionString)).toEqual(before);
  });

  it('does not seed or write a table whose column domain CHECK runs a program; audits the rest', async () => {
    await withClient(live.connectionString, (client) =>
      client.query(`create table labels (tenant_id integer not null references tenants (id), id integer primary key, caption checked_text);
        alter table labels enable row level security;
        create policy labels_isolation on labels using (tenant_id = nullif(current_setting('app.current_tenant', true), '')::integer);
        grant select, insert, update, delete on labels to app_user`),
    );
    try {
      const run = await audit('--fail-on', 'critical');
      expect(existsSync(markers.domain)).toBe(false);
      const relation = (name: string) => run.report!.relations.find((candidate) => candidate.name === name)?.seeding;
      expect(relation('public.labels')).toMatchObject({
        status: 'failed',
        rows: 0,
        reason: expect.stringMatching(/not inserted into on this live database: that would act outside the transaction.*the type of caption .*domain public\.checked_text, whose CHECK .*COPY/),
      });
      const writes = run.report!.probes.filter((probe) => probe.relation === 'public.labels' && probe.check === 'foreign-insert');
      expect(writes.map((probe) => [probe.outcome, probe.error])).toEqual([['skipped', expect.stringMatching(/INSERT would act outside the transaction/)]]);
      expect(run.report!.summary.inconclusive.find((entry) => entry.relation === 'public.labels')?.hint).toMatch(/--schema-from URL/);
      expect(relation('public.notes')?.status).toBe('seeded');
      expect(await fingerprint(live.connectionString)).toEqual(before);
    } finally {
      await withClient(live.connectionString, (client) => client.query('drop table labels'));
    }
  });

  it('sees every path to nextval before writing: a text default, a numeric key, a domain default; those tables are left out', async () => {
    await withClient(live.connectionString, (client) => client.query(SEQUENCES));
    const values = () => withClient(live.connectionString, async (client) => (await client.query(`select sequencename, last_value::text as value from pg_sequences order by 1`)).rows);
    try {
      const start = await values();
      const run = await audit('--fail-on', 'critical');
      expect(await values()).toEqual(start);
      const seeding = (name: string) => run.report!.relations.find((relation) => relation.name === name)?.seeding;
      expect(seeding('public.invoices')).toMatchObject({ status: 'failed', rows: 0, reason: expect.stringMatching(/advance a sequence.*the default of number .*nextval/) });
      expect(seeding('public.orders')).toMatchObject({ status: 'failed', rows: 0, reason: expect.stringMatching(/advance a sequence.*the default of id .*nextval/) });
      expect(seeding('public.tickets')).toMatchObject({ status: 'failed', rows: 0, reason: expect.stringMatching(/advance a sequence.*the type of number .*domain public\.ticket_number, whose default .*nextval/) });
      expect(seeding('public.notes')?.status).toBe('seeded');
      expect(run.report!.notes.join('\n')).not.toMatch(/sequences that moved/);
      expect(run.code).toBe(2);
    } finally {
      await withClient(live.connectionString, (client) => client.query('drop table invoices, orders, tickets; drop domain ticket_number; drop sequence invoice_numbers, order_numbers, ticket_numbers'));
    }
  });
});
