import { relationOf } from '../catalog/lookup.js';
import { applyingPolicies, clauseConfines, policyClause, settingsRead } from '../analysis/queries.js';
import { viewAnalysis, type Analysis } from '../analysis/index.js';
import { actsAsOwner, policiesFor, roleInfo } from '../catalog/roles.js';
import type { Catalog, Policy, PolicyCommand, Relation } from '../catalog/types.js';
import { relationObject } from './finding.js';
import { isolationPolicy, restrictiveFence, tenantPredicate } from './fixes.js';
import { alterRole, alterView, comment, dropPolicy as dropPolicyStep, fix as makeFix, forceRls, or, orInline, policyStatement, revoke, type Fix, type FixStep } from './fix.js';
import type { RelationPlan, TenancyPlan } from '../plan/tenancy.js';
import { commentText, ident, qualifiedIdent, relationIdent } from '../target/sql.js';
import { cause, type Cause } from './cause.js';

/**
 * The one diagnosis step: what the catalog says about why rows crossed a tenant boundary that a probe
 * proved crossed. Its `cause` is the defect the probe's evidence is attached to (the same cause a rule
 * names when it reads that defect in the catalog), its `reason` the clause a message quotes, its `fix`
 * the SQL for that cause.
 */
export interface Diagnosis {
  cause: Cause;
  /** Why rows crossed the boundary, in a clause ("RLS is disabled on public.notes"). */
  reason: string;
  fix: Fix;
}

/** What a diagnosis reads: the catalog, the tenancy plan and the analysis of the policies and views. */
export interface DiagnosisScope {
  catalog: Catalog;
  plan: TenancyPlan;
  analysis: Analysis;
}

/**
 * Why the owner of a definer view is exempt from the policies of what it reads, or null when it is not
 * (then the policies that apply to the owner decide). Unknown bases (the view could not be read) count as
 * exempt: the view's rights are the cause either way.
 */
function ownerExemption(context: DiagnosisScope, view: Relation): string | null {
  const { catalog } = context;
  const owner = roleInfo(catalog, view.owner);
  if (owner?.superuser) return 'a superuser, whom no policy applies to';
  if (owner?.bypassRls) return 'which has BYPASSRLS, so no policy applies to it';
  const analysed = viewAnalysis(context.analysis, view.qualified);
  if (!analysed || analysed.verdict === 'unknown') return 'who is exempt from the policies of the tables it reads, or may be (the view could not be analysed)';
  for (const name of analysed.relations) {
    const base = relationOf(catalog, name);
    if (!base || (base.kind !== 'table' && base.kind !== 'partitioned-table')) continue;
    if (!base.rlsEnabled) return `and row-level security is disabled on ${base.qualified}, which it reads`;
    if (actsAsOwner(catalog, base, view.owner) && !base.rlsForced) return `who owns ${base.qualified}, and owners bypass its policies unless row-level security is forced`;
  }
  return null;
}

/** The policies for `command` on `relations` that apply to `role`, with `name on table (using ...)` to show. */
function ownerPolicies(context: DiagnosisScope, role: string, relations: string[], command: Exclude<PolicyCommand, 'ALL'>): { policy: Policy; base: Relation; text: string }[] {
  return relations.flatMap((name) => {
    const base = relationOf(context.catalog, name);
    if (!base) return [];
    return policiesFor(context.catalog, base, role, command).map((policy) => ({
      policy,
      base,
      text: `${policy.name} on ${name} (${policy.permissive ? '' : 'restrictive, '}using ${policy.using ?? 'none'}${command !== 'SELECT' && command !== 'DELETE' ? `, with check ${policy.withCheck ?? policy.using ?? 'none'}` : ''})`,
    }));
  });
}

