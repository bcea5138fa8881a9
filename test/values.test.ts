import { beforeAll, describe, expect, it } from 'vitest';
import { readCheck } from '../src/analysis/constraints.js';
import { loadParser } from '../src/analysis/parse.js';
import type { Column } from '../src/catalog/types.js';
import { columnRules as rulesOf } from '../src/seed/column-rules.js';
import { columnValue, createFaker, makeCanary, tenantIds } from '../src/seed/values.js';

beforeAll(loadParser);

/** Rules from CHECK definitions as pg_get_constraintdef prints them. */
const columnRules = (target: Column, checks: string[]) => rulesOf(target, [...checks, ...target.domainChecks].map((definition, index) => readCheck(`c${index}`, definition)));

function column(overrides: Partial<Column>): Column {
  return {
    name: 'value', type: 'text', baseType: 'text', category: 'S', isArray: false, notNull: true, default: null, identity: null, generated: false,
    enumValues: null, maxLength: null, numericPrecision: null, numericScale: null, domainChecks: [], ...overrides,
  };
}

const context = { serial: 1, canary: 'zqtest01', unique: false };

describe('columnRules reads CHECK constraints as pg_get_constraintdef prints them', () => {
  it('IN-lists on text and varchar', () => {
    expect(columnRules(column({ name: 'status' }), ["CHECK ((status = ANY (ARRAY['open'::text, 'closed'::text])))"]).allowed).toEqual(['open', 'closed']);
    expect(
      columnRules(column({ name: 'kind', baseType: 'varchar' }), ["CHECK (((kind)::text = ANY ((ARRAY['a'::character varying, 'it''s'::character varying])::text[])))"]).allowed,
    ).toEqual(['a', "it's"]);
  });

  it('numeric bounds, between, and exclusive bounds', () => {
    const between = columnRules(column({ name: 'quantity', baseType: 'int4', category: 'N' }), ['CHECK (((quantity >= 1) AND (quantity <= 100)))']);
    expect([between.min, between.max]).toEqual([1, 100]);
    const exclusive = columnRules(column({ name: 'amount', baseType: 'numeric', category: 'N' }), ["CHECK ((amount > (0)::numeric))"]);
    expect(exclusive.min).toBeGreaterThan(0);
    expect(exclusive.min).toBeLessThanOrEqual(0.01);
  });

  it('lengths, emptiness and domains', () => {
    const title = columnRules(column({ name: 'title' }), ['CHECK (((char_length(title) >= 1) AND (char_length(title) <= 200)))']);
    expect([title.minLength, title.maxLength]).toEqual([1, 200]);
    expect(columnRules(column({ name: 'name' }), ["CHECK ((name <> ''::text))"]).excluded).toEqual(['']);
    expect(columnRules(column({ name: 'name' }), ['CHECK ((length(btrim(name)) > 0))']).minLength).toBe(1);
    const domain = columnRules(column({ name: 'score', baseType: 'int4', category: 'N', domainChecks: ['CHECK ((score >= 0) AND (score <= 10))'] }), []);
    expect([domain.min, domain.max]).toEqual([0, 10]);
  });

  it('does not confuse a column with one whose name contains it', () => {
    expect(columnRules(column({ name: 'id' }), ["CHECK ((paid = ANY (ARRAY['y'::text])))"]).allowed).toBeNull();
  });
});

describe('columnValue', () => {
  const faker = createFaker(1);

  it('puts the canary in text and honours varchar length', () => {
    const value = columnValue(faker, column({ name: 'title', baseType: 'varchar', maxLength: 30 }), columnRules(column({ name: 'title', maxLength: 30 }), []), context)!;
    expect(value).toContain('zqtest01');
    expect(value.length).toBeLessThanOrEqual(30);
  });

  it('keeps values inside CHECK bounds and IN-lists', () => {
    const quantity = column({ name: 'quantity', baseType: 'int4', category: 'N' });
    const rules = columnRules(quantity, ['CHECK (((quantity >= 1) AND (quantity <= 100)))']);
    for (let serial = 0; serial < 200; serial += 1) {
      const value = Number(columnValue(faker, quantity, rules, { ...context, serial }));
      expect(value).toBeGreaterThanOrEqual(1);
      expect(value).toBeLessThanOrEqual(100);
    }
    const status = column({ name: 'status' });
    expect(['open', 'closed']).toContain(columnValue(faker, status, columnRules(status, ["CHECK ((status = ANY (ARRAY['open'::text, 'closed'::text])))"]), context));
  });

  it('makes unique columns unique', () => {
    const email = column({ name: 'email' });
    const values = new Set(Array.from({ length: 500 }, (_, serial) => columnValue(faker, email, columnRules(email, []), { serial, canary: 'zqtest01', unique: true })));
    expect(values.size).toBe(500);
    for (const value of values) expect(value).toMatch(/^[a-z0-9.]+@example\.com$/);
  });

  it('builds array literals, json with the canary, and typed scalars', () => {
    const tags = column({ name: 'tags', type: 'text[]', isArray: true });
    expect(columnValue(faker, tags, columnRules(tags, []), context)).toMatch(/^\{".*"\}$/);
    const settings = column({ name: 'settings', baseType: 'jsonb', category: 'U' });
    expect(JSON.parse(columnValue(faker, settings, columnRules(settings, []), context)!).note).toContain('zqtest01');
    expect(columnValue(faker, column({ name: 'id', baseType: 'uuid', category: 'U' }), columnRules(column({}), []), context)).toMatch(/^[0-9a-f-]{36}$/);
    expect(columnValue(faker, column({ name: 'kind', baseType: 'mood', category: 'E', enumValues: ['sad', 'ok'] }), columnRules(column({}), []), context)).toMatch(/^(sad|ok)$/);
  });
});

describe('tenant ids and canaries', () => {
  it('are distinct, non-sequential and of the key type', () => {
    const faker = createFaker(9);
    const ints = tenantIds(faker, 'int4', 10).map(Number);
    expect(new Set(ints).size).toBe(10);
    expect(ints.every((id) => Number.isInteger(id) && id > 0 && id < 2 ** 31)).toBe(true);
    const sorted = [...ints].sort((a, b) => a - b);
    expect(sorted.some((id, index) => index > 0 && id - sorted[index - 1]! !== 1)).toBe(true);
    expect(tenantIds(faker, 'uuid', 3).every((id) => /^[0-9a-f-]{36}$/.test(id))).toBe(true);
    expect(tenantIds(faker, 'int8', 3).every((id) => BigInt(id) > 2n ** 31n)).toBe(true);
    expect(tenantIds(faker, 'text', 3, 8).every((id) => id.length <= 8)).toBe(true);
    expect(makeCanary(faker)).toMatch(/^zq[a-z0-9]{6}$/);
  });

  it('are reproducible from the seed', () => {
    expect(tenantIds(createFaker(5), 'int4', 4)).toEqual(tenantIds(createFaker(5), 'int4', 4));
    expect(tenantIds(createFaker(5), 'int4', 4)).not.toEqual(tenantIds(createFaker(6), 'int4', 4));
  });
});
