import type { Analysis } from '../analysis/index.js';
import type { Catalog } from '../catalog/types.js';
import { findingBuilder, type CheckMeta, type CheckMetaInput, type Finding, type FindingInput } from '../findings/finding.js';
import type { TenancyPlan } from '../plan/tenancy.js';
import type { Scenario } from '../scenario/schema.js';
import type { Actors } from '../seed/actors.js';
import type { Ledger, Tenant } from '../seed/ledger.js';
import type { SeedResult } from '../seed/outcome.js';
import type { AuditSession } from '../target/session.js';
import type { SequenceRisk } from '../target/sequences.js';
import type { InconclusiveReason } from '../findings/verdict.js';
import type { RoleAccess } from './access.js';
import type { RunResult } from './context.js';
import type { PlanPart } from './schedule.js';

/**
 * pass: ran and nothing crossed a boundary; leak: something did; hidden: nothing leaked but the tenant saw
 * fewer of its own rows than it owns; error: the statement failed unexpectedly;
 * denied: an error where an empty result was due; unreliable: the data it needed was not seeded;
 * inconclusive: it ran but its result proves nothing either way (e.g. a function returned nothing that can
 * be attributed); no-access / skipped: not run.
 */
export type ProbeOutcome = 'pass' | 'leak' | 'hidden' | 'error' | 'denied' | 'unreliable' | 'inconclusive' | 'no-access' | 'skipped';

/** One statement a probe executed, kept in the report whatever its outcome. */
export interface ProbeRecord {
  check: string;
  relation: string;
  /** Tenant label or the no-context state (`never set`, `empty string`, `unknown tenant`). */
  context: string;
  tenant: string | null;
  sql: string;
  outcome: ProbeOutcome;
  rows: number;
  foreignRows: number;
  /** Own rows the tenant should see and did not (read isolation on seeded tables). */
  missingOwnRows: number;
  /** A call made with another tenant's keys in its arguments (function-leak): that tenant's id. */
  keysOf?: string;
  /** Other tenants' rows seen that are public by design (a row flag such as is_public): not counted in foreignRows. */
  publicRows?: number;
  error?: string;
}

export interface ProbeContext {
  session: AuditSession;
  catalog: Catalog;
  /** What the policies, views and functions mean for the application role (src/analysis). */
  analysis: Analysis;
  plan: TenancyPlan;
  tenants: Tenant[];
  ledger: Ledger;
  seedResults: SeedResult[];
  scenario: Scenario;
  access: RoleAccess;
  /**
   * The target's connection string, for probes that need a second, throwaway connection (a pooled
   * connection's state across transactions). Never printed: it may hold a password.
   */
  connectionString: string;
  /**
   * True when the database belongs to this run (embedded, container). When false (a url target) probes
   * must not run what cannot be rolled back, such as a function that advances a sequence.
   */
  disposable: boolean;
  /**
   * On a url target without --allow-sequence-gaps: the ways writing a relation would advance a sequence
   * (sequences.ts). Such writes are not made: seeding leaves the relation out, write probes skip it.
   */
  sequenceRisks?: SequenceRisk[];
  /** Who "as tenant X" runs as (its user, its role), and the extra actors (a user in two tenants, in none). */
  actors?: Actors;
  /**
   * Large relations on which the policy keeps the tenant index from serving a tenant's read (targets.ts,
   * forcedFullScans): their reads are sampled, and read-isolation reads each in full once.
   */
  forcedScans?: ReadonlySet<string>;
  /** Results of reads in the "never set" state, taken before any context was set on the connection. */
  neverSet?: Map<string, RunResult>;
  record(probe: ProbeRecord): void;
  /** This run proved nothing about something: the verdict becomes inconclusive, with this reason printed. */
  inconclusive(reason: InconclusiveReason): void;
  /** The relations this run of a probe covers when the plan is split (--jobs, --shard): see schedule.ts. */
  part?: PlanPart;
}

/** Fills a probe finding's id, source and object kind (of the probe or of one of its related checks). */
export type ProbeReport = (input: FindingInput) => Finding;