/** Read the catalog to explain a leak a probe proved, and give the fix for that cause. */
export function diagnoseReadLeak(context: DiagnosisScope, relation: Relation, relationPlan: RelationPlan, command: Exclude<PolicyCommand, 'ALL'> = 'SELECT'): Diagnosis {
  const { catalog, plan } = context;
  const table = relationObject(relation);
  const role = roleInfo(catalog, plan.role);
  const target = relationIdent(relation);
  if (role?.superuser || role?.bypassRls) {
    return {
      cause: cause('role-bypasses-rls', { kind: 'role', name: plan.role }),
      reason: `role ${plan.role} ${role.superuser ? 'is a superuser' : 'has BYPASSRLS'}, so no policy applies to it`,
      fix: makeFix([alterRole(ident(plan.role), 'nosuperuser nobypassrls')]),
    };
  }
  if (relation.kind === 'view' && !relation.securityInvoker) {
    const invoker: FixStep[] =
      catalog.serverVersionNum >= 150000
        ? [alterView(target, 'set (security_invoker = true)')]
        : [comment('PostgreSQL < 15 has no security_invoker: filter inside the view, or stop granting it'), revoke('select', target, ident(plan.role))];
    const exemption = ownerExemption(context, relation);
    if (exemption !== null) {
      return { cause: cause('definer-view', table), reason: `view ${relation.qualified} runs with the rights of its owner ${relation.owner}, ${exemption}`, fix: makeFix(invoker) };
    }
    // The owner is subject to the policies of the tables the view reads: those policies, as they apply to
    // the owner, let the rows through.
    const bases = viewAnalysis(context.analysis, relation.qualified)?.relations ?? [];
    const applying = ownerPolicies(context, relation.owner, bases, command);
    const fixes = applying.flatMap(({ policy, base }) => {
      const basePlan = plan.relations.find((entry) => entry.relation === base.qualified);
      if (!basePlan || basePlan.tenancy === 'shared' || !policy.permissive) return [];
      const predicate = tenantPredicate(plan, basePlan);
      return [
        policyStatement(
          'alter-policy',
          { name: policy.name, table: base.qualified },
          `alter policy ${ident(policy.name)} on ${relationIdent(base)} using (${predicate})${command === 'SELECT' || command === 'DELETE' ? '' : ` with check (${predicate})`};`,
          relationIdent(base),
        ),
      ];
    });
    return {
      cause: cause('definer-view', table),
      reason:
        `view ${relation.qualified} runs with the rights of its owner ${relation.owner}, so the policies for ${relation.owner} on ${bases.join(', ') || 'the tables it reads'} decide` +
        `${applying.length ? ` (${applying.map((entry) => entry.text).join('; ')})` : ''}, and they admit other tenants' rows`,
      fix: fixes.length
        ? makeFix(
            [comment(`confine the policies that apply to ${commentText(relation.owner)}, whose rights the view runs with:`), ...fixes],
            [or(` run the view with the caller's rights (the application role then needs privileges on ${commentText(bases.join(', '))}):`, invoker)],
          )
        : makeFix(invoker, [or(` confine the policies for ${commentText(relation.owner)} on ${commentText(bases.join(', ') || 'the tables the view reads')} to the current tenant`, [])]),
    };
  }
  if (relation.kind === 'materialized-view') {
    return {
      cause: cause('materialized-view', table),
      reason: `materialized view ${relation.qualified} stores the rows of every tenant and row-level security does not apply to materialized views`,
      fix: makeFix([
        revoke('select', target, ident(plan.role)),
        comment('expose it through a view that filters by tenant instead, e.g.'),
        comment(`create view ${commentText(relation.schema)}.${commentText(relation.name)}_for_tenant with (security_invoker = true) as select * from ${commentText(target)} where ...;`),
      ]),
    };
  }
  const parent = relation.partitionOf ?? relation.inheritsFrom[0];
  if (parent && !relation.rlsEnabled) {
    return {
      cause: cause('partition-without-rls', table),
      reason: `${relation.partitionOf ? 'partition' : 'inheritance child'} ${relation.qualified} has no row-level security of its own; the policies of ${parent} apply only to queries through ${parent}`,
      fix: makeFix(isolationPolicy(plan, relation, relationPlan), [orInline(' stop direct access:', revoke('all', target, ident(plan.role)))]),
    };
  }
  if (!relation.rlsEnabled) {
    return { cause: cause('rls-disabled', table), reason: `row-level security is disabled on ${relation.qualified}`, fix: makeFix(isolationPolicy(plan, relation, relationPlan)) };
  }
  if (actsAsOwner(catalog, relation, plan.role) && !relation.rlsForced) {
    return {
      cause: cause('owner-bypass', table),
      reason: `role ${plan.role} ${relation.owner === plan.role ? 'owns' : `inherits ownership (through ${relation.owner}) of`} ${relation.qualified}, and owners bypass RLS unless it is forced`,
      fix: makeFix([forceRls(target)]),
    };
  }
  const applying = applyingPolicies(context.analysis, relation, 'SELECT');
  if (!applying.length) return { cause: cause('no-policy', table, { command: 'SELECT' }), reason: `no policy applies to role ${plan.role}`, fix: makeFix(isolationPolicy(plan, relation, relationPlan)) };
  // Permissive policies that admit rows without the tenant while it is set (a fail-open branch only matters without it).
  const loose = applying.filter((policy) => {
    if (!policy.permissive) return false;
    const using = policyClause(context.analysis, policy, 'using');
    // A branch that admits rows by a visibility flag (`or is_public`) shows published rows by design: not the leak.
    return !using || using.verdict === 'unknown' || using.open.some((branch) => branch.kind !== 'fail-open' && !branch.publicFlags);
  });
  if (loose.length) {
    return {
      cause: cause('loose-policy', table, { command: 'SELECT', clause: 'using', policies: loose.map((policy) => policy.name) }),
      reason: `permissive polic${loose.length > 1 ? 'ies' : 'y'} ${loose.map((policy) => `${policy.name} (using ${policy.using ?? 'true'})`).join(', ')} ${loose.length > 1 ? 'do' : 'does'} not restrict rows to the current tenant, and permissive policies are ORed together`,
      // Dropping a loose policy is enough when another permissive policy still lets the tenant read its rows;
      // when it is the only one, dropping it would hide every row: confine it instead.
      fix: makeFix(
        applying.some((policy) => policy.permissive && !loose.includes(policy))
          ? loose.map((policy) => dropPolicy(policy, relation))
          : loose.map((policy) => policyStatement('alter-policy', { name: policy.name, table: relation.qualified }, `alter policy ${ident(policy.name)} on ${target} using (${tenantPredicate(plan, relationPlan)});`, target)),
        [or(` keep ${loose.length > 1 ? 'them' : 'it'} and fence every permissive policy with a restrictive one:`, restrictiveFence(plan, relation, relationPlan))],
      ),
    };
  }
  return {
    cause: cause('policies-admit', table, { command: 'SELECT', clause: 'using', policies: applying.map((policy) => policy.name) }),
    reason: `the policies on ${relation.qualified} (${applying.map((policy) => `${policy.name}: using ${policy.using ?? 'true'}`).join('; ')}) admit other tenants' rows`,
    fix: makeFix([...applying.map((policy) => dropPolicy(policy, relation)), ...isolationPolicy(plan, relation, relationPlan)]),
  };
}

