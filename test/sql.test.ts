import { beforeAll, describe, expect, it } from 'vitest';
import { createRequire } from 'node:module';
import { loadParser, parseStatements, scanTokens } from '../src/analysis/parse.js';
import { ident, inlineParameters, lineComment, literal, qualifiedIdent, textArrayLiteral } from '../src/target/sql.js';

/** How node-postgres serialises a parameter (an array: as a text[] literal). */
const { prepareValue } = createRequire(import.meta.url)('pg/lib/utils.js') as { prepareValue: (value: unknown) => unknown };

describe('SQL text helpers', () => {
  beforeAll(loadParser); // inlineParameters reads placeholders with the lexer
  it('always quote identifiers and escape quotes in them', () => {
    expect(ident('users')).toBe('"users"');
    expect(ident('we"ird')).toBe('"we""ird"');
    expect(qualifiedIdent('public.my table')).toBe('"public"."my table"');
  });

  it('write text[] literals exactly as node-postgres serialises an array parameter', () => {
    const items = ['plain', 'with "quotes"', 'back\\slash', null, 'NULL', '', ' padded ', '{braces},commas', 'é\u0007'];
    expect(textArrayLiteral(items)).toBe(prepareValue(items));
    expect(textArrayLiteral([])).toBe('{}');
  });

  it('inline parameters as literals for evidence, outside string literals only', () => {
    expect(literal("O'Brien")).toBe("'O''Brien'");
    expect(inlineParameters("select set_config('a.$1', $1, true) where x = $2 and y = $3", ["it's", null])).toBe(
      "select set_config('a.$1', 'it''s', true) where x = null and y = $3",
    );
    expect(inlineParameters('select $10, $1', ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j'])).toBe("select 'j', 'a'");
  });
});

/** Every character that ends, opens or escapes something in SQL text, control characters but NUL, and characters outside ASCII. */
const HOSTILE = ['\n', '\r', '--', '/*', '*/', "'", '"', '\\', "\\'", '$$', '$a$', ';', '\t', '\u0001', '\u001b', '\u007f', 'é', '租户', '😀', '\u200b', "E'", 'U&"', '%I'];

describe('quoting for every character', () => {
  beforeAll(loadParser);

  /** A 63-byte name (PostgreSQL's limit) of multibyte characters, with every hostile piece in it. */
  const longest = (() => {
    let name = HOSTILE.join('');
    while (Buffer.byteLength(name) > 63) name = [...name].slice(0, -1).join('');
    return name.padEnd(name.length + 63 - Buffer.byteLength(name), 'x');
  })();

  it.each([...HOSTILE.map((piece) => `a${piece}b`), HOSTILE.join(''), longest])('%j reads back as itself, through PostgreSQL\'s parser, as a name and as a value', (text) => {
    const statements = parseStatements(`select ${literal(text)} as ${ident(text)} from ${qualifiedIdent(`${text}.${text}`)}`);
    expect(statements).toHaveLength(1);
    const select = statements[0]!.stmt as { SelectStmt: { targetList: { ResTarget: { name: string; val: { A_Const: { sval: { sval: string } } } } }[]; fromClause: { RangeVar: { schemaname: string; relname: string } }[] } };
    expect(select.SelectStmt.targetList[0]!.ResTarget.name).toBe(text);
    expect(select.SelectStmt.targetList[0]!.ResTarget.val.A_Const.sval.sval).toBe(text);
    expect(select.SelectStmt.fromClause[0]!.RangeVar).toMatchObject({ schemaname: text, relname: text });
  });

  it('writes a value with a backslash as an escape string, which reads the same whatever standard_conforming_strings is', () => {
    expect(literal('a\\b')).toBe("E'a\\\\b'");
    expect(literal("it's")).toBe("'it''s'");
    expect(Buffer.byteLength(longest)).toBe(63);
  });

  it('keeps a name with line breaks inside the comment of evidence a reader pastes', () => {
    const name = "E'm\n; commit; drop table audit_log; --'\r\nx";
    const tokens = scanTokens(`select 1;  ${lineComment(name)}\nselect 2;`);
    expect(tokens.filter((token) => token.tokenName === 'SQL_COMMENT').map((token) => token.text)).toEqual([lineComment(name)]);
    expect(tokens.filter((token) => token.tokenName !== 'SQL_COMMENT').map((token) => token.text)).toEqual(['select', '1', ';', 'select', '2', ';']);
  });

  it('refuses a NUL, which PostgreSQL cannot hold and which would end the text sent', () => {
    expect(() => ident('a\u0000b')).toThrow(/NUL/);
    expect(() => literal('a\u0000b')).toThrow(/NUL/);
  });
});
