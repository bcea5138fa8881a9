/**
 * rls-audit in a vitest suite: `import { createAuditDatabase } from 'rls-audit/vitest'` registers the
 * matchers `expect(report).toIsolateTenants()` and `expect(rows).toBelongTo(tenant)`.
 */
import { expect } from 'vitest';
import { toBelongTo, toIsolateTenants } from './matchers.js';

expect.extend({ toIsolateTenants, toBelongTo });

interface RlsAuditMatchers<R = unknown> {
  /** The audit's verdict is pass; the failure message lists each failing finding with its fix. */
  toIsolateTenants(): R;
  /** Every row `asTenant()` returned belongs to `tenant` (`A`, `tenant A` or its id), and there is at least one. */
  toBelongTo(tenant: string): R;
}

declare module 'vitest' {
  // eslint-disable-next-line @typescript-eslint/no-empty-object-type, @typescript-eslint/no-unused-vars
  interface Matchers<T = any> extends RlsAuditMatchers<T> {}
}

export { createAuditDatabase, type AuditDatabase, type SeededUser, type TenantConnection, type TenantQueryResult } from './database.js';
export { attributeRow, type AttributedRow, type RowOwner, type SeededTenant } from './attribution.js';
export { toBelongTo, toIsolateTenants, type MatcherResult } from './matchers.js';
export { audit, lint } from '../audit.js';
