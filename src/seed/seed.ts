import type { Faker } from '@faker-js/faker';
import { isSequenceDefault, readPartitionBound, readPartitionKey, type Atom, type CheckModel } from '../analysis/constraints.js';
import { analyze, settingCasts } from '../analysis/index.js';
import type { Analysis } from '../analysis/model.js';
import { loadParser } from '../analysis/parse.js';
import type { Catalog, Column, ForeignKey, Relation } from '../catalog/types.js';
import { errorMessage } from '../errors.js';
import type { RelationPlan, TenancyPlan } from '../plan/tenancy.js';
import type { AuditSession, RawRow } from '../target/session.js';
import { isLockTimeout } from '../target/locks.js';
import { ident, relationIdent, textArrayLiteral } from '../target/sql.js';
import { keyColumnsMentioned, triggerEvents } from '../analysis/sql-text.js';
import { contextStatementOf } from './actors.js';
import { Ledger, type LedgerRow, type Tenant } from './ledger.js';
import { RowPlanner } from './planner.js';
import { checksOf, createFaker, makeCanary, tenantIds, tenantIdType } from './values.js';
import { columnOf, columnType, relationOf, requireColumn, requireRelation } from '../catalog/lookup.js';

/** Why the seeder must not make a write of this kind to a relation (and what to try), or null. */
export type WriteBlock = (relation: string, event: 'INSERT' | 'UPDATE') => { reason: string; hint: string } | null;

export type SeedStatus = 'seeded' | 'partial' | 'failed' | 'existing';

export interface PartitionCoverage {
  /** The leaf partition. */
  relation: string;
  /** Rows per tenant id. */
  tenants: Record<string, number>;
  /** Why some tenants cannot have rows in this partition (its key is the tenant), or null. */
  waived: string | null;
}

export interface SeedResult {
  relation: string;
  status: SeedStatus;
  /** Rows inserted (or, for `existing`, rows of a shared table reused as parents). */
  rows: number;
  /** Why a table is partial or failed: the database's own error, the constraint that could not be met, or the missing parent. */
  reason: string | null;
  /** Retries that repaired a constraint error (new values, other parents). */
  repairs: number;
  /** Rows per tenant id, inserted and adopted (tenant-owned relations; empty for shared ones). */
  tenants: Record<string, number>;
  /** Rows that triggers created and the seeder adopted into the ledger instead of inserting its own. */
  adopted: number;
  /** For a partitioned table: every leaf partition and the rows each tenant has in it. */
  partitions: PartitionCoverage[];
  /** What to try when the relation was left unseeded on purpose (a write would advance a sequence on a live database). */
  hint?: string;
}

/** A tenant-owned relation (or partition) in which a tenant has no row: probes on it prove nothing for that tenant. */
export interface CoverageGap {
  relation: string;
  tenant: string;
  reason: string;
  /** What to try, when the seeder knows better than "fix the constraint" (see SeedResult.hint). */
  hint?: string;
}

export interface SeedOutcome {
  tenants: Tenant[];
  ledger: Ledger;
  results: SeedResult[];
  /** Tenant-owned relations and partitions left without rows of some tenant. */
  gaps: CoverageGap[];
  rowsInserted: number;
  statements: number;
  /** The tenant context was set on the session while seeding (insert triggers read it): the never-set state is gone there. */
  contextSet: boolean;
}

/**
 * Types whose output text is the input text the seeder sends (it sends integers in decimal and fits text to
 * its length): their values need not be read back. Not bpchar (padded), bool (t/f), numerics.
 */
const ECHOED_TYPES = new Set(['text', 'varchar', 'int2', 'int4', 'int8']);

/** Session TimeZone names that mean UTC: timestamptz is then printed with `+00`. */
const UTC_ZONES = new Set(['utc', 'etc/utc', 'uct', 'etc/uct', 'gmt', 'etc/gmt', 'gmt0', 'etc/gmt0', 'gmt+0', 'gmt-0', 'etc/gmt+0', 'etc/gmt-0', 'greenwich', 'etc/greenwich', 'universal', 'etc/universal', 'zulu', 'etc/zulu', 'z']);

/** An ISO 8601 instant as the seeder writes it (toISOString), of a year PostgreSQL prints without an era. */
const ISO_INSTANT = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,6}))?Z$/;

/** How the session prints dates and times (DateStyle, TimeZone): enough to know the stored text of what is sent. */
export interface TimeStyle {
  iso: boolean;
  utc: boolean;
}

/**
 * The text PostgreSQL stores and prints for a value sent to a column of `baseType`, when that can be known
 * here; undefined when it must be read back. Dates and times only under DateStyle ISO (timestamptz also
 * needs a UTC session), and only in the one shape the seeder writes them in.
 */
export function storedText(baseType: string, value: string, style: TimeStyle): string | undefined {
  if (ECHOED_TYPES.has(baseType)) return value;
  if (!style.iso) return undefined;
  if (baseType === 'date') return /^\d{4}-\d{2}-\d{2}$/.test(value) && !value.startsWith('0000') ? value : undefined;
  if (baseType !== 'timestamp' && baseType !== 'timestamptz') return undefined;
  if (baseType === 'timestamptz' && !style.utc) return undefined;
  const match = ISO_INSTANT.exec(value);
  if (!match || match[1] === '0000') return undefined;
  const fraction = (match[7] ?? '').replace(/0+$/, '');
  // Joined, not concatenated: one flat string, where a template literal keeps a tree of pieces (the ledger
  // holds tens of thousands of these; as trees they were half its memory).
  return [match[1], '-', match[2], '-', match[3], ' ', match[4], ':', match[5], ':', match[6], fraction ? `.${fraction}` : '', baseType === 'timestamptz' ? '+00' : ''].join('');
}

/** The largest value of each integer type a sequence-backed key can have: keys the audit gives count down from there. */
export const KEY_LIMITS: Readonly<Record<string, bigint>> = { int2: 32_767n, int4: 2_147_483_647n, int8: 9_223_372_036_854_775_807n };

/** Rows one seeding statement carries at most when it seeds several tenants at once. */
const BATCH_ROWS = 5000;

interface ColumnSpec {
  column: Column;
  unique: boolean;
}

/** Rows of several tenants for one insert. */
interface PlannedGroup {
  columns: ColumnSpec[];
  tenants: { tenant: Tenant; rows: (string | null)[][] }[];
  /** The insert, when it was sent ahead (see planAhead). */
  sent?: () => Promise<RawRow[]>;
}

export interface Leaf {
  relation: Relation;
  /** Conditions the partition's bounds put on the key columns. */
  atoms: Atom[];
  /** Bounds that could be read (range, list, default); hash partitions are reached by routing. */
  bounded: boolean;
  keyColumns: string[];
}

const LABELS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ';

function tenantLabel(index: number): string {
  return `tenant ${index < 26 ? LABELS[index] : `#${index + 1}`}`;
}

/** A column a sequence fills (identity, serial, a nextval default). */
export const isSequenceBacked = (column: Column) => column.identity !== null || isSequenceDefault(column.default);

/**
 * Columns the seeder fills: everything except generated columns and sequence-backed keys. Columns with
 * other defaults are filled too, so that a policy reading them (`or published`, `status = 'public'`)
 * meets both kinds of rows; `useDefaults` leaves them to their defaults, which a retry does when a
 * generated value broke a constraint the seeder cannot read.
 */
export function columnsToFill(relation: Relation, forced: Set<string>, useDefaults: boolean): Column[] {
  const keepDefault = defaultsFirst(relation);
  return relation.columns.filter((column) => {
    if (column.generated) return false;
    if (forced.has(column.name)) return true;
    if (column.identity) return false;
    if (column.default !== null && (useDefaults || isSequenceDefault(column.default) || keepDefault.has(column.name))) return false;
    return true;
  });
}

/**
 * Columns with a default that a CHECK the planner cannot read reads (`scopes text[] default '{read}' check
 * (scopes <@ allowed_scopes())`): the default, the application's own value, is tried first.
 */
export function defaultsFirst(relation: Relation): Set<string> {
  const opaque = checksOf(relation).filter((check) => check.alternatives.length > 0 && check.alternatives.every((atoms) => atoms.some((atom) => atom.kind === 'opaque')));
  return new Set(opaque.flatMap((check) => check.columns));
}

function uniqueKeys(relation: Relation): string[][] {
  const keys: string[][] = [];
  for (const constraint of relation.constraints) {
    if (constraint.kind === 'unique' || constraint.kind === 'primary-key') keys.push(constraint.columns);
  }
  for (const index of relation.indexes) if (index.unique && !index.partial && index.columns.every((column) => column !== null)) keys.push(index.columns as string[]);
  return keys;
}

