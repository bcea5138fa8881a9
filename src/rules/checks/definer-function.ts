import { functionAnalysis } from '../../analysis/index.js';
import { alterFunction, comment, fix, revoke, type Fix, type FixStep } from '../../findings/fix.js';
import type { BodyAnalysis } from '../../analysis/model.js';
import type { FunctionInfo, Relation } from '../../catalog/types.js';
import type { Finding } from '../../findings/finding.js';
import { commentText, ident, literal } from '../../target/sql.js';
import { canExecute, isBaseTable, relationPlanOf, rlsBypassReason } from '../privilege-helpers.js';
import { defineRule } from '../types.js';
import { relationOf } from '../../catalog/lookup.js';

export const definerFunction = defineRule({
  order: 240,
  meta: {
    id: 'definer-function',
    title: 'A SECURITY DEFINER function reads tenant tables without their policies',
    severity: 'medium',
    objectKind: 'function',
    summary: 'A SECURITY DEFINER function reads tenant tables past their policies and the application role may call it.',
    example: "SECURITY DEFINER function projects_of(integer) reads public.projects with its owner's rights.",
    explanation:
      'A SECURITY DEFINER function runs with the rights of its owner. When the owner is a superuser, has BYPASSRLS, or owns a tenant ' +
      'table that does not force row-level security, the queries inside the function see every tenant, and any role that may EXECUTE ' +
      'it (by default: PUBLIC) gets those rows. This rule parses the body (SQL, or PL/pgSQL with the constant strings it gives to ' +
      'EXECUTE), finds the tenant tables its statements read or write, and checks its owner ' +
      'and the EXECUTE privilege of the application role. A function whose every statement on them ties rows to the caller\'s ' +
      'tenant by equality (directly, through a variable, or a helper that does) filters by the caller\'s tenant and is reported as ' +
      'info; `or true`, a UNION arm or NOT that widens a statement does not. SQL built at run time (EXECUTE of a non-constant ' +
      'string) is not analysed: such a function is a candidate whenever its owner bypasses the policies of any tenant table. Static ' +
      'text cannot tell a function that checks its caller (a membership check, an RPC that only writes rows for the caller) from one ' +
      'that does not: the function-leak probe decides by calls. Fix: make it SECURITY INVOKER, or filter by the caller\'s tenant, and ' +
      'revoke EXECUTE from PUBLIC.',
    precondition:
      'Static text names candidates: medium ("unproven") until called, info when every statement on the bypassed tables keeps only ' +
      'the caller\'s rows. In `run`, function-leak calls each candidate as one tenant with another tenant\'s keys in every argument ' +
      'that can hold one (tenant id, keys of its rows from the seed ledger), attributes what comes back and counts, as the ' +
      'administrator in the same rolled-back savepoint, what changed: a row of the other tenant returned or changed is high ' +
      '(confirmed); calls as two tenants that touched nothing of the other are info (refuted); a function that could not be called ' +
      '(effects on a live database, arguments that cannot be built) stays medium, with the reason.',
    confirmedBy: ['function-leak'],
  },
  evaluate({ catalog, plan, analysis }, report) {
    const findings: Finding[] = [];
    const tenantTables = catalog.relations.filter((relation) => {
      const relationPlan = relationPlanOf(plan, relation.qualified);
      return isBaseTable(relation) && relation.rlsEnabled && relationPlan !== undefined && relationPlan.tenancy !== 'shared';
    });
    for (const fn of catalog.functions) {
      if (!fn.securityDefiner || fn.returnKind === 'trigger' || !canExecute(catalog, plan.role, fn)) continue;
      const body = functionAnalysis(analysis, fn.signature);
      if (!body) continue;
      const dynamic = body.verdict === 'unknown' && body.dynamicSql.length > 0;
      // Dynamic SQL may reach any tenant table the owner bypasses; otherwise the tables the parsed statements touch.
      const candidates = dynamic
        ? tenantTables
        : body.relations.map((name) => relationOf(catalog, name)).filter((relation): relation is Relation => relation !== undefined && tenantTables.includes(relation));
      const bypassed = candidates.map((table) => ({ table, reason: rlsBypassReason(catalog, fn.owner, table) ?? '' })).filter((entry) => entry.reason);
      if (!bypassed.length) continue;
      const tables = bypassed.map(({ table }) => table);
      const why = [...new Set(bypassed.map(({ reason }) => reason))].join('; ');
      const filtered = !dynamic && filtersByCaller(body, new Set(tables.map((table) => table.qualified)));
      findings.push(
        report({
          severity: filtered ? 'info' : 'medium',
          object: fn.signature,
          message: filtered
            ? `The SECURITY DEFINER function ${fn.signature} reads ${tables.map((table) => table.qualified).join(', ')} without their policies (${why}), but every statement on them keeps only the caller's rows.`
            : dynamic
              ? `The SECURITY DEFINER function ${fn.signature} runs dynamic SQL, which is not analysed (${body.dynamicSql[0]}), with the rights of ${fn.owner}, who bypasses the policies of ${tables.map((table) => table.qualified).join(', ')} (${why}), and ${plan.role} may execute it: it may return or change every tenant's rows unless it checks its caller, which only calls with another tenant's keys can show.`
              : `The SECURITY DEFINER function ${fn.signature} reads ${tables.map((table) => table.qualified).join(', ')} with the rights of ${fn.owner}, bypassing their policies (${why}), and ${plan.role} may execute it: it can return or change every tenant's rows unless it checks its caller, which only calls with another tenant's keys can show.`,
          sql:
            `select p.oid::regprocedure as function, pg_get_userbyid(p.proowner) as owner, p.prosecdef, r.rolsuper, r.rolbypassrls, ` +
            `has_function_privilege(${literal(plan.role)}, p.oid, 'EXECUTE') as app_role_can_execute, p.prosrc ` +
            `from pg_proc p join pg_roles r on r.oid = p.proowner where p.oid = ${literal(fn.signature)}::regprocedure;`,
          details: `owner ${fn.owner}; ${dynamic ? 'runs dynamic SQL' : `reads ${tables.map((table) => table.qualified).join(', ')}`}\n${why}${body.reason ? `\n${body.reason}` : ''}\nbody:\n${fn.source.trim()}`,
          fix: functionFix(fn, plan.role, tables, filtered),
        }),
      );
    }
    return findings;
  },
});

