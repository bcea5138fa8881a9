import type { Column, Relation } from '../../catalog/types.js';
import { alterTable, appendFix, comment, createIndex, dropIndex, fix as makeFix, type FixStep } from '../../findings/fix.js';
import { defaultGenerator } from '../../analysis/sql-text.js';
import { constraintObject, relationObject, type Finding } from '../../findings/finding.js';
import { cause, type Cause } from '../../findings/cause.js';
import type { RelationPlan } from '../../plan/tenancy.js';
import type { Tenant } from '../../seed/ledger.js';
import { commentText, ident, inlineParameters, literal, qualifiedIdent, relationIdent } from '../../target/sql.js';
import { OwnRowBuilder, type RowInsert } from '../own-row.js';
import { writePairs } from '../coverage.js';
import { defineProbe, type ProbeContext } from '../types.js';
import { ATTEMPTS, quietOutcome, recordWrite, retryable, rowOf, runWrite, tenantCounts, writeEvidence, type Marker, type TenantCounts, type WriteRun } from '../writes.js';
import { directSeverity, plainColumns, uniqueKeys, writeTargets, type WriteTarget } from '../write-targets.js';
import { requireColumn } from '../../catalog/lookup.js';
import { diagnoseWrite } from '../../findings/diagnose.js';

/** The SQL that makes a unique key include the tenant column, so that it no longer spans tenants. */
function tenantKeyFix(relation: Relation, relationPlan: RelationPlan, key: string[]): FixStep[] {
  const target = relationIdent(relation);
  const columns = key.map(ident).join(', ');
  if (!relationPlan.tenantColumn) {
    return [
      comment(`${commentText(relation.qualified)} has no tenant column: add one (filled from its parent), then make the key per tenant, e.g.`),
      comment(`alter table ${commentText(target)} add column tenant_id ...; create unique index on ${commentText(target)} (tenant_id, ${commentText(columns)});`),
    ];
  }
  const tenantKey = `${ident(relationPlan.tenantColumn)}, ${columns}`;
  const constraint = relation.constraints.find((candidate) => (candidate.kind === 'unique' || candidate.kind === 'primary-key') && candidate.columns.join('\u0000') === key.join('\u0000'));
  if (constraint) {
    const kind = constraint.kind === 'primary-key' ? 'primary key' : 'unique';
    return [
      alterTable(target, `drop constraint ${ident(constraint.name)}, add constraint ${ident(constraint.name)} ${kind} (${tenantKey})`),
      ...(constraint.kind === 'primary-key' ? [comment('foreign keys that reference this key must then include the tenant column as well')] : []),
    ];
  }
  const index = relation.indexes.find((candidate) => candidate.unique && candidate.columns.join('\u0000') === key.join('\u0000'));
  const name = index?.name ?? `${relation.name}_${key.join('_')}_key`;
  return [dropIndex(qualifiedIdent(`${relation.schema}.${name}`)), createIndex(target, `create unique index ${ident(name)} on ${target} (${tenantKey});`)];
}

/** The defect of a key that spans tenants: the constraint or unique index with exactly these columns, as unique-without-tenant names it. */
function keyCause(relation: Relation, key: string[]): Cause | undefined {
  const same = (columns: readonly (string | null)[]) => columns.join('\u0000') === key.join('\u0000');
  const name =
    relation.constraints.find((candidate) => (candidate.kind === 'unique' || candidate.kind === 'primary-key') && same(candidate.columns))?.name ??
    relation.indexes.find((candidate) => candidate.unique && same(candidate.columns))?.name;
  return name ? cause('key-without-tenant', constraintObject(relation.qualified, name, key)) : undefined;
}

/**
 * Keys the database fills (identity, sequence, generated uuid): a tenant cannot choose another tenant's
 * value short of guessing it, and the value says nothing about the other tenant's data.
 */
function surrogate(column: Column): boolean {
  return Boolean(column.identity) || column.generated || defaultGenerator(column.default) !== null;
}

/** Foreign-key columns to tenant-owned rows: a key that includes one is unique only under a tenant's parent. */
function scopeColumns(context: ProbeContext, target: WriteTarget): Set<string> {
  const plans = new Map(context.plan.relations.map((entry) => [entry.relation, entry]));
  const scope = new Set<string>();
  for (const foreignKey of target.relation.foreignKeys) {
    if (plans.get(foreignKey.references)?.tenancy !== 'shared') foreignKey.columns.forEach((column) => scope.add(column));
  }
  return scope;
}

