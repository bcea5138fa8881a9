import { viewAnalysis } from '../../analysis/index.js';
import { alterView, comment, fix, forceRls, grant, type Fix, type FixStep } from '../../findings/fix.js';
import type { Analysis } from '../../analysis/model.js';
import type { Catalog, Relation } from '../../catalog/types.js';
import { relationObject, type Finding } from '../../findings/finding.js';
import { cause } from '../../findings/cause.js';
import type { TenancyPlan } from '../../plan/tenancy.js';
import { ident, literal, relationIdent } from '../../target/sql.js';
import {
  canRead,
  isBaseTable,
  regclassLiteral,
  relationPlanOf,
  rlsBypassReason,
  roleNamed,
  } from '../privilege-helpers.js';
import { defineRule } from '../types.js';
import { relationOf } from '../../catalog/lookup.js';

interface Leak {
  /** The tenant table read without its policies. */
  table: Relation;
  /** The role the table is read as. */
  readAs: string;
  reason: string;
  /** The view's direct dependency the table is reached through. */
  via: Relation;
}

/**
 * Tenant tables a view reads with the rights of a role that bypasses their policies. A view without
 * security_invoker reads as its owner; a nested view without it switches to its own owner; a
 * security_invoker view keeps whoever reads it.
 */
function leaksOf(catalog: Catalog, plan: TenancyPlan, view: Relation): Leak[] {
  const leaks: Leak[] = [];
  const seen = new Set<string>();
  const walk = (relation: Relation, readAs: string, via: Relation | null) => {
    for (const name of relation.dependsOn) {
      const dependency = relationOf(catalog, name);
      if (!dependency) continue;
      const key = `${name}:${readAs}`;
      if (seen.has(key)) continue;
      seen.add(key);
      const top = via ?? dependency;
      if (dependency.kind === 'view') {
        walk(dependency, dependency.securityInvoker ? readAs : dependency.owner, top);
        continue;
      }
      // Tables without row-level security are rls-disabled findings: a view adds no policy to bypass.
      if (!isBaseTable(dependency) || !dependency.rlsEnabled) continue;
      const dependencyPlan = relationPlanOf(plan, dependency.qualified);
      if (!dependencyPlan || dependencyPlan.tenancy === 'shared') continue;
      const reason = rlsBypassReason(catalog, readAs, dependency);
      if (reason) leaks.push({ table: dependency, readAs, reason, via: top });
    }
  };
  walk(view, view.owner, null);
  return leaks;
}

