import { describe, expect, it } from 'vitest';
import { FULL_ROWS_PER_TENANT, Ledger } from '../src/seed/ledger.js';

const tenants = [
  { id: '101', label: 'tenant A', canary: 'zqa' },
  { id: '202', label: 'tenant B', canary: 'zqb' },
];

function rowsOf(tenant: string, from: number, count: number) {
  return Array.from({ length: count }, (_, index) => ({
    tenant,
    values: { tenant_id: tenant, id: String(from + index), name: `name ${from + index}`, parent_id: String(index) },
  }));
}

describe('the ledger', () => {
  it('keeps every value of the first rows of each tenant and the retained columns of the rest, in order', () => {
    const ledger = new Ledger(tenants);
    const retained = new Set(['tenant_id', 'id']);
    ledger.add('public.items', ['tenant_id', 'id'], [...rowsOf('101', 1, 30), ...rowsOf('202', 100, 5)], retained);
    ledger.add('public.items', ['tenant_id', 'id'], rowsOf('101', 31, 5), retained);
    expect(ledger.count('public.items')).toBe(40);
    expect(ledger.count('public.items', '101')).toBe(35);
    expect(ledger.count('public.items', '303')).toBe(0);
    const own = ledger.rows('public.items', '101');
    expect(own.map((row) => row.values.id)).toEqual(Array.from({ length: 35 }, (_, index) => String(index + 1)));
    expect(own[FULL_ROWS_PER_TENANT - 1]!.values).toEqual({ tenant_id: '101', id: String(FULL_ROWS_PER_TENANT), name: `name ${FULL_ROWS_PER_TENANT}`, parent_id: String(FULL_ROWS_PER_TENANT - 1) });
    expect(own[FULL_ROWS_PER_TENANT]!.values).toEqual({ tenant_id: '101', id: String(FULL_ROWS_PER_TENANT + 1) });
    expect(ledger.rows('public.items').map((row) => row.tenant)).toEqual([...Array(35).fill('101'), ...Array(5).fill('202')]);
    expect(ledger.rows('public.nothing', '101')).toEqual([]);
  });

  it('attributes a key to its tenant, also after rows are added or changed', () => {
    const ledger = new Ledger(tenants);
    const retained = new Set(['tenant_id', 'id', 'parent_id']);
    ledger.add('public.items', ['tenant_id', 'id'], rowsOf('101', 1, 25), retained);
    expect(ledger.tenantByKey('public.items', { tenant_id: '101', id: '25', other: 'x' })).toBe('101');
    expect(ledger.tenantByKey('public.items', { tenant_id: '202', id: '25' })).toBeUndefined();
    expect(ledger.tenantByKey('public.items', { id: '25' })).toBeUndefined();
    ledger.add('public.items', ['tenant_id', 'id'], rowsOf('202', 500, 2), retained);
    expect(ledger.tenantByKey('public.items', { tenant_id: '202', id: '501' })).toBe('202');
    ledger.add('public.shared', ['code'], [{ tenant: null, values: { code: 'eu' } }]);
    expect(ledger.tenantByKey('public.shared', { code: 'eu' })).toBeNull();

    // An update reaches a full row and a retained column of a later row alike.
    ledger.update('public.items', '101', 0, { parent_id: '9', name: 'renamed' });
    ledger.update('public.items', '101', 24, { parent_id: '7', name: 'not kept' });
    const own = ledger.rows('public.items', '101');
    expect(own[0]!.values).toMatchObject({ parent_id: '9', name: 'renamed' });
    expect(own[24]!.values).toEqual({ tenant_id: '101', id: '25', parent_id: '7' });
  });

  it('keeps whole rows when told to keep everything (no key), even past the first rows', () => {
    const ledger = new Ledger(tenants);
    ledger.add('public.log', null, rowsOf('101', 1, 30));
    expect(ledger.rows('public.log', '101').every((row) => 'name' in row.values)).toBe(true);
  });
});