function uniqueColumns(relation: Relation): Set<string> {
  const unique = new Set<string>();
  for (const constraint of relation.constraints) {
    if (constraint.kind === 'unique' || constraint.kind === 'primary-key' || constraint.kind === 'exclusion') constraint.columns.forEach((column) => unique.add(column));
  }
  for (const index of relation.indexes) if (index.unique) index.columns.forEach((column) => column && unique.add(column));
  return unique;
}

const nullableKey = (relation: Relation, foreignKey: ForeignKey) =>
  foreignKey.columns.some((column) => !columnOf(relation, column)?.notNull);

/** The type a column's value is cast to when PostgreSQL evaluates a check on candidate rows (domains by their base type). */
function evaluationType(column: Column): string {
  if (!column.domainChecks.length) return column.type;
  return `${column.baseType}${column.isArray ? '[]' : ''}`;
}

/** Conditions a partition bound puts on the key columns of its parent. */
function boundAtoms(parent: Relation, leaf: Relation, siblings: Relation[]): { atoms: Atom[]; bounded: boolean; keyColumns: string[] } {
  const key = parent.partitionKey ? readPartitionKey(parent.partitionKey) : null;
  const bound = leaf.partitionBound ? readPartitionBound(leaf.partitionBound) : null;
  if (!key || !bound) return { atoms: [], bounded: false, keyColumns: [] };
  const keyColumns = key.columns.filter((column): column is string => column !== null);
  const atoms: Atom[] = [];
  if (bound.kind === 'range') {
    for (let index = 0; index < key.columns.length; index += 1) {
      const column = key.columns[index];
      const from = bound.from[index];
      const to = bound.to[index];
      if (!column || !from || !to) break;
      const low = 'value' in from && from.value !== null ? from.value : null;
      const high = 'value' in to && to.value !== null ? to.value : null;
      if (low !== null && high !== null && low === high) {
        atoms.push({ kind: 'compare', column, op: '=', value: low });
        continue;
      }
      if (low !== null) atoms.push({ kind: 'compare', column, op: '>=', value: low });
      if (high !== null) atoms.push({ kind: 'compare', column, op: '<', value: high });
      break;
    }
    return { atoms, bounded: true, keyColumns };
  }
  if (bound.kind === 'list') {
    const column = key.columns[0];
    if (!column) return { atoms, bounded: false, keyColumns };
    const values = bound.values.filter((value): value is string => value !== null);
    atoms.push(values.length ? { kind: 'in', column, values, negated: false } : { kind: 'null', column, isNull: true });
    return { atoms, bounded: true, keyColumns };
  }
  if (bound.kind === 'default') {
    const others = siblings.filter((sibling) => sibling !== leaf).map((sibling) => (sibling.partitionBound ? readPartitionBound(sibling.partitionBound) : null));
    const column = key.columns[0];
    if (!column) return { atoms, bounded: false, keyColumns };
    if (key.strategy === 'list') {
      atoms.push({ kind: 'in', column, values: others.flatMap((other) => (other?.kind === 'list' ? other.values.filter((value): value is string => value !== null) : [])), negated: true });
      return { atoms, bounded: true, keyColumns };
    }
    if (key.strategy === 'range') {
      const uppers = others.map((other) => (other?.kind === 'range' ? other.to[0] : undefined));
      if (uppers.every((upper) => upper && 'value' in upper && upper.value !== null)) {
        const values = uppers.map((upper) => (upper as { value: string }).value);
        // Past the highest upper bound: compared as numbers or dates by the planner.
        for (const value of values) atoms.push({ kind: 'compare', column, op: '>=', value });
        return { atoms, bounded: true, keyColumns };
      }
    }
    return { atoms, bounded: false, keyColumns };
  }
  return { atoms, bounded: false, keyColumns };
}

/**
 * Relations with an enabled insert trigger whose function reads the tenant setting, directly or through a
 * function it calls (as the analysis read their bodies), and the names of those triggers.
 */
function contextTriggers(catalog: Catalog, analysis: Analysis, setting: string): Map<string, string[]> {
  const bodies = new Map(analysis.functions.map((body) => [body.name, body]));
  const byOid = new Map(catalog.functions.map((fn) => [fn.oid, fn]));
  const named = (call: string) => catalog.functions.filter((fn) => call === fn.name.toLowerCase() || call === `${fn.schema}.${fn.name}`.toLowerCase());
  const reads = (signature: string, seen: Set<string>): boolean => {
    if (seen.has(signature)) return false;
    seen.add(signature);
    const body = bodies.get(signature);
    if (!body) return false;
    return body.settings.includes(setting) || body.calls.some((call) => named(call).some((fn) => reads(fn.signature, seen)));
  };
  const found = new Map<string, string[]>();
  for (const trigger of catalog.triggers) {
    if (!trigger.enabled || !triggerEvents(trigger.definition).includes('INSERT')) continue;
    const fn = byOid.get(trigger.functionOid);
    if (!fn || !reads(fn.signature, new Set())) continue;
    found.set(trigger.relation, [...(found.get(trigger.relation) ?? []), trigger.name]);
  }
  return found;
}

/** The leaf partitions of a partitioned table, with the conditions their bounds (at every level) put on a row. */
export function partitionBounds(catalog: Catalog, relation: Relation): Leaf[] {
  if (relation.kind !== 'partitioned-table') return [];
  const walk = (parent: Relation, inherited: Atom[], bounded: boolean, keys: string[]): Leaf[] => {
    const children = catalog.relations.filter((candidate) => candidate.partitionOf === parent.qualified);
    return children.flatMap((child) => {
      const bound = boundAtoms(parent, child, children);
      const atoms = [...inherited, ...bound.atoms];
      const keyColumns = [...keys, ...bound.keyColumns];
      return child.kind === 'partitioned-table' ? walk(child, atoms, bounded && bound.bounded, keyColumns) : [{ relation: child, atoms, bounded: bounded && bound.bounded, keyColumns }];
    });
  };
  return walk(relation, [], true, []);
}

class Seeder {
  private serial = 0;
  private keysTaken = 0n;
  private readonly learned = new Map<string, { unique: Set<string>; fill: Set<string>; verify: Set<string> }>();
  private readonly planners = new Map<string, RowPlanner>();
  private readonly retained = new Map<string, Set<string>>();
  statements = 0;
  readonly results: SeedResult[] = [];
  readonly gaps: CoverageGap[] = [];
  private readonly byOid: Map<number, Relation>;
  private readonly plans: Map<string, RelationPlan>;
  /** Rows per leaf partition and tenant id. */
  private readonly leafCounts = new Map<string, Map<string, number>>();
  /** Foreign keys left NULL (or deferred) while seeding a cycle, set once their parents exist. */
  private readonly pending: { relation: Relation; foreignKey: ForeignKey; deferred: boolean }[] = [];
  private readonly withTriggers: boolean;
  /**
   * Relations with an insert trigger that reads the tenant setting (`plan.setting`): their rows go in tenant
   * by tenant, with that tenant's context set as the application sets it (see seedRows).
   */
  private readonly contextual: Map<string, string[]>;
  /** Whether the seeder set the tenant context on the session (the never-set state is then gone there). */
  contextSet = false;
  /** Batches of the next relation, planned while the last insert ran (see planAhead). */
  private planned: { relation: string; groups: PlannedGroup[] } | null = null;
  private readonly nextSerial = () => ++this.serial;

  constructor(
    private readonly session: AuditSession,
    private readonly catalog: Catalog,
    private readonly plan: TenancyPlan,
    private readonly faker: Faker,
    readonly ledger: Ledger,
    private readonly rowsPerTenant: number,
    private readonly explicitKeys: boolean,
    /** Why a write of this kind to the relation must not be made, or null (a live database where it would advance a sequence). */
    private readonly blocked: WriteBlock = () => null,
    /** How the session prints dates and times, for storedText. */
    private readonly timeStyle: TimeStyle = { iso: false, utc: false },
    analysis: Analysis | null = null,
    /** Whether the tenant context may be set while seeding (see contextual). */
    private readonly setContext = false,
  ) {
    this.byOid = new Map(catalog.relations.map((relation) => [relation.oid, relation]));
    this.plans = new Map(plan.relations.map((relationPlan) => [relationPlan.relation, relationPlan]));
    const seeded = new Set(plan.seedOrder.flatMap((name) => [name, ...this.leavesOf(name).map((leaf) => leaf.qualified)]));
    this.withTriggers = catalog.triggers.some((trigger) => trigger.enabled && seeded.has(trigger.relation));
    this.contextual = analysis ? contextTriggers(catalog, analysis, plan.setting) : new Map();
  }

