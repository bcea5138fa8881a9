import type { Catalog, FunctionInfo } from '../catalog/types.js';
import { functionAnalysis } from '../analysis/index.js';
import type { Analysis } from '../analysis/model.js';
import type { Finding, FindingObject } from '../findings/finding.js';
import { dynamicSqlFunctions } from '../rules/privilege-helpers.js';
import { severityRank } from '../findings/severity.js';
import type { TenancyPlan } from './tenancy.js';

/** The relations and functions the API layer cannot reach, and the sentence that says why. */
export interface ApiReach {
  unreachableRelations: Set<string>;
  unreachableFunctions: Set<string>;
  reason: string;
}

const ANALYSED_LANGUAGES = new Set(['sql', 'plpgsql']);

/**
 * What a role reached only through an API layer (a preset, or `api: true`) can reach when the layer exposes some
 * schemas only (PostgREST's db-schemas, `apiSchemas` in the scenario): the relations and functions of those
 * schemas, then, transitively, what their views read, what their functions' bodies read and call, and the
 * trigger functions of every relation reached. Null (everything counts as reachable) when there is no API
 * barrier, when a function the role may call runs dynamic SQL, or when a function reached could not be read.
 */
export function apiReach(catalog: Catalog, analysis: Analysis, plan: TenancyPlan): ApiReach | null {
  if (!plan.apiOnly || !plan.apiSchemas?.length) return null;
  if (dynamicSqlFunctions(catalog, analysis, plan).length) return null;
  const exposed = new Set(plan.apiSchemas);
  const relations = new Map(catalog.relations.map((relation) => [relation.qualified, relation]));
  const byName = new Map<string, FunctionInfo[]>();
  for (const fn of catalog.functions) {
    for (const name of [fn.name.toLowerCase(), `${fn.schema}.${fn.name}`.toLowerCase()]) byName.set(name, [...(byName.get(name) ?? []), fn]);
  }
  const reachedRelations = new Set<string>();
  const reachedFunctions = new Set<string>();
  const queue: ({ relation: string } | { fn: FunctionInfo })[] = [
    ...catalog.relations.filter((relation) => exposed.has(relation.schema)).map((relation) => ({ relation: relation.qualified })),
    ...catalog.functions.filter((fn) => exposed.has(fn.schema)).map((fn) => ({ fn })),
  ];
  while (queue.length) {
    const next = queue.shift()!;
    if ('relation' in next) {
      if (reachedRelations.has(next.relation)) continue;
      reachedRelations.add(next.relation);
      const relation = relations.get(next.relation);
      for (const dependency of relation?.dependsOn ?? []) queue.push({ relation: dependency });
      for (const trigger of catalog.triggers.filter((entry) => entry.relation === next.relation)) {
        const fn = catalog.functions.find((candidate) => candidate.oid === trigger.functionOid);
        if (fn) queue.push({ fn });
      }
      continue;
    }
    const { fn } = next;
    if (reachedFunctions.has(fn.signature)) continue;
    reachedFunctions.add(fn.signature);
    if (!ANALYSED_LANGUAGES.has(fn.language)) continue;
    const body = functionAnalysis(analysis, fn.signature);
    // A body that could not be read may reach anything: nothing is left out.
    if (!body || body.verdict === 'unknown') return null;
    for (const relation of body.relations) queue.push({ relation });
    for (const call of body.calls) for (const callee of byName.get(call.toLowerCase()) ?? []) queue.push({ fn: callee });
  }
  const unreachableRelations = new Set(catalog.relations.map((relation) => relation.qualified).filter((name) => !reachedRelations.has(name)));
  const unreachableFunctions = new Set(catalog.functions.map((fn) => fn.signature).filter((name) => !reachedFunctions.has(name)));
  if (!unreachableRelations.size && !unreachableFunctions.size) return null;
  const schemas = plan.apiSchemas.join(', ');
  return {
    unreachableRelations,
    unreachableFunctions,
    reason: `not reachable through the API: it exposes only schema${plan.apiSchemas.length === 1 ? '' : 's'} ${schemas}, and no view, function or trigger reached from there reads it`,
  };
}

/** Whether one object of a finding is out of the API's reach. */
function unreachable(reach: ApiReach, object: FindingObject): boolean {
  if (object.kind === 'function') return reach.unreachableFunctions.has(object.name);
  if (object.kind === 'policy' || object.kind === 'constraint') return object.relation !== undefined && reach.unreachableRelations.has(object.relation);
  if (object.kind === 'table' || object.kind === 'view') return reach.unreachableRelations.has(object.name);
  return false;
}

/**
 * Findings on objects the API layer cannot reach (and none of whose affected objects it can) are info: the
 * attacker the severity is for cannot take that path. The message says why; the evidence and the fix stay.
 */
export function applyApiReach(findings: Finding[], reach: ApiReach | null): Finding[] {
  if (!reach) return findings;
  return findings.map((finding) => {
    if (severityRank(finding.severity) <= severityRank('info')) return finding;
    const objects = [finding.object, ...(finding.affected ?? [])];
    if (!objects.every((object) => unreachable(reach, object))) return finding;
    return { ...finding, severity: 'info', message: `${finding.message} Info here: ${finding.object.name} is ${reach.reason} (apiSchemas).` };
  });
}
