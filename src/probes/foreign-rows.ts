import type { Relation } from '../catalog/types.js';
import type { SampleRow } from '../findings/finding.js';
import type { RelationPlan } from '../plan/tenancy.js';
import type { Tenant } from '../seed/ledger.js';
import type { RawRow } from '../target/session.js';
import { attribute, maskRow, personalOf } from './context.js';
import type { ProbeContext } from './types.js';

/** What a statement run as one tenant returned, attributed row by row. */
export interface RowTally {
  rows: number;
  own: number;
  /** Rows of other tenants, by tenant id (or the tenant value found, for a tenant that was not seeded). */
  foreign: Map<string, number>;
  foreignRows: number;
  samples: SampleRow[];
}

export interface TallyOptions {
  /** The relation the rows come from, when known: attribution then also uses its seeded keys. */
  relation?: { relation: Relation; relationPlan: RelationPlan; sources: string[] };
  /** Attribute by canary only: for scalar values, where a number that happens to equal a tenant id means nothing. */
  canaryOnly?: boolean;
}

function ownerOf(context: ProbeContext, row: RawRow, options: TallyOptions): { tenant: Tenant } | { other: string } | null {
  if (options.relation) {
    const { relation, relationPlan, sources } = options.relation;
    const owner = attribute(row, relationPlan, relation, context.ledger, context.plan.tenantColumns, sources);
    if (owner.kind === 'tenant') return { tenant: owner.tenant };
    if (owner.kind === 'other-tenant') return { other: owner.value };
    return null;
  }
  if (!options.canaryOnly) {
    // Rows of unknown shape (a function's, a query's): a tenant column, when the row has one, says whose it is.
    const tenantColumn = context.plan.tenantColumns.find((column) => row[column] !== undefined && row[column] !== null);
    if (tenantColumn) {
      const value = row[tenantColumn]!;
      const tenant = context.ledger.tenant(value);
      return tenant ? { tenant } : { other: value };
    }
  }
  const byCanary = context.ledger.tenantsByCanary(row);
  if (byCanary.length === 1) return { tenant: byCanary[0]! };
  if (byCanary.length > 1) return { other: byCanary.map((tenant) => tenant.id).join('+') };
  return null;
}

/** Attribute every row to its tenant (tenant column, seeded key, canary) and count those of other tenants. */
export function tallyRows(context: ProbeContext, tenant: Tenant, rows: RawRow[], options: TallyOptions = {}): RowTally {
  const keep = new Set([...context.plan.tenantColumns, ...(options.relation?.relation.primaryKey ?? []), 'id']);
  const tally: RowTally = { rows: rows.length, own: 0, foreign: new Map(), foreignRows: 0, samples: [] };
  const personal = personalOf(context, tenant);
  for (const row of rows) {
    const owner = ownerOf(context, row, options);
    if (!owner) continue;
    if ('tenant' in owner && owner.tenant.id === tenant.id) {
      tally.own += 1;
      continue;
    }
    // A tenant the platform made for this actor alone (a personal account): its to see, neither the tenant's nor foreign.
    if ('tenant' in owner && personal.has(owner.tenant.id)) continue;
    // Keyed by tenant id (or the value found, for a tenant that was not seeded): what findings carry.
    const id = 'tenant' in owner ? owner.tenant.id : owner.other;
    tally.foreign.set(id, (tally.foreign.get(id) ?? 0) + 1);
    tally.foreignRows += 1;
    if (tally.samples.length < 3) tally.samples.push(maskRow(row, keep, context.tenants));
  }
  return tally;
}

/** `3 rows of tenant B, 2 rows of tenant C`. */
export function describeForeign(context: ProbeContext, foreign: Map<string, number>): string {
  const name = (id: string) => context.ledger.tenant(id)?.label ?? `tenant ${id} (not seeded)`;
  return [...foreign].map(([id, count]) => `${count} row${count === 1 ? '' : 's'} of ${name(id)}`).join(', ');
}
