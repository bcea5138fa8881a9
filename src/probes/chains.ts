import type { SampleRow } from '../findings/finding.js';
import type { Actor } from '../seed/actors.js';
import { pending, type QueryOutcome, type RawRow } from '../target/session.js';
import { ident, inlineParameters, qualifiedIdent } from '../target/sql.js';
import { plural } from '../report/text.js';
import { reproduction, sendContext, sourcesOf } from './context.js';
import { attributeRows } from './checks/read-isolation.js';
import { readTargets, shownStatement, type ReadTarget } from './targets.js';
import type { ProbeContext } from './types.js';

/**
 * Impact chains: a write (or a call) by a signed-in user that changes who it is or where it belongs (its
 * memberships, its role, a row the policies read its tenant from), followed, in the same rolled-back
 * savepoint, by a read of every tenant-owned relation as the same user. What the user reads after the
 * step and did not read before is the impact, proven on data.
 */

export interface ChainStep {
  statement: string;
  params: (string | null)[];
  /** As the administrator, before the role changes: set the stage (a cursor over the user's own row, a role lowered). */
  setup?: string[];
}

export interface Sight {
  /** Rows of the actor's own tenants, by tenant id. */
  seen: Map<string, number>;
  /** Rows of other tenants, by tenant id. */
  foreign: Map<string, number>;
  samples: SampleRow[];
  error?: string;
}

export interface ChainRun {
  error?: { message: string; code?: string };
  rowCount: number;
  rows: RawRow[];
  before: Map<string, Sight>;
  after: Map<string, Sight>;
  /** Tenants the actor's user belongs to (as the administrator sees the membership table), before and after. */
  membershipsBefore: Set<string>;
  membershipsAfter: Set<string>;
}

function membershipSql(context: ProbeContext): string | null {
  const membership = context.plan.actors.membership;
  if (!membership) return null;
  return `select distinct ${ident(membership.tenantColumn)}::text as tenant from ${qualifiedIdent(membership.relation)} where ${ident(membership.userColumn)}::text = $1`;
}

/** The relations a chain reads: every tenant-owned relation the role may select from. */
export function chainTargets(context: ProbeContext): ReadTarget[] {
  return readTargets(context, (relation) => sourcesOf(context, relation));
}

/**
 * As `actor` (its context, the application role or `role`): read `targets`, run `step`, read them again,
 * with the administrator's view of the actor's memberships before and after, all in one savepoint that
 * is rolled back. `prelude` runs as the role after the context (a statement timeout, read-only).
 */
export async function runChain(context: ProbeContext, actor: Actor, step: ChainStep, targets: readonly ReadTarget[], options: { role?: string; prelude?: string[] } = {}): Promise<ChainRun> {
  const { session } = context;
  const members = new Set(actor.tenants.map((tenant) => tenant.id));
  const memberships = membershipSql(context);
  const user = actor.user;
  return session.rolledBack(async () => {
    const ready: Promise<unknown>[] = (step.setup ?? []).map((sql) => pending(session.send(sql)));
    const ownedBefore = memberships && user !== null ? pending(session.send(memberships, [user])) : null;
    ready.push(pending(session.send(session.roleStatement(options.role ?? context.plan.role))));
    const set = sendContext(context, actor);
    ready.push(pending(set.outcome));
    if (set.mustWait) await set.outcome.catch(() => undefined);
    for (const sql of options.prelude ?? []) ready.push(pending(session.send(sql)));
    const readsBefore = targets.map((target) => pending(session.send(target.statement)));
    const result = pending(session.send(step.statement, step.params));
    const readsAfter = targets.map((target) => pending(session.send(target.statement)));
    const reset = pending(session.send('reset role'));
    const ownedAfter = memberships && user !== null ? pending(session.send(memberships, [user])) : null;
    return async () => {
      const tenantsOf = async (query: Promise<QueryOutcome> | null) => new Set(query ? (await query.catch(() => ({ rows: [] as RawRow[] }))).rows.map((row) => row.tenant ?? '') : []);
      const membershipsBefore = await tenantsOf(ownedBefore);
      for (const step of ready) await step.catch(() => undefined);
      const sights = async (reads: Promise<QueryOutcome>[]) => {
        const sight = new Map<string, Sight>();
        for (const [index, read] of reads.entries()) {
          const target = targets[index]!;
          try {
            const { rows } = await read;
            sight.set(target.relation.qualified, attributeRows(context, target, rows, members));
          } catch (failure) {
            sight.set(target.relation.qualified, { seen: new Map(), foreign: new Map(), samples: [], error: (failure as Error).message });
          }
        }
        return sight;
      };
      const before = await sights(readsBefore);
      let outcome: QueryOutcome;
      try {
        outcome = await result;
      } catch (failure) {
        const error = failure as { message?: string; code?: string };
        for (const read of readsAfter) await read.catch(() => undefined);
        await reset.catch(() => undefined);
        await ownedAfter?.catch(() => undefined);
        return { error: { message: error.message ?? String(failure), code: error.code }, rowCount: 0, rows: [], before, after: before, membershipsBefore, membershipsAfter: membershipsBefore };
      }
      const after = await sights(readsAfter);
      await reset.catch(() => undefined);
      return { rowCount: outcome.rowCount, rows: outcome.rows, before, after, membershipsBefore, membershipsAfter: await tenantsOf(ownedAfter) };
    };
  });
}

