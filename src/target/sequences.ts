/**
 * Sequences on a database the audit does not own: nextval is not undone by a rollback, so an audit that
 * reaches one leaves a gap in the application's numbering (invoice numbers, say). Before seeding, the
 * audit finds every way its inserts and writes could advance a sequence other than the column defaults
 * it fills itself (triggers, defaults that call functions). Unless --allow-sequence-gaps, such a relation is
 * not seeded by INSERT and no probe writes it in a way that would reach the sequence: its probes are
 * skipped with the reason and the run is inconclusive for it, while every other relation is audited as
 * usual. Before and after, the audit reads every sequence, and the report lists any that moved.
 */
import { SequenceUse, WriteEffects } from '../analysis/effects.js';
import { loadRoutineIndex } from '../analysis/routine-index.js';
import { isSequenceDefault } from '../analysis/constraints.js';
import { loadParser } from '../analysis/parse.js';
import type { Catalog, TriggerEvent } from '../catalog/types.js';
import type { EffectVerdict } from '../analysis/effects.js';
import type { TenancyPlan } from '../plan/tenancy.js';
import type { AuditSession } from './session.js';
import { KEY_LIMITS } from '../seed/shapes.js';
import { relationOf } from '../catalog/lookup.js';

export type SequenceValues = Map<string, string | null>;

export async function readSequences(session: AuditSession): Promise<SequenceValues> {
  const { rows } = await session.query(
    `select format('%I.%I', schemaname, sequencename) as name, last_value::text as value from pg_sequences order by 1`,
  );
  return new Map(rows.map((row) => [row.name!, row.value ?? null]));
}

/** `public.invoice_seq 41 -> 47`, one per sequence whose value changed between the two readings. */
export function movedSequences(before: SequenceValues, after: SequenceValues): string[] {
  const moved: string[] = [];
  for (const [name, value] of after) {
    const earlier = before.get(name) ?? null;
    if (earlier !== value) moved.push(`${name} ${earlier ?? 'unused'} -> ${value ?? 'unused'}`);
  }
  return moved;
}

/**
 * A column the audit fills itself on a live database, with a key of its own instead of the sequence's: an
 * identity column, or an integer column whose default calls nextval (rows.ts highKey, actors.ts middleKey).
 * Any other default that reaches nextval (`'INV-' || nextval(...)` in a text column, a numeric key) would
 * run on insert: it is a risk.
 */
const filledByAudit = (column: { identity: string | null; default: string | null; baseType: string }) =>
  column.identity !== null || (isSequenceDefault(column.default) && KEY_LIMITS[column.baseType] !== undefined);

/** A statement kind that may fire a trigger: what a seed or probe write would run. */
export type WriteEvent = TriggerEvent;

/**
 * One way writing a relation would advance a sequence other than through a column default the audit fills
 * itself: the relation (as the catalog names it: a partition or child keeps its own name), the statement
 * kinds that reach it, and the cause (`trigger number_invoice (public.number_invoice()): it calls nextval`).
 */
export interface SequenceRisk {
  relation: string;
  events: WriteEvent[];
  cause: string;
  /** What the write would do: advance a sequence, or act outside the transaction (a domain CHECK, a trigger, a default or CHECK with another effect). */
  effect: 'sequence' | 'outside';
}

/** The words for what a risky write would do, for messages: `that would ${riskWords(risk)}`. */
export function riskWords(risk: SequenceRisk): string {
  return risk.effect === 'sequence' ? 'advance a sequence, which no rollback undoes' : 'act outside the transaction, which no rollback undoes';
}

const ALL_EVENTS: WriteEvent[] = ['INSERT', 'UPDATE', 'DELETE', 'TRUNCATE'];

/**
 * Why writing the audited relations could advance a sequence other than through the column defaults the
 * audit fills itself: one entry per relation and cause. Triggers count for the events they fire on (read
 * from their definition by the parser; all events when it cannot be read), defaults for INSERT.
 */