  /** The insert triggers of the relation (or of its partitions) that read the tenant setting. */
  private contextTriggers(relation: Relation): string[] {
    return [relation.qualified, ...this.leavesOf(relation.qualified).map((leaf) => leaf.qualified)].flatMap((name) => this.contextual.get(name) ?? []);
  }

  /**
   * Why the tenant context cannot be set while seeding the relation, whose insert triggers read it, or null
   * when it can: only for actors that are tenants (a user or role per tenant does not exist yet), and only
   * where the audit may set it (on a cluster of its own; see `setContext`).
   */
  private contextRefusal(relation: Relation): { reason: string; hint: string } | null {
    const triggers = this.contextTriggers(relation);
    if (!triggers.length) return null;
    const what = `insert trigger${triggers.length > 1 ? 's' : ''} ${[...new Set(triggers)].join(', ')} read${triggers.length > 1 ? '' : 's'} ${this.plan.setting}`;
    if (this.plan.roleSwitch || this.plan.contextParameters.some((parameter) => parameter !== 'tenant')) {
      return { reason: `${what}, and the context names a user or role, which does not exist while seeding`, hint: 'seed these rows in the scenario\'s setup, or accept the relation in `unseeded`' };
    }
    if (!this.setContext) {
      return { reason: `${what}; on a database that is not the audit's own, seeding does not set the tenant context (the never-set state would be lost)`, hint: 'audit a copy with --schema-from URL' };
    }
    return null;
  }

  /** Set `tenant`'s context as the application does (its context SQL, checked to leave the transaction alone). */
  private async enterContext(relation: Relation, tenant: Tenant | null): Promise<void> {
    if (!tenant || !this.contextTriggers(relation).length || this.contextRefusal(relation)) return;
    const actor = { label: tenant.label, tenants: [tenant], user: null, role: null };
    const statement = contextStatementOf(this.plan, actor, tenant.id);
    this.statements += 1;
    this.contextSet = true;
    await this.session.userQuery(statement.text, statement.values, 'the context SQL');
  }

  async run(): Promise<void> {
    for (const [position, name] of this.plan.seedOrder.entries()) {
      const relation = requireRelation(this.catalog, name);
      const relationPlan = this.plans.get(name)!;
      const result: SeedResult = { relation: name, status: 'seeded', rows: 0, reason: null, repairs: 0, tenants: {}, adopted: 0, partitions: [] };
      this.results.push(result);
      const blocked = this.blocked(name, 'INSERT');
      if (relationPlan.tenancy === 'shared') {
        await this.seedShared(relation, result, blocked);
        continue;
      }
      if (blocked) {
        result.status = 'failed';
        result.reason = blocked.reason;
        result.hint = blocked.hint;
        continue;
      }
      await this.adopt(relation, relationPlan, result);
      const problems: string[] = [];
      const leaves = this.leaves(relation);
      const wanted = this.wanted(relation, relationPlan);
      const planned = this.planned?.relation === name ? this.planned.groups : this.batchable(relation, relationPlan) ? await this.planBatches(relation, relationPlan, wanted) : [];
      this.planned = null;
      const batched = await this.seedBatches(relation, planned, result, () => this.planAhead(position, relation));
      for (const { tenant, count } of wanted) {
        if (batched.has(tenant)) continue;
        if (count > 0) {
          const problem = await this.seedTenant(relation, relationPlan, tenant, count, result, leaves);
          if (problem) problems.push(`${tenant.label}: ${problem}`);
        }
        if (leaves.length) {
          const problem = await this.fillLeaves(relation, relationPlan, tenant, leaves, result);
          if (problem) problems.push(`${tenant.label}: ${problem}`);
        }
      }
      if (problems.length) {
        result.status = result.rows + result.adopted === 0 ? 'failed' : 'partial';
        result.reason = problems[0]!;
        // Rows that needed a parent the seeder left out on purpose: say so, and what to try.
        const parent = relation.foreignKeys
          .filter((foreignKey) => !nullableKey(relation, foreignKey))
          .map((foreignKey) => this.results.find((candidate) => candidate.relation === foreignKey.references && candidate.hint && candidate.rows === 0))
          .find((candidate) => candidate !== undefined);
        if (parent) {
          result.reason = `${result.reason} (${parent.relation} was not seeded: ${parent.reason})`;
          result.hint = parent.hint;
        }
        const refusal = this.contextRefusal(relation);
        if (refusal) {
          result.reason = `${result.reason} (${refusal.reason})`;
          result.hint ??= refusal.hint;
        }
      }
    }
    await this.settlePending();
    if (this.withTriggers) {
      for (const result of this.results) {
        const relationPlan = this.plans.get(result.relation)!;
        if (relationPlan.tenancy !== 'shared') await this.adopt(requireRelation(this.catalog, result.relation), relationPlan, result);
      }
    }
    this.coverage();
  }

  // -------------------------------------------------------------------------------------------------
  // Partitions

  private leavesOf(name: string): Relation[] {
    const children = this.catalog.relations.filter((relation) => relation.partitionOf === name);
    return children.flatMap((child) => (child.kind === 'partitioned-table' ? this.leavesOf(child.qualified) : [child]));
  }

  private readonly leafCache = new Map<string, Leaf[]>();

  /** The leaf partitions of a partitioned table, with the conditions their bounds (at every level) put on a row. */
  private leaves(relation: Relation): Leaf[] {
    if (relation.kind !== 'partitioned-table') return [];
    const cached = this.leafCache.get(relation.qualified);
    if (cached) return cached;
    const leaves = partitionBounds(this.catalog, relation);
    this.leafCache.set(relation.qualified, leaves);
    return leaves;
  }

  /** Why a tenant can have no row in a leaf: its key is the tenant column and the tenant falls elsewhere. */
  private leafRefuses(leaf: Leaf, relationPlan: RelationPlan, tenant: Tenant): string | null {
    const tenantColumn = relationPlan.tenantColumn;
    if (!tenantColumn || !leaf.keyColumns.includes(tenantColumn)) return null;
    if (leaf.keyColumns.every((column) => column === tenantColumn) && !leaf.bounded) return `partitioned by the tenant column ${tenantColumn} (hash): each tenant's rows belong to one partition`;
    for (const atom of leaf.atoms) {
      if (atom.kind === 'in' && atom.column === tenantColumn && atom.values.includes(tenant.id) === atom.negated) return `partitioned by the tenant column ${tenantColumn}: ${tenant.label} belongs to another partition`;
      if (atom.kind === 'compare' && atom.column === tenantColumn) {
        const id = Number(tenant.id);
        const bound = Number(atom.value);
        if (Number.isFinite(id) && Number.isFinite(bound) && !{ '=': id === bound, '<>': id !== bound, '<': id < bound, '<=': id <= bound, '>': id > bound, '>=': id >= bound }[atom.op]) {
          return `partitioned by the tenant column ${tenantColumn}: ${tenant.label} belongs to another partition`;
        }
      }
    }
    return null;
  }

  /** Put rows of the tenant into every leaf that has none yet: inside its bounds, or (hash) by routing more rows. */
  private async fillLeaves(relation: Relation, relationPlan: RelationPlan, tenant: Tenant, leaves: Leaf[], result: SeedResult): Promise<string | null> {
    let lastProblem: string | null = null;
    for (let round = 0; round < 3; round += 1) {
      const missing = leaves.filter((leaf) => !this.leafCounts.get(leaf.relation.qualified)?.get(tenant.id) && !this.leafRefuses(leaf, relationPlan, tenant));
      if (!missing.length) return null;
      const bounded = missing.filter((leaf) => leaf.bounded);
      const targets = bounded.length ? bounded : [null];
      for (const leaf of targets) {
        const problem = await this.seedRows(relation, relationPlan, tenant, leaf ? 2 : Math.max(2, this.rowsPerTenant), result, { leaf });
        if (problem) lastProblem = problem;
      }
    }
    const still = leaves.filter((leaf) => !this.leafCounts.get(leaf.relation.qualified)?.get(tenant.id) && !this.leafRefuses(leaf, relationPlan, tenant));
    return still.length ? `no row could be put into ${still.map((leaf) => leaf.relation.qualified).join(', ')}${lastProblem ? `: ${lastProblem}` : ''}` : null;
  }

  // -------------------------------------------------------------------------------------------------
  // Shapes of relations