interface Attempt {
  row: RowInsert;
  statement: string;
  marker: Marker | undefined;
  run: WriteRun<TenantCounts>;
}

/** What follows the INSERT (`on conflict ...`) and the marker that recognises the values it wrote. */
type Clause = (row: RowInsert) => { conflict: string; marker?: Marker };

/** Build `actor`'s row (with `overrides`) and run it with its ON CONFLICT clause, retrying on new values. */
async function upsert(context: ProbeContext, builder: OwnRowBuilder, check: string, target: WriteTarget, actor: Tenant, overrides: Record<string, string | null>, clause: Clause): Promise<Attempt | null> {
  for (let attempt = 0; attempt < ATTEMPTS; attempt += 1) {
    const row = builder.ownRow(target.relation, target.relationPlan, actor, overrides);
    if (!row) return null;
    const { conflict, marker } = clause(row);
    const statement = `${row.sql} ${conflict}`;
    const run = await runWrite(context, target, actor, statement, row.params, () => tenantCounts(context, target, marker));
    if (retryable(run.error) && attempt < ATTEMPTS - 1) {
      recordWrite(context, check, target, actor, inlineParameters(statement, row.params), 'inconclusive', run.rowCount, 0, run.error);
      continue;
    }
    return { row, statement, marker, run };
  }
  return null;
}

