import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadParser } from '../src/analysis/parse.js';
import { introspect } from '../src/catalog/introspect.js';
import { planTenancy } from '../src/plan/tenancy.js';
import { scenarioSchema } from '../src/scenario/schema.js';
import { seed } from '../src/seed/seed.js';
import { storedText } from '../src/seed/stored-text.js';
import { runScript, UnsafeSqlError } from '../src/target/sent-sql.js';
import { AuditSession } from '../src/target/session.js';
import type { Finding } from '../src/findings/finding.js';
import { inOrder, type Attempt } from '../src/probes/schedule.js';
import { ident, literal } from '../src/target/sql.js';
import { startEmbedded } from '../src/target/embedded.js';
import type { Target } from '../src/target/types.js';

/** The audit's pipelined connection: statements sent together, outcomes read in order, failures undone. */
let target: Target;

beforeAll(async () => {
  await loadParser();
  target = await startEmbedded();
  const admin = new pg.Client({ connectionString: target.connectionString });
  await admin.connect();
  await admin.query(`
    create table numbers (n int not null);
    create role app_user nologin;
    create table tenants (id int primary key, name text not null);
    -- An expression index the catalog cannot tie to a column: the seeder's first insert of many rows per tenant fails.
    create table a_unique (tenant_id int not null references tenants (id), id int generated always as identity primary key, note text);
    create unique index a_one_per_tenant on a_unique ((tenant_id + 0));
    -- Independent of a_unique: its insert is sent behind a_unique's, meets the transaction that insert aborted, and is sent again.
    create table b_plain (tenant_id int not null references tenants (id), id int generated always as identity primary key, note text);
    alter table a_unique enable row level security;
    alter table b_plain enable row level security;
    create policy a_tenant on a_unique using (tenant_id = current_setting('app.current_tenant', true)::int);
    create policy b_tenant on b_plain using (tenant_id = current_setting('app.current_tenant', true)::int);
    grant select, insert, update, delete on a_unique, b_plain to app_user;
  `);
  await admin.end();
}, 60_000);

afterAll(async () => {
  await target?.close();
});

async function withSession<T>(work: (session: AuditSession) => Promise<T>): Promise<T> {
  const session = await AuditSession.open(target.connectionString);
  try {
    return await work(session);
  } finally {
    await session.end();
  }
}

