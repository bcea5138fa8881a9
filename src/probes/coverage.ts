import type { Relation } from '../catalog/types.js';
import type { Tenant } from '../seed/ledger.js';
import type { ProbeContext } from './types.js';
import { requireRelation } from '../catalog/lookup.js';

/**
 * Prove each fact once. The read probes run for every tenant on every relation (one cheap statement each);
 * the write families, which rewrite rows and count them before and after, run for a few tenants chosen so
 * that together they take every path the policies offer:
 *
 * - When every policy on the relation is tenant-symmetric (the analysis model finds no branch that compares the
 *   tenant context with a constant, and none it cannot decide), a tenant's result
 *   is the same as any other's with the ids swapped. The tenants with the lowest and the highest id, each
 *   acting on the other, then cover every path: equality and any order comparison (`<`, `>=`, `<>`) of the
 *   context against the tenant column.
 * - Otherwise every tenant acts (each on the next, in a ring), and every tenant whose id a policy names acts
 *   on and is targeted by every other tenant: a policy that opens one tenant's rows to one other tenant is
 *   still found.
 * - `exhaustive` in the scenario (`--exhaustive`) makes every family run as every tenant.
 */

/** A pair of tenants: `actor` writes, `victim` is the tenant whose rows it must not reach. */
export interface TenantPair {
  actor: Tenant;
  victim: Tenant;
}

export interface FamilyCoverage {
  /** The probe (check id). */
  check: string;
  /** Tenant labels the family acted as, over all relations, and on how many relations each way. */
  tenants: string[];
  /** Relations covered by a symmetric pair, and relations on which every tenant acted. */
  paired: number;
  everyTenant: number;
  reason: string;
}

interface RelationCoverage {
  actors: Tenant[];
  pairs: TenantPair[];
  symmetric: boolean;
  why: string;
}

// Keyed by the audit's ledger: one per audit, shared by the contexts of every unit of work (schedule.ts).
const cache = new WeakMap<object, { relations: Map<string, RelationCoverage>; families: Map<string, { tenants: Set<string>; paired: Set<string>; everyTenant: Map<string, string> }> }>();

function state(context: ProbeContext) {
  let entry = cache.get(context.ledger);
  if (!entry) {
    entry = { relations: new Map(), families: new Map() };
    cache.set(context.ledger, entry);
  }
  return entry;
}

/** Every tenant acts once, against the next tenant in a ring (A -> B, B -> C, C -> A). */
export function ringPairs(tenants: Tenant[]): TenantPair[] {
  if (tenants.length < 2) return [];
  return tenants.map((actor, index) => ({ actor, victim: tenants[(index + 1) % tenants.length]! }));
}

/** Tenants in the order PostgreSQL compares their ids: numerically for numbers, else as text. */
function byId(tenants: Tenant[]): Tenant[] {
  const numeric = tenants.every((tenant) => /^-?\d+$/.test(tenant.id));
  return [...tenants].sort((a, b) => {
    if (numeric) {
      const difference = BigInt(a.id) - BigInt(b.id);
      return difference < 0n ? -1 : difference > 0n ? 1 : 0;
    }
    return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
  });
}

/**
 * Why a relation's policies are not tenant-symmetric, with the constants that may name tenants; null when they
 * are. From the analysis model, branch by branch: a branch that ties rows to the context (`confined`), opens them
 * to everyone alike (`always-true`, `row-predicate`, `fail-open`, an escape through another setting) or compares
 * the context with the row by order (`non-equality`: the lowest and highest ids cover it) takes the same path for
 * every tenant. A branch that compares the tenant context with a constant singles out a tenant; one the analysis
 * cannot decide may.
 */
function asymmetry(context: ProbeContext, relation: Relation): { reason: string; constants: string[] } | null {
  const analysis = context.analysis;
  let reason: string | null = null;
  const constants: string[] = [];
  for (const entry of analysis.policies) {
    if (!entry.applies || entry.policy.relation !== relation.qualified) continue;
    for (const expression of [entry.using, entry.check]) {
      for (const branch of expression?.branches ?? []) {
        if (branch.kind === 'unknown') {
          reason ??= `policy ${entry.policy.name} on ${relation.qualified} is not known to be tenant-symmetric: ${branch.reason || branch.text}`;
        } else if (branch.kind === 'escape-setting' && branch.settings.includes(context.plan.setting)) {
          reason ??= `policy ${entry.policy.name} on ${relation.qualified} is not tenant-symmetric: ${branch.text} singles out a tenant`;
          constants.push(...branch.constants);
        }
      }
    }
  }
  return reason ? { reason, constants } : null;
}

