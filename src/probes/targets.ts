import type { Catalog, Relation } from '../catalog/types.js';
import { viewMapping } from '../analysis/views.js';
import type { RelationPlan, TenancyPlan } from '../plan/tenancy.js';
import type { Ledger, Tenant } from '../seed/ledger.js';
import { ident, literal, relationIdent, textArrayLiteral } from '../target/sql.js';
import type { RelationAccess } from './access.js';
import { runAs } from './context.js';
import { inPart } from './schedule.js';
import { firstValue, nodes, parsePlan } from './checks/seq-scan.js';
import type { ProbeContext } from './types.js';
import { relationOf, requireColumn, requireRelation } from '../catalog/lookup.js';

export interface ReadTarget {
  relation: Relation;
  relationPlan: RelationPlan;
  access: RelationAccess;
  /**
   * `select ... from ... limit n` as the role may run it; on a large relation that no index serves by its
   * tenant column, the seeded rows by key and a sample of the rest (see `sampledRead`).
   */
  statement: string;
  /** Set when `statement` reads a sample of the relation's existing rows instead of all of them. */
  sampled?: SampledRead;
  /** Set on the one read in full of a relation whose policy forces a scan (`fullReadOf`): read once, row by row. */
  scansAll?: true;
  /** Relations whose seeded keys attribute this relation's rows. */
  sources: string[];
  /** False when seeding this relation (or what it reads) failed: results cannot pass. */
  reliable: boolean;
  unreliableReason: string | null;
}

