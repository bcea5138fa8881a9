import type { Faker } from '@faker-js/faker';
import type { Catalog, Column, ForeignKey, Relation } from '../catalog/types.js';
import { errorMessage } from '../errors.js';
import type { RelationPlan, TenancyPlan } from '../plan/tenancy.js';
import type { AuditSession, RawRow } from '../session.js';
import { ident, relationIdent } from '../sql.js';
import { Ledger, type LedgerRow, type Tenant } from './ledger.js';
import { checksFor, columnRules, columnValue, createFaker, makeCanary, tenantIds, type ColumnRules } from './values.js';

export type SeedStatus = 'seeded' | 'partial' | 'failed' | 'existing';

export interface SeedResult {
  relation: string;
  status: SeedStatus;
  /** Rows inserted (or, for `existing`, rows of a shared table reused as parents). */
  rows: number;
  /** Why a table is partial or failed: the database's own error, or the missing parent. */
  reason: string | null;
  /** Retries that repaired a constraint error (new values, other parents). */
  repairs: number;
}

export interface SeedOutcome {
  tenants: Tenant[];
  ledger: Ledger;
  results: SeedResult[];
  rowsInserted: number;
  statements: number;
}

interface ColumnSpec {
  column: Column;
  rules: ColumnRules;
  unique: boolean;
}

const LABELS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ';

function tenantLabel(index: number): string {
  return `tenant ${index < 26 ? LABELS[index] : `#${index + 1}`}`;
}

/**
 * Columns the seeder fills: everything except generated columns and sequence-backed keys. Columns with
 * other defaults are filled too, so that a policy reading them (`or published`, `status = 'public'`)
 * meets both kinds of rows; `useDefaults` leaves them to their defaults, which a retry does when a
 * generated value broke a constraint the seeder cannot read.
 */