export interface Opened {
  relation: string;
  /** Rows of other tenants read after the step, by tenant. */
  foreign: Map<string, number>;
  /** Rows of the actor's own tenants read after the step and not before. */
  ownGained: number;
  samples: SampleRow[];
}

/** What the step opened: per relation, other tenants' rows now read, and own rows read only now. */
export function opened(run: ChainRun): Opened[] {
  const found: Opened[] = [];
  for (const [relation, after] of run.after) {
    const before = run.before.get(relation);
    const foreign = new Map([...after.foreign].filter(([tenant, count]) => count > (before?.foreign.get(tenant) ?? 0)));
    const ownGained = [...after.seen].reduce((sum, [tenant, count]) => sum + Math.max(0, count - (before?.seen.get(tenant) ?? 0)), 0);
    if (foreign.size || ownGained) found.push({ relation, foreign, ownGained, samples: after.samples });
  }
  return found;
}

/** `public.projects returns 20 rows of tenant B; public.teams 1 row of tenant B`. */
export function describeOpened(context: ProbeContext, found: readonly Opened[]): string {
  const name = (id: string) => context.ledger.tenant(id)?.label ?? `tenant ${id} (not seeded)`;
  return found
    .map((entry) => {
      const parts = [...[...entry.foreign].map(([tenant, count]) => `${plural(count, 'row')} of ${name(tenant)}`), ...(entry.ownGained ? [`${plural(entry.ownGained, 'row')} of its own tenant it could not read before`] : [])];
      return `${entry.relation} returns ${parts.join(' and ')}`;
    })
    .join('; ');
}

/** psql-ready evidence: the context, the step, then the reads that show what it opened. */
export function chainEvidence(context: ProbeContext, actor: Actor, step: ChainStep, found: readonly Opened[], targets: readonly ReadTarget[], role?: string): string {
  const reads = found.map((entry) => targets.find((target) => target.relation.qualified === entry.relation)).filter((target): target is ReadTarget => Boolean(target));
  const body = [inlineParameters(step.statement, step.params).replace(/ limit \d+$/, ''), ...reads.map((target) => shownStatement(target.statement))].join(';\n');
  let sql = reproduction(context, { kind: 'actor', actor }, body);
  if (step.setup?.length) sql = sql.replace(/^begin;\n/, `begin;\n-- as the administrator, before SET ROLE:\n${step.setup.map((line) => `${line};`).join('\n')}\n`);
  return role ? sql.replace(/^set local role .*;$/m, `set local role ${ident(role)};`) : sql;
}