/** The cause of rows let through, or an error, when the tenant setting is missing or empty: the policies that read it. */
export function failsOpenCause(context: DiagnosisScope, relation: Relation): Cause {
  const policies = relation.policies.filter((policy) => settingsRead(context.analysis, policy).includes(context.plan.setting));
  return cause('fails-open', relationObject(relation), { setting: context.plan.setting, policies: policies.map((policy) => policy.name) });
}

/** The fix for a policy that lets rows through, or errors, when the tenant setting is missing or empty. */
export function missingContextFix(context: DiagnosisScope, relation: Relation, relationPlan: RelationPlan): Fix {
  const { plan } = context;
  const policies = relation.policies.filter((policy) => settingsRead(context.analysis, policy).includes(plan.setting));
  return makeFix([
    comment("read the setting with missing_ok = true, turn '' into NULL, and compare: NULL matches no row"),
    ...policies.map((policy) => dropPolicyStep({ name: policy.name, table: relation.qualified }, qualifiedIdent(relation.qualified))),
    ...isolationPolicy(plan, relation, relationPlan),
  ]);
}

/** `drop policy "name" on "schema"."table";` */
function dropPolicy(policy: Policy, relation: Relation): FixStep {
  return dropPolicyStep({ name: policy.name, table: relation.qualified }, relationIdent(relation));
}

