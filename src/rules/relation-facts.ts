import type { Analysis, CallSite, Command, ContextReference } from '../analysis/model.js';
import { applyingPolicies, policyClause, policySettingUses, rlsApplies, type CommandClause } from '../analysis/queries.js';
import { guardSettingCalls as guardCalls, oneLine } from '../analysis/sql-text.js';
import type { Catalog, Policy, Relation } from '../catalog/types.js';
import { currentTenantExpression, isolationPolicy, restrictiveFence, tenantPredicate } from '../findings/fixes.js';
import { policyStatement, type FixStatement, type FixStep } from '../findings/fix.js';
import type { RelationPlan, TenancyPlan } from '../plan/tenancy.js';
import { ident, literal, relationIdent } from '../target/sql.js';
import { describePolicy, inheritedBy, regclassLiteral, relationPlanOf } from './privilege-helpers.js';
import { relationOf } from '../catalog/lookup.js';

/** Facts about relations shared by the coverage and policy-logic rules: tenancy, privileges, evidence SQL, fixes. */

/** What the rules read: the catalog, the analysis of its policies for the role, and the tenancy plan. */
export interface AnalysisScope {
  catalog: Catalog;
  plan: TenancyPlan;
  analysis: Analysis;
}

/** Columns that hold the relation's tenant: its planned tenant column and the plan's tenant columns it has. */
export function tenantColumnsOf(scope: AnalysisScope, relation: Relation): Set<string> {
  const columns = new Set<string>();
  const relationPlan = relationPlanOf(scope.plan, relation.qualified);
  if (relationPlan?.tenantColumn) columns.add(relationPlan.tenantColumn);
  for (const column of relation.columns) if (scope.plan.tenantColumns.includes(column.name)) columns.add(column.name);
  return columns;
}

export const ROW_COMMANDS: readonly Command[] = ['SELECT', 'INSERT', 'UPDATE', 'DELETE'];

export function isTenantOwned(scope: AnalysisScope, relation: Relation): boolean {
  const entry = relationPlanOf(scope.plan, relation.qualified);
  return entry !== undefined && entry.tenancy !== 'shared';
}

/** A partition or an inheritance child. */
export function isChild(relation: Relation): boolean {
  return relation.partitionOf !== null || relation.inheritsFrom.length > 0;
}

/**
 * Table privileges the application role uses without SET ROLE: its own, PUBLIC's and those of roles it inherits
 * from; every privilege when it owns the relation (or inherits the owner's rights). What has_table_privilege answers.
 */
function privilegesOf(scope: AnalysisScope, relation: Relation): Set<string> {
  const roles = inheritedBy(scope.catalog, scope.plan.role);
  if (roles.has(relation.owner)) return new Set(['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE', 'REFERENCES', 'TRIGGER']);
  return new Set(relation.grants.filter((grant) => grant.grantee === 'public' || roles.has(grant.grantee)).map((grant) => grant.privilege));
}

/** The row commands (SELECT, INSERT, UPDATE, DELETE) the role may run on the relation. */
export function rowCommandsOf(scope: AnalysisScope, relation: Relation): Command[] {
  const privileges = privilegesOf(scope, relation);
  return ROW_COMMANDS.filter((command) => privileges.has(command));
}

export function listWords(words: string[]): string {
  if (words.length <= 1) return words.join('');
  return `${words.slice(0, -1).join(', ')} and ${words[words.length - 1]}`;
}

/** Catalog query showing a relation's row-level security state and what the role may do with it. */
export function relationStateSql(scope: AnalysisScope, relation: Relation): string {
  const role = literal(scope.plan.role);
  return [
    `select c.oid::regclass as relation, c.relkind, c.relrowsecurity, c.relforcerowsecurity,`,
    `       (select count(*) from pg_policy p where p.polrelid = c.oid) as policies,`,
    ...ROW_COMMANDS.map((command, index) => `       has_table_privilege(${role}, c.oid, '${command}') as can_${command.toLowerCase()}${index < ROW_COMMANDS.length - 1 ? ',' : ''}`),
    `from pg_class c where c.oid = ${regclassLiteral(relation.qualified)};`,
  ].join('\n');
}

/** Catalog query listing a relation's policies as PostgreSQL stores them. */
export function policiesSql(relation: Relation): string {
  return (
    `select polname, polcmd, polpermissive, polroles::regrole[] as roles, pg_get_expr(polqual, polrelid) as using_expression, ` +
    `pg_get_expr(polwithcheck, polrelid) as check_expression from pg_policy where polrelid = ${regclassLiteral(relation.qualified)} order by polname;`
  );
}

export function policiesDetails(policies: Policy[]): string {
  return policies.map(describePolicy).join('\n');
}

/** The relation's plan, completed with a tenant column or foreign-key path for partitions and children, for fix SQL. */
function fixPlanFor(scope: AnalysisScope, relation: Relation, depth = 0): RelationPlan {
  const own: RelationPlan = relationPlanOf(scope.plan, relation.qualified) ?? {
    relation: relation.qualified, kind: relation.kind, tenancy: 'shared', tenantColumn: null, path: null, reason: '',
  };
  if (own.tenantColumn || own.path?.length) return own;
  const [column] = tenantColumnsOf(scope, relation);
  if (column) return { ...own, tenantColumn: column };
  const parentName = relation.partitionOf ?? relation.inheritsFrom[0];
  const parent = parentName ? relationOf(scope.catalog, parentName) : undefined;
  if (parent && depth < 8) {
    const inherited = fixPlanFor(scope, parent, depth + 1);
    return { ...own, tenantColumn: inherited.tenantColumn, path: inherited.path };
  }
  return own;
}

