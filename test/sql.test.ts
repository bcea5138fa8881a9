import { describe, expect, it } from 'vitest';
import { createRequire } from 'node:module';
import { ident, inlineParameters, literal, qualifiedIdent, textArrayLiteral } from '../src/sql.js';

/** How node-postgres serialises a parameter (an array: as a text[] literal). */
const { prepareValue } = createRequire(import.meta.url)('pg/lib/utils.js') as { prepareValue: (value: unknown) => unknown };

describe('SQL text helpers', () => {
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