const WRITE_CLAUSE = { using: 'USING', check: 'WITH CHECK' } as const;

/** The expression a policy applies for `clause`: WITH CHECK falls back to USING, as PostgreSQL does. */
function policyExpression(policy: Policy, clause: 'using' | 'check'): string | null {
  if (clause === 'using') return policy.using;
  return policy.withCheck ?? (policy.command === 'INSERT' ? null : policy.using);
}

/** `using (true)`, `with check (...)`, or `using (true) and no WITH CHECK, so USING is the check`. */
function describeClause(policy: Policy, clause: 'using' | 'check'): string {
  const expression = policyExpression(policy, clause);
  if (!expression) return `without ${WRITE_CLAUSE[clause]}`;
  if (clause === 'using') return `using (${expression})`;
  return policy.withCheck ? `with check (${expression})` : `using (${expression}) and no WITH CHECK, so USING is the check`;
}

/** Whether a policy's clause confines rows to the current tenant or actor (every branch ties the row to the context). */
function confinesToTenant(context: DiagnosisScope, policy: Policy, clause: 'using' | 'check'): boolean {
  return clauseConfines(context.analysis, policy, clause);
}

/**
 * Read the catalog to explain a write a probe proved, and give the fix: the role, RLS or ownership cause
 * when there is one (as for reads), else the permissive policies for `command` whose `clause` does not
 * confine rows to the current tenant.
 */
export function diagnoseWrite(context: DiagnosisScope, relation: Relation, relationPlan: RelationPlan, command: Exclude<PolicyCommand, 'ALL' | 'SELECT'>, clause: 'using' | 'check'): Diagnosis {
  const general = diagnoseReadLeak(context, relation, relationPlan, command);
  if (general.cause.kind !== 'loose-policy' && general.cause.kind !== 'policies-admit' && general.cause.kind !== 'no-policy') return general;
  const table = relationObject(relation);
  const { plan } = context;
  const target = relationIdent(relation);
  const applying = applyingPolicies(context.analysis, relation, command);
  const fenced = applying.some((policy) => !policy.permissive && confinesToTenant(context, policy, clause));
  const loose = fenced ? [] : applying.filter((policy) => policy.permissive && !confinesToTenant(context, policy, clause));
  const rows = clause === 'using' ? 'the rows it may change' : 'the rows it may write';
  const predicate = tenantPredicate(plan, relationPlan);
  if (loose.length) {
    const described = loose.map((policy) => `${policy.name} (for ${policy.command.toLowerCase()} ${describeClause(policy, clause)})`);
    return {
      cause: cause('loose-policy', table, { command, clause, policies: loose.map((policy) => policy.name) }),
      reason: `permissive polic${loose.length > 1 ? 'ies' : 'y'} ${described.join(', ')} ${loose.length > 1 ? 'do' : 'does'} not confine ${rows} to the current tenant`,
      fix: makeFix(
        [
          comment(`give every ${command} policy a ${WRITE_CLAUSE[clause]} that confines ${commentText(rows)} to the current tenant:`),
          ...loose.map((policy) =>
            policyStatement('alter-policy', { name: policy.name, table: relation.qualified }, `alter policy ${ident(policy.name)} on ${target} ${clause === 'using' ? 'using' : 'with check'} (${predicate});`, target),
          ),
        ],
        [or(` keep ${loose.length > 1 ? 'them' : 'it'} and fence every permissive policy with a restrictive one:`, restrictiveFence(plan, relation, relationPlan))],
      ),
    };
  }
  return {
    cause: cause('policies-admit', table, { command, clause, policies: applying.map((policy) => policy.name) }),
    reason: `the ${command} policies on ${relation.qualified} (${applying.map((policy) => `${policy.name}: ${WRITE_CLAUSE[clause].toLowerCase()} ${policyExpression(policy, clause) ?? 'none'}`).join('; ') || 'none'}) admit other tenants' rows`,
    fix: makeFix([...applying.map((policy) => dropPolicy(policy, relation)), ...isolationPolicy(plan, relation, relationPlan)]),
  };
}