function columnsToFill(relation: Relation, forced: Set<string>, useDefaults: boolean): Column[] {
  return relation.columns.filter((column) => {
    if (column.generated) return false;
    if (forced.has(column.name)) return true;
    if (column.identity) return false;
    if (column.default !== null && (useDefaults || /\bnextval\(/.test(column.default))) return false;
    return true;
  });
}

function uniqueColumns(relation: Relation): Set<string> {
  const unique = new Set<string>();
  for (const constraint of relation.constraints) {
    if (constraint.kind === 'unique' || constraint.kind === 'primary-key' || constraint.kind === 'exclusion') constraint.columns.forEach((column) => unique.add(column));
  }
  for (const index of relation.indexes) if (index.unique) index.columns.forEach((column) => column && unique.add(column));
  return unique;
}

class Seeder {
  private serial = 0;
  private keysTaken = 0n;
  private readonly learned = new Map<string, { unique: Set<string>; fill: Set<string> }>();
  statements = 0;
  readonly results: SeedResult[] = [];
  private readonly byName: Map<string, Relation>;
  private readonly plans: Map<string, RelationPlan>;

  constructor(
    private readonly session: AuditSession,
    catalog: Catalog,
    private readonly plan: TenancyPlan,
    private readonly faker: Faker,
    readonly ledger: Ledger,
    private readonly rowsPerTenant: number,
    private readonly explicitKeys: boolean,
  ) {
    this.byName = new Map(catalog.relations.map((relation) => [relation.qualified, relation]));
    this.plans = new Map(plan.relations.map((relationPlan) => [relationPlan.relation, relationPlan]));
  }

  async run(): Promise<void> {
    for (const name of this.plan.seedOrder) {
      const relation = this.byName.get(name)!;
      const relationPlan = this.plans.get(name)!;
      const result: SeedResult = { relation: name, status: 'seeded', rows: 0, reason: null, repairs: 0 };
      this.results.push(result);
      if (relationPlan.tenancy === 'shared') {
        await this.seedShared(relation, result);
        continue;
      }
      const problems: string[] = [];
      for (const tenant of this.ledger.tenants) {
        const count = relationPlan.tenancy === 'tenant-table' ? 1 : this.rowsPerTenant;
        const problem = await this.seedRows(relation, relationPlan, tenant, count, result);
        if (problem) problems.push(`${tenant.label}: ${problem}`);
      }
      if (problems.length) {
        result.status = result.rows === 0 ? 'failed' : 'partial';
        result.reason = problems[0]!;
      }
    }
  }

  /** Reuse the rows a shared table already has; insert shared rows only when it is empty. */
  private async seedShared(relation: Relation, result: SeedResult): Promise<void> {
    try {
      const existing = await this.session.savepoint(() => this.session.query(`select ${relation.columns.map((column) => `${ident(column.name)}::text as ${ident(column.name)}`).join(', ')} from ${relationIdent(relation)} limit 200`), true);
      if (existing.rows.length) {
        this.ledger.add(relation.qualified, relation.primaryKey, existing.rows.map((values) => ({ tenant: null, values })));
        result.status = 'existing';
        result.rows = existing.rows.length;
        return;
      }
    } catch {
      // unreadable: try to insert instead
    }
    const problem = await this.seedRows(relation, this.plans.get(relation.qualified)!, null, this.rowsPerTenant, result);
    if (problem) {
      result.status = result.rows ? 'partial' : 'failed';
      result.reason = problem;
    }
  }

  /** Parent rows a foreign key of a row of `tenant` may point at: the same tenant's, or shared ones. */
  private parentRows(foreignKey: ForeignKey, tenant: Tenant | null): LedgerRow[] {
    const parentPlan = this.plans.get(foreignKey.references);
    if (!parentPlan || parentPlan.tenancy === 'shared' || !tenant) return this.ledger.rows(foreignKey.references);
    return this.ledger.rows(foreignKey.references, tenant.id);
  }

  private buildRows(relation: Relation, relationPlan: RelationPlan, tenant: Tenant | null, count: number, useDefaults: boolean): { columns: ColumnSpec[]; rows: (string | null)[][]; problem: string | null } {
    const forced = new Map<string, (rowIndex: number) => string | null>();
    let problem: string | null = null;
    if (tenant && relationPlan.tenantColumn) forced.set(relationPlan.tenantColumn, () => tenant.id);
    for (const foreignKey of relation.foreignKeys) {
      if (foreignKey.references === relation.qualified) continue;
      if (this.plan.deferredReferences.some((edge) => edge.from === relation.qualified && edge.to === foreignKey.references)) continue;
      const parents = this.parentRows(foreignKey, tenant);
      const nullable = foreignKey.columns.every((column) => !relation.columns.find((candidate) => candidate.name === column)?.notNull);
      if (!parents.length) {
        if (!nullable) problem = `no seeded row in ${foreignKey.references} to reference through ${foreignKey.name}`;
        continue;
      }
      const picks = Array.from({ length: count }, () => this.faker.helpers.arrayElement(parents));
      foreignKey.columns.forEach((column, position) => {
        if (column === relationPlan.tenantColumn && tenant) return;
        const referenced = foreignKey.referencedColumns[position]!;
        forced.set(column, (rowIndex) => picks[rowIndex]!.values[referenced] ?? null);
      });
    }
    if (this.explicitKeys) {
      for (const column of relation.columns) {
        if (forced.has(column.name) || column.generated || !(column.identity || /\bnextval\(/.test(column.default ?? ''))) continue;
        const values = Array.from({ length: count }, () => this.highKey(column));
        if (values.every((value) => value !== null)) forced.set(column.name, (rowIndex) => values[rowIndex]!);
      }
    }
    const unique = new Set([...uniqueColumns(relation), ...(this.learned.get(relation.qualified)?.unique ?? [])]);
    const mustFill = new Set([...forced.keys(), ...(this.learned.get(relation.qualified)?.fill ?? [])]);
    const columns: ColumnSpec[] = columnsToFill(relation, mustFill, useDefaults).map((column) => ({
      column,
      rules: columnRules(column, checksFor(relation, column)),
      unique: unique.has(column.name),
    }));
    const rows = Array.from({ length: count }, (_, rowIndex) =>
      columns.map(({ column, rules, unique: isUnique }) => {
        const forcedValue = forced.get(column.name);
        if (forcedValue) return forcedValue(rowIndex);
        this.serial += 1;
        const value = columnValue(this.faker, column, rules, { serial: this.serial, canary: tenant?.canary ?? null, unique: isUnique });
        return value === null && !column.notNull ? null : value;
      }),
    );
    return { columns, rows, problem };
  }

  /**
   * A key from the top of the column type's range, counting down. Used instead of the column's sequence
   * when the database is not ours: nextval() cannot be rolled back, so a sequence would remember the audit.
   */
  private highKey(column: Column): string | null {
    const top: Record<string, bigint> = { int2: 32_767n, int4: 2_147_483_647n, int8: 9_223_372_036_854_775_807n };
    const limit = top[column.baseType];
    if (limit === undefined) return null;
    this.keysTaken += 1n;
    return String(limit - this.keysTaken);
  }

  /**
   * Read a constraint error so the retry repairs it: a unique violation names its key columns (also for
   * expression indexes such as lower(email), which the catalog does not tie to a column); a NOT NULL
   * violation names a column whose default does not produce a value.
   */
  private learn(relation: Relation, error: unknown): void {
    const failure = error as { code?: string; detail?: string; column?: string };
    const learned = this.learned.get(relation.qualified) ?? { unique: new Set<string>(), fill: new Set<string>() };
    this.learned.set(relation.qualified, learned);
    if (failure.code === '23505' && failure.detail) {
      const key = /Key \((.*)\)=\(/.exec(failure.detail)?.[1] ?? '';
      for (const column of relation.columns) if (new RegExp(`(^|[^A-Za-z0-9_])"?${column.name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}"?([^A-Za-z0-9_]|$)`).test(key)) learned.unique.add(column.name);
    }
    if (failure.code === '23502' && failure.column) learned.fill.add(failure.column);
  }

  private insertSql(relation: Relation, columns: ColumnSpec[]): string {
    const overriding = columns.some(({ column }) => column.identity === 'always') ? ' overriding system value' : '';
    const aliases = columns.map((_, index) => `c${index + 1}`);
    return (
      `insert into ${relationIdent(relation)} (${columns.map(({ column }) => ident(column.name)).join(', ')})${overriding} ` +
      `select ${columns.map(({ column }, index) => `u.${aliases[index]}::${column.type}`).join(', ')} ` +
      `from unnest(${columns.map((_, index) => `$${index + 1}::text[]`).join(', ')}) as u(${aliases.join(', ')}) ` +
      `returning ${relation.columns.map((column) => `${ident(column.name)}::text as ${ident(column.name)}`).join(', ')}`
    );
  }

  private async insert(relation: Relation, columns: ColumnSpec[], rows: (string | null)[][]): Promise<RawRow[]> {
    this.statements += 1;
    const sql = this.insertSql(relation, columns);
    const params = columns.map((_, index) => rows.map((row) => row[index] ?? null));
    const result = await this.session.savepoint(() => this.session.query(sql, params), true);
    return result.rows;
  }

  /**
   * Insert `count` rows of one tenant in one statement. On a constraint error, retry with new values and
   * other parents; then fall back to one row at a time so that what can be seeded is. Returns a problem
   * when fewer rows than asked went in.
   */
  private async seedRows(relation: Relation, relationPlan: RelationPlan, tenant: Tenant | null, count: number, result: SeedResult): Promise<string | null> {
    let lastError = '';
    for (let attempt = 0; attempt < 4; attempt += 1) {
      const { columns, rows, problem } = this.buildRows(relation, relationPlan, tenant, count, attempt >= 2);
      if (problem) return problem;
      if (relationPlan.tenancy === 'tenant-table' && tenant) {
        const key = columns.findIndex(({ column }) => column.name === this.plan.tenantKey.column);
        rows.forEach((row) => (row[key] = tenant.id));
      }
      try {
        const inserted = await this.insert(relation, columns, rows);
        this.record(relation, tenant, inserted, result);
        if (attempt > 0) result.repairs += attempt;
        return null;
      } catch (error) {
        lastError = errorMessage(error);
        this.learn(relation, error);
      }
    }
    // One row at a time: keep the rows that satisfy the constraints.
    let inserted = 0;
    for (let rowIndex = 0; rowIndex < count; rowIndex += 1) {
      for (let attempt = 0; attempt < 3; attempt += 1) {
        const { columns, rows } = this.buildRows(relation, relationPlan, tenant, 1, true);
        if (relationPlan.tenancy === 'tenant-table' && tenant) rows[0]![columns.findIndex(({ column }) => column.name === this.plan.tenantKey.column)] = tenant.id;
        try {
          this.record(relation, tenant, await this.insert(relation, columns, rows), result);
          inserted += 1;
          result.repairs += 1;
          break;
        } catch (error) {
          lastError = errorMessage(error);
          this.learn(relation, error);
        }
      }
    }
    return inserted === count ? null : `${count - inserted} of ${count} rows could not be inserted: ${lastError}`;
  }

  private record(relation: Relation, tenant: Tenant | null, inserted: RawRow[], result: SeedResult): void {
    this.ledger.add(relation.qualified, relation.primaryKey, inserted.map((values) => ({ tenant: tenant?.id ?? null, values })));
    result.rows += inserted.length;
  }
}

/**
 * Seed the tenants and their rows as the session's (superuser) role, which bypasses RLS. Every inserted
 * row goes into the ledger.
 */
export async function seed(
  session: AuditSession,
  catalog: Catalog,
  plan: TenancyPlan,
  options: { tenants: number; rows: number; seed: number; /** Give sequence-backed keys explicit values (the database is not ours). */ explicitKeys?: boolean },
): Promise<SeedOutcome> {
  const faker = createFaker(options.seed);
  const keyColumn = plan.tenantKey.relation
    ? catalog.relations.find((relation) => relation.qualified === plan.tenantKey.relation)?.columns.find((column) => column.name === plan.tenantKey.column)
    : undefined;
  const ids = tenantIds(faker, plan.tenantKey.baseType, options.tenants, keyColumn?.maxLength ?? null);
  const tenants: Tenant[] = ids.map((id, index) => ({ id, label: tenantLabel(index), canary: makeCanary(faker) }));
  const ledger = new Ledger(tenants);
  const seeder = new Seeder(session, catalog, plan, faker, ledger, options.rows, options.explicitKeys ?? false);
  await seeder.run();
  return {
    tenants,
    ledger,
    results: seeder.results,
    rowsInserted: seeder.results.filter((result) => result.status !== 'existing').reduce((sum, result) => sum + result.rows, 0),
    statements: seeder.statements,
  };
}