export const definerView = defineRule({
  order: 230,
  meta: {
    id: 'definer-view',
    title: 'A view reads tenant tables with the rights of an owner who bypasses row-level security',
    severity: 'high',
    objectKind: 'view',
    summary: 'A view reads tenant tables as an owner whom row-level security does not restrict.',
    example: 'View public.project_names reads public.projects with the rights of postgres (a superuser); use `security_invoker` (PG 15+).',
    explanation:
      'A view normally reads its tables with the rights of the view\'s owner, not of the caller (a "security definer" view). When the ' +
      'owner is a superuser, has BYPASSRLS, or owns a tenant table that does not force row-level security (the usual case: the ' +
      'migration role created both), the policies of that table do not apply through the view, and every role that may select from ' +
      'the view sees every tenant. PostgreSQL 15 added the security_invoker option, which makes the view read as the caller; on ' +
      'older versions, give the view to a role that does not bypass RLS and force RLS on the tables it reads. A view that filters by ' +
      'the caller\'s tenant itself is reported as info.',
    precondition:
      'The role may select a view that is not security_invoker and reads a tenant table without its policies (its owner is a ' +
      'superuser, has BYPASSRLS, or owns a table that does not force row-level security): high, every caller sees every tenant ' +
      'through it (a definer view); info when every query in its definition keeps only the caller\'s rows. read-isolation confirms it ' +
      'on data.',
    confirmedBy: ['read-isolation'],
  },
  evaluate({ catalog, plan, analysis }, report) {
    const findings: Finding[] = [];
    for (const view of catalog.relations) {
      if (view.kind !== 'view' || view.securityInvoker || !canRead(catalog, plan.role, view)) continue;
      const leaks = leaksOf(catalog, plan, view);
      if (!leaks.length) continue;
      const definition = view.viewDefinition ?? '';
      const filtered = filtersByCaller(analysis, view, new Set(leaks.map((leak) => leak.via.qualified)));
      const tables = [...new Set(leaks.map((leak) => leak.table.qualified))];
      const reasons = [...new Set(leaks.map((leak) => leak.reason))];
      findings.push(
        report({
          severity: filtered ? 'info' : 'high',
          object: relationObject(view),
          cause: cause('definer-view', relationObject(view)),
          message: filtered
            ? `The view ${view.qualified} reads ${tables.join(', ')} without their policies (${reasons.join('; ')}), but every query in its definition keeps only the caller's rows; keep it that way, or make it security_invoker.`
            : `The view ${view.qualified} reads ${tables.join(', ')} with the rights of ${view.owner}, bypassing their policies (${reasons.join('; ')}), and ${plan.role} may select from it: it returns every tenant's rows.`,
          sql:
            `select c.oid::regclass as view, pg_get_userbyid(c.relowner) as owner, c.reloptions, r.rolsuper, r.rolbypassrls, ` +
            `has_table_privilege(${literal(plan.role)}, c.oid, 'SELECT') as app_role_can_select ` +
            `from pg_class c join pg_roles r on r.oid = c.relowner where c.oid = ${regclassLiteral(view.qualified)};`,
          details: `view owner: ${view.owner}; security_invoker: off\n${leaks.map((leak) => `${leak.table.qualified} read as ${leak.readAs}: ${leak.reason}`).join('\n')}\ndefinition:\n${definition.trim()}`,
          fix: viewFix(catalog, plan, view, leaks),
        }),
      );
    }
    return findings;
  },
});

/**
 * The view's definition, as parsed, keeps only the caller's tenant/actor rows of every relation it reaches the leaking
 * tables through (each statement that reads them ties rows to the context by equality, with no `or true`, UNION arm or
 * NOT that widens it).
 */
function filtersByCaller(analysis: Analysis, view: Relation, via: Set<string>): boolean {
  const body = viewAnalysis(analysis, view.qualified);
  if (!body || body.verdict === 'unknown') return false;
  const reads = body.accesses.filter((access) => via.has(access.relation));
  return reads.length > 0 && reads.every((access) => access.confined);
}

function viewFix(catalog: Catalog, plan: TenancyPlan, view: Relation, leaks: Leak[]): Fix {
  const target = relationIdent(view);
  const tables = [...new Map(leaks.map((leak) => [leak.table.qualified, leak.table])).values()];
  if (catalog.serverVersionNum >= 150000) {
    // With security_invoker the caller needs SELECT on what the view reads (through invoker views too), and the
    // tables' policies then apply.
    const needed = new Map<string, Relation>();
    const collect = (relation: Relation) => {
      for (const name of relation.dependsOn) {
        const dependency = relationOf(catalog, name);
        if (!dependency || needed.has(name)) continue;
        if (!canRead(catalog, plan.role, dependency)) needed.set(name, dependency);
        if (dependency.kind === 'view' && dependency.securityInvoker) collect(dependency);
      }
    };
    collect(view);
    const grants = [...needed.values()].map((relation) => grant('select', relationIdent(relation), ident(plan.role)));
    return fix([alterView(target, 'set (security_invoker = true)'), ...grants]);
  }
  const lines: FixStep[] = [
    comment(`PostgreSQL ${catalog.serverVersion} has no security_invoker (added in 15): the view always reads as its owner.`),
    comment('Make its owner a role that does not bypass row-level security, and force RLS on the tables it reads:'),
    ...tables.filter((table) => table.rlsEnabled && !table.rlsForced).map((table) => forceRls(relationIdent(table))),
  ];
  if (leaks.some((leak) => roleNamed(catalog, leak.readAs)?.superuser || roleNamed(catalog, leak.readAs)?.bypassRls)) {
    lines.push(alterView(target, `owner to <a role without SUPERUSER or BYPASSRLS that holds SELECT on ${tables.map((table) => table.qualified).join(', ')}>`));
  }
  return fix(lines);
}
