/**
 * Sequences on a database the audit does not own: nextval is not undone by a rollback, so an audit that
 * reaches one leaves a gap in the application's numbering (invoice numbers, say). Before seeding, the
 * audit finds every way its inserts and writes could advance a sequence other than the column defaults
 * it fills itself (triggers, defaults that call functions), and stops unless --allow-sequence-gaps; before
 * and after, it reads every sequence, and the report lists any that moved.
 */
import { routineIndex, routinesSql, OPERATORS_SQL, SequenceUse, VIEWS_SQL } from './analysis/effects.js';
import { isSequenceDefault } from './analysis/constraints.js';
import { loadParser } from './analysis/parse.js';
import type { Catalog } from './catalog/types.js';
import type { TenancyPlan } from './plan/tenancy.js';
import type { AuditSession } from './session.js';

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

/** A column default the audit fills itself on a live database, as the seeder decides: identity, or a default that calls nextval. */
const filledByAudit = (column: { identity: string | null; default: string | null }) => column.identity !== null || isSequenceDefault(column.default);

/**
 * Why writing the audited relations could advance a sequence other than through the column defaults the
 * audit fills itself: one line per relation and cause.
 */
export async function sequenceRisks(session: AuditSession, catalog: Catalog, plan: TenancyPlan): Promise<string[]> {
  await loadParser();
  const routines = await session.query(routinesSql(catalog.serverVersionNum));
  const operators = await session.query(OPERATORS_SQL);
  const views = await session.query(VIEWS_SQL);
  const use = new SequenceUse(routineIndex(routines.rows, operators.rows, views.rows));
  const audited = new Set(plan.relations.map((entry) => entry.relation));
  const risks: string[] = [];
  for (const relation of catalog.relations.filter((candidate) => audited.has(candidate.qualified) || audited.has(candidate.partitionOf ?? ''))) {
    for (const trigger of catalog.triggers.filter((candidate) => candidate.relation === relation.qualified && candidate.enabled)) {
      const verdict = use.routine(trigger.functionOid);
      if (!verdict.free) risks.push(`${relation.qualified}: trigger ${trigger.name} (${trigger.function}): ${verdict.reason}`);
    }
    for (const column of relation.columns) {
      if (!column.default || column.generated || filledByAudit(column)) continue;
      const verdict = use.expression(column.default);
      if (!verdict.free) risks.push(`${relation.qualified}.${column.name} default ${column.default}: ${verdict.reason}`);
    }
  }
  return risks;
}
