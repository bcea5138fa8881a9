import type { Finding } from '../findings/finding.js';
import { pending, type AuditSession } from '../target/session.js';
import type { Probe, ProbeContext, ProbeRecord } from './types.js';

/**
 * The probe plan, split: across the connections of one run (`--jobs`) and across CI jobs (`--shard i/n`).
 *
 * The probes that probe relation by relation (reads, missing context, writes; `split: 'relation'` in their
 * module) are split by relation: a relation's bucket is a hash of its name, so every split is deterministic and
 * a relation's probes of one family always run together. Every other probe (`split: 'whole'`) runs whole, in
 * one place: in one shard (by its position in the registry) and on one connection.
 */

/** One slice of a split: `index` is 0-based, of `count`. */
export interface Slice {
  index: number;
  count: number;
}

/** Which relations a unit of work covers: the shard's and, within it, one connection's share. */
export interface PlanPart {
  shard: Slice | null;
  job: Slice | null;
}

/** FNV-1a: a stable 32-bit hash of a name. */
export function bucketOf(name: string): number {
  let hash = 0x811c9dc5;
  for (let index = 0; index < name.length; index += 1) {
    hash ^= name.charCodeAt(index);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash;
}

/** Whether `name` (a relation, or any object a finding names) falls in the shard. */
export function inShard(shard: Slice | null, name: string): boolean {
  return !shard || bucketOf(name) % shard.count === shard.index;
}

/** Whether a relation is part of the unit of work the context is running (always, when the plan is not split). */
export function inPart(context: Pick<ProbeContext, 'part'>, relation: string): boolean {
  const part = context.part;
  if (!part) return true;
  const bucket = bucketOf(relation);
  if (part.shard && bucket % part.shard.count !== part.shard.index) return false;
  if (part.job && Math.floor(bucket / (part.shard?.count ?? 1)) % part.job.count !== part.job.index) return false;
  return true;
}

/** `2/3` -> { index: 1, count: 3 }. */
export function parseShard(text: string): Slice | null {
  const match = /^(\d+)\/(\d+)$/.exec(text.trim());
  if (!match) return null;
  const [index, count] = [Number(match[1]), Number(match[2])];
  return index >= 1 && count >= 1 && index <= count ? { index: index - 1, count } : null;
}

/**
 * Work on `items` over the sessions, each session taking the next item when it is free; the results in the
 * items' order. The first failure stops the others from taking more and is thrown.
 */
export async function mapOver<T, R>(sessions: readonly AuditSession[], items: readonly T[], work: (session: AuditSession, item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  let failed = false;
  const worker = async (session: AuditSession) => {
    while (!failed && next < items.length) {
      const index = next++;
      try {
        results[index] = await work(session, items[index]!);
      } catch (error) {
        failed = true;
        throw error;
      }
    }
  };
  await Promise.all(sessions.map(worker));
  return results;
}

interface Unit {
  probe: Probe;
  part: PlanPart | null;
}

/** The units of work of one run, in registry order: split families once per connection, the others whole. */
export function planUnits(probes: readonly Probe[], shard: Slice | null, jobs: number): Unit[] {
  const units: Unit[] = [];
  probes.forEach((probe, position) => {
    if (probe.split === 'relation' && probe.exclusive) {
      units.push({ probe, part: { shard, job: null } });
    } else if (probe.split === 'relation') {
      for (let job = 0; job < jobs; job += 1) units.push({ probe, part: { shard, job: jobs > 1 ? { index: job, count: jobs } : null } });
    } else if (!shard || position % shard.count === shard.index) {
      units.push({ probe, part: null });
    }
  });
  return units;
}

export interface ProbeRun {
  findings: Finding[];
  records: ProbeRecord[];
  /** Milliseconds per probe, summed over its units. */
  perProbe: Record<string, number>;
}

/**
 * Run the units over the sessions, one unit per session at a time, taking them in order (missing-context
 * comes first, so its "never set" state meets connections on which nothing has set a tenant); the exclusive
 * probes last, on the first session, after the others restarted their transactions. Findings and records
 * come back in unit order, whatever order the units finished in.
 */
export async function runPlan(
  context: ProbeContext,
  units: Unit[],
  sessions: AuditSession[],
  runProbe: (probe: Probe, context: ProbeContext) => Promise<Finding[]>,
  onDone: (completed: number, total: number, probe: string) => void = () => undefined,
): Promise<ProbeRun> {
  const findings: Finding[][] = units.map(() => []);
  const records: ProbeRecord[][] = units.map(() => []);
  const perProbe: Record<string, number> = {};
  const shared = units.map((_, index) => index).filter((index) => !units[index]!.probe.exclusive);
  const exclusive = units.map((_, index) => index).filter((index) => units[index]!.probe.exclusive);
  let completed = 0;
  let failed = false;
  const worker = async (session: AuditSession, queue: number[]) => {
    while (!failed && queue.length) {
      const index = queue.shift()!;
      const { probe, part } = units[index]!;
      const started = Date.now();
      const unitContext: ProbeContext = { ...context, session, ...(part ? { part } : {}), record: (record) => records[index]!.push(record) };
      try {
        findings[index] = await runProbe(probe, unitContext);
      } catch (error) {
        failed = true;
        throw error;
      }
      perProbe[probe.meta.id] = (perProbe[probe.meta.id] ?? 0) + Date.now() - started;
      completed += 1;
      onDone(completed, units.length, probe.meta.id);
    }
  };
  await Promise.all(sessions.map((session) => worker(session, shared)));
  if (exclusive.length) {
    for (const session of sessions.slice(1)) await session.restart();
    await worker(sessions[0]!, exclusive);
  }
  return { findings: findings.flat(), records: records.flat(), perProbe };
}

/** What one attempt of `inOrder` did: the probe records to keep, and its findings if it made any. */
export interface Attempt {
  records: (() => void)[];
  findings?: Finding[];
  /** No attempt after this one counts, even without a finding (the loop it stands for would have stopped). */
  last?: boolean;
}

/**
 * Try every item at once and take the attempts' records in the items' order, up to and including the first
 * attempt with a finding (or marked last), whose findings are returned: the same outcome as trying them one
 * by one and stopping there. The attempts' statements reach the session together, which sends units called
 * together in one write (AuditSession.rolledBack); an attempt after the one that found has only run
 * rolled-back work, and is waited for. Attempts run in no fixed order after their first await: values they
 * generate must not depend on it (OwnRowBuilder's streams).
 */
export async function inOrder<T>(items: readonly T[], attempt: (item: T) => Promise<Attempt>): Promise<Finding[]> {
  const attempts = items.map((item) => pending(attempt(item)));
  try {
    for (const outcome of attempts) {
      const { records, findings, last } = await outcome;
      for (const record of records) record();
      if (findings?.length || last) return findings ?? [];
    }
    return [];
  } finally {
    // Nothing of the attempts is left running when the probe goes on (what is sent next waits for none of them).
    await Promise.allSettled(attempts);
  }
}