/** Every statement of the parsed body that touches the tables keeps only the caller's tenant/actor rows. */
function filtersByCaller(body: BodyAnalysis, tables: Set<string>): boolean {
  if (body.verdict === 'unknown') return false;
  const touching = body.accesses.filter((access) => tables.has(access.relation));
  return touching.length > 0 && touching.every((access) => access.confined);
}

function functionFix(fn: FunctionInfo, role: string, tables: Relation[], filtered: boolean): Fix {
  if (filtered) {
    // A helper that keeps only the caller's rows is the usual way for a policy to read a table whose own policy
    // would otherwise recurse (a membership table): making it SECURITY INVOKER would break exactly that.
    return fix([
      comment(
        `nothing to change: ${commentText(fn.signature)} keeps only the caller's rows; keep it SECURITY DEFINER if a policy calls it (as invoker it would run into the policies of ${commentText(tables.map((table) => table.qualified).join(', '))} again, and recurse if one of them calls it)`,
      ),
    ]);
  }
  const steps: FixStep[] = [
    alterFunction(fn.signature, 'security invoker'),
    comment(`the caller then needs the privileges the body uses, e.g.: grant select on ${commentText(tables.map((table) => table.qualified).join(', '))} to ${commentText(ident(role))};`),
  ];
  if (fn.grants.some((grant) => grant.grantee === 'public' && grant.privilege === 'EXECUTE')) steps.push(revoke('execute', `function ${fn.signature}`, 'public'));
  return fix(steps);
}
