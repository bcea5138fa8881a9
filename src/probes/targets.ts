import type { Relation } from '../catalog/types.js';
import { viewMapping } from '../analysis/views.js';
import type { RelationPlan } from '../plan/tenancy.js';
import type { Tenant } from '../seed/ledger.js';
import { ident, relationIdent } from '../sql.js';
import type { RelationAccess } from './access.js';
import { inPart } from './schedule.js';
import type { ProbeContext } from './types.js';

export interface ReadTarget {
  relation: Relation;
  relationPlan: RelationPlan;
  access: RelationAccess;
  /** `select ... from ... limit n` as the role may run it. */
  statement: string;
  /** Relations whose seeded keys attribute this relation's rows. */
  sources: string[];
  /** False when seeding this relation (or what it reads) failed: results cannot pass. */
  reliable: boolean;
  unreliableReason: string | null;
}

/** Every tenant-owned relation the application role can select from, with the statement to read it. */
export function readTargets(context: ProbeContext, sourcesOf: (relation: Relation) => string[]): ReadTarget[] {
  const byName = new Map(context.catalog.relations.map((relation) => [relation.qualified, relation]));
  const seeding = new Map(context.seedResults.map((result) => [result.relation, result]));
  const targets: ReadTarget[] = [];
  for (const relationPlan of context.plan.relations) {
    if (relationPlan.tenancy === 'shared') continue;
    const relation = byName.get(relationPlan.relation)!;
    if (!inPart(context, relation.qualified)) continue;
    const access = context.access.get(relation.qualified);
    if (!access || !access.selectColumns.length) continue;
    const columns = access.select ? '*' : access.selectColumns.map(ident).join(', ');
    const sources = sourcesOf(relation);
    const failed = [relation.qualified, ...sources]
      .map((name) => seeding.get(name))
      .find((result) => result && (result.status === 'failed' || result.status === 'partial'));
    targets.push({
      relation,
      relationPlan,
      access,
      statement: `select ${columns} from ${relationIdent(relation)} limit ${context.scenario.maxRowsPerQuery + 1}`,
      sources,
      reliable: !failed,
      unreliableReason: failed ? `${failed.relation} was ${failed.status === 'failed' ? 'not seeded' : 'only partly seeded'}: ${failed.reason}` : null,
    });
  }
  return targets;
}

/**
 * The rows of a tenant a read of this relation must show: its seeded rows, and those of its inheritance
 * children. Null for what seeding does not fill directly (views, partitions read on their own).
 */
export function expectedOwnRows(context: ProbeContext, relationName: string, tenant: Tenant): number | null {
  const relation = context.catalog.relations.find((candidate) => candidate.qualified === relationName)!;
  // A view that shows every row of the one table it reads (an API view, `select id, title from data.todo`):
  // the tenant's rows of that table, compared per relation.
  const mapping = relation.kind === 'view' ? viewMapping(relation) : null;
  if (mapping?.allRows) return expectedOwnRows(context, mapping.base, tenant);
  if ((relation.kind !== 'table' && relation.kind !== 'partitioned-table') || relation.partitionOf) return null;
  const names = [relationName, ...context.catalog.relations.filter((candidate) => candidate.inheritsFrom.includes(relationName)).map((candidate) => candidate.qualified)];
  return names.reduce((sum, name) => sum + context.ledger.count(name, tenant.id), 0);
}

/**
 * A membership table's rows are each a user's as much as a tenant's: a policy may rightly show a user only
 * its own memberships, so fewer of the tenant's rows there is no defect (a row of another tenant still is).
 */
export function mayHideTenantRows(context: ProbeContext, relationName: string): boolean {
  const relation = context.catalog.relations.find((candidate) => candidate.qualified === relationName);
  const shown = relation?.kind === 'view' ? viewMapping(relation)?.base : undefined;
  return context.plan.actors.membership?.relation === relationName || (shown !== undefined && context.plan.actors.membership?.relation === shown);
}

/** Relations that are partitions, inheritance children or views: a leak there is a path around the main policy. */
export function isIndirect(relation: Relation): boolean {
  return Boolean(relation.partitionOf) || relation.inheritsFrom.length > 0 || relation.kind === 'view' || relation.kind === 'materialized-view';
}

export function shownStatement(statement: string): string {
  return statement.replace(/ limit \d+$/, '');
}

