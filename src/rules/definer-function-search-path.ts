import type { Finding } from '../findings.js';
import { ident, literal } from '../sql.js';
import { fixedSearchPath } from './privilege-helpers.js';
import { defineRule } from './types.js';

export const definerFunctionSearchPath = defineRule({
  meta: {
    id: 'definer-function-search-path',
    title: 'A SECURITY DEFINER function has no fixed search_path',
    severity: 'medium',
    objectKind: 'function',
    summary: 'A SECURITY DEFINER function resolves names through a search_path its caller controls.',
    example: 'SECURITY DEFINER trigger function touch_project() has no fixed search_path.',
    explanation:
      'A SECURITY DEFINER function (trigger functions included) resolves every unqualified table, function and operator through the ' +
      "caller's search_path. A caller who can create objects in any schema on that path, or in pg_temp (every session can), can put a " +
      'table or function of the same name first and have the owner run it with the owner\'s rights: a way around row-level security ' +
      'and often to the owner\'s role. Pin the path in the function: ALTER FUNCTION ... SET search_path = pg_catalog, <schema>, pg_temp ' +
      '(pg_temp last, so it is searched last).',
    precondition:
      'Medium: a SECURITY DEFINER function (trigger functions included) has no fixed search_path, so a caller who can create objects ' +
      'in a schema on its path, or in pg_temp (every session can), can have the owner run its table or function with the owner\'s ' +
      'rights; seen only statically (no probe calls it).',
  },
  evaluate({ catalog }, report) {
    const findings: Finding[] = [];
    for (const fn of catalog.functions) {
      if (!fn.securityDefiner || fixedSearchPath(fn) !== null) continue;
      const kind = fn.returnKind === 'trigger' ? 'SECURITY DEFINER trigger function' : 'SECURITY DEFINER function';
      findings.push(
        report({
          severity: 'medium',
          object: fn.signature,
          message: `The ${kind} ${fn.signature} (owner ${fn.owner}) has no fixed search_path: it resolves names through the caller's path, which the caller controls.`,
          sql: `select p.oid::regprocedure as function, pg_get_userbyid(p.proowner) as owner, p.prosecdef, p.proconfig from pg_proc p where p.oid = ${literal(fn.signature)}::regprocedure;`,
          details: `proconfig: ${fn.config.length ? fn.config.join(', ') : '(none)'}`,
          fix: `alter function ${fn.signature} set search_path = pg_catalog, ${ident(fn.schema)}, pg_temp;`,
        }),
      );
    }
    return findings;
  },
});
