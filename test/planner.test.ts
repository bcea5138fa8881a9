import { beforeAll, describe, expect, it } from 'vitest';
import { readCheck, readPartitionBound, readPartitionKey } from '../src/analysis/constraints.js';
import { loadParser } from '../src/analysis/parse.js';
import type { Column, Relation } from '../src/catalog/types.js';
import { RowPlanner } from '../src/seed/planner.js';
import { regexFromPostgres } from '../src/seed/column-rules.js';
import { createFaker, tenantIds, tenantIdType } from '../src/seed/values.js';

beforeAll(loadParser);

function column(name: string, baseType: string, overrides: Partial<Column> = {}): Column {
  const category = ['int2', 'int4', 'int8', 'numeric'].includes(baseType) ? 'N' : ['date', 'timestamptz', 'timestamp'].includes(baseType) ? 'D' : baseType === 'bool' ? 'B' : 'S';
  return {
    name, type: baseType, baseType, category, isArray: false, notNull: false, default: null, identity: null, generated: false,
    enumValues: null, maxLength: null, numericPrecision: null, numericScale: null, domainChecks: [], ...overrides,
  };
}

function relation(columns: Column[], checks: string[]): Relation {
  return {
    oid: 1, schema: 'public', name: 't', qualified: 'public.t', kind: 'table', owner: 'o', rlsEnabled: true, rlsForced: true,
    partitionOf: null, partitionBound: null, partitionKey: null, inheritsFrom: [], columns, primaryKey: null,
    constraints: checks.map((definition, index) => ({ name: `check_${index}`, kind: 'check' as const, columns: [], definition })),
    foreignKeys: [], indexes: [], policies: [], grants: [], viewDefinition: null, securityInvoker: false, securityBarrier: false, dependsOn: [], estimatedRows: 0,
  };
}

/** Plan `count` rows and return them as objects. */
function plan(target: Relation, count = 200, fixed: Record<string, string | null> = {}): Record<string, string | null>[] {
  const faker = createFaker(3);
  let serial = 0;
  const planner = new RowPlanner(target, target.columns, new Set());
  return Array.from({ length: count }, () => {
    const values = planner.row(faker, { fixed: new Map(Object.entries(fixed)), serial: () => ++serial, canary: 'zqcanary1' });
    return Object.fromEntries(target.columns.map((entry, index) => [entry.name, values[index] ?? null]));
  });
}

describe('CHECK constraints read from the parse tree', () => {
  it('turns boolean structure into alternatives of atoms', () => {
    const check = readCheck('c', "CHECK ((((kind = 'a'::text) AND (x IS NOT NULL)) OR ((kind = 'b'::text) AND (y IS NOT NULL))))");
    expect(check.alternatives).toEqual([
      [{ kind: 'compare', column: 'kind', op: '=', value: 'a' }, { kind: 'null', column: 'x', isNull: false }],
      [{ kind: 'compare', column: 'kind', op: '=', value: 'b' }, { kind: 'null', column: 'y', isNull: false }],
    ]);
    expect(check.expression).toBe("(((kind = 'a'::text) AND (x IS NOT NULL)) OR ((kind = 'b'::text) AND (y IS NOT NULL)))");
    expect(readCheck('c', 'CHECK ((NOT (a IS NULL)))').alternatives).toEqual([[{ kind: 'null', column: 'a', isNull: false }]]);
    expect(readCheck('c', 'CHECK (((n >= 1) AND (n <= 9))) NOT VALID').alternatives[0]!.map((atom) => atom.kind)).toEqual(['compare', 'compare']);
  });

  it('reads comparisons between columns, offsets, nulls counts, patterns, lengths and case', () => {
    expect(readCheck('c', 'CHECK ((due_on >= issued_on))').alternatives).toEqual([[{ kind: 'columns', left: 'due_on', op: '>=', right: 'issued_on', offset: null }]]);
    expect(readCheck('c', "CHECK ((ends_at > (starts_at + '01:00:00'::interval)))").alternatives[0]![0]).toMatchObject({ kind: 'columns', offset: { sign: 1, value: '01:00:00' } });
    expect(readCheck('c', 'CHECK ((num_nulls(a, b, c) = 2))').alternatives).toEqual([[{ kind: 'nonnulls', columns: ['a', 'b', 'c'], op: '=', count: 1 }]]);
    expect(readCheck('c', "CHECK ((username ~* '^[a-z]+$'::text))").alternatives[0]![0]).toMatchObject({ kind: 'match', syntax: 'regex', caseInsensitive: true, negated: false });
    expect(readCheck('c', 'CHECK ((char_length(code) = 3))').alternatives[0]![0]).toEqual({ kind: 'length', column: 'code', op: '=', value: 3 });
    expect(readCheck('c', 'CHECK ((email = lower(email)))').alternatives[0]![0]).toEqual({ kind: 'case', column: 'email', form: 'lower' });
    expect(readCheck('c', 'CHECK ((jsonb_typeof(doc) = \'object\'::text))').alternatives[0]![0]!.kind).toBe('opaque');
  });

  it('reads partition bounds and keys', () => {
    expect(readPartitionBound("FOR VALUES FROM ('2024-01-01 00:00:00+00') TO ('2025-01-01 00:00:00+00')")).toEqual({
      kind: 'range', from: [{ value: '2024-01-01 00:00:00+00' }], to: [{ value: '2025-01-01 00:00:00+00' }],
    });
    expect(readPartitionBound("FOR VALUES IN ('eu', 'uk')")).toEqual({ kind: 'list', values: ['eu', 'uk'] });
    expect(readPartitionBound('FOR VALUES WITH (modulus 4, remainder 3)')).toEqual({ kind: 'hash', modulus: 4, remainder: 3 });
    expect(readPartitionBound('DEFAULT')).toEqual({ kind: 'default' });
    expect(readPartitionBound('FOR VALUES FROM (MINVALUE) TO (10)')).toEqual({ kind: 'range', from: [{ infinite: 'min' }], to: [{ value: '10' }] });
    expect(readPartitionKey('RANGE (created_at, lower(region))')).toEqual({ strategy: 'range', columns: ['created_at', null] });
  });
});

