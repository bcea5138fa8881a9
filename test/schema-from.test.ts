import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { allFindings, PG15_BIN, runCli } from './helpers.js';

/**
 * A "production" PostgreSQL 15 server of its own (initdb + postgres from /usr/lib/postgresql/15/bin) that
 * logs every statement: --schema-from must send it nothing but reads.
 */
class LoggedServer {
  private child?: ChildProcess;
  private readonly dir = mkdtempSync(path.join(os.tmpdir(), 'rls-audit-source-'));
  log = '';

  get url(): string {
    return `postgresql://postgres:source-s3cret@localhost:5432/shop?host=${encodeURIComponent(this.dir)}`;
  }

  async start(): Promise<void> {
    const user = process.getuid?.() === 0 ? { uid: Number(execFileSync('id', ['-u', 'postgres']).toString()), gid: Number(execFileSync('id', ['-g', 'postgres']).toString()) } : undefined;
    if (user) chownSync(this.dir, user.uid, user.gid);
    execFileSync(path.join(PG15_BIN, 'initdb'), ['-D', path.join(this.dir, 'data'), '-U', 'postgres', '-A', 'trust', '--no-sync'], { ...user, stdio: 'ignore' });
    this.child = spawn(
      path.join(PG15_BIN, 'postgres'),
      ['-D', path.join(this.dir, 'data'), '-c', 'listen_addresses=', '-c', `unix_socket_directories=${this.dir}`, '-c', 'log_statement=all', '-c', 'log_line_prefix=%a|', '-c', 'fsync=off'],
      { ...user, stdio: ['ignore', 'ignore', 'pipe'] },
    );
    this.child.stderr!.on('data', (chunk: Buffer) => (this.log += chunk.toString()));
    for (let attempt = 0; ; attempt += 1) {
      const client = new pg.Client({ connectionString: this.url.replace('/shop?', '/postgres?') });
      client.on('error', () => undefined);
      try {
        await client.connect();
        await client.query('create database shop');
        await client.end();
        return;
      } catch (error) {
        await client.end().catch(() => undefined);
        if (attempt > 200) throw error;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    }
  }

  /** Statements the tools of --schema-from sent (application_name starts with pg_dump / rls-audit). */
  statementsOf(prefix: RegExp): string[] {
    return this.log
      .split('\n')
      .filter((line) => prefix.test(line.split('|')[0] ?? '') && /LOG:\s+statement: /.test(line))
      .map((line) => line.replace(/^.*?statement: /, ''));
  }

  async stop(): Promise<void> {
    if (this.child && this.child.exitCode === null) {
      await new Promise<void>((resolve) => {
        this.child!.once('exit', () => resolve());
        this.child!.kill('SIGINT');
      });
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

const SHOP = `
create role shop_app nologin;
create role shop_owner nologin;
create table tenants (id integer primary key, name text not null);
create table orders (tenant_id integer not null references tenants (id), id bigserial, total numeric not null, primary key (tenant_id, id));
alter table orders owner to shop_owner;
alter table orders enable row level security;
-- The leak --schema-from must find on the copy: every tenant sees every order.
create policy orders_read on orders for select using (true);
grant select on tenants to shop_app;
grant select, insert on orders to shop_app;
grant usage on sequence orders_id_seq to shop_app;
insert into tenants values (1, 'Acme'), (2, 'Globex');
insert into orders (tenant_id, total) values (1, 10), (2, 20);
`;

describe('--schema-from: audit a copy of a live database (issue 10)', () => {
  const source = new LoggedServer();

  beforeAll(async () => {
    await source.start();
    const client = new pg.Client({ connectionString: source.url });
    await client.connect();
    await client.query(SHOP);
    await client.end();
    source.log = '';
  });
  afterAll(async () => {
    await source.stop();
  });

  it('finds the leak on the copy, and the source sees only read queries', async () => {
    const run = await runCli(['run', '--schema-from', source.url, '--role', 'shop_app', '--tenant-column', 'tenant_id', '--seed', '3', '--tenants', '2', '--rows', '3']);
    expect(run.err).not.toMatch(/unexpected|source-s3cret/);
    expect(run.code).toBe(1);
    expect(run.report!.target.kind).toBe('embedded');
    expect(run.report!.target.description).toMatch(/copy of the schema, roles and grants of postgresql:\/\/postgres:\*\*\*\*\*@localhost/);
    expect(allFindings(run.report!.findings).some((finding) => finding.check === 'read-isolation' && finding.object.name === 'public.orders')).toBe(true);
    expect(JSON.stringify(run.report)).not.toContain('source-s3cret');

    const statements = source.statementsOf(/^(pg_dump|pg_dumpall|rls-audit)/);
    expect(statements.length).toBeGreaterThan(10);
    // Reads only: catalog SELECTs (some prepared), session settings, a READ ONLY transaction, ACCESS SHARE locks.
    const writes = statements.filter((statement) => !/^((select|set|show|begin|commit|rollback|start transaction|lock table .* in access share mode|savepoint|release|deallocate)\b|prepare \w+\(.*\) as|execute \w+\()/i.test(statement.trim()));
    expect(writes).toEqual([]);
    expect(statements.some((statement) => /^set transaction isolation level repeatable read, read only/i.test(statement) || /read only/i.test(statement))).toBe(true);
    // No statement of the audit itself (seeding, probes) reached the source.
    expect(statements.filter((statement) => /insert|update|delete|set_config\('app/i.test(statement) && !/^select/i.test(statement))).toEqual([]);

    // The source's rows are as they were.
    const client = new pg.Client({ connectionString: source.url });
    await client.connect();
    expect((await client.query('select tenant_id, id, total from orders order by 1, 2')).rows).toEqual([
      { tenant_id: 1, id: '1', total: '10' },
      { tenant_id: 2, id: '2', total: '20' },
    ]);
    await client.end();
  });

  it('refuses a schema file on the live database itself, and applies it to the copy with --schema-from', async () => {
    const migration = path.join(mkdtempSync(path.join(os.tmpdir(), 'rls-audit-migration-')), 'fix.sql');
    await import('node:fs/promises').then((fs) => fs.writeFile(migration, 'drop policy orders_read on orders;\ncreate policy orders_read on orders for select using (tenant_id = nullif(current_setting(\'app.current_tenant\', true), \'\')::integer);\n'));
    const direct = await runCli(['run', '--database-url', source.url, '--schema', migration, '--role', 'shop_app', '--quiet']);
    expect(direct.code).toBe(2);
    expect(direct.err).toMatch(/--schema-from URL --schema FILE/);
    const copy = await runCli(['run', '--schema-from', source.url, '--schema', migration, '--role', 'shop_app', '--tenant-column', 'tenant_id', '--seed', '3', '--tenants', '2', '--rows', '3', '--quiet']);
    expect(copy.err).toBe('');
    expect(allFindings(copy.report!.findings).filter((finding) => finding.check === 'read-isolation' && finding.object.name === 'public.orders')).toEqual([]);
    expect(readFileSync(migration, 'utf8')).toContain('orders_read');
  });
});



/**
 * A policy that calls a function of an extension PostgreSQL 15 has and the embedded PostgreSQL 18 does not
 * (old_snapshot was removed in 17): the copy cannot recreate it, and must not pass where the source leaks.
 */
const SUPPORT_DESK = `
create extension old_snapshot;
create role desk_app nologin;
create table tenants (id integer primary key, name text not null);
create table tickets (tenant_id integer not null references tenants (id), id bigserial, subject text not null, primary key (tenant_id, id));
alter table tenants enable row level security;
alter table tickets enable row level security;
create policy tenants_own on tenants for select using (id = nullif(current_setting('app.current_tenant', true), '')::integer);
create policy tickets_own on tickets using (tenant_id = nullif(current_setting('app.current_tenant', true), '')::integer);
-- The leak: while old_snapshot_threshold is off (the default) the mapping is empty, so every tenant reads every ticket.
create policy tickets_support on tickets for select using ((select count(*) from pg_old_snapshot_time_mapping()) = 0);
grant execute on function pg_old_snapshot_time_mapping() to desk_app;
grant select on tenants to desk_app;
grant select, insert, update, delete on tickets to desk_app;
grant usage on sequence tickets_id_seq to desk_app;
insert into tenants values (1, 'Acme'), (2, 'Globex');
insert into tickets (tenant_id, subject) values (1, 'printer'), (2, 'invoice');
`;

describe.skipIf(!existsSync('/usr/share/postgresql/15/extension/old_snapshot.control'))('--schema-from: what the copy cannot recreate (issue 21)', () => {
  const source = new LoggedServer();
  const common = ['--role', 'desk_app', '--tenant-column', 'tenant_id', '--seed', '3', '--tenants', '2', '--rows', '3'];

  beforeAll(async () => {
    await source.start();
    const client = new pg.Client({ connectionString: source.url });
    await client.connect();
    await client.query(SUPPORT_DESK);
    await client.end();
  });
  afterAll(async () => {
    await source.stop();
  });

  it('is inconclusive, naming the policy, the missing extension and the remedy, where --database-url finds the leak', async () => {
    const live = await runCli(['run', '--database-url', source.url, ...common, '--quiet']);
    expect(live.code).toBe(1);
    expect(allFindings(live.report!.findings).some((finding) => finding.check === 'read-isolation' && finding.object.name === 'public.tickets' && finding.severity === 'critical')).toBe(true);

    const copy = await runCli(['run', '--schema-from', source.url, ...common]);
    expect(copy.code).toBe(2);
    expect(copy.report!.summary.verdict).toBe('inconclusive');
    const reasons = copy.report!.summary.inconclusive;
    const missing = reasons.find((reason) => /policy tickets_support on public\.tickets/.test(reason.reason));
    expect(missing?.reason).toMatch(/extension old_snapshot/);
    expect(missing?.hint).toMatch(/--pg-bin .*old_snapshot.*--database-url/);
    // Every statement that failed is listed by object, in the report and on the terminal.
    for (const object of ['extension old_snapshot', 'comment on extension old_snapshot', 'policy tickets_support on public.tickets', 'grant on function public.pg_old_snapshot_time_mapping']) {
      expect(copy.report!.notes.some((note) => note.includes(`${object} was not recreated`))).toBe(true);
      expect(copy.err).toContain(`${object} was not recreated`);
    }
    expect(copy.out).toMatch(/inconclusive: policy tickets_support on public\.tickets/);

    // The remedy works: a copy made with PostgreSQL 15, which has the extension, finds the leak.
    const remedied = await runCli(['run', '--schema-from', source.url, '--pg-bin', PG15_BIN, ...common, '--quiet']);
    expect(remedied.code).toBe(1);
    expect(remedied.report!.notes.filter((note) => /not recreated/.test(note))).toEqual([]);
    expect(allFindings(remedied.report!.findings).some((finding) => finding.check === 'read-isolation' && finding.object.name === 'public.tickets')).toBe(true);
  });
});