function relationCoverage(context: ProbeContext, relation: Relation): RelationCoverage {
  const cached = state(context).relations.get(relation.qualified);
  if (cached) return cached;
  const tenants = context.tenants;
  const found = asymmetry(context, relation);
  const why = found?.reason ?? null;
  const named = new Set(found?.constants ?? []);
  let coverage: RelationCoverage;
  const ordered = byId(tenants);
  if (context.scenario.exhaustive || why || tenants.length <= 2) {
    const pairs = ringPairs(tenants);
    const singled = tenants.filter((tenant) => named.has(tenant.id));
    const seen = new Set(pairs.map((pair) => `${pair.actor.id}\u0000${pair.victim.id}`));
    for (const special of singled) {
      for (const other of tenants) {
        if (other === special) continue;
        for (const pair of [{ actor: special, victim: other }, { actor: other, victim: special }]) {
          const key = `${pair.actor.id}\u0000${pair.victim.id}`;
          if (!seen.has(key)) {
            seen.add(key);
            pairs.push(pair);
          }
        }
      }
    }
    const reason = context.scenario.exhaustive
      ? 'every tenant (--exhaustive)'
      : why
        ? `every tenant: ${why}${singled.length ? `; ${singled.map((tenant) => tenant.label).join(', ')}, named by the policy, also act on and are targeted by every other tenant` : ''}`
        : 'every tenant (there are only two)';
    coverage = { actors: tenants, pairs, symmetric: false, why: reason };
  } else {
    const lowest = ordered[0]!;
    const highest = ordered[ordered.length - 1]!;
    coverage = {
      actors: [lowest, highest],
      pairs: [
        { actor: lowest, victim: highest },
        { actor: highest, victim: lowest },
      ],
      symmetric: true,
      why: `${lowest.label} and ${highest.label} (lowest and highest id) acting on each other: the policies are tenant-symmetric, so any other tenant would take the same paths`,
    };
  }
  state(context).relations.set(relation.qualified, coverage);
  return coverage;
}

function note(context: ProbeContext, check: string, relation: Relation, coverage: RelationCoverage, tenants: Tenant[]): void {
  const families = state(context).families;
  const family = families.get(check) ?? { tenants: new Set<string>(), paired: new Set<string>(), everyTenant: new Map<string, string>() };
  families.set(check, family);
  tenants.forEach((tenant) => family.tenants.add(tenant.label));
  if (coverage.symmetric) family.paired.add(relation.qualified);
  else family.everyTenant.set(relation.qualified, coverage.why);
}

/** The tenants a write family acts as on `relation` (measuring every tenant's rows before and after). */
export function writeActors(context: ProbeContext, check: string, relation: Relation): Tenant[] {
  const coverage = relationCoverage(context, relation);
  note(context, check, relation, coverage, coverage.actors);
  return coverage.actors;
}

/** The actor -> victim pairs a write family tries on `relation`. */
export function writePairs(context: ProbeContext, check: string, relation: Relation): TenantPair[] {
  const coverage = relationCoverage(context, relation);
  note(context, check, relation, coverage, [...new Set(coverage.pairs.flatMap((pair) => [pair.actor, pair.victim]))]);
  return coverage.pairs;
}

/** Which tenants each write family covered, and why that suffices: for the report. */
export function familyCoverage(context: ProbeContext): FamilyCoverage[] {
  return [...state(context).families].map(([check, family]) => {
    const reasons = [...new Set(family.everyTenant.values())];
    const parts: string[] = [];
    if (family.paired.size) {
      const sample = relationCoverage(context, requireRelation(context.catalog, [...family.paired][0]));
      parts.push(`on ${family.paired.size} relation(s) ${sample.why}`);
    }
    if (family.everyTenant.size) parts.push(`on ${family.everyTenant.size} relation(s) ${reasons.slice(0, 3).join('; ')}${reasons.length > 3 ? `; and ${reasons.length - 3} more reasons` : ''}`);
    return { check, tenants: [...family.tenants], paired: family.paired.size, everyTenant: family.everyTenant.size, reason: parts.join('; ') };
  });
}