describe('the row planner meets whole-row constraints', () => {
  it('orders columns a check compares (due_on >= issued_on, ends_at > starts_at + 1 hour)', () => {
    const invoices = relation(
      [column('issued_on', 'date', { notNull: true }), column('due_on', 'date', { notNull: true }), column('starts_at', 'timestamptz', { notNull: true }), column('ends_at', 'timestamptz', { notNull: true })],
      ['CHECK ((due_on >= issued_on))', "CHECK ((ends_at > (starts_at + '01:00:00'::interval)))"],
    );
    for (const row of plan(invoices)) {
      expect(row.due_on! >= row.issued_on!).toBe(true);
      expect(Date.parse(row.ends_at!) - Date.parse(row.starts_at!)).toBeGreaterThan(3_600_000);
    }
  });

  it('generates strings matching a regex, keeping the canary where the pattern allows', () => {
    const users = relation([column('username', 'text', { notNull: true }), column('code', 'varchar', { maxLength: 8 })], ["CHECK ((username ~ '^[a-z0-9_]+$'::text))", "CHECK (((code)::text ~ '^[A-Z]{3}-[[:digit:]]{4}$'::text))"]);
    const rows = plan(users);
    for (const row of rows) {
      expect(row.username).toMatch(/^[a-z0-9_]+$/);
      expect(row.code).toMatch(/^[A-Z]{3}-\d{4}$/);
    }
    expect(rows.every((row) => row.username!.includes('zqcanary1'))).toBe(true);
  });

  it('meets num_nonnulls, alternatives that agree with fixed values, and domain checks', () => {
    const target = relation(
      [column('kind', 'text', { notNull: true }), column('x', 'int4'), column('y', 'int4'), column('a', 'text'), column('b', 'text'), column('score', 'int4', { domainChecks: ['CHECK (((score >= 0) AND (score <= 10)))'] })],
      ["CHECK ((((kind = 'a'::text) AND (x IS NOT NULL) AND (y IS NULL)) OR ((kind = 'b'::text) AND (y IS NOT NULL) AND (x IS NULL))))", 'CHECK ((num_nonnulls(a, b) = 1))'],
    );
    const rows = plan(target);
    for (const row of rows) {
      expect(row.kind === 'a' ? row.x !== null && row.y === null : row.kind === 'b' && row.y !== null && row.x === null).toBe(true);
      expect([row.a, row.b].filter((value) => value !== null)).toHaveLength(1);
      expect(Number(row.score)).toBeGreaterThanOrEqual(0);
      expect(Number(row.score)).toBeLessThanOrEqual(10);
    }
    expect(new Set(rows.map((row) => row.kind))).toEqual(new Set(['a', 'b']));
    expect(plan(target, 20, { kind: 'b' }).every((row) => row.y !== null && row.x === null)).toBe(true);
  });

  it('keeps values inside a partition range on the key column', () => {
    const events = relation([column('created_at', 'timestamptz', { notNull: true })], []);
    const planner = new RowPlanner(events, events.columns, new Set(), new Set(['created_at']), [
      { kind: 'compare', column: 'created_at', op: '>=', value: '2024-01-01 00:00:00+00' },
      { kind: 'compare', column: 'created_at', op: '<', value: '2025-01-01 00:00:00+00' },
    ]);
    const faker = createFaker(1);
    for (let serial = 0; serial < 200; serial += 1) {
      const [value] = planner.row(faker, { fixed: new Map(), serial: () => serial, canary: null });
      expect(value! >= '2024-01-01' && value! < '2025-01-01').toBe(true);
    }
  });

  it('translates PostgreSQL regex classes', () => {
    expect(regexFromPostgres('^[[:alpha:]]+\\y', false)).toEqual({ source: '^[a-zA-Z]+\\b', flags: '' });
  });
});

