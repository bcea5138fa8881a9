import { applicationQuery } from './application-query.js';
import { claimSpoof } from './claim-spoof.js';
import { blindDelete } from './blind-delete.js';
import { blindUpdate } from './blind-update.js';
import { contextPersistence } from './context-persistence.js';
import { crossTenantReference } from './cross-tenant-reference.js';
import { definerTrigger } from './definer-trigger.js';
import { errorEcho } from './error-echo.js';
import { existenceOracle } from './existence-oracle.js';
import { foreignDelete } from './foreign-delete.js';
import { foreignInsert } from './foreign-insert.js';
import { foreignUpdate } from './foreign-update.js';
import { functionLeak } from './function-leak.js';
import { identity } from './identity.js';
import { membership } from './membership.js';
import { missingContext } from './missing-context.js';
import { readIsolation } from './read-isolation.js';
import { roleGraph } from './role-graph.js';
import { selfGrant } from './self-grant.js';
import { seqScan } from './seq-scan.js';
import { spoofableSetting } from './spoofable-setting.js';
import { tenantReassignment } from './tenant-reassignment.js';
import { truncate } from './truncate.js';
import type { Probe } from './types.js';
import { upsertConflict } from './upsert-conflict.js';

/**
 * Every probe, in the order they run. missing-context is first: its "never set" state needs a connection
 * on which no probe has set a tenant yet.
 */
export const PROBES: readonly Probe[] = [
  missingContext,
  identity,
  readIsolation,
  membership,
  functionLeak,
  definerTrigger,
  roleGraph,
  applicationQuery,
  contextPersistence,
  spoofableSetting,
  claimSpoof,
  existenceOracle,
  errorEcho,
  seqScan,
  // Write isolation
  foreignInsert,
  foreignUpdate,
  foreignDelete,
  blindUpdate,
  blindDelete,
  tenantReassignment,
  selfGrant,
  truncate,
  upsertConflict,
  crossTenantReference,
];
