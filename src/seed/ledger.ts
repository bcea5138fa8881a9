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

/** A row's key as one string: the value itself for a one-column key (no new string per row). */
function keyText(columns: string[], values: Record<string, string | null>): string {
  return columns.length === 1 ? values[columns[0]!] ?? '' : columns.map((column) => values[column] ?? '').join(KEY_SEPARATOR);
}

/** Rows per relation and tenant whose every value the ledger keeps (see `add`). */
export const FULL_ROWS_PER_TENANT = 20;

/** One tenant's rows of one relation (tenant null: shared rows). */
interface Bucket {
  tenant: string | null;
  /** The first rows, with every value. */
  full: LedgerRow[];
  /** Columns kept for the later rows, and their values: one array per column, a row per index. */
  columns: string[];
  slim: (string | null)[][];
}

/**
 * Every row the seeder inserted, by relation: how any row that comes back from any query is attributed
 * to its tenant, by key or by canary.
 *
 * Memory stays small at a million rows: past the first rows of each tenant, a row is a value per retained
 * column in column arrays (no object per row), and the index by key is built only for the relations whose
 * rows are looked up by key (those whose rows carry no tenant column), when first asked.
 */
export class Ledger {
  private readonly buckets = new Map<string, Map<string | null, Bucket>>();
  private readonly keyColumns = new Map<string, string[]>();
  private readonly byKey = new Map<string, Map<string, string | null>>();
  /** Tenants the platform made for one actor (see `addPersonal`), by id. */
  private readonly personal = new Map<string, Tenant>();

  constructor(readonly tenants: Tenant[]) {}

  /**
   * A tenant the platform made for one of the audit's actors when the audit created it (a trigger on the
   * users table made it and the user's membership, as a personal account): only that user belongs to it.
   * Its rows are attributed to it like any tenant's, so they are that actor's own and every other actor's
   * foreign rows. It is not one of `tenants`: probes never run as it, and its canary (the platform's rows carry
   * none) is never searched for.
   */
  addPersonal(id: string, label: string): Tenant {
    const tenant = { id, label, canary: `\u0000${id}` };
    this.personal.set(id, tenant);
    return tenant;
  }

  /** Whether `id` is a tenant the platform made for an actor (see `addPersonal`). */
  isPersonal(id: string | null): boolean {
    return id !== null && this.personal.has(id);
  }

  /**
   * Record inserted rows. With `retained`, the first rows of each tenant keep every value (what probes
   * build statements from), the others only the retained columns (keys, the tenant column, columns other
   * tables reference): enough to attribute any returned row and to pick parents.
   */
  add(relation: string, keyColumns: string[] | null, rows: LedgerRow[], retained?: ReadonlySet<string>): void {
    let buckets = this.buckets.get(relation);
    if (!buckets) {
      buckets = new Map();
      this.buckets.set(relation, buckets);
    }
    for (const row of rows) {
      let bucket = buckets.get(row.tenant);
      if (!bucket) {
        bucket = { tenant: row.tenant, full: [], columns: [], slim: [] };
        buckets.set(row.tenant, bucket);
      }
      if (retained && !bucket.columns.length) {
        bucket.columns = [...retained];
        bucket.slim = bucket.columns.map(() => []);
      }
      const slimRows = bucket.slim[0]?.length ?? 0;
      if (!bucket.columns.length || (slimRows === 0 && (!retained || bucket.full.length < FULL_ROWS_PER_TENANT))) {
        bucket.full.push(row);
        continue;
      }
      bucket.columns.forEach((column, index) => {
        const value = row.values[column] ?? null;
        // The tenant column holds the tenant id: one string for all its rows.
        bucket!.slim[index]!.push(value === row.tenant ? row.tenant : value);
      });
    }
    if (keyColumns?.length) this.keyColumns.set(relation, keyColumns);
    this.byKey.delete(relation);
  }

  /**
   * The rows of a relation (tenant by tenant, each in insertion order), or of one tenant in it. Rows past
   * the first of each tenant are made on each call from the retained columns: reading them is fine,
   * changing them changes nothing (see `update`).
   */
  rows(relation: string, tenant?: string | null): readonly LedgerRow[] {
    const buckets = this.buckets.get(relation);
    if (!buckets) return [];
    if (tenant !== undefined) {
      const bucket = buckets.get(tenant);
      return bucket ? bucketRows(bucket) : [];
    }
    return [...buckets.values()].flatMap(bucketRows);
  }

  count(relation: string, tenant?: string | null): number {
    const buckets = this.buckets.get(relation);
    if (!buckets) return 0;
    const size = (bucket: Bucket) => bucket.full.length + (bucket.slim[0]?.length ?? 0);
    if (tenant !== undefined) {
      const bucket = buckets.get(tenant);
      return bucket ? size(bucket) : 0;
    }
    let total = 0;
    for (const bucket of buckets.values()) total += size(bucket);
    return total;
  }

  /** Change values of the `index`-th row of a tenant in a relation (an UPDATE the seeder made). */
  update(relation: string, tenant: string | null, index: number, values: Record<string, string | null>): void {
    const bucket = this.buckets.get(relation)?.get(tenant);
    if (!bucket) return;
    if (index < bucket.full.length) Object.assign(bucket.full[index]!.values, values);
    else {
      bucket.columns.forEach((column, position) => {
        if (column in values) bucket.slim[position]![index - bucket.full.length] = values[column]!;
      });
    }
    this.byKey.delete(relation);
  }

  relations(): string[] {
    return [...this.buckets.keys()];
  }

  /**
   * The tenant of the seeded row of `relation` whose key matches the key columns of `row` (null for a
   * shared row), or undefined when no seeded row has that key.
   */
  tenantByKey(relation: string, row: Record<string, string | null>): string | null | undefined {
    const columns = this.keyColumns.get(relation);
    if (!columns || !columns.every((column) => column in row)) return undefined;
    let index = this.byKey.get(relation);
    if (!index) {
      index = new Map();
      for (const ledgerRow of this.rows(relation)) index.set(keyText(columns, ledgerRow.values), ledgerRow.tenant);
      this.byKey.set(relation, index);
    }
    return index.get(keyText(columns, row));
  }

  /** Tenants whose canary occurs in any value of the row. */
  tenantsByCanary(row: Record<string, unknown>): Tenant[] {
    const text = Object.values(row)
      .filter((value) => value !== null && value !== undefined)
      .map(String)
      .join('\u0000');
    return this.tenants.filter((tenant) => text.includes(tenant.canary));
  }

  /** A seeded tenant, or a tenant the platform made for an actor (see `addPersonal`). */
  tenant(id: string): Tenant | undefined {
    return this.tenants.find((tenant) => tenant.id === id) ?? this.personal.get(id);
  }
}

function bucketRows(bucket: Bucket): LedgerRow[] {
  const slim = bucket.slim[0]?.length ?? 0;
  if (!slim) return bucket.full;
  const rows = bucket.full.slice();
  for (let index = 0; index < slim; index += 1) {
    const values: Record<string, string | null> = {};
    bucket.columns.forEach((column, position) => (values[column] = bucket.slim[position]![index]!));
    rows.push({ tenant: bucket.tenant, values });
  }
  return rows;
}
