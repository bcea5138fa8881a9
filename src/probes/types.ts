import type { Catalog } from '../catalog/types.js';
import type { Check, Finding } from '../findings.js';
import type { TenancyPlan } from '../plan/tenancy.js';
import type { Scenario } from '../scenario/schema.js';
import type { Ledger, Tenant } from '../seed/ledger.js';
import type { SeedResult } from '../seed/seed.js';
import type { AuditSession } from '../session.js';
import type { RoleAccess } from './access.js';

/**
 * pass: ran and nothing crossed a boundary; leak: something did; hidden: nothing leaked but the tenant saw
 * fewer of its own rows than it owns; error: the statement failed unexpectedly;
 * denied: an error where an empty result was due; unreliable: the data it needed was not seeded;
 * inconclusive: it ran but its result proves nothing either way (e.g. a function returned nothing that can
 * be attributed); no-access / skipped: not run.
 */
export type ProbeOutcome = 'pass' | 'leak' | 'hidden' | 'error' | 'denied' | 'unreliable' | 'inconclusive' | 'no-access' | 'skipped';

/** One statement a probe executed, kept in the report whatever its outcome. */
export interface ProbeRecord {
  check: string;
  relation: string;
  /** Tenant label or the no-context state (`never set`, `empty string`, `unknown tenant`). */
  context: string;
  tenant: string | null;
  sql: string;
  outcome: ProbeOutcome;
  rows: number;
  foreignRows: number;
  /** Own rows the tenant should see and did not (read isolation on seeded tables). */
  missingOwnRows: number;
  error?: string;
}

export interface ProbeContext {
  session: AuditSession;
  catalog: Catalog;
  plan: TenancyPlan;
  tenants: Tenant[];
  ledger: Ledger;
  seedResults: SeedResult[];
  scenario: Scenario;
  access: RoleAccess;
  /**
   * The target's connection string, for probes that need a second, throwaway connection (a pooled
   * connection's state across transactions). Never printed: it may hold a password.
   */
  connectionString: string;
  /**
   * True when the database belongs to this run (embedded, container). When false (a url target) probes
   * must not run what cannot be rolled back, such as a function that advances a sequence.
   */
  disposable: boolean;
  record(probe: ProbeRecord): void;
}

export interface Probe extends Check {
  kind: 'probe';
  /** Other check ids this probe reports (e.g. a lower-severity defect found along the way). */
  related?: Check[];
  run(context: ProbeContext): Promise<Finding[]>;
}
