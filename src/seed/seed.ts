import type { Faker } from '@faker-js/faker';
import { analyze, settingCasts } from '../analysis/index.js';
import type { Analysis } from '../analysis/model.js';
import { loadParser } from '../analysis/parse.js';
import { columnOf, relationOf, requireRelation } from '../catalog/lookup.js';
import type { Catalog, Relation } from '../catalog/types.js';
import { errorMessage } from '../errors.js';
import type { RelationPlan, TenancyPlan } from '../plan/tenancy.js';
import type { AuditSession } from '../target/session.js';
import { ident, relationIdent } from '../target/sql.js';
import { BATCH_ROWS, Batches } from './batches.js';
import { DeferredReferences } from './deferred.js';
import { Inserts } from './inserts.js';
import { Ledger, type Tenant } from './ledger.js';
import type { CoverageGap, PartitionCoverage, SeedOutcome, SeedResult, WriteBlock } from './outcome.js';
import { leafRefuses, Partitions, type Leaf } from './partitions.js';
import { judge, Lessons } from './repairs.js';
import { RowBuilder } from './rows.js';
import { nullableKey, selfReferences } from './shapes.js';
import { stopOn, type SeedState } from './state.js';
import { sessionTimeStyle, type TimeStyle } from './stored-text.js';
import { adopt, TenantContext } from './triggers.js';
import { createFaker, makeCanary, tenantIds, tenantIdType } from './values.js';

const LABELS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ';

function tenantLabel(index: number): string {
  return `tenant ${index < 26 ? LABELS[index] : `#${index + 1}`}`;
}

/**
 * One seeding: relations in the plan's seed order, each tenant's rows planned (rows.ts), sent in batches
 * ahead of need (batches.ts, inserts.ts), repaired after constraint errors (repairs.ts), spread over
 * partitions (partitions.ts), with the tenant context set for triggers that read it and the rows triggers
 * made adopted (triggers.ts), and the foreign keys of cycles set at the end (deferred.ts).
 */
class Seeder {
  readonly results: SeedResult[] = [];
  readonly gaps: CoverageGap[] = [];
  private readonly state: SeedState;
  private readonly session: AuditSession;
  private readonly catalog: Catalog;
  private readonly plan: TenancyPlan;
  private readonly plans: Map<string, RelationPlan>;
  private readonly ledger: Ledger;
  private readonly rowsPerTenant: number;
  private readonly withTriggers: boolean;
  private readonly partitions: Partitions;
  private readonly context: TenantContext;
  private readonly lessons: Lessons;
  private readonly deferred: DeferredReferences;
  private readonly rows: RowBuilder;
  private readonly inserts: Inserts;
  private readonly batches: Batches;

  constructor(
    session: AuditSession,
    catalog: Catalog,
    plan: TenancyPlan,
    faker: Faker,
    ledger: Ledger,
    options: {
      rowsPerTenant: number;
      explicitKeys: boolean;
      /** Why a write of this kind to the relation must not be made, or null (a live database where it would advance a sequence). */
      blocked: WriteBlock;
      /** How the session prints dates and times, for storedText. */
      timeStyle: TimeStyle;
      analysis: Analysis;
      /** Whether the tenant context may be set while seeding (see TenantContext). */
      setContext: boolean;
    },
  ) {
    this.session = session;
    this.catalog = catalog;
    this.plan = plan;
    this.ledger = ledger;
    this.rowsPerTenant = options.rowsPerTenant;
    this.plans = new Map(plan.relations.map((relationPlan) => [relationPlan.relation, relationPlan]));
    this.state = { session, catalog, plan, plans: this.plans, faker, ledger, blocked: options.blocked, statements: 0 };
    this.partitions = new Partitions(catalog);
    const seeded = new Set(plan.seedOrder.flatMap((name) => [name, ...this.partitions.leavesOf(name).map((leaf) => leaf.qualified)]));
    this.withTriggers = catalog.triggers.some((trigger) => trigger.enabled && seeded.has(trigger.relation));
    this.context = new TenantContext(this.state, this.partitions, options.analysis, options.setContext);
    this.lessons = new Lessons(catalog);
    this.deferred = new DeferredReferences(this.state);
    this.rows = new RowBuilder(this.state, this.partitions, this.lessons, this.deferred, options.rowsPerTenant, options.explicitKeys);
    this.inserts = new Inserts(this.state, this.partitions, options.timeStyle);
    this.batches = new Batches(this.state, this.partitions, this.context, this.rows, this.lessons, this.inserts, this.withTriggers);
  }

  /** Statements sent to the server while seeding. */
  get statements(): number {
    return this.state.statements;
  }

  /** Whether the seeder set the tenant context on the session (the never-set state is then gone there). */
  get contextSet(): boolean {
    return this.context.set;
  }

  /** Seed the foreign keys of cycles deferred (see DeferredReferences.defer). */
  deferConstraints(): Promise<void> {
    return this.deferred.defer();
  }

