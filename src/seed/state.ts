import type { Faker } from '@faker-js/faker';
import type { Catalog } from '../catalog/types.js';
import type { RelationPlan, TenancyPlan } from '../plan/tenancy.js';
import { isLockTimeout } from '../target/locks.js';
import type { AuditSession } from '../target/session.js';
import type { Ledger } from './ledger.js';
import type { WriteBlock } from './outcome.js';

/** What the parts of one seeding share: the session, what is seeded, the ledger, and the statements sent. */
export interface SeedState {
  readonly session: AuditSession;
  readonly catalog: Catalog;
  readonly plan: TenancyPlan;
  /** The plan of every seeded relation, by qualified name. */
  readonly plans: ReadonlyMap<string, RelationPlan>;
  readonly faker: Faker;
  readonly ledger: Ledger;
  /** Why a write of this kind to the relation must not be made, or null (a live database where it would advance a sequence). */
  readonly blocked: WriteBlock;
  /** Statements sent to the server while seeding. */
  statements: number;
}

/**
 * For the catch blocks that learn from a failed insert and retry: a stop (the time limit, an AuditError)
 * and a lock another session holds (a migration: every retry would wait and fail alike) are not such
 * failures and go on up.
 */
export function stopOn(session: AuditSession, error: unknown): void {
  session.rethrowStop(error);
  if (isLockTimeout(error)) throw error;
}
