import type { Ledger, Tenant } from './ledger.js';

/** Why the seeder must not make a write of this kind to a relation (and what to try), or null. */
export type WriteBlock = (relation: string, event: 'INSERT' | 'UPDATE') => { reason: string; hint: string } | null;

export type SeedStatus = 'seeded' | 'partial' | 'failed' | 'existing';

export interface PartitionCoverage {
  /** The leaf partition. */
  relation: string;
  /** Rows per tenant id. */
  tenants: Record<string, number>;
  /** Why some tenants cannot have rows in this partition (its key is the tenant), or null. */
  waived: string | null;
}

export interface SeedResult {
  relation: string;
  status: SeedStatus;
  /** Rows inserted (or, for `existing`, rows of a shared table reused as parents). */
  rows: number;
  /** Why a table is partial or failed: the database's own error, the constraint that could not be met, or the missing parent. */
  reason: string | null;
  /** Retries that repaired a constraint error (new values, other parents). */
  repairs: number;
  /** Rows per tenant id, inserted and adopted (tenant-owned relations; empty for shared ones). */
  tenants: Record<string, number>;
  /** Rows that triggers created and the seeder adopted into the ledger instead of inserting its own. */
  adopted: number;
  /** For a partitioned table: every leaf partition and the rows each tenant has in it. */
  partitions: PartitionCoverage[];
  /** What to try when the relation was left unseeded on purpose (a write would advance a sequence on a live database). */
  hint?: string;
}

/** A tenant-owned relation (or partition) in which a tenant has no row: probes on it prove nothing for that tenant. */
export interface CoverageGap {
  relation: string;
  tenant: string;
  reason: string;
  /** What to try, when the seeder knows better than "fix the constraint" (see SeedResult.hint). */
  hint?: string;
}

export interface SeedOutcome {
  tenants: Tenant[];
  ledger: Ledger;
  results: SeedResult[];
  /** Tenant-owned relations and partitions left without rows of some tenant. */
  gaps: CoverageGap[];
  rowsInserted: number;
  statements: number;
  /** The tenant context was set on the session while seeding (insert triggers read it): the never-set state is gone there. */
  contextSet: boolean;
}
