import type { Catalog, FunctionInfo } from '../../catalog/types.js';
import { fix, setSearchPath } from '../../findings/fix.js';
import type { Finding } from '../../findings/finding.js';
import { functionAnalysis } from '../../analysis/index.js';
import type { Analysis } from '../../analysis/model.js';
import { ident, literal } from '../../target/sql.js';
import { relationOf } from '../../catalog/lookup.js';
import { apiBarrier, canCreateTemporary, canExecute, creatableSchemas, fixedSearchPath, roleHolds } from '../privilege-helpers.js';
import { listWords } from '../relation-facts.js';
import { defineRule } from '../types.js';

const WRITES = ['INSERT', 'UPDATE', 'DELETE'];

/** How the role comes to run the function: calls it (EXECUTE), or fires it (a trigger on a table it writes); null when it cannot. */
function howReached(catalog: Catalog, role: string, fn: FunctionInfo): string | null {
  if (fn.returnKind !== 'trigger') return canExecute(catalog, role, fn) ? `${role} may call it` : null;
  const tables = catalog.triggers
    .filter((trigger) => trigger.functionOid === fn.oid && trigger.enabled)
    .map((trigger) => relationOf(catalog, trigger.relation))
    .filter((relation) => relation && WRITES.some((privilege) => roleHolds(catalog, role, relation.owner, relation.grants, privilege)))
    .map((relation) => relation!.qualified);
  return tables.length ? `${role} fires it by writing ${listWords([...new Set(tables)])}` : null;
}

/**
 * What the role can put first on the function's path, or null when nothing: an object in a schema it may
 * create in (it sets its own search_path, pg_catalog after that schema), or a temporary table of the name of
 * a relation the body writes without its schema (pg_temp comes first for relations). A body that cannot be
 * read (another language, dynamic SQL) is taken to name relations so.
 */
function shadowing(catalog: Catalog, analysis: Analysis, role: string, fn: FunctionInfo): string | null {
  const schemas = creatableSchemas(catalog, role);
  if (schemas.length) return `${role} may create objects in ${listWords(schemas.map((schema) => `schema ${schema}`))}`;
  if (!canCreateTemporary(catalog, role)) return null;
  const body = functionAnalysis(analysis, fn.signature);
  if (!body || body.verdict === 'unknown') return `${role} may create temporary tables, and the body cannot be read to tell which relations it names`;
  if (body.unqualified.length) return `${role} may create a temporary table named ${listWords(body.unqualified)}, which the body names without its schema`;
  return null;
}

export const definerFunctionSearchPath = defineRule({
  order: 250,
  meta: {
    id: 'definer-function-search-path',
    title: 'A SECURITY DEFINER function has no fixed search_path',
    severity: 'medium',
    objectKind: 'function',
    summary: 'A SECURITY DEFINER function resolves names through a search_path its caller controls.',
    example: 'SECURITY DEFINER trigger function touch_project() has no fixed search_path, and app_user may create a temporary table named project_events, which the body names without its schema.',
    explanation:
      'A SECURITY DEFINER function (trigger functions included) resolves every unqualified table, function and operator through the ' +
      "caller's search_path. A caller who can create objects in a schema (then puts it first on its path), or a temporary table " +
      '(pg_temp is searched first for relations), can have the owner run its table or function with the owner\'s rights: a way ' +
      'around row-level security and often to the owner\'s role. Pin the path in the function: ALTER FUNCTION ... SET search_path = ' +
      'pg_catalog, <schema>, pg_temp (pg_temp last, so it is searched last).',
    precondition:
      'A SECURITY DEFINER function (trigger functions included) has no fixed search_path and the role calls it (EXECUTE) or fires it ' +
      '(a trigger on a table it writes): medium ("unproven", seen only statically) when the role may create objects in a schema, or ' +
      'may create temporary tables and the body names a relation without its schema (or cannot be read); info when the role is ' +
      'reached only through an API layer that runs no DDL, when it cannot reach the function, or when it has nothing to put first on the path.',
  },
  evaluate({ catalog, analysis, plan }, report) {
    const findings: Finding[] = [];
    const barrier = apiBarrier(catalog, analysis, plan);
    for (const fn of catalog.functions) {
      if (!fn.securityDefiner || fixedSearchPath(fn) !== null) continue;
      const kind = fn.returnKind === 'trigger' ? 'SECURITY DEFINER trigger function' : 'SECURITY DEFINER function';
      const reached = howReached(catalog, plan.role, fn);
      const shadow = reached && !barrier ? shadowing(catalog, analysis, plan.role, fn) : null;
      const why = !reached
        ? `${plan.role} can neither call nor fire it`
        : barrier
          ? `${reached}, but ${barrier}`
          : shadow
            ? `${reached}, and ${shadow}`
            : `${reached}, but ${plan.role} may create no object in any schema and the body names every relation with its schema`;
      findings.push(
        report({
          severity: shadow ? 'medium' : 'info',
          object: fn.signature,
          message: `The ${kind} ${fn.signature} (owner ${fn.owner}) has no fixed search_path, so it resolves names through its caller's path: ${why}.`,
          sql: `select p.oid::regprocedure as function, pg_get_userbyid(p.proowner) as owner, p.prosecdef, p.proconfig from pg_proc p where p.oid = ${literal(fn.signature)}::regprocedure;`,
          details: `proconfig: ${fn.config.length ? fn.config.join(', ') : '(none)'}`,
          fix: fix([setSearchPath(fn.signature, `pg_catalog, ${ident(fn.schema)}, pg_temp`)]),
        }),
      );
    }
    return findings;
  },
});