export const upsertConflict = defineProbe({
  order: 230,
  meta: {
    id: 'upsert-conflict',
    matrix: 'update',
    title: "INSERT ... ON CONFLICT reaches another tenant's row",
    severity: 'critical',
    objectKind: 'table',
    summary: "INSERT ... ON CONFLICT reaches another tenant's row.",
    example: `As tenant A, \`insert ... on conflict ("sku") do update\` with tenant B's key changes tenant B's row.`,
    explanation:
      "For every unique key of a tenant-owned table that does not include the tenant column, inserts a row of the acting tenant carrying a key value " +
      "the next tenant holds, with `on conflict (key) do update` and `on conflict (key) do nothing`. DO UPDATE that changes the other tenant's row is " +
      "critical (high through a partition or child): the UPDATE (and SELECT) policies admit that row. DO NOTHING that silently inserts nothing, where " +
      "a fresh key inserts a row, tells the tenant that the value exists in another tenant: an existence side channel, low. Fix: make unique keys " +
      "per tenant (include the tenant column) and confine UPDATE policies to the current tenant.",
    precondition:
      'For a unique key of a tenant-owned table without the tenant column, as a tenant, an insert carrying a key value the next ' +
      'tenant holds: critical when `on conflict (key) do update` changes that tenant\'s row (high on a partition, inheritance child ' +
      'or view); low when `on conflict (key) do nothing` silently inserts nothing while a fresh key inserts a row (an existence side ' +
      'channel).',
  },
  split: 'relation',
  async run(context, report) {
    const findings: Finding[] = [];
    const builder = new OwnRowBuilder(context);
    for (const target of writeTargets(context, 'insert', { tenantTable: false, check: this.meta.id, events: ['INSERT', 'UPDATE'] })) {
      const { relation, relationPlan } = target;
      const tenantColumns = relationPlan.tenantColumn ? [relationPlan.tenantColumn] : (relationPlan.path?.[0]?.columns ?? []);
      const keys = uniqueKeys(relation).filter((key) => !key.some((column) => tenantColumns.includes(column)));
      const scope = scopeColumns(context, target);
      let oracle: Finding | null = null;
      let critical = false;
      keys: for (const key of keys) {
        const conflictTarget = `on conflict (${key.map(ident).join(', ')})`;
        // DO UPDATE sets a plain column the row carries (its value has the actor's canary), else rewrites the key with itself.
        const doUpdate: Clause = (row) => {
          const column = plainColumns(relation, relationPlan).find((candidate) => row.values[candidate.name] !== undefined && row.values[candidate.name] !== null)?.name;
          const set = column ?? key[0]!;
          return { conflict: `${conflictTarget} do update set ${ident(set)} = excluded.${ident(set)}`, ...(column ? { marker: { columns: [column], values: [row.values[column]!] } } : {}) };
        };
        const doNothing: Clause = () => ({ conflict: `${conflictTarget} do nothing` });
        let oracleTested = false;
        for (const { actor, victim } of writePairs(context, this.meta.id, target.relation)) {
          const held = await rowOf(context, target, victim, key);
          if (!held) continue;
          const overrides = Object.fromEntries(key.map((column) => [column, held[column] ?? null]));
          if (target.access.update) {
            const attempt = await upsert(context, builder, this.meta.id, target, actor, overrides, doUpdate);
            if (attempt) {
              const { run, row, statement, marker } = attempt;
              const inserted = (run.after.total.get(actor.id) ?? 0) - (run.before.total.get(actor.id) ?? 0);
              const changed = marker ? (run.after.marked.get(victim.id) ?? 0) - (run.before.marked.get(victim.id) ?? 0) : run.rowCount;
              const updated = !run.error && run.rowCount > 0 && inserted === 0 && changed > 0;
              recordWrite(context, this.meta.id, target, actor, inlineParameters(statement, row.params), updated ? 'leak' : quietOutcome(target, run.error), run.rowCount, updated ? run.rowCount : 0, run.error);
              if (updated) {
                const diagnosis = diagnoseWrite(context, relation, relationPlan, 'UPDATE', 'using');
                findings.push(report({
                  severity: directSeverity(relation),
                  object: relationObject(relation),
                  tenant: actor.id,
                  foreignTenant: victim.id,
                  message: `As ${actor.label}, insert ... ${conflictTarget} do update on ${relation.qualified} with ${victim.label}'s key (${key.map((column) => `${column} = ${literal(overrides[column] ?? null)}`).join(', ')}) changes ${victim.label}'s row: the key is unique across tenants and ${diagnosis.reason}.`,
                  evidence: {
                    ...writeEvidence(context, actor, statement, row.params, { replica: run.replica }),
                    rowCount: run.rowCount,
                    details: `The key belongs to ${victim.label}'s row (read as the administrator); the statement inserted no row of ${actor.label} and updated 1 row.`,
                  },
                  fix: appendFix(diagnosis.fix, makeFix([comment('and make the key per tenant:'), ...tenantKeyFix(relation, relationPlan, key)])),
                }));
                critical = true;
                break keys;
              }
            }
          }
          // The side channel is only worth a finding on values a tenant chooses, in keys not scoped by a tenant-owned parent.
          if (oracleTested || oracle || key.some((column) => scope.has(column)) || key.every((column) => surrogate(requireColumn(relation, column)))) continue;
          oracleTested = true;
          const taken = await upsert(context, builder, this.meta.id, target, actor, overrides, doNothing);
          if (!taken) continue;
          const takenSql = inlineParameters(taken.statement, taken.row.params);
          if (taken.run.error || taken.run.rowCount !== 0) {
            recordWrite(context, this.meta.id, target, actor, takenSql, quietOutcome(target, taken.run.error), taken.run.rowCount, 0, taken.run.error);
            continue;
          }
          const fresh = await upsert(context, builder, this.meta.id, target, actor, {}, doNothing);
          const freshInserted = fresh && !fresh.run.error && fresh.run.rowCount === 1 && (fresh.run.after.total.get(actor.id) ?? 0) > (fresh.run.before.total.get(actor.id) ?? 0);
          recordWrite(context, this.meta.id, target, actor, takenSql, freshInserted ? 'leak' : quietOutcome(target, undefined), 0, 0);
          if (fresh) recordWrite(context, this.meta.id, target, actor, inlineParameters(fresh.statement, fresh.row.params), quietOutcome(target, fresh.run.error), fresh.run.rowCount, 0, fresh.run.error);
          if (!freshInserted) continue;
          oracle = report({
            severity: 'low',
            object: relationObject(relation),
            tenant: actor.id,
            foreignTenant: victim.id,
            message: `As ${actor.label}, insert ... ${conflictTarget} do nothing on ${relation.qualified} silently inserts nothing for a key ${victim.label} holds, and inserts a row for a fresh key: the unique key spans tenants, so any tenant can test which values other tenants hold.`,
            evidence: {
              ...writeEvidence(context, actor, taken.statement, taken.row.params),
              rowCount: 0,
              details: `With ${victim.label}'s key (${key.map((column) => `${column} = ${literal(overrides[column] ?? null)}`).join(', ')}): 0 rows inserted, no error. With a fresh key: 1 row inserted.${target.access.update ? ` DO UPDATE with the same key did not change ${victim.label}'s row.` : ''}`,
            },
            fix: makeFix(tenantKeyFix(relation, relationPlan, key)),
            ...(keyCause(relation, key) ? { cause: keyCause(relation, key)! } : {}),
          });
        }
      }
      if (!critical && oracle) findings.push(oracle);
    }
    return findings;
  },
});
