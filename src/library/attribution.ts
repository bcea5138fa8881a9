import type { TenancyPlan } from '../plan/tenancy.js';
import type { Ledger } from '../seed/ledger.js';

/** A seeded tenant as a test sees it: `label` is `tenant A`, `tenant B`, ... */
export interface SeededTenant {
  id: string;
  label: string;
}

/** Whose a row is, and how that was decided. */
export type RowOwner =
  | { kind: 'tenant'; tenant: SeededTenant; via: 'tenant column' | 'seeded key' | 'canary' }
  /** A tenant value that no seeded tenant has (rows that were in the database before the audit). */
  | { kind: 'other-tenant'; value: string }
  /** A row of a table no tenant owns. */
  | { kind: 'shared' }
  /** Nothing in the row tells whose it is: no tenant column, no seeded key, no canary. */
  | { kind: 'unattributed' };

/** A row the application's query returned, with the tenant it belongs to. */
export interface AttributedRow<Row extends object = Record<string, unknown>> {
  row: Row;
  owner: RowOwner;
}

function asText(row: object): Record<string, string | null> {
  const text: Record<string, string | null> = {};
  for (const [column, value] of Object.entries(row)) {
    text[column] = value === null || value === undefined ? null : value instanceof Date ? value.toISOString() : typeof value === 'object' ? JSON.stringify(value) : String(value);
  }
  return text;
}

/**
 * Attribute a row of unknown shape (the application's own query) to its tenant: by a tenant column when
 * the row has one, then by the tenant's canary in a text value, then by the key of a seeded row.
 */
export function attributeRow(row: object, plan: TenancyPlan, ledger: Ledger): RowOwner {
  const values = asText(row);
  const seeded = (id: string) => {
    const tenant = ledger.tenant(id);
    return tenant ? { id: tenant.id, label: tenant.label } : undefined;
  };
  const tenantColumn = plan.tenantColumns.find((column) => values[column] !== undefined && values[column] !== null);
  if (tenantColumn) {
    const value = values[tenantColumn]!;
    const tenant = seeded(value);
    return tenant ? { kind: 'tenant', tenant, via: 'tenant column' } : { kind: 'other-tenant', value };
  }
  const byCanary = ledger.tenantsByCanary(values);
  if (byCanary.length === 1) return { kind: 'tenant', tenant: { id: byCanary[0]!.id, label: byCanary[0]!.label }, via: 'canary' };
  // Canaries of several tenants in one row: a join across tenants.
  if (byCanary.length > 1) return { kind: 'other-tenant', value: byCanary.map((tenant) => tenant.id).join('+') };
  // A seeded key is evidence only when every relation whose key the row carries agrees on the tenant.
  const byKey = new Set<string | null>();
  for (const relation of ledger.relations()) {
    const tenant = ledger.tenantByKey(relation, values);
    if (tenant !== undefined) byKey.add(tenant);
  }
  if (byKey.size === 1) {
    const [id] = byKey;
    if (id === null || id === undefined) return { kind: 'shared' };
    return { kind: 'tenant', tenant: seeded(id)!, via: 'seeded key' };
  }
  return { kind: 'unattributed' };
}

/** `tenant A`, `A` or the tenant id: the ways a test names a seeded tenant. */
export function tenantMatches(tenant: SeededTenant, name: string): boolean {
  return tenant.label === name || tenant.label === `tenant ${name}` || tenant.id === name;
}

export function describeOwner(owner: RowOwner): string {
  switch (owner.kind) {
    case 'tenant':
      return `${owner.tenant.label} (${owner.tenant.id}, by ${owner.via})`;
    case 'other-tenant':
      return `tenant ${owner.value} (not seeded by this audit)`;
    case 'shared':
      return 'a shared table (no tenant)';
    case 'unattributed':
      return 'no tenant that could be told (no tenant column, seeded key or canary in the row)';
  }
}
