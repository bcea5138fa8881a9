import type { FunctionInfo, Relation } from '../catalog/types.js';
import type { Finding } from '../findings.js';
import { ident, literal } from '../sql.js';
import {
  canExecute,
  filtersByCallerTenant,
  fixedSearchPath,
  isBaseTable,
  referencedRelations,
  relationPlanOf,
  rlsBypassReason,
  type TableReference,
} from './privilege-helpers.js';
import { defineRule } from './types.js';

export const definerFunction = defineRule({
  meta: {
    id: 'definer-function',
    title: 'A SECURITY DEFINER function reads tenant tables without their policies',
    severity: 'high',
    objectKind: 'function',
    summary: 'A SECURITY DEFINER function reads tenant tables past their policies and the application role may call it.',
    example: "SECURITY DEFINER function projects_of(integer) reads public.projects with its owner's rights.",
    explanation:
      'A SECURITY DEFINER function runs with the rights of its owner. When the owner is a superuser, has BYPASSRLS, or owns a tenant ' +
      'table that does not force row-level security, the queries inside the function see every tenant, and any role that may EXECUTE ' +
      'it (by default: PUBLIC) gets those rows. This rule finds the tenant tables a function names in its body and checks its owner ' +
      'and the EXECUTE privilege of the application role. A function whose every query compares the tenant column with the tenant ' +
      'setting (directly, through a variable, or a helper that reads it) filters by the caller\'s tenant and is reported as info; the ' +
      'function-leak probe calls it to confirm either way. Fix: make it SECURITY INVOKER, or filter by the caller\'s tenant, and ' +
      'revoke EXECUTE from PUBLIC. Bodies built with EXECUTE of dynamic SQL are not read.',
    confirmedBy: ['function-leak'],
  },
  evaluate({ catalog, plan }, report) {
    const findings: Finding[] = [];
    for (const fn of catalog.functions) {
      if (!fn.securityDefiner || fn.returnKind === 'trigger' || !fn.source || !canExecute(catalog, plan.role, fn)) continue;
      const references = referencedRelations(catalog, fn.source, searchSchemas(fn));
      const bypassed: { reference: TableReference; reason: string }[] = [];
      const reasons = new Map<string, string>();
      for (const reference of references) {
        const table = reference.relation;
        if (!isBaseTable(table) || !table.rlsEnabled) continue;
        const tablePlan = relationPlanOf(plan, table.qualified);
        if (!tablePlan || tablePlan.tenancy === 'shared') continue;
        let reason = reasons.get(table.qualified);
        if (reason === undefined) {
          reason = rlsBypassReason(catalog, fn.owner, table) ?? '';
          reasons.set(table.qualified, reason);
        }
        if (reason) bypassed.push({ reference, reason });
      }
      if (!bypassed.length) continue;
      const tables = [...new Map(bypassed.map(({ reference }) => [reference.relation.qualified, reference.relation])).values()];
      const why = [...new Set(bypassed.map(({ reason }) => reason))].join('; ');
      const filtered = filtersByCallerTenant(catalog, plan, fn.source, bypassed.map(({ reference }) => reference));
      findings.push(
        report({
          severity: filtered ? 'info' : 'high',
          object: fn.signature,
          message: filtered
            ? `The SECURITY DEFINER function ${fn.signature} reads ${tables.map((table) => table.qualified).join(', ')} without their policies (${why}), but every query on them compares the tenant column with the caller's tenant setting.`
            : `The SECURITY DEFINER function ${fn.signature} reads ${tables.map((table) => table.qualified).join(', ')} with the rights of ${fn.owner}, bypassing their policies (${why}), and ${plan.role} may execute it: it can return or change every tenant's rows.`,
          sql:
            `select p.oid::regprocedure as function, pg_get_userbyid(p.proowner) as owner, p.prosecdef, r.rolsuper, r.rolbypassrls, ` +
            `has_function_privilege(${literal(plan.role)}, p.oid, 'EXECUTE') as app_role_can_execute, p.prosrc ` +
            `from pg_proc p join pg_roles r on r.oid = p.proowner where p.oid = ${literal(fn.signature)}::regprocedure;`,
          details: `owner ${fn.owner}; reads ${tables.map((table) => table.qualified).join(', ')}\n${why}\nbody:\n${fn.source.trim()}`,
          fix: functionFix(fn, plan.role, tables, filtered),
        }),
      );
    }
    return findings;
  },
});

/** Where the body's unqualified table names resolve: the function's pinned search_path, else its schema and public. */
function searchSchemas(fn: FunctionInfo): string[] {
  const pinned = fixedSearchPath(fn);
  if (pinned === null) return [fn.schema, 'public'];
  return pinned
    .split(',')
    .map((entry) => entry.trim().replace(/^"(.*)"$/, '$1'))
    .filter((entry) => entry && entry !== '$user' && entry !== 'pg_temp' && entry !== 'pg_catalog');
}

function functionFix(fn: FunctionInfo, role: string, tables: Relation[], filtered: boolean): string {
  const lines = [
    `alter function ${fn.signature} security invoker;`,
    `-- the caller then needs the privileges the body uses, e.g.: grant select on ${tables.map((table) => table.qualified).join(', ')} to ${ident(role)};`,
  ];
  if (fn.grants.some((grant) => grant.grantee === 'public' && grant.privilege === 'EXECUTE')) lines.push(`revoke execute on function ${fn.signature} from public;`);
  if (filtered) lines.unshift('-- the body already filters by the caller\'s tenant; security invoker lets the policies do it as well:');
  return lines.join('\n');
}