  /**
   * How many rows one tenant can have: one when a unique key is the tenant column alone; the number of
   * distinct parent combinations when a unique key consists of the tenant column and foreign keys.
   */
  private capacity(relation: Relation, relationPlan: RelationPlan, tenant: Tenant): number {
    let capacity = this.rowsPerTenant;
    const tenantColumn = relationPlan.tenancy === 'tenant-table' ? null : relationPlan.tenantColumn;
    for (const key of uniqueKeys(relation)) {
      if (tenantColumn && key.length && key.every((column) => column === tenantColumn)) return 1;
    }
    for (const key of this.comboKeys(relation, tenantColumn)) {
      capacity = Math.min(capacity, key.foreignKeys.reduce((product, foreignKey) => product * Math.max(1, this.parentRows(foreignKey, tenant).length), 1));
    }
    return Math.max(1, capacity);
  }

  /** Unique keys made of the tenant column and whole foreign keys (a join table's pair, a one-to-one link). */
  private comboKeys(relation: Relation, tenantColumn: string | null): { columns: string[]; foreignKeys: ForeignKey[] }[] {
    const keys: { columns: string[]; foreignKeys: ForeignKey[] }[] = [];
    for (const key of uniqueKeys(relation)) {
      const rest = key.filter((column) => column !== tenantColumn);
      if (!rest.length) continue;
      const foreignKeys = relation.foreignKeys.filter((foreignKey) => foreignKey.references !== relation.qualified && foreignKey.columns.some((column) => rest.includes(column)));
      const covered = new Set(foreignKeys.flatMap((foreignKey) => foreignKey.columns));
      if (foreignKeys.length && rest.every((column) => covered.has(column))) keys.push({ columns: key, foreignKeys });
    }
    return keys;
  }

  private selfReferences(relation: Relation): ForeignKey[] {
    return relation.foreignKeys.filter((foreignKey) => foreignKey.references === relation.qualified);
  }

  private isDeferred(relation: Relation, foreignKey: ForeignKey): boolean {
    return this.plan.deferredReferences.some((edge) => edge.from === relation.qualified && edge.to === foreignKey.references);
  }

  /**
   * For the catch blocks that learn from a failed insert and retry: a stop (the time limit, an AuditError)
   * and a lock another session holds (a migration: every retry would wait and fail alike) are not such
   * failures and go on up.
   */
  private stopOn(error: unknown): void {
    this.session.rethrowStop(error);
    if (isLockTimeout(error)) throw error;
  }

  /** Seed one tenant's rows: self-referencing tables get roots first, then children pointing at same-tenant parents. */
  private async seedTenant(relation: Relation, relationPlan: RelationPlan, tenant: Tenant | null, count: number, result: SeedResult, leaves: Leaf[] = []): Promise<string | null> {
    const bounded = leaves.filter((leaf) => leaf.bounded);
    if (!this.selfReferences(relation).length) {
      if (!bounded.length) return this.seedRows(relation, relationPlan, tenant, count, result, {});
      // Spread the rows over the partitions with readable bounds: every one gets some.
      const share = Math.max(1, Math.floor(count / bounded.length));
      let problem: string | null = null;
      for (const leaf of bounded) problem = (await this.seedRows(relation, relationPlan, tenant, share, result, { leaf })) ?? problem;
      return problem;
    }
    const roots = Math.max(1, Math.ceil(count / 2));
    const rootProblem = await this.seedRows(relation, relationPlan, tenant, roots, result, { roots: true });
    if (count - roots <= 0) return rootProblem;
    return (await this.seedRows(relation, relationPlan, tenant, count - roots, result, {})) ?? rootProblem;
  }

  /** Reuse the rows a shared table already has; insert shared rows only when it is empty. */
  private async seedShared(relation: Relation, result: SeedResult, blocked: { reason: string; hint: string } | null): Promise<void> {
    try {
      const existing = await this.session.savepoint(() => this.session.query(`select ${relation.columns.map((column) => `${ident(column.name)}::text as ${ident(column.name)}`).join(', ')} from ${relationIdent(relation)} limit 200`), true);
      if (existing.rows.length) {
        this.ledger.add(relation.qualified, relation.primaryKey, existing.rows.map((values) => ({ tenant: null, values })));
        result.status = 'existing';
        result.rows = existing.rows.length;
        return;
      }
    } catch (error) {
      this.stopOn(error);
      // unreadable: try to insert instead
    }
    if (blocked) {
      result.status = 'failed';
      result.reason = blocked.reason;
      result.hint = blocked.hint;
      return;
    }
    const problem = await this.seedTenant(relation, this.plans.get(relation.qualified)!, null, this.rowsPerTenant, result);
    if (problem) {
      result.status = result.rows ? 'partial' : 'failed';
      result.reason = problem;
    }
  }

  /** Parent rows a foreign key of a row of `tenant` may point at: the same tenant's, or shared ones. */
  private parentRows(foreignKey: ForeignKey, tenant: Tenant | null): readonly LedgerRow[] {
    const parentPlan = this.plans.get(foreignKey.references);
    if (!parentPlan || parentPlan.tenancy === 'shared' || !tenant) return this.ledger.rows(foreignKey.references);
    return this.ledger.rows(foreignKey.references, tenant.id);
  }

  private plannerFor(relation: Relation, columns: ColumnSpec[], leaf: Leaf | null): RowPlanner {
    const key = `${relation.qualified}\u0000${leaf?.relation.qualified ?? ''}\u0000${columns.map(({ column, unique }) => `${column.name}${unique ? '!' : ''}`).join(',')}`;
    let planner = this.planners.get(key);
    if (!planner) {
      const pinned = new Set(this.leaves(relation).flatMap((candidate) => candidate.keyColumns));
      planner = new RowPlanner(relation, columns.map(({ column }) => column), new Set(columns.filter(({ unique }) => unique).map(({ column }) => column.name)), pinned, leaf?.atoms ?? []);
      this.planners.set(key, planner);
    }
    return planner;
  }