/** The tenant predicate for the relation, or null when the relation has no known way to its tenant. */
export function tenantPredicateFor(scope: AnalysisScope, relation: Relation): string | null {
  const entry = fixPlanFor(scope, relation);
  return entry.tenantColumn || entry.path?.length ? tenantPredicate(scope.plan, entry) : null;
}

/** `alter policy` that replaces a policy's expressions with the tenant predicate (only the clauses its command has). */
export function tenantPolicyRewrite(scope: AnalysisScope, relation: Relation, policy: Policy): FixStatement {
  const predicate = tenantPredicateFor(scope, relation) ?? `<tenant column> = ${currentTenantExpression(scope.plan)}`;
  const clauses: string[] = [];
  if (policy.command !== 'INSERT') clauses.push(`  using (${predicate})`);
  if (policy.command === 'ALL' || policy.command === 'INSERT' || policy.command === 'UPDATE') clauses.push(`  with check (${predicate})`);
  return policyStatement('alter-policy', { name: policy.name, table: relation.qualified }, `alter policy ${ident(policy.name)} on ${relationIdent(relation)}\n${clauses.join('\n')};`, relationIdent(relation));
}

/** A restrictive tenant policy (ANDed with every permissive one), or null when the relation has no way to its tenant. */
export function fence(scope: AnalysisScope, relation: Relation): FixStep[] | null {
  return tenantPredicateFor(scope, relation) ? restrictiveFence(scope.plan, relation, fixPlanFor(scope, relation)) : null;
}

/** Enable and force RLS with a tenant policy for every command (isolationPolicy with a completed plan). */
export function isolation(scope: AnalysisScope, relation: Relation): FixStep[] {
  return isolationPolicy(scope.plan, relation, fixPlanFor(scope, relation));
}

/** The tenant column a view, materialized view or foreign table exposes, with the current-tenant expression to compare it to. */
export function tenantFilterOf(scope: AnalysisScope, relation: Relation): { column: string; current: string } | null {
  const [column] = tenantColumnsOf(scope, relation);
  return column ? { column, current: currentTenantExpression(scope.plan) } : null;
}

/**
 * The fix for a permissive policy that lets rows through without the tenant: drop it when other permissive
 * policies already give the role tenant access for every command it is used for, otherwise rewrite it to the
 * tenant predicate.
 */
export function repairPolicy(scope: AnalysisScope, relation: Relation, policy: Policy, uses: readonly CommandClause[]): FixStatement {
  const covered = uses.every(({ command, clause }) =>
    applyingPolicies(scope.analysis, relation, command).some((other) => {
      if (other === policy || !other.permissive) return false;
      return policyClause(scope.analysis, other, clause)?.branches.some((branch) => branch.kind === 'confined') ?? false;
    }),
  );
  return covered
    ? policyStatement('drop-policy', { name: policy.name, table: relation.qualified }, `drop policy ${ident(policy.name)} on ${relationIdent(relation)};`, relationIdent(relation))
    : tenantPolicyRewrite(scope, relation, policy);
}

/** What a command does to other tenants' rows through an open USING clause, as a verb. */
export function commandVerb(command: Command): string {
  return { SELECT: 'reads', INSERT: 'inserts', UPDATE: 'updates', DELETE: 'deletes' }[command];
}

/** The setting a reference reads (a custom setting, or the setting JWT claims come from), or null. */
export function settingOf(reference: ContextReference): string | null {
  if (reference.source.kind === 'setting') return reference.source.setting;
  if (reference.source.kind === 'jwt-claim') return reference.source.setting;
  return null;
}

/**
 * The relations the role uses under row-level security, each with its policies' setting reads that `offends`
 * picks (policies with none left out): what setting-without-missing-ok and setting-without-nullif report.
 */
export function offendingSettingReads(scope: AnalysisScope, offends: (use: ContextReference) => boolean): { relation: Relation; offending: { policy: Policy; uses: ContextReference[] }[] }[] {
  return scope.catalog.relations
    .filter((relation) => rlsApplies(scope.analysis, relation) && rowCommandsOf(scope, relation).length)
    .map((relation) => ({
      relation,
      offending: policySettingUses(scope.analysis, relation)
        .map(({ policy, uses }) => ({ policy, uses: uses.filter(offends) }))
        .filter((entry) => entry.uses.length),
    }))
    .filter((entry) => entry.offending.length);
}

/**
 * Rewrite the current_setting calls of one setting in a policy expression to `nullif(current_setting(name, true), '')`:
 * `strict` calls (no missing_ok) or `unguarded` ones (missing_ok, not already inside nullif). The calls are found by
 * the parser; the rest of the text is kept as PostgreSQL printed it.
 */
export function guardSettingCalls(scope: AnalysisScope, policy: Policy, expression: string, settings: readonly string[], which: 'strict' | 'unguarded'): string {
  return guardCalls(expression, expressionCalls(scope, policy, expression), settings, which);
}

/** The function calls the parser found in one of a policy's expressions (its USING or its WITH CHECK text). */
export function expressionCalls(scope: AnalysisScope, policy: Policy, expression: string): CallSite[] {
  const analysis = [policyClause(scope.analysis, policy, 'using'), policyClause(scope.analysis, policy, 'check')].find((entry) => entry?.text === expression);
  return analysis?.calls ?? [];
}

/** A rendered condition, parenthesised once, for messages. */
export function fragment(text: string): string {
  const line = oneLine(text);
  return line.startsWith('(') && line.endsWith(')') ? line : `(${line})`;
}