/** Every tenant-owned relation the application role can select from, with the statement to read it. */
export function readTargets(context: ProbeContext, sourcesOf: (relation: Relation) => string[]): ReadTarget[] {
  const seeding = new Map(context.seedResults.map((result) => [result.relation, result]));
  const targets: ReadTarget[] = [];
  for (const relationPlan of context.plan.relations) {
    if (relationPlan.tenancy === 'shared') continue;
    const relation = requireRelation(context.catalog, relationPlan.relation);
    if (!inPart(context, relation.qualified)) continue;
    const access = context.access.get(relation.qualified);
    if (!access || !access.selectColumns.length) continue;
    const columns = access.select ? '*' : access.selectColumns.map(ident).join(', ');
    const sources = sourcesOf(relation);
    const failed = [relation.qualified, ...sources]
      .map((name) => seeding.get(name))
      .find((result) => result && (result.status === 'failed' || result.status === 'partial'));
    const sampled = sampledRead(context.catalog, relation, relationPlan, context.forcedScans);
    const keyed = sampled ? seededKeyCondition(context, relation, sampled.key) : null;
    const statement = sampled && keyed
      ? `select ${columns} from ${relationIdent(relation)} where ${keyed} union all select ${columns} from ${relationIdent(relation)} tablesample system (${sampled.percent}) repeatable (0) where not (${keyed})`
      : `select ${columns} from ${relationIdent(relation)}`;
    targets.push({
      relation,
      relationPlan,
      access,
      statement: `${statement} limit ${context.scenario.maxRowsPerQuery + 1}`,
      ...(sampled && keyed ? { sampled } : {}),
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
  const relation = requireRelation(context.catalog, relationName);
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
  const relation = relationOf(context.catalog, relationName);
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

/** A relation with more rows than this (estimated before the audit) is large: reads of it are bounded where no index serves them. */
export const LARGE_RELATION_ROWS = 10_000;
/** About how many existing rows one bounded read of a large relation samples. */
export const SAMPLED_ROWS = 2_000;

export interface SampledRead {
  /** Why reads are sampled: no index leads with the tenant column, or the policy keeps the one there is from serving. */
  why: 'no-index' | 'policy';
  /** The primary key by which the seeded rows are read. */
  key: string[];
  /** The TABLESAMPLE SYSTEM percentage of the relation's pages read for its existing rows. */
  percent: number;
  estimatedRows: number;
}

/** A large relation whose reads as a tenant would be bounded if nothing served them: see `sampledRead`. */
function boundable(catalog: Catalog, relation: Relation, relationPlan: RelationPlan): boolean {
  if (relation.kind !== 'table' || relation.partitionOf || relation.inheritsFrom.length) return false;
  if (relation.estimatedRows <= LARGE_RELATION_ROWS || !relationPlan.tenantColumn || !relation.primaryKey?.length) return false;
  return !catalog.relations.some((candidate) => candidate.inheritsFrom.includes(relation.qualified));
}

function hasTenantIndex(relation: Relation, column: string): boolean {
  return relation.indexes.some((index) => !index.partial && index.columns[0] === column);
}

/**
 * On a large relation (a staging or production database) whose reads as a tenant no index serves, every
 * read would scan every row of every tenant, for each tenant, context and probe: hours on a table of 100
 * million rows. There the reads are bounded: the seeded rows by their primary key (so that every tenant's
 * own rows and every other audit tenant's rows are seen exactly as a full read would show them), and a
 * TABLESAMPLE of the existing rows (attributed like any row: a pre-existing tenant's row returned to an
 * audit tenant is a leak). The report notes the relation as sampled. That is so where no index starts with
 * the tenant column (`no-index`), and where there is one but the policy keeps the planner from using it
 * (`policy`, found by `forcedFullScans`; read-isolation then reads the relation in full once, as its first
 * tenant). Null where the read stays whole: a small relation, one an index serves, no tenant column or no
 * primary key, a relation with partitions or inheritance children (whose seeded rows live in other relations).
 */
export function sampledRead(catalog: Catalog, relation: Relation, relationPlan: RelationPlan, forcedScans?: ReadonlySet<string>): SampledRead | null {
  if (!boundable(catalog, relation, relationPlan)) return null;
  const why = !hasTenantIndex(relation, relationPlan.tenantColumn!) ? 'no-index' : forcedScans?.has(relation.qualified) ? 'policy' : null;
  if (!why) return null;
  const percent = Math.min(100, Math.max(0.001, Number(((100 * SAMPLED_ROWS) / relation.estimatedRows).toPrecision(2))));
  return { why, key: relation.primaryKey!, percent, estimatedRows: relation.estimatedRows };
}

/** The name a read target's statement is prepared under: one per relation and statement (sampled or whole). */
export function preparedName(kind: 'read' | 'count', target: ReadTarget): string {
  return `rls_audit_${kind}_${target.relation.oid}${target.sampled ? '_sampled' : ''}`;
}

/** The read of a sampled target in full, as read-isolation makes it once per relation where the policy forces a scan. */
export function fullReadOf(context: ProbeContext, target: ReadTarget): ReadTarget {
  const { sampled: _sampled, ...rest } = target;
  const columns = target.access.select ? '*' : target.access.selectColumns.map(ident).join(', ');
  return { ...rest, statement: `select ${columns} from ${relationIdent(target.relation)} limit ${context.scenario.maxRowsPerQuery + 1}`, scansAll: true };
}

/**
 * Large relations with an index that starts with the tenant column on which a tenant's read, planned with
 * sequential scans disabled, still reads every row (a scan with no index condition): the policy keeps the
 * index from serving (a cast of the tenant column, a function of each row). One EXPLAIN (as the
 * application role, as the first tenant) per such relation, before the probes.
 */
export async function forcedFullScans(context: ProbeContext): Promise<Set<string>> {
  const forced = new Set<string>();
  const tenant = context.tenants[0];
  if (!tenant) return forced;
  for (const relationPlan of context.plan.relations) {
    const relation = relationOf(context.catalog, relationPlan.relation);
    if (!relation || relationPlan.tenancy !== 'direct' || !boundable(context.catalog, relation, relationPlan) || !hasTenantIndex(relation, relationPlan.tenantColumn!)) continue;
    if (!context.access.get(relation.qualified)?.selectColumns.length) continue;
    const result = await runAs(context, { kind: 'tenant', tenant }, `explain (format json) select 1 from ${relationIdent(relation)}`, [], { before: ['set local enable_seqscan = off'] });
    const plan = parsePlan(firstValue(result.rows[0]));
    // Read in full: the relation is scanned (sequentially, or along a whole index) and no index condition narrows it.
    const indexNames = new Set(relation.indexes.map((index) => index.name));
    const scans = plan ? nodes(plan).filter((node) => (node['Relation Name'] === relation.name && (node.Schema ?? relation.schema) === relation.schema) || (node['Index Name'] !== undefined && indexNames.has(node['Index Name']))) : [];
    if (scans.length && !scans.some((node) => node['Index Cond'] !== undefined)) forced.add(relation.qualified);
  }
  return forced;
}

/**
 * `"id" = any('{1,2}'::bigint[])`, or `("a", "b") in (('1'::int, '2'::int), ...)` for a composite key: the
 * seeded rows of every audit tenant, found through the primary key's index. Values are quoted literals:
 * the read targets' statements run without parameters. Null when the relation has no seeded row.
 */
function seededKeyCondition(context: ProbeContext, relation: Relation, key: string[]): string | null {
  const rows = context.ledger.rows(relation.qualified).filter((row) => key.every((column) => row.values[column] !== null && row.values[column] !== undefined));
  if (!rows.length) return null;
  const typeOf = (name: string) => requireColumn(relation, name).type;
  if (key.length === 1) {
    const column = key[0]!;
    return `${ident(column)} = any(${literal(textArrayLiteral(rows.map((row) => row.values[column]!)))}::${typeOf(column)}[])`;
  }
  const tuples = rows.map((row) => `(${key.map((column) => `${literal(row.values[column]!)}::${typeOf(column)}`).join(', ')})`);
  return `(${key.map(ident).join(', ')}) in (${tuples.join(', ')})`;
}

/** One note per relation whose reads were sampled (those with seeded rows to read by key), for the report. */
export function samplingNotes(catalog: Catalog, plan: TenancyPlan, ledger: Ledger, forcedScans?: ReadonlySet<string>): string[] {
  return plan.relations.flatMap((relationPlan) => {
    const relation = relationOf(catalog, relationPlan.relation);
    const sampled = relation && relationPlan.tenancy !== 'shared' ? sampledRead(catalog, relation, relationPlan, forcedScans) : null;
    if (!relation || !sampled || !ledger.count(relation.qualified)) return [];
    const bounded = `took the seeded rows by primary key and TABLESAMPLE SYSTEM (${sampled.percent}%) of the existing rows instead of scanning every row`;
    return [
      sampled.why === 'no-index'
        ? `${relation.qualified} was sampled: it holds ~${Math.round(sampled.estimatedRows)} rows and no index starts with ${relationPlan.tenantColumn} (see missing-tenant-index), ` +
          `so each read as a tenant ${bounded}; a leak of existing rows that the sample missed is not excluded. Index the tenant column to have them read in full.`
        : `${relation.qualified} was sampled: it holds ~${Math.round(sampled.estimatedRows)} rows and its policy keeps the index on ${relationPlan.tenantColumn} from serving a tenant's read (see seq-scan), ` +
          `so read-isolation read it in full once, as its first tenant, and every other read as a tenant ${bounded}.`,
    ];
  });
}
