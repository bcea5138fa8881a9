import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { applySchemaFiles } from '../src/target/schema-files.js';
import { startEmbedded } from '../src/target/embedded.js';
import type { Target } from '../src/target/types.js';

let target: Target;
let client: pg.Client;

beforeAll(async () => {
  target = await startEmbedded();
  client = new pg.Client({ connectionString: target.connectionString });
  await client.connect();
}, 60_000);

afterAll(async () => {
  await client?.end();
  await target?.close();
});

/** Apply the files as the CLI does on its own cluster (one message per call, autocommit), keeping each message sent. */
async function apply(files: { file: string; sql: string }[]): Promise<string[]> {
  const sent: string[] = [];
  await applySchemaFiles(files, (sql) => {
    sent.push(sql);
    return client.query(sql);
  });
  return sent;
}

const tables = async (prefix: string) =>
  (await client.query<{ name: string }>(`select relname::text as name from pg_class where relkind = 'r' and relname like $1 order by 1`, [`${prefix}%`])).rows.map((row) => row.name);

describe('schema files in few messages', () => {
  it('sends what may share a transaction together, and runs alone what may not, with the same result as psql', async () => {
    const first = [
      'create table g_a (id int primary key, mood text);',
      "create type g_mood as enum ('calm');",
      "alter type g_mood add value 'glad';",
      // Usable only once the ADD VALUE is committed: the group ends after it.
      "create table g_b (id int, m g_mood default 'glad');",
      'create index concurrently g_b_m on g_b (m);',
      'begin;',
      'create table g_c (id int);',
      'insert into g_c values (1);',
      'commit;',
      'vacuum g_a;',
      'create table g_d (id int);',
      'create table g_e (id int) -- a line comment and no newline at the end of the file',
    ].join('\n');
    const sent = await apply([
      { file: '0001.sql', sql: first },
      { file: '0002.sql', sql: 'create table g_f (id int);\ncreate table g_g (id int);\n' },
    ]);
    expect(await tables('g_')).toEqual(['g_a', 'g_b', 'g_c', 'g_d', 'g_e', 'g_f', 'g_g']);
    const shape = sent.map((message) => message.split('\n;\n').map((statement) => statement.trim().split(/\s+/).slice(0, 2).join(' ')));
    expect(shape).toEqual([
      ['create table', 'create type', 'alter type'],
      ['create table'],
      ['create index'],
      ['begin'],
      ['create table'],
      ['insert into'],
      ['commit'],
      ['vacuum g_a'],
      ['create table', 'create table', 'create table', 'create table'],
    ]);
  });

  it('a statement that fails inside a group is named by file and line, and what came before it is kept, as psql keeps it', async () => {
    const sql = ['create table h_a (id int);', 'create table h_b (id int);', '', 'insert into h_nowhere values (1);', 'create table h_c (id int);'].join('\n');
    const sent: string[] = [];
    await expect(
      applySchemaFiles([{ file: 'migrations/0003.sql', sql }], (text) => {
        sent.push(text);
        return client.query(text);
      }),
    ).rejects.toThrow(/^migrations\/0003\.sql:4: relation "h_nowhere" does not exist/);
    // The group was sent once, rolled back whole, then run statement by statement up to the failure.
    expect(sent).toHaveLength(4);
    expect(sent[0]!.split('\n;\n')).toHaveLength(4);
    expect(await tables('h_')).toEqual(['h_a', 'h_b']);
  });
});
