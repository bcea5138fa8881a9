import { beforeAll, describe, expect, it } from 'vitest';
import { loadParser } from '../src/analysis/index.js';
import { parseExpression } from '../src/analysis/parse.js';
import { constantsOf, toExpr } from '../src/analysis/expression.js';

const constants = (expression: string) => constantsOf(toExpr(parseExpression(expression)));

beforeAll(async () => {
  await loadParser();
});

describe('the constants a branch shows (candidate tenant ids for coverage)', () => {
  it('skips setting names, through casts, and NULL, booleans and the empty string', () => {
    expect(constants("current_setting('app.tenant'::text, true) = '42'::text")).toEqual(['42']);
    expect(constants("pg_catalog.current_setting(('app.t')::text) = 'q'")).toEqual(['q']);
    expect(constants("set_config('app.x', '5', true) is not null")).toEqual(['5']);
    expect(constants("x = '' or y is null or z = true or w = false or v = 0 or u = 1.5 or s = -3")).toEqual(['0', '1.5', '-3']);
  });

  it('finds constants in lists, CASE and sub-selects as they are printed (not LIMIT)', () => {
    expect(constants('tenant_id = any (array[1, 2, 3])')).toEqual(['1', '2', '3']);
    expect(constants("tenant_id in (select t.id from tenants t where t.name = 'acme' limit 1)")).toEqual(['acme']);
    expect(constants("case when a = 'x' then b else 'y' end = 'z'")).toEqual(['x', 'y', 'z']);
    // Another function's first argument is a value like any other.
    expect(constants("coalesce(a, 'd') = nullif(b, 'e')")).toEqual(['d', 'e']);
  });
});
