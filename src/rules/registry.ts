import { bypassrlsRole } from './bypassrls-role.js';
import { dangerousGrant } from './dangerous-grant.js';
import { definerFunctionSearchPath } from './definer-function-search-path.js';
import { definerFunction } from './definer-function.js';
import { definerView } from './definer-view.js';
import { foreignKeyWithoutTenant } from './foreign-key-without-tenant.js';
import { missingTenantIndex } from './missing-tenant-index.js';
import { ownerWithoutForce } from './owner-without-force.js';
import { policyPerRowSetting } from './policy-per-row-setting.js';
import { policyVolatileFunction } from './policy-volatile-function.js';
import { publicGrant } from './public-grant.js';
import { sharedSequence } from './shared-sequence.js';
import { superuserRole } from './superuser-role.js';
import { uniqueWithoutTenant } from './unique-without-tenant.js';
import { commandCoverageGap } from './command-coverage-gap.js';
import { failOpenContext } from './fail-open-context.js';
import { foreignTableExposed } from './foreign-table-exposed.js';
import { futurePartitions } from './future-partitions.js';
import { materializedViewExposed } from './materialized-view-exposed.js';
import { nonTenantSetting } from './non-tenant-setting.js';
import { partitionWithoutRls } from './partition-without-rls.js';
import { permissiveAlwaysTrue } from './permissive-always-true.js';
import { publicRows } from './public-rows.js';
import { policyRoleScope } from './policy-role-scope.js';
import { policyWithoutRls } from './policy-without-rls.js';
import { rlsDisabled } from './rls-disabled.js';
import { rlsNoPolicy } from './rls-no-policy.js';
import { settingWithoutMissingOk } from './setting-without-missing-ok.js';
import { settingWithoutNullif } from './setting-without-nullif.js';
import { userEditableClaimRule } from './user-editable-claim.js';
import { withCheckMissingTenant } from './with-check-missing-tenant.js';
import type { Rule } from './types.js';

/** Every static rule, in the order they are evaluated. */
export const RULES: readonly Rule[] = [
  // Coverage
  rlsDisabled,
  rlsNoPolicy,
  policyWithoutRls,
  partitionWithoutRls,
  materializedViewExposed,
  foreignTableExposed,
  futurePartitions,
  // Policy logic
  permissiveAlwaysTrue,
  publicRows,
  commandCoverageGap,
  withCheckMissingTenant,
  failOpenContext,
  settingWithoutMissingOk,
  settingWithoutNullif,
  nonTenantSetting,
  userEditableClaimRule,
  policyRoleScope,
  // Privilege
  superuserRole,
  bypassrlsRole,
  ownerWithoutForce,
  dangerousGrant,
  publicGrant,
  definerView,
  definerFunction,
  definerFunctionSearchPath,
  // Integrity
  uniqueWithoutTenant,
  foreignKeyWithoutTenant,
  sharedSequence,
  // Performance
  missingTenantIndex,
  policyVolatileFunction,
  policyPerRowSetting,
];