  async run(): Promise<void> {
    for (const [position, name] of this.plan.seedOrder.entries()) {
      const relation = requireRelation(this.catalog, name);
      const relationPlan = this.plans.get(name)!;
      const result: SeedResult = { relation: name, status: 'seeded', rows: 0, reason: null, repairs: 0, tenants: {}, adopted: 0, partitions: [] };
      this.results.push(result);
      const blocked = this.state.blocked(name, 'INSERT');
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
      if (this.withTriggers) await adopt(this.state, relation, relationPlan, result);
      const problems: string[] = [];
      const leaves = this.partitions.leaves(relation);
      const wanted = this.rows.wanted(relation, relationPlan);
      const planned = await this.batches.take(relation, relationPlan, wanted);
      const batched = await this.batches.seed(relation, planned, result, () => this.batches.ahead(position, relation));
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
        const refusal = this.context.refusal(relation);
        if (refusal) {
          result.reason = `${result.reason} (${refusal.reason})`;
          result.hint ??= refusal.hint;
        }
      }
    }
    await this.deferred.settle(this.results);
    if (this.withTriggers) {
      for (const result of this.results) {
        const relationPlan = this.plans.get(result.relation)!;
        if (relationPlan.tenancy !== 'shared') await adopt(this.state, requireRelation(this.catalog, result.relation), relationPlan, result);
      }
    }
    this.coverage();
  }

  /** Put rows of the tenant into every leaf that has none yet: inside its bounds, or (hash) by routing more rows. */
  private async fillLeaves(relation: Relation, relationPlan: RelationPlan, tenant: Tenant, leaves: Leaf[], result: SeedResult): Promise<string | null> {
    let lastProblem: string | null = null;
    for (let round = 0; round < 3; round += 1) {
      const missing = this.partitions.missing(leaves, relationPlan, tenant);
      if (!missing.length) return null;
      const bounded = missing.filter((leaf) => leaf.bounded);
      const targets = bounded.length ? bounded : [null];
      for (const leaf of targets) {
        const problem = await this.seedRows(relation, relationPlan, tenant, leaf ? 2 : Math.max(2, this.rowsPerTenant), result, { leaf });
        if (problem) lastProblem = problem;
      }
    }
    const still = this.partitions.missing(leaves, relationPlan, tenant);
    return still.length ? `no row could be put into ${still.map((leaf) => leaf.relation.qualified).join(', ')}${lastProblem ? `: ${lastProblem}` : ''}` : null;
  }

  /** Seed one tenant's rows: self-referencing tables get roots first, then children pointing at same-tenant parents. */
  private async seedTenant(relation: Relation, relationPlan: RelationPlan, tenant: Tenant | null, count: number, result: SeedResult, leaves: Leaf[] = []): Promise<string | null> {
    const bounded = leaves.filter((leaf) => leaf.bounded);
    if (!selfReferences(relation).length) {
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
      stopOn(this.session, error);
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
      let { columns, rows, problem, planner } = this.rows.build(relation, relationPlan, tenant, count, attempt >= 2, options);
      if (problem) return problem;
      this.rows.pinTenantKey(relationPlan, tenant, columns, rows);
      const judged = this.lessons.checksToJudge(relation, planner);
      if (judged.length) {
        const kept: (string | null)[][] = [];
        const failures = new Map<string, number>();
        for (let round = 0; round < 4 && kept.length < count; round += 1) {
          const candidates = round === 0 ? rows : this.rows.build(relation, relationPlan, tenant, count, attempt >= 2, options).rows;
          this.rows.pinTenantKey(relationPlan, tenant, columns, candidates);
          const verdicts = await judge(this.state, relation, columns, candidates, judged);
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
      await this.context.enter(relation, tenant);
      try {
        const inserted = await this.inserts.insert(relation, columns, rows);
        this.inserts.record(relation, tenant, inserted, result);
        if (attempt > 0) result.repairs += attempt;
        return rows.length < count ? `${count - rows.length} of ${count} rows could not meet the checks` : null;
      } catch (error) {
        stopOn(this.session, error);
        lastError = errorMessage(error);
        this.lessons.learn(relation, error);
      }
    }
    // One row at a time: keep the rows that satisfy the constraints.
    let inserted = 0;
    for (let rowIndex = 0; rowIndex < count; rowIndex += 1) {
      for (let attempt = 0; attempt < 3; attempt += 1) {
        const { columns, rows } = this.rows.build(relation, relationPlan, tenant, 1, true, options);
        this.rows.pinTenantKey(relationPlan, tenant, columns, rows);
        await this.context.enter(relation, tenant);
        try {
          this.inserts.record(relation, tenant, await this.inserts.insert(relation, columns, rows), result);
          inserted += 1;
          result.repairs += 1;
          break;
        } catch (error) {
          stopOn(this.session, error);
          lastError = errorMessage(error);
          this.lessons.learn(relation, error);
        }
      }
    }
    return inserted === count ? null : `${count - inserted} of ${count} rows could not be inserted: ${lastError}`;
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
      for (const leaf of this.partitions.leaves(relation)) {
        const coverage: PartitionCoverage = { relation: leaf.relation.qualified, tenants: {}, waived: null };
        for (const tenant of this.ledger.tenants) {
          const rows = this.partitions.rows(leaf.relation.qualified, tenant.id);
          coverage.tenants[tenant.id] = rows;
          if (rows) continue;
          const refused = leafRefuses(leaf, relationPlan, tenant);
          if (refused) coverage.waived = refused;
          else if (result.tenants[tenant.id]) this.gaps.push({ relation: leaf.relation.qualified, tenant: tenant.id, reason: `partition of ${result.relation} holds no row of this tenant${result.reason ? `: ${result.reason}` : ''}` });
        }
        result.partitions.push(coverage);
      }
    }
  }
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
  const timeStyle = await sessionTimeStyle(session);
  const seeder = new Seeder(session, catalog, plan, faker, ledger, {
    rowsPerTenant: options.rows,
    explicitKeys: options.explicitKeys ?? false,
    blocked: options.blocked ?? (() => null),
    timeStyle,
    analysis,
    setContext: options.setContext ?? false,
  });
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