describe('the pipelined session', () => {
  it('sendKept: a statement sent behind one that failed never ran; the failure is undone before anything else is sent', async () => {
    await withSession(async (session) => {
      const first = session.sendKept('insert into numbers values (1)');
      const failing = session.sendKept('insert into numbers values (null)');
      const behind = session.sendKept('insert into numbers values (3)');
      // Sent without reading any outcome: it waits until the failure above has been rolled back.
      const count = await session.query('select count(*)::int as count from numbers');
      expect(count.rows).toEqual([{ count: '1' }]);
      expect((await first()).rowCount).toBe(1);
      await expect(failing()).rejects.toMatchObject({ code: '23502' });
      await expect(behind()).rejects.toMatchObject({ code: '25P02' });
      expect((await session.sendKept('insert into numbers values (4)')()).rowCount).toBe(1);
      expect((await session.query('select array_agg(n order by n)::text as numbers from numbers')).rows).toEqual([{ numbers: '{1,4}' }]);
    });
  });

  it('rolledBack: statements read after one round trip, nothing kept, and nothing may be sent after the rollback', async () => {
    await withSession(async (session) => {
      const inserted = await session.rolledBack(async () => {
        const insert = session.send('insert into numbers values (7), (8)');
        const count = session.send('select count(*)::int as count from numbers');
        return async () => [(await insert).rowCount, (await count).rows[0]!.count];
      });
      expect(inserted).toEqual([2, '2']);
      expect((await session.query('select count(*)::int as count from numbers')).rows).toEqual([{ count: '0' }]);
      await expect(session.rolledBack(async () => async () => session.send('select 1'))).rejects.toThrow(/was sent after the rollback of savepoint/);
      // The session goes on.
      expect((await session.query('select 1 as one')).rows).toEqual([{ one: '1' }]);
    });
  });

  it('rolledBack units called together go out in one write, one after the other: each sees only its own work, and a failing one spoils none of the others', async () => {
    await withSession(async (session) => {
      const stream = (session.client as unknown as { connection: { stream: { _write: (...args: unknown[]) => unknown; _writev: (...args: unknown[]) => unknown } } }).connection.stream;
      let writes = 0;
      const [write, writev] = [stream._write, stream._writev];
      stream._write = (...args) => (writes++, write.apply(stream, args));
      stream._writev = (...args) => (writes++, writev.apply(stream, args));
      const order: string[] = [];
      const unit = (value: string) =>
        session.rolledBack(async () => {
          const insert = session.send(`insert into numbers values (${value})`);
          const count = session.send('select count(*)::int as count from numbers');
          return async () => {
            await insert;
            order.push(value);
            return (await count).rows[0]!.count;
          };
        });
      const units = ['1', '2', 'null', '4', '5'].map(unit);
      // Called with the units outstanding: sent only once every unit is done.
      const after = session.query('select count(*)::int as count from numbers').then((result) => (order.push('query'), result.rows[0]!.count));
      const outcomes = await Promise.allSettled(units);
      expect(outcomes.map((outcome) => (outcome.status === 'fulfilled' ? outcome.value : (outcome.reason as { code?: string }).code))).toEqual(['1', '1', '23502', '1', '1']);
      expect(await after).toBe('0');
      // Every unit's outcome was read before the query went out.
      expect(order.slice(0, -1).sort()).toEqual(['1', '2', '4', '5']);
      expect(order.at(-1)).toBe('query');
      // The five units in one write, the query in a second.
      expect(writes).toBe(2);
      stream._write = write;
      stream._writev = writev;
    });
  });

  it('inOrder: attempts run at once, their records taken in order up to the first finding, and none is left running', async () => {
    await withSession(async (session) => {
      const recorded: number[] = [];
      const finished: number[] = [];
      const attempt = async (value: number): Promise<Attempt> => {
        const count = await session.rolledBack(async () => {
          const insert = session.send(`insert into numbers values (${value})`);
          const read = session.send('select count(*)::int as count from numbers');
          return async () => (await insert, (await read).rows[0]!.count);
        });
        finished.push(value);
        const records = [() => recorded.push(value)];
        return value === 2 ? { records, findings: [{ check: 'blind-delete', severity: 'high', message: `found by ${value} (${count} row)` } as Finding] } : { records };
      };
      const found = await inOrder([1, 2, 3], attempt);
      expect(found.map((finding) => finding.message)).toEqual(['found by 2 (1 row)']);
      expect(recorded).toEqual([1, 2]);
      // An attempt marked last ends the taking as a finding does, with nothing found.
      recorded.length = 0;
      const none = await inOrder([4, 5, 6], async (value): Promise<Attempt> => ({ records: [() => recorded.push(value)], last: value === 5 }));
      expect(none).toEqual([]);
      expect(recorded).toEqual([4, 5]);
      // The third ran (rolled back) and was waited for: the next statement meets no unit of it.
      expect(finished.sort()).toEqual([1, 2, 3]);
      expect((await session.query('select count(*)::int as count from numbers')).rows).toEqual([{ count: '0' }]);
    });
  });

  it('the savepoint a unit rolled back to is taken over by the next unit, and released before anything else is sent: what runs between units is kept', async () => {
    await withSession(async (session) => {
      const sent: string[] = [];
      const query = session.client.query.bind(session.client) as (config: string | { text: string }) => Promise<unknown>;
      (session.client as unknown as { query: typeof query }).query = (config) => (sent.push(typeof config === 'string' ? config : config.text), query(config));
      const unit = () => session.rolledBack(async () => {
        const insert = session.send('insert into numbers values (9)');
        return async () => (await insert).rowCount;
      });
      await unit();
      await unit();
      await session.sendKept('insert into numbers values (10)')();
      await unit();
      await session.savepoint(() => session.query('insert into numbers values (11)'), true);
      await unit();
      expect((await session.query('select array_agg(n order by n)::text as numbers from numbers')).rows).toEqual([{ numbers: '{10,11}' }]);
      // One savepoint for the first two units, released before the kept insert; one more for each unit after a kept write.
      expect(sent.filter((text) => /^(savepoint|release|rollback to)/.test(text)).map((text) => text.replace(/rls_audit_\d+/, 'sp'))).toEqual([
        'savepoint sp', 'rollback to savepoint sp', 'rollback to savepoint sp', 'release savepoint sp',
        'savepoint sp', 'release savepoint sp',
        'savepoint sp', 'rollback to savepoint sp', 'release savepoint sp',
        'savepoint sp', 'release savepoint sp',
        'savepoint sp', 'rollback to savepoint sp', 'release savepoint sp',
      ]);
    });
  });

  it('savepoint: the work goes out behind the savepoint without waiting, and a failing prelude is the error reported, not the work it aborted', async () => {
    await withSession(async (session) => {
      await expect(session.savepoint(() => session.query('select 1 as one'), false, ['set local role rls_audit_no_such_role'])).rejects.toMatchObject({ code: '22023' });
      expect((await session.savepoint(() => session.query('select 2 as two'))).rows).toEqual([{ two: '2' }]);
    });
  });

  it('refuses, before sending, any text with a comment or a second statement, and sends the rest one statement per message', async () => {
    await withSession(async (session) => {
      const name = "E'm\n; commit; drop table numbers; --'";
      for (const text of [`select 1 -- ${name}`, `select 1 /* ${name} */`, 'select 1; drop table numbers', `select 1 as "x"\n; commit; drop table numbers; --`]) {
        await expect(session.query(text)).rejects.toThrow(/internal error: the audit refused to send SQL that (holds a comment|holds 2 statements|holds 3 statements)/);
        expect(() => session.send(text)).not.toThrow();
        await expect(session.send(text)).rejects.toBeInstanceOf(UnsafeSqlError);
      }
      // Quoted, the same characters are a name: one statement, sent.
      expect((await session.query(`select 1 as ${ident(name)}`)).rows).toEqual([{ [name]: '1' }]);
      expect((await session.query(`select ${literal(name)} as text, ${literal('a\\b')} as backslash`)).rows).toEqual([{ text: name, backslash: 'a\\b' }]);
      // The connection's own query is guarded too; only the user's scripts bypass it.
      expect(() => session.client.query('select 1; drop table numbers')).toThrow(UnsafeSqlError);
      await expect(runScript(session.client, 'select 1; select 2')).resolves.toBeUndefined();
      // The user's SQL goes with its comments as spaces.
      expect((await session.userQuery('select 1 as one -- the application\'s comment')).rows).toEqual([{ one: '1' }]);
      expect((await session.query(`select count(*)::int as n from pg_tables where tablename = 'numbers'`)).rows).toEqual([{ n: '1' }]);
    });
  });

  it('seeding: an insert sent ahead behind one that fails is sent again, and the ledger is what the database holds', async () => {
    await withSession(async (session) => {
      const catalog = await introspect(session.client);
      const scenario = scenarioSchema.parse({ schema: ['unused.sql'], role: 'app_user', setting: 'app.current_tenant' });
      const plan = planTenancy(catalog, scenario);
      expect(plan.seedOrder.indexOf('public.b_plain')).toBe(plan.seedOrder.indexOf('public.a_unique') + 1);
      const seeded = await seed(session, catalog, plan, { tenants: 3, rows: 10, seed: 3 });
      const b = seeded.results.find((result) => result.relation === 'public.b_plain')!;
      expect(b).toMatchObject({ status: 'seeded', rows: 30 });
      for (const name of ['a_unique', 'b_plain']) {
        const stored = (await session.query(`select tenant_id::text as tenant, count(*)::text as count from ${name} group by 1 order by 1`)).rows;
        expect(stored).toEqual(seeded.tenants.map((tenant) => ({ tenant: tenant.id, count: String(seeded.ledger.count(`public.${name}`, tenant.id)) })).sort((x, y) => x.tenant!.localeCompare(y.tenant!)));
      }
      // One row per tenant fits the index: the seeder learned it from the failed insert.
      expect(seeded.ledger.count('public.a_unique')).toBeGreaterThan(0);
    });
  });

  it('seeding: the stored text of dates and times sent is known without reading it back, exactly as PostgreSQL prints it', async () => {
    await withSession(async (session) => {
      const values = ['2024-03-05T10:20:30.000Z', '2024-03-05T10:20:30.500Z', '1999-12-31T23:59:59.123Z', '0001-01-01T00:00:00.000Z', '9999-12-31T23:59:59.000Z'];
      for (const zone of ['UTC', 'Etc/UTC', 'Europe/Berlin']) {
        await session.query(`set local timezone = '${zone}'`);
        const style = { iso: true, utc: zone !== 'Europe/Berlin' };
        for (const value of values) {
          const printed = (await session.query('select $1::text::timestamptz::text as tz, $1::text::timestamp::text as ts, $2::text::date::text as d', [value, value.slice(0, 10)])).rows[0]!;
          expect(storedText('timestamptz', value, style) ?? printed.tz).toBe(printed.tz);
          expect(storedText('timestamp', value, style)).toBe(printed.ts);
          expect(storedText('date', value.slice(0, 10), style)).toBe(printed.d);
        }
      }
      // What cannot be known is read back: another zone, another DateStyle, year 0 (1 BC), another shape.
      expect(storedText('timestamptz', values[0]!, { iso: true, utc: false })).toBeUndefined();
      expect(storedText('timestamp', values[0]!, { iso: false, utc: true })).toBeUndefined();
      expect(storedText('timestamp', '0000-06-01T00:00:00.000Z', { iso: true, utc: true })).toBeUndefined();
      expect(storedText('timestamptz', '2024-03-05 10:20:30+02', { iso: true, utc: true })).toBeUndefined();
      expect(storedText('numeric', '1.50', { iso: true, utc: true })).toBeUndefined();
    });
  });
});

describe('user SQL on the audit session', () => {
  it('stops the audit when user SQL moves search_path, which later statements would resolve names through (issue 21)', async () => {
    const session = await AuditSession.open(target.connectionString);
    try {
      await expect(session.userQuery(`select set_config('search_path', 'pg_temp, public', true)`, [], 'the context SQL')).rejects.toThrow(
        /the context SQL \(select set_config\('search_path', 'pg_temp, public', true\)\) changed search_path \("\$user", public -> pg_temp, public\).*audit stopped/,
      );
      expect((await session.userQuery(`select set_config('app.current_tenant', '1', true) as tenant`)).rows).toEqual([{ tenant: '1' }]);
    } finally {
      await session.end();
    }
  });
});