export interface ProbeMeta extends CheckMeta {
  source: 'probe';
}

/** The command families of the HTML report's matrix, in the order of its columns. */
export const MATRIX_FAMILIES = ['read', 'insert', 'update', 'delete', 'missing'] as const;
export type MatrixFamily = (typeof MATRIX_FAMILIES)[number];

/**
 * Where a probe check's statements show in the HTML report: in a command family of the matrix (a column), or
 * `outside` it, for checks not about one command on one tenant-owned relation (the role itself, functions,
 * triggers, application queries, the pooled connection, query plans): their statements are listed under
 * "Probe statements", their findings in the matrix row of their relation.
 */
export type MatrixPlacement = MatrixFamily | 'outside';

/**
 * How a probe's work is split across CI jobs (`--shard`) and the connections of one run (`--jobs`), see
 * schedule.ts. `relation`: one independent piece per relation (it iterates readTargets / writeTargets, or
 * checks `inPart` itself), so a relation's bucket decides where it runs; `whole`: it runs in one place.
 */
export type ProbeSplit = 'relation' | 'whole';

/** What a probe declares about one check it reports: its metadata and its place in the matrix. */
export type ProbeCheckInput = CheckMetaInput & { matrix: MatrixPlacement };

export interface Probe {
  meta: ProbeMeta;
  /** Where it runs among the probes: ascending, ties broken by id (the registry sorts by it). */
  order: number;
  /** Other checks this probe reports (e.g. a lower-severity defect found along the way). */
  related: ProbeMeta[];
  /** Per check id (its own and its related checks'), where its statements show in the HTML matrix. */
  matrix: ReadonlyMap<string, MatrixPlacement>;
  split: ProbeSplit;
  /**
   * It takes an ACCESS EXCLUSIVE lock (TRUNCATE): it runs after every other unit, on one connection, once the
   * other connections have ended their transactions (a read there holds its table's ACCESS SHARE lock until the
   * transaction ends, and the lock would wait for it and time out).
   */
  exclusive: boolean;
  run(context: ProbeContext): Promise<Finding[]>;
}

export interface ProbeDefinition {
  /**
   * Its place in the run order, ascending (ties broken by id); the shipped probes are spaced by 10 so that a
   * new one can state a place between two. missing-context (10) runs first.
   */
  order: number;
  meta: ProbeCheckInput;
  related?: ProbeCheckInput[];
  split: ProbeSplit;
  exclusive?: boolean;
  run(this: Probe, context: ProbeContext, report: ProbeReport): Promise<Finding[]>;
}

/** Marks what defineProbe returned, so that the registry takes no other export of a check module for a probe. */
const PROBE_BRAND = Symbol.for('rls-audit.probe');

/** A value defineProbe made. */
export function isProbe(value: unknown): value is Probe {
  return typeof value === 'object' && value !== null && (value as { [PROBE_BRAND]?: unknown })[PROBE_BRAND] === true;
}

/**
 * Declare a probe, ESLint style: its place in the run order, its metadata (and that of the checks it reports
 * along the way, each with its place in the HTML matrix), how its work splits, and a run() that reports
 * through report(). A module in probes/checks/ that exports one is a probe: the registry finds it there.
 */
export function defineProbe(definition: ProbeDefinition): Probe {
  const { matrix: placement, ...own } = definition.meta;
  const meta: ProbeMeta = { ...own, source: 'probe' };
  const matrix = new Map<string, MatrixPlacement>([[meta.id, placement]]);
  const related: ProbeMeta[] = (definition.related ?? []).map(({ matrix: relatedPlacement, ...entry }) => {
    matrix.set(entry.id, relatedPlacement);
    return { ...entry, source: 'probe', reportedBy: meta.id };
  });
  const report = findingBuilder([meta, ...related]);
  const probe: Probe = { meta, order: definition.order, related, matrix, split: definition.split, exclusive: definition.exclusive ?? false, run: (context) => definition.run.call(probe, context, report) };
  Object.defineProperty(probe, PROBE_BRAND, { value: true });
  return probe;
}
