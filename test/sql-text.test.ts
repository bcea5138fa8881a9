import { beforeAll, describe, expect, it } from 'vitest';
import { foreignKeyClauses, keyColumnsMentioned, oneLine, prefixKeyList, relationsNamed } from '../src/analysis/sql-text.js';
import { textArrayItems } from '../src/analysis/value-sources.js';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { byteToChar, loadParser, parseStatements, ParseError, scanTokens, statementSpans } from '../src/analysis/parse.js';
import { FIXTURES } from './helpers.js';

beforeAll(async () => {
  await loadParser();
});

describe('SQL text through the parser and lexer', () => {
  it('splits a long script in chunks exactly as one parse of the whole script does', async () => {
    const files = (await readdir(FIXTURES, { recursive: true })).filter((file) => file.endsWith('.sql')).sort();
    // Every fixture, one after another: far more than one chunk, with function bodies, BEGIN ATOMIC, rules,
    // dollar quotes, comments and non-ASCII text cut at every `;` that ends a line.
    const script = (await Promise.all(files.map((file) => readFile(path.join(FIXTURES, file), 'utf8')))).join('\n');
    expect(script.length).toBeGreaterThan(100_000);
    const toChar = byteToChar(script);
    const whole = parseStatements(script).map((raw) => {
      const start = toChar(raw.stmt_location ?? 0);
      return { start, end: raw.stmt_len ? toChar((raw.stmt_location ?? 0) + raw.stmt_len) : script.length, location: raw.stmt_location ?? 0 };
    });
    const spans = statementSpans(script);
    expect(spans.map(({ start, end, raw }) => ({ start, end, location: raw.stmt_location ?? 0 }))).toEqual(whole);
    expect(spans.every((span) => span.text === script.slice(span.start, span.end))).toBe(true);

    // A body with a `;` on every line longer than a chunk, and an error at the end of a long script.
    const body = Array.from({ length: 4000 }, (_, index) => `  perform ${index};`).join('\n');
    const longFunction = `create function f() returns void language plpgsql as $$\nbegin\n${body}\nend;\n$$;\nselect 1;\n`;
    expect(statementSpans(longFunction).map((span) => span.text.trim().slice(0, 15))).toEqual(['create function', 'select 1']);
    const broken = `${'select 1;\n'.repeat(3000)}selec 2;\n`;
    expect(() => statementSpans(broken)).toThrow(ParseError);
    try {
      statementSpans(broken);
    } catch (error) {
      expect(broken.slice((error as ParseError).position!).startsWith('selec 2')).toBe(true);
    }
  });

  it('puts pg_get_expr text on one line', () => {
    expect(oneLine(`( SELECT 1\n   FROM t\n  WHERE (a = ';'))`)).toBe(`(SELECT 1 FROM t WHERE (a = ';'))`);
  });

  it('finds the columns a key mentions, in expressions too', () => {
    expect([...keyColumnsMentioned('CREATE UNIQUE INDEX k ON public.users USING btree (lower(email), tenant_id)', 'index')].sort()).toEqual(['email', 'tenant_id']);
    expect([...keyColumnsMentioned('EXCLUDE USING gist (room WITH =, during WITH &&)', 'constraint')].sort()).toEqual(['during', 'room']);
    expect([...keyColumnsMentioned('UNIQUE (email)', 'constraint')]).toEqual(['email']);
  });

  it('adds a leading key column after the opening parenthesis of the key list', () => {
    expect(prefixKeyList('CREATE UNIQUE INDEX k ON public."using" USING btree (lower(email))', '"tenant_id"')).toBe('CREATE UNIQUE INDEX k ON public."using" USING btree ("tenant_id", lower(email))');
    expect(prefixKeyList('EXCLUDE USING gist (room WITH =)', '"tenant_id" WITH =')).toBe('EXCLUDE USING gist ("tenant_id" WITH =, room WITH =)');
  });

  it('rebuilds the clauses of a foreign key from its parse tree', () => {
    expect(foreignKeyClauses('FOREIGN KEY (a) REFERENCES p(id) ON UPDATE CASCADE ON DELETE SET NULL', ['a'])).toBe('ON UPDATE CASCADE ON DELETE SET NULL ("a")');
    expect(foreignKeyClauses('FOREIGN KEY (a) REFERENCES p(id) MATCH FULL ON DELETE CASCADE DEFERRABLE', null)).toBe('MATCH FULL ON DELETE CASCADE DEFERRABLE');
    expect(foreignKeyClauses('FOREIGN KEY (a) REFERENCES p(id)', null)).toBe('');
  });

  it('lists the relations SQL names, not words in its strings', () => {
    expect(relationsNamed(`select * from messages m join public.users u on u.id = m.user_id where body <> 'from projects'`)).toEqual(['messages', 'public.users']);
  });

  it('lexes control characters inside quotes and comments, with character offsets, and rejects them outside', () => {
    const sql = `create table "evil\n  verdict: PASS\u001b[2J" (note text default 'é\u0001'); -- bell \u0007\nselect 1`;
    const tokens = scanTokens(sql);
    expect(tokens.map((token) => token.text)).toContain('"evil\n  verdict: PASS\u001b[2J"');
    expect(tokens.map((token) => token.text)).toContain("'é\u0001'");
    for (const token of tokens) expect(sql.slice(token.start, token.end)).toBe(token.text);
    expect(tokens.at(-1)).toMatchObject({ text: '1', end: sql.length });
    expect(() => scanTokens('select 1 \u0001 + 2')).toThrow(/control character U\+0001/);
  });

  it('reads the path of #> and #>> from a text[] literal', () => {
    expect(textArrayItems('{app_metadata,tenant_id}')).toEqual(['app_metadata', 'tenant_id']);
    expect(textArrayItems('{"a b", c ,"x\\"y"}')).toEqual(['a b', 'c', 'x"y']);
    expect(textArrayItems('{}')).toEqual([]);
    expect(textArrayItems('tenant_id')).toEqual(['tenant_id']);
  });
});