  private buildRows(
    relation: Relation,
    relationPlan: RelationPlan,
    tenant: Tenant | null,
    count: number,
    useDefaults: boolean,
    options: { roots?: boolean; leaf?: Leaf | null },
  ): { columns: ColumnSpec[]; rows: (string | null)[][]; problem: string | null; planner: RowPlanner } {
    /** Values fixed per row; `undefined` leaves the column to the planner for that row. */
    const forced = new Map<string, (rowIndex: number) => string | null | undefined>();
    /** Columns of nullable foreign keys: a check may want them NULL (`num_nonnulls(a_id, b_id) = 1`). */
    const nullable = new Set<string>();
    let problem: string | null = null;
    if (tenant && relationPlan.tenantColumn) forced.set(relationPlan.tenantColumn, () => tenant.id);
    // Rows public by design (`or is_public`) and rows that are not, in turn: probes must see both kinds.
    const alternatives = relationPlan.publicRows ?? [];
    for (const flag of new Set(alternatives.flat().map((entry) => entry.column))) {
      if (forced.has(flag) || !relation.columns.some((column) => column.name === flag)) continue;
      const boolean = requireColumn(relation, flag).baseType === 'bool';
      forced.set(flag, (rowIndex) => {
        const chosen = alternatives[Math.floor(rowIndex / 2) % alternatives.length]!.find((entry) => entry.column === flag);
        if (rowIndex % 2 === 0 && chosen) return chosen.value;
        return boolean ? String(alternatives.flat().find((entry) => entry.column === flag)!.value !== 'true') : undefined;
      });
    }
    const tenantColumn = tenant ? relationPlan.tenantColumn : null;
    // Distinct parent combinations for unique keys made of foreign keys (join tables, one-to-one links).
    const combos = new Map<ForeignKey, LedgerRow[]>();
    for (const key of this.comboKeys(relation, relationPlan.tenancy === 'tenant-table' ? null : relationPlan.tenantColumn)) {
      const lists = key.foreignKeys.map((foreignKey) => this.parentRows(foreignKey, tenant));
      if (lists.some((list) => !list.length)) continue;
      const total = lists.reduce((product, list) => product * list.length, 1);
      const start = this.faker.number.int({ min: 0, max: Math.max(0, total - 1) });
      const used = this.ledger.count(relation.qualified, tenant?.id ?? null);
      key.foreignKeys.forEach((foreignKey, position) => {
        const picks: LedgerRow[] = [];
        for (let rowIndex = 0; rowIndex < count; rowIndex += 1) {
          let index = (start + used + rowIndex) % total;
          for (let inner = lists.length - 1; inner > position; inner -= 1) index = Math.floor(index / lists[inner]!.length);
          picks.push(lists[position]![index % lists[position]!.length]!);
        }
        if (!combos.has(foreignKey)) combos.set(foreignKey, picks);
      });
    }
    for (const foreignKey of relation.foreignKeys) {
      const self = foreignKey.references === relation.qualified;
      const nonTenantColumns = foreignKey.columns.filter((column) => column !== tenantColumn);
      if (self && options.roots) {
        if (nullableKey(relation, foreignKey)) {
          for (const column of nonTenantColumns) if (!forced.has(column)) forced.set(column, () => null);
        }
        continue;
      }
      if (!self && this.isDeferred(relation, foreignKey)) {
        if (!this.pending.some((entry) => entry.relation === relation && entry.foreignKey === foreignKey)) {
          this.pending.push({ relation, foreignKey, deferred: !nullableKey(relation, foreignKey) });
        }
        if (nullableKey(relation, foreignKey)) for (const column of nonTenantColumns) if (!forced.has(column)) forced.set(column, () => null);
        continue;
      }
      const parents = this.parentRows(foreignKey, tenant);
      if (!parents.length) {
        if (!nullableKey(relation, foreignKey)) problem = `no seeded row in ${foreignKey.references} to reference through ${foreignKey.name}`;
        else for (const column of nonTenantColumns) if (!forced.has(column)) forced.set(column, () => null);
        continue;
      }
      const picks = combos.get(foreignKey) ?? Array.from({ length: count }, () => this.faker.helpers.arrayElement(parents));
      foreignKey.columns.forEach((column, position) => {
        if (column === tenantColumn) return;
        if (!columnOf(relation, column)?.notNull) nullable.add(column);
        const referenced = foreignKey.referencedColumns[position]!;
        forced.set(column, (rowIndex) => picks[rowIndex]!.values[referenced] ?? null);
      });
    }
    const needsKeys = this.explicitKeys || (options.roots && this.selfReferences(relation).some((foreignKey) => !nullableKey(relation, foreignKey)));
    if (needsKeys) {
      for (const column of relation.columns) {
        if (forced.has(column.name) || column.generated || !isSequenceBacked(column)) continue;
        const values = Array.from({ length: count }, () => this.highKey(column));
        if (values.every((value) => value !== null)) forced.set(column.name, (rowIndex) => values[rowIndex]!);
      }
    }
    const learned = this.learned.get(relation.qualified);
    const unique = new Set([...uniqueColumns(relation), ...(learned?.unique ?? [])]);
    const mustFill = new Set([...forced.keys(), ...(learned?.fill ?? [])]);
    // A NOT NULL self reference of a root points at the row itself.
    const selfLinks = options.roots ? this.selfReferences(relation).filter((foreignKey) => !nullableKey(relation, foreignKey)) : [];
    for (const foreignKey of selfLinks) for (const column of [...foreignKey.columns, ...foreignKey.referencedColumns]) mustFill.add(column);
    const columns: ColumnSpec[] = columnsToFill(relation, mustFill, useDefaults).map((column) => ({ column, unique: unique.has(column.name) }));
    const planner = this.plannerFor(relation, columns, options.leaf ?? null);
    const rows = Array.from({ length: count }, (_, rowIndex) => {
      const fixed = new Map<string, string | null>();
      for (const [name, value] of forced) {
        const given = value(rowIndex);
        if (given !== undefined) fixed.set(name, given);
      }
      const row = planner.row(this.faker, { fixed, nullable, serial: this.nextSerial, canary: tenant?.canary ?? null });
      for (const foreignKey of selfLinks) {
        foreignKey.columns.forEach((column, position) => {
          const from = columns.findIndex((spec) => spec.column.name === foreignKey.referencedColumns[position]);
          const to = columns.findIndex((spec) => spec.column.name === column);
          if (from >= 0 && to >= 0 && column !== tenantColumn) row[to] = row[from]!;
        });
      }
      return row;
    });
    return { columns, rows, problem, planner };
  }

  /**
   * A key from the top of the column type's range, counting down. Used instead of the column's sequence
   * when the database is not ours (nextval() cannot be rolled back, so a sequence would remember the
   * audit), and for rows that must reference themselves.
   */
  private highKey(column: Column): string | null {
    const limit = KEY_LIMITS[column.baseType];
    if (limit === undefined) return null;
    this.keysTaken += 1n;
    return String(limit - this.keysTaken);
  }

  /**
   * Read a constraint error so the retry repairs it: a unique violation names its key columns (also for
   * expression indexes such as lower(email), which the catalog does not tie to a column); a NOT NULL
   * violation names a column whose default does not produce a value; a check violation names a check
   * whose candidates PostgreSQL must judge from now on.
   */
  private learn(relation: Relation, error: unknown): void {
    const failure = error as { code?: string; column?: string; constraint?: string; schema?: string; table?: string };
    const learned = this.learnedFor(relation);
    if (failure.code === '23505') for (const column of this.uniqueKeyColumns(relation, failure)) learned.unique.add(column);
    if (failure.code === '23502' && failure.column) learned.fill.add(failure.column);
    if ((failure.code === '23514' || failure.code === '23P01') && failure.constraint) learned.verify.add(failure.constraint);
  }

  /**
   * The columns of `relation` that the unique index a violation names (`constraint`, on `schema`.`table`, which
   * may be a partition of `relation`) reads: its key columns and, from the index's definition read with the
   * parser, the columns inside key expressions. None when the catalog has no such index.
   */
  private uniqueKeyColumns(relation: Relation, failure: { constraint?: string; schema?: string; table?: string }): string[] {
    const table = failure.schema && failure.table ? relationOf(this.catalog, `${failure.schema}.${failure.table}`) : undefined;
    const index = table?.indexes.find((candidate) => candidate.name === failure.constraint);
    if (!index) return [];
    const named = new Set(index.columns.filter((column): column is string => column !== null));
    if (index.definition) for (const column of keyColumnsMentioned(index.definition, 'index')) named.add(column);
    return relation.columns.filter((column) => named.has(column.name)).map((column) => column.name);
  }

  private learnedFor(relation: Relation) {
    let learned = this.learned.get(relation.qualified);
    if (!learned) {
      learned = { unique: new Set<string>(), fill: new Set<string>(), verify: new Set<string>() };
      this.learned.set(relation.qualified, learned);
    }
    return learned;
  }

  private insertSql(relation: Relation, columns: ColumnSpec[], returned: Column[], withTableoid: boolean): string {
    const overriding = columns.some(({ column }) => column.identity === 'always') ? ' overriding system value' : '';
    const aliases = columns.map((_, index) => `c${index + 1}`);
    const returning = [...returned.map((column) => `${ident(column.name)}::text as ${ident(column.name)}`), ...(withTableoid ? ['tableoid::int as "rls audit tableoid"'] : [])];
    return (
      `insert into ${relationIdent(relation)} (${columns.map(({ column }) => ident(column.name)).join(', ')})${overriding} ` +
      `select ${columns.map(({ column }, index) => `u.${aliases[index]}::${column.type}`).join(', ')} ` +
      `from unnest(${columns.map((_, index) => `$${index + 1}::text[]`).join(', ')}) as u(${aliases.join(', ')}) ` +
      `returning ${returning.length ? returning.join(', ') : '1 as "rls audit row"'}`
    );
  }

  /**
   * Insert rows in one statement and return them as stored, every column as text. Only the columns whose
   * stored text can differ from what was sent come back from the server (defaults, identities, types whose
   * output is not their input, and every column of a relation with triggers); the rest, about two thirds
   * of what seeding used to read back, are taken from the rows sent.
   */
  private async insert(relation: Relation, columns: ColumnSpec[], rows: (string | null)[][]): Promise<RawRow[]> {
    // Not behind an insert sent ahead that may still fail: its failure would abort this one.
    await this.session.settled();
    return this.sendInsert(relation, columns, rows)();
  }

  /** The insert of `insert`, sent now, in a savepoint of its own; the returned reader waits for the rows. */
  private sendInsert(relation: Relation, columns: ColumnSpec[], rows: (string | null)[][]): () => Promise<RawRow[]> {
    this.statements += 1;
    const triggered = this.catalog.triggers.some((trigger) => trigger.enabled && trigger.relation === relation.qualified);
    const sent = new Map(columns.map(({ column }, index) => [column.name, index]));
    // Per column of the relation: its stored text of every row when known from the values sent, else null (read back).
    const known = relation.columns.map((column) => {
      const at = sent.get(column.name);
      if (triggered || at === undefined || column.isArray) return null;
      const texts: (string | null)[] = [];
      for (const row of rows) {
        const value = row[at] ?? null;
        const text = value === null ? null : storedText(column.baseType, value, this.timeStyle);
        if (text === undefined) return null;
        texts.push(text);
      }
      return texts;
    });
    const returned = relation.columns.filter((_, position) => !known[position]);
    const sql = this.insertSql(relation, columns, returned, relation.kind === 'partitioned-table');
    const params = columns.map((_, index) => textArrayLiteral(rows.map((row) => row[index] ?? null)));
    const read = this.session.sendKept(sql, params);
    return async () => {
      const result = await read();
      if (returned.length === relation.columns.length) return result.rows;
      return result.rows.map((stored, index) => {
        const values: RawRow = {};
        relation.columns.forEach((column, position) => (values[column.name] = known[position] ? known[position]![index]! : stored[column.name] ?? null));
        if ('rls audit tableoid' in stored) values['rls audit tableoid'] = stored['rls audit tableoid']!;
        return values;
      });
    };
  }

