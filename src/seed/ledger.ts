export interface Tenant {
  /** The tenant id as text, exactly as the tenant key prints it. */
  id: string;
  /** A short human label: tenant A, tenant B, ... */
  label: string;
  /** Marker embedded in every seeded text value of this tenant. */
  canary: string;
}

export interface LedgerRow {
  /** Tenant id, or null for rows of shared tables. */
  tenant: string | null;
  /** Every column of the inserted row, as text. */
  values: Record<string, string | null>;
}

const KEY_SEPARATOR = '\u0001';

/** Rows per relation and tenant whose every value the ledger keeps (see `add`). */
export const FULL_ROWS_PER_TENANT = 20;

/**
 * Every row the seeder inserted, by relation: how any row that comes back from any query is attributed
 * to its tenant, by key or by canary.
 */
export class Ledger {
  private readonly rowsByRelation = new Map<string, LedgerRow[]>();
  private readonly keyColumns = new Map<string, string[]>();
  private readonly byKey = new Map<string, Map<string, LedgerRow>>();

  constructor(readonly tenants: Tenant[]) {}

  /**
   * Record inserted rows. With `retained`, memory stays bounded: the first rows of each tenant keep every
   * value (what probes build statements from), the others only the retained columns (keys, the tenant
   * column, columns other tables reference): enough to attribute any returned row and to pick parents.
   */
  add(relation: string, keyColumns: string[] | null, rows: LedgerRow[], retained?: ReadonlySet<string>): void {
    const list = this.rowsByRelation.get(relation) ?? [];
    if (retained) {
      const kept = new Map<string | null, number>();
      for (const row of list) kept.set(row.tenant, (kept.get(row.tenant) ?? 0) + 1);
      rows = rows.map((row) => {
        const count = kept.get(row.tenant) ?? 0;
        kept.set(row.tenant, count + 1);
        if (count < FULL_ROWS_PER_TENANT) return row;
        const values: Record<string, string | null> = {};
        for (const column of retained) if (column in row.values) values[column] = row.values[column]!;
        return { tenant: row.tenant, values };
      });
    }
    for (const row of rows) list.push(row);
    this.rowsByRelation.set(relation, list);
    if (!keyColumns?.length) return;
    this.keyColumns.set(relation, keyColumns);
    const index = this.byKey.get(relation) ?? new Map<string, LedgerRow>();
    for (const row of rows) index.set(keyColumns.map((column) => row.values[column] ?? '').join(KEY_SEPARATOR), row);
    this.byKey.set(relation, index);
  }

  rows(relation: string, tenant?: string | null): LedgerRow[] {
    const list = this.rowsByRelation.get(relation) ?? [];
    return tenant === undefined ? list : list.filter((row) => row.tenant === tenant);
  }

  count(relation: string, tenant?: string | null): number {
    return this.rows(relation, tenant).length;
  }

  relations(): string[] {
    return [...this.rowsByRelation.keys()];
  }

  keyOf(relation: string): string[] | undefined {
    return this.keyColumns.get(relation);
  }

  /** The seeded row of `relation` whose key matches the key columns of `row`, if any. */
  findByKey(relation: string, row: Record<string, string | null>): LedgerRow | undefined {
    const columns = this.keyColumns.get(relation);
    if (!columns || !columns.every((column) => column in row)) return undefined;
    return this.byKey.get(relation)?.get(columns.map((column) => row[column] ?? '').join(KEY_SEPARATOR));
  }

  /** Tenants whose canary occurs in any value of the row. */
  tenantsByCanary(row: Record<string, unknown>): Tenant[] {
    const text = Object.values(row)
      .filter((value) => value !== null && value !== undefined)
      .map(String)
      .join('\u0000');
    return this.tenants.filter((tenant) => text.includes(tenant.canary));
  }

  tenant(id: string): Tenant | undefined {
    return this.tenants.find((tenant) => tenant.id === id);
  }
}