describe('tenant ids fit the casts policies apply', () => {
  it('narrows the id type to the casts of the tenant setting (read by the analysis: settingCasts)', () => {
    expect(tenantIdType('int8', ['integer'])).toBe('int4');
    expect(tenantIdType('int8', ['int4'])).toBe('int4');
    expect(tenantIdType('text', ['uuid'])).toBe('uuid');
    expect(tenantIdType('int8', [])).toBe('int8');
    const ids = tenantIds(createFaker(2), tenantIdType('int8', ['int4']), 20);
    expect(ids.every((id) => BigInt(id) < 2n ** 31n)).toBe(true);
    expect(new Set(ids).size).toBe(20);
  });
});

describe('array CHECKs and generated columns (seeding gaps)', () => {
  it('reads <@, @>, && and cardinality on array columns, and the columns a check reads', () => {
    expect(readCheck('c', "CHECK (((scopes <@ ARRAY['read'::text, 'write'::text]) AND (cardinality(scopes) > 0)))").alternatives).toEqual([
      [{ kind: 'elements', column: 'scopes', relation: 'within', values: ['read', 'write'] }, { kind: 'cardinality', column: 'scopes', op: '>', value: 0 }],
    ]);
    expect(readCheck('c', "CHECK ((flags @> '{signed}'::text[]))").alternatives).toEqual([[{ kind: 'elements', column: 'flags', relation: 'contains', values: ['signed'] }]]);
    expect(readCheck('c', "CHECK ((ARRAY['a'::text, 'b'::text] @> tags))").alternatives).toEqual([[{ kind: 'elements', column: 'tags', relation: 'within', values: ['a', 'b'] }]]);
    expect(readCheck('c', "CHECK ((events && '{created,\"up dated\"}'::text[]))").alternatives).toEqual([[{ kind: 'elements', column: 'events', relation: 'overlaps', values: ['created', 'up dated'] }]]);
    expect(readCheck('c', 'CHECK ((array_length(tags, 1) <= 2))').alternatives).toEqual([[{ kind: 'cardinality', column: 'tags', op: '<=', value: 2 }]]);
    expect(readCheck('c', "CHECK ((NOT (tags && ARRAY['x'::text])))").alternatives[0]![0]!.kind).toBe('opaque');
    expect(readCheck('c', "CHECK ((scopes <@ allowed_scopes(kind)))").columns.sort()).toEqual(['kind', 'scopes']);
  });

  it('plans arrays that meet the element and count rules', () => {
    const target = relation(
      [column('scopes', 'text', { isArray: true }), column('flags', 'text', { isArray: true }), column('events', 'text', { isArray: true })],
      [
        "CHECK (((scopes <@ ARRAY['read'::text, 'write'::text]) AND (cardinality(scopes) > 0)))",
        "CHECK ((flags @> ARRAY['signed'::text]))",
        "CHECK ((events && ARRAY['created'::text, 'deleted'::text]))",
      ],
    );
    const elements = (literal: string | null) => literal!.slice(1, -1).split(',').filter(Boolean).map((item) => item.replace(/^"(.*)"$/, '$1'));
    for (const row of plan(target)) {
      const scopes = elements(row.scopes!);
      expect(scopes.length).toBeGreaterThan(0);
      expect(scopes.every((scope) => ['read', 'write'].includes(scope))).toBe(true);
      expect(new Set(scopes).size).toBe(scopes.length);
      expect(elements(row.flags!)).toContain('signed');
      expect(elements(row.events!).some((event) => ['created', 'deleted'].includes(event))).toBe(true);
    }
  });

  it('keeps the inputs of a generated column small enough for its value to fit its type', () => {
    const target = relation(
      [
        column('quantity', 'int8'),
        column('unit_price_cents', 'int8'),
        column('total_cents', 'int8', { generated: true, default: '(quantity * unit_price_cents)' }),
        column('unrelated', 'int8'),
      ],
      ['CHECK ((quantity > 0))', 'CHECK ((unit_price_cents >= 0))'],
    );
    const fill = target.columns.filter((entry) => !entry.generated);
    const faker = createFaker(5);
    let serial = 0;
    const planner = new RowPlanner(target, fill, new Set());
    let largest = 0n;
    for (let index = 0; index < 300; index += 1) {
      const [quantity, price] = planner.row(faker, { fixed: new Map(), serial: () => ++serial, canary: null });
      expect(BigInt(quantity!)).toBeGreaterThan(0n);
      expect(BigInt(price!)).toBeGreaterThanOrEqual(0n);
      const total = BigInt(quantity!) * BigInt(price!);
      expect(total <= 9_223_372_036_854_775_807n).toBe(true);
      if (BigInt(quantity!) > largest) largest = BigInt(quantity!);
    }
    // Still large values, only not so large that their product overflows.
    expect(largest > 1_000_000n).toBe(true);
  });
});