  /**
   * Ask PostgreSQL which candidate rows meet the checks the planner cannot read (or that failed before):
   * evaluates each check's condition over the candidates, inserting nothing. Returns, per row, the name of
   * the first check it fails, or null.
   */
  private async judge(relation: Relation, columns: ColumnSpec[], rows: (string | null)[][], checks: CheckModel[]): Promise<(string | null)[]> {
    const readable = checks.filter((check) => check.expression !== null);
    if (!readable.length || !rows.length) return rows.map(() => null);
    const filled = new Set(columns.map(({ column }) => column.name));
    const others = relation.columns.filter((column) => !filled.has(column.name));
    const sql =
      `select ${readable.map((check, index) => `((${check.expression}) is not false) as ok${index}`).join(', ')} from (` +
      `select u.ord as "rls audit ord", ${columns.map(({ column }, index) => `u.c${index + 1}::${evaluationType(column)} as ${ident(column.name)}`).join(', ')}` +
      `${others.map((column) => `, null::${evaluationType(column)} as ${ident(column.name)}`).join('')} ` +
      `from unnest($1::int[], ${columns.map((_, index) => `$${index + 2}::text[]`).join(', ')}) as u(ord, ${columns.map((_, index) => `c${index + 1}`).join(', ')})) as candidate order by "rls audit ord"`;
    try {
      this.statements += 1;
      const result = await this.session.savepoint(() => this.session.query(sql, [rows.map((_, index) => index), ...columns.map((_, index) => textArrayLiteral(rows.map((row) => row[index] ?? null)))]));
      return result.rows.map((row) => {
        const failed = readable.findIndex((_, index) => row[`ok${index}`] !== 't' && row[`ok${index}`] !== 'true');
        return failed < 0 ? null : readable[failed]!.name;
      });
    } catch (error) {
      this.stopOn(error);
      // A candidate that does not even cast: let the insert report it.
      return rows.map(() => null);
    }
  }

  /** Checks whose candidates PostgreSQL judges before the insert. */
  private checksToJudge(relation: Relation, planner: RowPlanner): CheckModel[] {
    const verify = this.learned.get(relation.qualified)?.verify;
    return planner.checks.filter((check) => planner.needsDatabase.includes(check) || verify?.has(check.name));
  }

  /**
   * Insert `count` rows of one tenant in one statement, from rows planned to meet the constraints; checks
   * the planner cannot read are judged by PostgreSQL on candidates first (bounded). On a constraint error,
   * learn from it and retry; then fall back to one row at a time so that what can be seeded is. Returns a
   * problem when fewer rows than asked went in, naming the constraint that could not be met.
   */
  private async seedRows(relation: Relation, relationPlan: RelationPlan, tenant: Tenant | null, count: number, result: SeedResult, options: { roots?: boolean; leaf?: Leaf | null }): Promise<string | null> {
    if (count > BATCH_ROWS) {
      // Many rows (--rows 100000) go in statements of BATCH_ROWS: the rows planned at once, the statement
      // and its answer stay bounded, and between them the event loop runs (the time limit, signals).
      let problem: string | null = null;
      for (let done = 0; done < count; done += BATCH_ROWS) {
        await new Promise((resolve) => setImmediate(resolve));
        this.session.checkExpired();
        problem = (await this.seedRows(relation, relationPlan, tenant, Math.min(BATCH_ROWS, count - done), result, options)) ?? problem;
      }
      return problem;
    }
    let lastError = '';
    for (let attempt = 0; attempt < 4; attempt += 1) {
      let { columns, rows, problem, planner } = this.buildRows(relation, relationPlan, tenant, count, attempt >= 2, options);
      if (problem) return problem;
      this.pinTenantKey(relationPlan, tenant, columns, rows);
      const judged = this.checksToJudge(relation, planner);
      if (judged.length) {
        const kept: (string | null)[][] = [];
        const failures = new Map<string, number>();
        for (let round = 0; round < 4 && kept.length < count; round += 1) {
          const candidates = round === 0 ? rows : this.buildRows(relation, relationPlan, tenant, count, attempt >= 2, options).rows;
          this.pinTenantKey(relationPlan, tenant, columns, candidates);
          const verdicts = await this.judge(relation, columns, candidates, judged);
          verdicts.forEach((failed, index) => {
            if (failed === null) kept.push(candidates[index]!);
            else failures.set(failed, (failures.get(failed) ?? 0) + 1);
          });
        }
        if (!kept.length) {
          // The defaults (the application's own values) may meet what generated values did not.
          if (attempt < 2) {
            attempt = 1;
            continue;
          }
          const [name] = [...failures].sort((a, b) => b[1] - a[1])[0] ?? ['?'];
          const check = judged.find((candidate) => candidate.name === name);
          return `constraint ${name} could not be met by ${count * 4} candidate rows${check ? `: ${check.definition}` : ''}`;
        }
        rows = kept.slice(0, count);
      }
      await this.enterContext(relation, tenant);
      try {
        const inserted = await this.insert(relation, columns, rows);
        this.record(relation, tenant, inserted, result);
        if (attempt > 0) result.repairs += attempt;
        return rows.length < count ? `${count - rows.length} of ${count} rows could not meet the checks` : null;
      } catch (error) {
        this.stopOn(error);
        lastError = errorMessage(error);
        this.learn(relation, error);
      }
    }
    // One row at a time: keep the rows that satisfy the constraints.
    let inserted = 0;
    for (let rowIndex = 0; rowIndex < count; rowIndex += 1) {
      for (let attempt = 0; attempt < 3; attempt += 1) {
        const { columns, rows } = this.buildRows(relation, relationPlan, tenant, 1, true, options);
        this.pinTenantKey(relationPlan, tenant, columns, rows);
        await this.enterContext(relation, tenant);
        try {
          this.record(relation, tenant, await this.insert(relation, columns, rows), result);
          inserted += 1;
          result.repairs += 1;
          break;
        } catch (error) {
          this.stopOn(error);
          lastError = errorMessage(error);
          this.learn(relation, error);
        }
      }
    }
    return inserted === count ? null : `${count - inserted} of ${count} rows could not be inserted: ${lastError}`;
  }

  /** Rows each tenant is due in a relation: its capacity less what it has. */
  private wanted(relation: Relation, relationPlan: RelationPlan): { tenant: Tenant; count: number }[] {
    return this.ledger.tenants.map((tenant) => ({
      tenant,
      count: (relationPlan.tenancy === 'tenant-table' ? 1 : this.capacity(relation, relationPlan, tenant)) - this.ledger.count(relation.qualified, tenant.id),
    }));
  }

  /** Whether a relation's rows can go in for several tenants at once (see planBatches). */
  private batchable(relation: Relation, relationPlan: RelationPlan): boolean {
    return relationPlan.tenancy !== 'tenant-table' && relationPlan.tenancy !== 'shared' && !this.leaves(relation).length && !this.selfReferences(relation).length && !this.contextTriggers(relation).length;
  }

  /**
   * The common case in one statement per group of tenants instead of one per tenant (round trips, not rows,
   * are what seeding spends its time on): rows planned for every tenant, to be inserted together and
   * attributed in the order they went in. A group whose rows need PostgreSQL to judge a check or lack a
   * parent is not planned; seedTenant does those one tenant at a time.
   *
   * Between tenants it gives way to the event loop: an insert of thousands of rows may not fit in the
   * socket's buffer, and while this side plans without pause the server waits for the rest of it (and for
   * the answers before it to be read). Nothing else of the seeder runs meanwhile, so the rows planned do not
   * depend on timing.
   */
  private async planBatches(relation: Relation, relationPlan: RelationPlan, wanted: { tenant: Tenant; count: number }[]): Promise<PlannedGroup[]> {
    const groups: { tenant: Tenant; count: number }[][] = [[]];
    let size = 0;
    for (const entry of wanted.filter(({ count }) => count > 0)) {
      if (size + entry.count > BATCH_ROWS && groups.at(-1)!.length) {
        groups.push([]);
        size = 0;
      }
      groups.at(-1)!.push(entry);
      size += entry.count;
    }
    const planned: PlannedGroup[] = [];
    for (const group of groups.filter((candidate) => candidate.length > 1)) {
      const built: ({ tenant: Tenant } & ReturnType<Seeder['buildRows']>)[] = [];
      for (const { tenant, count } of group) {
        await new Promise((resolve) => setImmediate(resolve));
        this.session.checkExpired();
        built.push({ tenant, ...this.buildRows(relation, relationPlan, tenant, count, false, {}) });
      }
      const shape = (columns: ColumnSpec[]) => columns.map(({ column }) => column.name).join('\u0000');
      if (built.some((entry) => entry.problem || shape(entry.columns) !== shape(built[0]!.columns) || this.checksToJudge(relation, entry.planner).length)) continue;
      planned.push({ columns: built[0]!.columns, tenants: built.map(({ tenant, rows }) => ({ tenant, rows })) });
    }
    return planned;
  }

