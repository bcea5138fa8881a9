import type { CallSite } from '../../analysis/model.js';
import { alterFunction, fix as makeFix, or } from '../../findings/fix.js';
import { wrapCallsInSubselect } from '../../analysis/sql-text.js';
import type { Catalog, FunctionInfo } from '../../catalog/types.js';
import { relationObject, type Finding } from '../../findings/finding.js';
import { literal } from '../../target/sql.js';
import { alterPolicy, describePolicy, functionsNamed, policyEvidenceSql } from '../privilege-helpers.js';
import { expressionCalls } from '../relation-facts.js';
import { defineRule } from '../types.js';

/** Built-in functions marked VOLATILE that show up in policies (now() and current_setting() are STABLE). */
const VOLATILE_BUILTINS = new Set([
  'random', 'random_normal', 'setseed', 'clock_timestamp', 'timeofday', 'nextval', 'currval', 'lastval', 'setval',
  'gen_random_uuid', 'uuidv4', 'uuidv7', 'txid_current', 'pg_current_xact_id', 'set_config', 'pg_sleep',
]);

/** The catalog's functions by that name when every overload is volatile, [] when none or not all are. */
function volatileUserFunctions(catalog: Catalog, call: CallSite): FunctionInfo[] {
  const candidates = functionsNamed(catalog, call.name);
  return candidates.length && candidates.every((fn) => fn.volatility === 'volatile') ? candidates : [];
}

function isVolatile(catalog: Catalog, call: CallSite): boolean {
  if (functionsNamed(catalog, call.name).length) return volatileUserFunctions(catalog, call).length > 0;
  return VOLATILE_BUILTINS.has(call.name);
}

export const policyVolatileFunction = defineRule({
  order: 300,
  meta: {
    id: 'policy-volatile-function',
    title: 'A policy calls a VOLATILE function for every row',
    severity: 'info',
    objectKind: 'table',
    summary: 'A policy calls a VOLATILE function for every row.',
    example: 'Policy tenant_isolation on public.documents calls the VOLATILE function is_visible for every row.',
    explanation:
      'PostgreSQL must call a VOLATILE function again for every row, cannot use its result as an index condition, and cannot move ' +
      'the predicate around: a policy that calls one (often a `current_tenant_id()` helper created without STABLE) turns every ' +
      'query on the table into a full scan with a function call per row. Declare helpers that only read settings or tables STABLE, ' +
      'or call them in a sub-select, `(select current_tenant_id())`, which runs once per statement. Calls already inside a ' +
      'sub-select are not reported.',
    precondition:
      'Info: performance: a policy calls a VOLATILE function outside a sub-select, so it runs for every row and cannot serve as an ' +
      'index condition; nothing leaks.',
  },
  evaluate({ catalog, plan, analysis }, report) {
    const scope = { catalog, plan, analysis };
    const findings: Finding[] = [];
    for (const relation of catalog.relations) {
      for (const policy of relation.policies) {
        const perRowVolatile = (expression: string) => expressionCalls(scope, policy, expression).filter((call) => !call.inSubselect && isVolatile(catalog, call));
        const calls = [policy.using, policy.withCheck].flatMap((expression) => (expression === null ? [] : perRowVolatile(expression)));
        if (!calls.length) continue;
        const names = [...new Set(calls.map((call) => call.name))];
        const userFunctions = [...new Map(calls.flatMap((call) => volatileUserFunctions(catalog, call)).map((fn) => [fn.signature, fn])).values()];
        const once = alterPolicy(policy, (expression) => wrapCallsInSubselect(expression, perRowVolatile(expression)));
        const stable = userFunctions.map((fn) => ({ ...alterFunction(fn.signature, 'stable'), sql: `alter function ${fn.signature} stable; -- only if it does not modify the database` }));
        const fix = stable.length ? makeFix(stable, [or(' evaluate it once per statement:', [once])]) : makeFix([once]);
        findings.push(
          report({
            severity: 'info',
            object: relationObject(relation),
            message: `The policy ${policy.name} on ${relation.qualified} calls the VOLATILE function${names.length > 1 ? 's' : ''} ${names.join(', ')} for every row, which rules out index scans on that predicate.`,
            sql: `${policyEvidenceSql(policy)}\nselect p.oid::regprocedure, p.provolatile from pg_proc p where p.proname in (${names.map((name) => literal(name.split('.').pop()!)).join(', ')});`,
            details: describePolicy(policy),
            fix,
          }),
        );
      }
    }
    return findings;
  },
});