export async function sequenceRisks(session: AuditSession, catalog: Catalog, plan: TenancyPlan, allowSequenceGaps = false): Promise<SequenceRisk[]> {
  await loadParser();
  const index = await loadRoutineIndex(session, catalog.serverVersionNum);
  const use = new SequenceUse(index);
  // Everything else a write reaches that acts outside the transaction (COPY, dblink, NOTIFY, locks in a trigger, a domain CHECK or a default).
  const outside = new WriteEffects(index);
  const sequences = !allowSequenceGaps;
  const audited = new Set(plan.relations.map((entry) => entry.relation));
  const risks: SequenceRisk[] = [];
  for (const relation of catalog.relations.filter((candidate) => audited.has(candidate.qualified) || ancestors(catalog, candidate.qualified).some((name) => audited.has(name)))) {
    for (const trigger of catalog.triggers.filter((candidate) => candidate.relation === relation.qualified && candidate.enabled)) {
      const effect = outside.routine(trigger.functionOid);
      const verdict = effect.free && sequences ? use.routine(trigger.functionOid) : effect;
      if (verdict.free) continue;
      risks.push({ relation: relation.qualified, events: trigger.events.length ? trigger.events : ALL_EVENTS, cause: `trigger ${trigger.name} (${trigger.function}): ${verdict.reason}`, effect: effect.free ? 'sequence' : 'outside' });
    }
    const facts = index.relationsByName.get(relation.qualified)?.[0];
    const judge = (sequenceVerdict: () => EffectVerdict, outsideVerdict: () => EffectVerdict, events: WriteEvent[], cause: string) => {
      // Effects outside the transaction first: --allow-sequence-gaps does not allow them.
      const effect = outsideVerdict();
      const verdict = effect.free && sequences ? sequenceVerdict() : effect;
      if (!verdict.free) risks.push({ relation: relation.qualified, events, cause: `${cause}: ${verdict.reason}`, effect: effect.free ? 'sequence' : 'outside' });
    };
    for (const column of relation.columns) {
      if (column.generated) continue;
      const type = facts?.columns.find((candidate) => candidate.name === column.name)?.type;
      if (column.default && !filledByAudit(column)) {
        const expression = column.default;
        judge(() => use.expression(expression), () => outside.expression(expression), ['INSERT'], `the default of ${column.name} (${expression})`);
      }
      // An INSERT that leaves a column without a default of its own out takes its domain's default; every write checks the domain.
      if (type !== undefined) judge(() => (column.default ? { free: true } : use.type(type)), () => outside.type(type), ['INSERT', 'UPDATE'], `the type of ${column.name} (${column.type})`);
    }
    for (const check of facts?.checks ?? []) judge(() => use.expression(check), () => outside.expression(check), ['INSERT', 'UPDATE'], `the CHECK (${check})`);
  }
  return risks;
}

/** The partition parents and inheritance parents of a relation, nearest first. */
function ancestors(catalog: Catalog, name: string): string[] {
  const found: string[] = [];
  let current = relationOf(catalog, name);
  for (let depth = 0; current && depth < 16; depth += 1) {
    const parent = current.partitionOf ?? current.inheritsFrom[0];
    if (!parent || found.includes(parent)) break;
    found.push(parent);
    current = relationOf(catalog, parent);
  }
  return found;
}

/**
 * The relations a write to `name` reaches: the relation, the table under an auto-updatable view, and their
 * partitions and inheritance children (a row routed to a partition fires its triggers; an UPDATE or DELETE
 * of a parent reaches its children's rows).
 */
function reached(catalog: Catalog, name: string): Set<string> {
  const reach = new Set<string>();
  const visit = (relationName: string, depth: number) => {
    if (reach.has(relationName) || depth > 16) return;
    reach.add(relationName);
    const relation = relationOf(catalog, relationName);
    if (relation?.kind === 'view' && relation.dependsOn.length === 1) visit(relation.dependsOn[0]!, depth + 1);
    for (const child of catalog.relations) if (child.partitionOf === relationName || child.inheritsFrom.includes(relationName)) visit(child.qualified, depth + 1);
  };
  visit(name, 0);
  return reach;
}

/**
 * Why a write of one of `events` to `relation` would advance a sequence on this database, or null: the
 * first risk of a relation it reaches. `risks` is empty where sequences may move (a cluster of the run's
 * own, --allow-sequence-gaps).
 */
export function writeRisk(catalog: Catalog, risks: readonly SequenceRisk[], relation: string, events: readonly WriteEvent[]): SequenceRisk | null {
  if (!risks.length) return null;
  const reach = reached(catalog, relation);
  return risks.find((risk) => reach.has(risk.relation) && risk.events.some((event) => events.includes(event))) ?? null;
}

/** `public.invoices: trigger number_invoice (...): it calls nextval`, or the cause alone when it is the relation's own. */
export function describeRisk(relation: string, risk: SequenceRisk): string {
  return risk.relation === relation ? risk.cause : `${risk.relation} ${risk.cause}`;
}

/** What to do about a relation the audit does not write on a live database. */
export const SEQUENCE_HINT =
  'audit a copy instead (--schema-from URL: every relation is seeded and probed there), or accept gaps in the application\'s numbering with --allow-sequence-gaps';

/** What to do about a relation left out for a risk: --allow-sequence-gaps helps only with sequences. */
export function riskHint(risk: SequenceRisk): string {
  return risk.effect === 'sequence' ? SEQUENCE_HINT : 'audit a copy instead (--schema-from URL: every relation is seeded and probed there)';
}