  /**
   * Insert the planned groups. While the last insert runs on the server, `meanwhile` plans the next
   * relation here and sends its inserts behind it: both cores work, and the server goes from one insert to
   * the next without waiting for this side. A group that fails is left to seedTenant, which learns from the
   * error and retries. Returns the tenants whose rows went in.
   */
  private async seedBatches(relation: Relation, planned: PlannedGroup[], result: SeedResult, meanwhile: () => Promise<void>): Promise<Set<Tenant>> {
    const done = new Set<Tenant>();
    for (const [index, group] of planned.entries()) {
      const rows = () => group.tenants.flatMap((entry) => entry.rows);
      const read = group.sent ?? this.sendInsert(relation, group.columns, rows());
      if (index === planned.length - 1) await meanwhile();
      let inserted: RawRow[];
      try {
        inserted = await read().catch((error: { code?: string }) => {
          // Sent ahead behind an insert that failed: it never ran. Send it again.
          if (error.code === '25P02' && group.sent) return this.insert(relation, group.columns, rows());
          throw error;
        });
      } catch (error) {
        this.stopOn(error);
        this.learn(relation, error);
        continue;
      }
      // INSERT ... SELECT FROM unnest returns its rows in the order they went in.
      let offset = 0;
      for (const { tenant, rows } of group.tenants) {
        this.record(relation, tenant, inserted.slice(offset, offset + rows.length), result);
        offset += rows.length;
        done.add(tenant);
      }
    }
    return done;
  }

  /**
   * Plan the batches of the relation after `position` in the seed order and send their inserts, when
   * nothing about them waits on the relation being inserted now: none of its foreign keys points there, no
   * trigger can add rows first, and it takes no part in a deferred cycle. Whatever the seeder sends next
   * waits until they have answered (AuditSession.sendKept), so none of it meets a transaction they aborted.
   */
  private async planAhead(position: number, current: Relation): Promise<void> {
    const name = this.plan.seedOrder[position + 1];
    const relation = name ? relationOf(this.catalog, name) : undefined;
    const relationPlan = name ? this.plans.get(name) : undefined;
    if (!relation || !relationPlan || this.withTriggers || !this.batchable(relation, relationPlan) || this.blocked(relation.qualified, 'INSERT')) return;
    if (relation.foreignKeys.some((foreignKey) => foreignKey.references === current.qualified)) return;
    if (this.plan.deferredReferences.some((edge) => edge.from === relation.qualified || edge.to === relation.qualified)) return;
    const groups = await this.planBatches(relation, relationPlan, this.wanted(relation, relationPlan));
    for (const group of groups) group.sent = this.sendInsert(relation, group.columns, group.tenants.flatMap((entry) => entry.rows));
    this.planned = { relation: relation.qualified, groups };
  }

  /** The tenant table's key is the tenant id itself. */
  private pinTenantKey(relationPlan: RelationPlan, tenant: Tenant | null, columns: ColumnSpec[], rows: (string | null)[][]): void {
    if (relationPlan.tenancy !== 'tenant-table' || !tenant) return;
    const key = columns.findIndex(({ column }) => column.name === this.plan.tenantKey.column);
    if (key >= 0) for (const row of rows) row[key] = tenant.id;
  }

  private record(relation: Relation, tenant: Tenant | null, inserted: RawRow[], result: SeedResult): void {
    const rows = inserted.map((values) => {
      const tableoid = values['rls audit tableoid'];
      if (tableoid !== undefined) {
        delete values['rls audit tableoid'];
        const leaf = this.byOid.get(Number(tableoid));
        if (leaf && tenant) {
          const counts = this.leafCounts.get(leaf.qualified) ?? new Map<string, number>();
          counts.set(tenant.id, (counts.get(tenant.id) ?? 0) + 1);
          this.leafCounts.set(leaf.qualified, counts);
        }
      }
      return { tenant: tenant?.id ?? null, values };
    });
    // Rows of a table without a primary key are told apart by all their values (adopt): keep them whole.
    this.ledger.add(relation.qualified, relation.primaryKey, rows, relation.primaryKey?.length ? this.retainedColumns(relation) : undefined);
    result.rows += rows.length;
  }

  /** Columns the ledger keeps for every row: keys, unique columns, tenant columns, columns other tables reference. */
  private retainedColumns(relation: Relation): Set<string> {
    let retained = this.retained.get(relation.qualified);
    if (!retained) {
      retained = new Set([...(relation.primaryKey ?? []), ...uniqueColumns(relation), ...this.plan.tenantColumns]);
      const tenantColumn = this.plans.get(relation.qualified)?.tenantColumn;
      if (tenantColumn) retained.add(tenantColumn);
      for (const other of this.catalog.relations) {
        for (const foreignKey of other.foreignKeys) if (foreignKey.references === relation.qualified) foreignKey.referencedColumns.forEach((column) => retained!.add(column));
      }
      this.retained.set(relation.qualified, retained);
    }
    return retained;
  }

  // -------------------------------------------------------------------------------------------------
  // Cycles

  /**
   * Point the foreign keys left NULL (or deferred) while seeding a cycle at same-tenant parents, now that
   * they exist; a deferred constraint is then checked at once.
   */
  private async settlePending(): Promise<void> {
    for (const { relation, foreignKey, deferred } of this.pending) {
      const result = this.results.find((candidate) => candidate.relation === relation.qualified);
      const key = relation.primaryKey;
      const relationPlan = this.plans.get(relation.qualified)!;
      if (!key?.length) continue;
      const blocked = this.blocked(relation.qualified, 'UPDATE');
      if (blocked) {
        if (result) {
          result.status = 'partial';
          result.reason ??= `the cycle through ${foreignKey.name} was not closed: ${blocked.reason}`;
          result.hint ??= blocked.hint;
        }
        continue;
      }
      const assignments: { key: string[]; values: string[] }[] = [];
      const tenants: (Tenant | null)[] = relationPlan.tenancy === 'shared' ? [null] : this.ledger.tenants;
      const columns = foreignKey.columns.filter((column) => column !== relationPlan.tenantColumn || relationPlan.tenancy === 'shared');
      for (const tenant of tenants) {
        const parents = this.parentRows(foreignKey, tenant);
        if (!parents.length) continue;
        this.ledger.rows(relation.qualified, tenant?.id ?? null).forEach((row, index) => {
          const parent = this.faker.helpers.arrayElement(parents);
          const values = columns.map((column) => parent.values[foreignKey.referencedColumns[foreignKey.columns.indexOf(column)]!] ?? '');
          assignments.push({ key: key.map((column) => row.values[column] ?? ''), values });
          this.ledger.update(relation.qualified, tenant?.id ?? null, index, Object.fromEntries(columns.map((column, position) => [column, values[position]!])));
        });
      }
      if (!assignments.length) continue;
      const sql =
        `update ${relationIdent(relation)} as t set ${columns.map((column, index) => `${ident(column)} = v.s${index}::${requireColumn(relation, column).type}`).join(', ')} ` +
        `from unnest(${[...key, ...columns].map((_, index) => `$${index + 1}::text[]`).join(', ')}) as v(${[...key.map((_, index) => `k${index}`), ...columns.map((_, index) => `s${index}`)].join(', ')}) ` +
        `where ${key.map((column, index) => `t.${ident(column)} = v.k${index}::${requireColumn(relation, column).type}`).join(' and ')}`;
      const params = [...key.map((_, index) => assignments.map((entry) => entry.key[index]!)), ...columns.map((_, index) => assignments.map((entry) => entry.values[index]!))];
      try {
        this.statements += 1;
        await this.session.savepoint(async () => {
          await this.session.query(sql, params);
          if (deferred) await this.session.query(`set constraints ${ident(relation.schema)}.${ident(foreignKey.name)} immediate`);
        }, true);
      } catch (error) {
        this.stopOn(error);
        if (result) {
          result.status = 'partial';
          result.reason ??= `the cycle through ${foreignKey.name} could not be closed: ${errorMessage(error)}`;
        }
      }
    }
  }

