import { applyingPolicies, policyClause, settingsRead } from '../analysis/queries.js';
import { actsAsOwner, roleInfo } from '../catalog/roles.js';
import type { Relation } from '../catalog/types.js';
import { isolationPolicySql, restrictiveFenceSql } from '../fixes.js';
import type { RelationPlan } from '../plan/tenancy.js';
import { ident, qualifiedIdent, relationIdent } from '../sql.js';
import type { ProbeContext } from './types.js';

export interface Diagnosis {
  /** Which kind of cause the catalog shows; `policies` when the tenant policies themselves admit the rows. */
  kind: 'role' | 'view' | 'materialized-view' | 'partition' | 'disabled' | 'owner' | 'no-policy' | 'loose-policy' | 'policies';
  /** Why rows crossed the boundary, in a clause ("RLS is disabled on public.notes"). */
  cause: string;
  fix: string;
}

/** Read the catalog to explain a leak a probe proved, and give the fix for that cause. */
export function diagnoseReadLeak(context: ProbeContext, relation: Relation, relationPlan: RelationPlan): Diagnosis {
  const { catalog, plan } = context;
  const role = roleInfo(catalog, plan.role);
  const target = relationIdent(relation);
  if (role?.superuser || role?.bypassRls) {
    return {
      kind: 'role',
      cause: `role ${plan.role} ${role.superuser ? 'is a superuser' : 'has BYPASSRLS'}, so no policy applies to it`,
      fix: `alter role ${ident(plan.role)} nosuperuser nobypassrls;`,
    };
  }
  if (relation.kind === 'view' && !relation.securityInvoker) {
    return {
      kind: 'view',
      cause: `view ${relation.qualified} runs with the rights of its owner ${relation.owner}, who is exempt from the policies of the tables it reads`,
      fix:
        catalog.serverVersionNum >= 150000
          ? `alter view ${target} set (security_invoker = true);`
          : `-- PostgreSQL < 15 has no security_invoker: filter inside the view, or stop granting it\nrevoke select on ${target} from ${ident(plan.role)};`,
    };
  }
  if (relation.kind === 'materialized-view') {
    return {
      kind: 'materialized-view',
      cause: `materialized view ${relation.qualified} stores the rows of every tenant and row-level security does not apply to materialized views`,
      fix: `revoke select on ${target} from ${ident(plan.role)};\n-- expose it through a view that filters by tenant instead, e.g.\n-- create view ${relation.schema}.${relation.name}_for_tenant with (security_invoker = true) as select * from ${target} where ...;`,
    };
  }
  const parent = relation.partitionOf ?? relation.inheritsFrom[0];
  if (parent && !relation.rlsEnabled) {
    return {
      kind: 'partition',
      cause: `${relation.partitionOf ? 'partition' : 'inheritance child'} ${relation.qualified} has no row-level security of its own; the policies of ${parent} apply only to queries through ${parent}`,
      fix: `${isolationPolicySql(plan, relation, relationPlan)}\n-- or stop direct access: revoke all on ${target} from ${ident(plan.role)};`,
    };
  }
  if (!relation.rlsEnabled) {
    return { kind: 'disabled', cause: `row-level security is disabled on ${relation.qualified}`, fix: isolationPolicySql(plan, relation, relationPlan) };
  }
  if (actsAsOwner(catalog, relation, plan.role) && !relation.rlsForced) {
    return {
      kind: 'owner',
      cause: `role ${plan.role} ${relation.owner === plan.role ? 'owns' : `inherits ownership (through ${relation.owner}) of`} ${relation.qualified}, and owners bypass RLS unless it is forced`,
      fix: `alter table ${target} force row level security;`,
    };
  }
  const applying = applyingPolicies(context.analysis, relation, 'SELECT');
  if (!applying.length) return { kind: 'no-policy', cause: `no policy applies to role ${plan.role}`, fix: isolationPolicySql(plan, relation, relationPlan) };
  // Permissive policies that admit rows without the tenant while it is set (a fail-open branch only matters without it).
  const loose = applying.filter((policy) => {
    if (!policy.permissive) return false;
    const using = policyClause(context.analysis, policy, 'using');
    return !using || using.verdict === 'unknown' || using.open.some((branch) => branch.kind !== 'fail-open');
  });
  if (loose.length) {
    return {
      kind: 'loose-policy',
      cause: `permissive polic${loose.length > 1 ? 'ies' : 'y'} ${loose.map((policy) => `${policy.name} (using ${policy.using ?? 'true'})`).join(', ')} ${loose.length > 1 ? 'do' : 'does'} not restrict rows to the current tenant, and permissive policies are ORed together`,
      fix: `${loose.map((policy) => `drop policy ${ident(policy.name)} on ${target};`).join('\n')}\n-- or keep ${loose.length > 1 ? 'them' : 'it'} and fence every permissive policy with a restrictive one:\n${restrictiveFenceSql(plan, relation, relationPlan)}`,
    };
  }
  return {
    kind: 'policies',
    cause: `the policies on ${relation.qualified} (${applying.map((policy) => `${policy.name}: using ${policy.using ?? 'true'}`).join('; ')}) admit other tenants' rows`,
    fix: `${applying.map((policy) => `drop policy ${ident(policy.name)} on ${target};`).join('\n')}\n${isolationPolicySql(plan, relation, relationPlan)}`,
  };
}

/** The fix for a policy that lets rows through, or errors, when the tenant setting is missing or empty. */
export function missingContextFix(context: ProbeContext, relation: Relation, relationPlan: RelationPlan): string {
  const { plan } = context;
  const policies = relation.policies.filter((policy) => settingsRead(context.analysis, policy).includes(plan.setting));
  const drops = policies.map((policy) => `drop policy ${ident(policy.name)} on ${qualifiedIdent(relation.qualified)};`).join('\n');
  return `-- read the setting with missing_ok = true, turn '' into NULL, and compare: NULL matches no row\n${drops ? `${drops}\n` : ''}${isolationPolicySql(plan, relation, relationPlan)}`;
}