  /**
   * A cycle whose deferred edge is NOT NULL is seeded with that constraint deferred (when it is DEFERRABLE):
   * rows go in pointing nowhere yet, and settlePending points them at parents and checks them at once.
   */
  async deferConstraints(): Promise<void> {
    for (const edge of this.plan.deferredReferences) {
      const relation = relationOf(this.catalog, edge.from);
      if (!relation) continue;
      for (const foreignKey of relation.foreignKeys) {
        if (foreignKey.references !== edge.to || nullableKey(relation, foreignKey)) continue;
        if (foreignKey.deferrable) await this.session.query(`set constraints ${ident(relation.schema)}.${ident(foreignKey.name)} deferred`);
      }
    }
  }

  // -------------------------------------------------------------------------------------------------
  // Rows made by triggers

  /**
   * Rows of a tenant-owned relation that the seeder did not insert but that belong to its tenants (a trigger
   * made them while other rows went in): added to the ledger. Only our tenants' rows can match: their ids are new.
   */
  private async adopt(relation: Relation, relationPlan: RelationPlan, result: SeedResult): Promise<void> {
    if (!this.withTriggers) return;
    let adopted: LedgerRow[] | null;
    try {
      adopted = await rowsMadeByTriggers(this.session, relation, relationPlan, this.ledger, this.ledger.tenants.map((tenant) => tenant.id));
    } catch (error) {
      this.stopOn(error);
      return;
    }
    if (adopted === null) return;
    this.statements += 1;
    if (!adopted.length) return;
    this.ledger.add(relation.qualified, relation.primaryKey, adopted);
    result.adopted += adopted.length;
  }

  // -------------------------------------------------------------------------------------------------
  // Coverage

  private coverage(): void {
    for (const result of this.results) {
      const relationPlan = this.plans.get(result.relation)!;
      if (relationPlan.tenancy === 'shared') continue;
      for (const tenant of this.ledger.tenants) {
        const rows = this.ledger.count(result.relation, tenant.id);
        result.tenants[tenant.id] = rows;
        if (!rows) this.gaps.push({ relation: result.relation, tenant: tenant.id, reason: result.reason ?? 'no row of this tenant could be inserted', ...(result.hint ? { hint: result.hint } : {}) });
      }
      const relation = requireRelation(this.catalog, result.relation);
      for (const leaf of this.leaves(relation)) {
        const counts = this.leafCounts.get(leaf.relation.qualified);
        const coverage: PartitionCoverage = { relation: leaf.relation.qualified, tenants: {}, waived: null };
        for (const tenant of this.ledger.tenants) {
          const rows = counts?.get(tenant.id) ?? 0;
          coverage.tenants[tenant.id] = rows;
          if (rows) continue;
          const refused = this.leafRefuses(leaf, relationPlan, tenant);
          if (refused) coverage.waived = refused;
          else if (result.tenants[tenant.id]) this.gaps.push({ relation: leaf.relation.qualified, tenant: tenant.id, reason: `partition of ${result.relation} holds no row of this tenant${result.reason ? `: ${result.reason}` : ''}` });
        }
        result.partitions.push(coverage);
      }
    }
  }
}

/**
 * Rows of a tenant-owned relation that are not in the ledger but belong to one of the `owners` tenants (a
 * trigger made them while other rows went in), attributed by the tenant column or by the first foreign key of
 * the relation's path (to a parent in the ledger). Only read, in a savepoint: the caller adopts them into the
 * ledger. Null when there was nothing to ask (no tenant column, no parent in the ledger).
 */
export async function rowsMadeByTriggers(session: AuditSession, relation: Relation, relationPlan: RelationPlan, ledger: Ledger, owners: readonly string[]): Promise<LedgerRow[] | null> {
  if (relationPlan.tenancy === 'shared' || !owners.length) return null;
  const typeOf = (owner: Relation, name: string) => columnType(owner, name) ?? 'text';
  const select = relation.columns.map((column) => `${ident(column.name)}::text as ${ident(column.name)}`).join(', ');
  const wanted = new Set(owners);
  let sql: string;
  let params: unknown[];
  let attribute: (row: RawRow) => string | null;
  if (relationPlan.tenantColumn) {
    const column = relationPlan.tenantColumn;
    // Compared in the column's own type, so that an index on the tenant column serves (not ::text, which reads every row).
    sql = `select ${select} from ${relationIdent(relation)} where ${ident(column)} = any($1::${typeOf(relation, column)}[]) limit 10000`;
    params = [[...wanted]];
    attribute = (row) => row[column] ?? null;
  } else if (relationPlan.path?.length) {
    const hop = relationPlan.path[0]!;
    const parents = ledger.rows(hop.references).filter((parent) => parent.tenant !== null && wanted.has(parent.tenant));
    if (!parents.length) return null;
    const owner = new Map(parents.map((parent) => [hop.referencedColumns.map((column) => parent.values[column] ?? '').join('\u0001'), parent.tenant]));
    sql = `select ${select} from ${relationIdent(relation)} where (${hop.columns.map((column) => ident(column)).join(', ')}) in (select * from unnest(${hop.columns.map((column, index) => `$${index + 1}::${typeOf(relation, column)}[]`).join(', ')})) limit 10000`;
    params = hop.referencedColumns.map((column) => parents.map((parent) => parent.values[column] ?? null));
    attribute = (row) => owner.get(hop.columns.map((column) => row[column] ?? '').join('\u0001')) ?? null;
  } else return null;
  const rows = (await session.savepoint(() => session.query(sql, params), true)).rows;
  const known = relation.primaryKey?.length ? null : new Set(ledger.rows(relation.qualified).map((row) => JSON.stringify(row.values)));
  const adopted: LedgerRow[] = [];
  for (const row of rows) {
    if (known ? known.has(JSON.stringify(row)) : ledger.tenantByKey(relation.qualified, row) !== undefined) continue;
    const tenant = attribute(row);
    if (tenant === null || !wanted.has(tenant)) continue;
    adopted.push({ tenant, values: row });
  }
  return adopted;
}

/**
 * Seed the tenants and their rows as the session's (superuser) role, which bypasses RLS. Every inserted
 * row, and every row a trigger made for a tenant, goes into the ledger; what could not be seeded for a
 * tenant is a coverage gap.
 */
export async function seed(
  session: AuditSession,
  catalog: Catalog,
  plan: TenancyPlan,
  options: {
    tenants: number;
    rows: number;
    seed: number;
    /** Give sequence-backed keys explicit values (the database is not ours). */
    explicitKeys?: boolean;
    /** Why a write of this kind to the relation must not be made: on a live database, one that would advance a sequence (sequences.ts). */
    blocked?: WriteBlock;
    /** The audit's analysis of the catalog (computed here when not given): how policies and triggers read the tenant setting. */
    analysis?: Analysis;
    /**
     * Set the tenant context, as the application does, while inserting rows of a relation whose insert
     * triggers read it. It then stays defined on the session: only where the never-set state is observed on
     * another connection (a cluster of the audit's own, see audit.ts).
     */
    setContext?: boolean;
  },
): Promise<SeedOutcome> {
  await loadParser();
  const faker = createFaker(options.seed);
  const keyColumn = plan.tenantKey.relation
    ? columnOf(relationOf(catalog, plan.tenantKey.relation), plan.tenantKey.column)
    : undefined;
  const analysis = options.analysis ?? analyze(catalog, plan.role);
  const idType = tenantIdType(plan.tenantKey.baseType, settingCasts(analysis, plan.setting));
  const ids = tenantIds(faker, idType, options.tenants, keyColumn?.maxLength ?? null);
  const tenants: Tenant[] = ids.map((id, index) => ({ id, label: tenantLabel(index), canary: makeCanary(faker) }));
  const ledger = new Ledger(tenants);
  const settings = (await session.query(`select current_setting('DateStyle') as date_style, current_setting('TimeZone') as time_zone`)).rows[0]!;
  const timeStyle = { iso: /^\s*iso\b/i.test(settings.date_style ?? ''), utc: UTC_ZONES.has((settings.time_zone ?? '').toLowerCase()) };
  const seeder = new Seeder(session, catalog, plan, faker, ledger, options.rows, options.explicitKeys ?? false, options.blocked, timeStyle, analysis, options.setContext ?? false);
  await seeder.deferConstraints();
  await seeder.run();
  return {
    tenants,
    ledger,
    results: seeder.results,
    gaps: seeder.gaps,
    rowsInserted: seeder.results.filter((result) => result.status !== 'existing').reduce((sum, result) => sum + result.rows, 0),
    statements: seeder.statements,
    contextSet: seeder.contextSet,
  };
}
