import type { ForeignKey, Relation } from '../../catalog/types.js';
import { constraintObject, type Finding } from '../../findings/finding.js';
import { alterTable, appendFix, comment, fix as makeFix, policyStatement, type Fix } from '../../findings/fix.js';
import type { RelationPlan } from '../../plan/tenancy.js';
import type { Tenant } from '../../seed/ledger.js';
import { commentText, ident, inlineParameters, literal, qualifiedIdent, relationIdent } from '../../target/sql.js';
import { maskRow } from '../context.js';
import { OwnRowBuilder } from '../own-row.js';
import { writePairs } from '../coverage.js';
import { defineProbe, type ProbeContext } from '../types.js';
import { inOrder, type Attempt } from '../schedule.js';
import { ATTEMPTS, quietOutcome, recordWrite, retryable, runWrite, tenantCounts, writeEvidence } from '../writes.js';
import { keyCondition, rowKey, tenantIs, writeTargets, type WriteTarget } from '../write-targets.js';
import { relationOf, requireColumn } from '../../catalog/lookup.js';

/** Foreign keys from `target` to tenant-owned rows that do not decide the row's own tenant. */
function crossableKeys(context: ProbeContext, target: WriteTarget): ForeignKey[] {
  const plans = new Map(context.plan.relations.map((entry) => [entry.relation, entry]));
  const { relation, relationPlan } = target;
  return relation.foreignKeys.filter((foreignKey) => {
    const parent = plans.get(foreignKey.references);
    if (!parent || parent.tenancy === 'shared' || parent.tenancy === 'tenant-table') return false;
    // The path that gives an fk-path table its tenant: pointing it elsewhere is foreign-insert, not a reference.
    if (relationPlan.path?.[0] && relationPlan.path[0].foreignKey === foreignKey.name) return false;
    return foreignKey.columns.some((column) => column !== relationPlan.tenantColumn);
  });
}

/**
 * The fix for a reference that crosses tenants: a composite foreign key (tenant, key) when both tables have a
 * tenant column; otherwise a restrictive policy that admits only parents the current tenant can see.
 */
function compositeKeyFix(context: ProbeContext, relation: Relation, relationPlan: RelationPlan, foreignKey: ForeignKey): Fix {
  const plans = new Map(context.plan.relations.map((entry) => [entry.relation, entry]));
  const parentPlan = plans.get(foreignKey.references);
  const parent = relationOf(context.catalog, foreignKey.references);
  const target = relationIdent(relation);
  const childTenant = relationPlan.tenantColumn;
  const parentTenant = parentPlan?.tenantColumn;
  const pairs = foreignKey.columns.map((column, index) => [column, foreignKey.referencedColumns[index]!] as const).filter(([column]) => column !== childTenant);
  if (childTenant && parentTenant && parent) {
    const parentKey = [parentTenant, ...pairs.map(([, referenced]) => referenced)];
    const hasKey = [...parent.constraints.filter((constraint) => constraint.kind === 'unique' || constraint.kind === 'primary-key').map((constraint) => constraint.columns), ...parent.indexes.filter((index) => index.unique && !index.partial).map((index) => index.columns)].some(
      (columns) => columns.length === parentKey.length && parentKey.every((column) => columns.includes(column)),
    );
    return makeFix([
      comment('reference the parent by (tenant, key), so the parent must belong to the same tenant:'),
      ...(hasKey ? [] : [alterTable(qualifiedIdent(foreignKey.references), `add unique (${parentKey.map(ident).join(', ')})`)]),
      alterTable(
        target,
        `drop constraint ${ident(foreignKey.name)},\n  add constraint ${ident(foreignKey.name)} foreign key (${[childTenant, ...pairs.map(([column]) => column)].map(ident).join(', ')}) references ${qualifiedIdent(foreignKey.references)} (${parentKey.map(ident).join(', ')})`,
      ),
    ]);
  }
  const join = pairs.map(([column, referenced]) => `parent.${ident(referenced)} = ${ident(column)}`).join(' and ');
  const policy = `${foreignKey.name}_same_tenant`;
  return makeFix([
    comment(`${commentText(childTenant ? `${foreignKey.references} has no tenant column to compose a key with` : `${relation.qualified} has no tenant column`)}: let only parents the current tenant can see be referenced`),
    policyStatement(
      'create-policy',
      { name: policy, table: relation.qualified },
      [
        `create policy ${ident(policy)} on ${target} as restrictive for all to ${ident(context.plan.role)}`,
        `  using (true)`,
        `  with check (${pairs.map(([column]) => `${ident(column)} is null`).join(' and ')} or exists (select 1 from ${qualifiedIdent(foreignKey.references)} parent where ${join}));`,
      ].join('\n'),
      target,
    ),
  ]);
}

export const crossTenantReference = defineProbe({
  order: 240,
  meta: {
    id: 'cross-tenant-reference',
    matrix: 'insert',
    title: "A tenant's row can reference another tenant's row",
    severity: 'medium',
    objectKind: 'constraint',
    summary: "A tenant can insert a row that references another tenant's row.",
    example: "As tenant A, a row of public.tasks can reference tenant B's row of public.projects: the foreign key (project_id) does not include the tenant, and foreign-key checks ignore RLS.",
    explanation:
      "For every foreign key from a tenant-owned table to another tenant-owned table, inserts a row of the acting tenant whose foreign key points at " +
      "the next tenant's parent row. Foreign-key checks ignore row-level security, so a key on (parent_id) alone accepts any tenant's parent: the " +
      "row then joins to, counts against, or cascades with another tenant's data. Success is a finding (medium). Fix: reference the parent by " +
      '(tenant_id, parent_id), a composite key that only matches a parent of the same tenant.',
    precondition:
      'Medium: the role may insert into a tenant-owned table whose foreign key points at another tenant-owned table, and, as a ' +
      'tenant, a row whose key references the next tenant\'s parent row is accepted (foreign-key checks ignore row-level security): a ' +
      'cross-tenant reference, rows that join to, count against or cascade with another tenant\'s data.',
  },
  related: [
    {
      id: 'copied-values',
      matrix: 'insert',
      title: "A write copies another tenant's values into the tenant's row",
      severity: 'medium',
      objectKind: 'constraint',
      summary: "A write that references another tenant's row copies that tenant's values into the new row.",
      example: "Inserting a row that references tenant B's project stores tenant B's values in tenant A's row (trigger tasks_copy_project_name).",
      explanation:
        "Reported by cross-tenant-reference when the row written with a reference to another tenant's parent comes back carrying that tenant's " +
        "values (its canary), typically copied by a trigger (a SECURITY DEFINER one reads past the parent's policies). The acting tenant can then " +
        "read data of another tenant in its own row. Fix: the composite foreign key, and triggers that only read parents of the row's own tenant.",
      precondition:
        'Medium: the row inserted with a reference to another tenant\'s parent (cross-tenant-reference) comes back carrying that ' +
        'tenant\'s canary, typically copied by a trigger: data copied across tenants, readable by the acting tenant in its own row.',
    },
  ],
  split: 'relation',
  async run(context, report) {
    const findings: Finding[] = [];
    const builder = new OwnRowBuilder(context);
    for (const target of writeTargets(context, 'insert', { tenantTable: false, check: this.meta.id })) {
      const { relation, relationPlan } = target;
      for (const foreignKey of crossableKeys(context, target)) {
        const columns = foreignKey.columns.filter((column) => column !== relationPlan.tenantColumn);
        const found = await inOrder(writePairs(context, this.meta.id, target.relation), async ({ actor, victim }): Promise<Attempt> => {
          const records: (() => void)[] = [];
          const parent = context.ledger.rows(foreignKey.references, victim.id)[0];
          if (!parent) return { records };
          const overrides = Object.fromEntries(columns.map((column) => [column, parent.values[foreignKey.referencedColumns[foreignKey.columns.indexOf(column)]!] ?? null]));
          const marker = { columns, values: columns.map((column) => overrides[column] ?? null) };
          for (let attempt = 0; attempt < ATTEMPTS; attempt += 1) {
            const row = builder.ownRow(relation, relationPlan, actor, overrides, { stream: { key: `${relation.qualified}\u0000${foreignKey.name}\u0000${actor.id}\u0000${victim.id}`, attempt } });
            if (!row) return { records, last: true };
            const run = await runWrite(context, target, actor, row.sql, row.params, (phase) => {
              const counts = tenantCounts(context, target, marker);
              const copied = phase === 'after' ? copiedRows(context, target, actor, victim, marker.columns, marker.values) : Promise.resolve([]);
              return Promise.all([counts, copied]).then(([tally, rows]) => ({ counts: tally, copied: rows }));
            });
            const sql = inlineParameters(row.sql, row.params);
            const referencing = (run.after.counts.marked.get(actor.id) ?? 0) - (run.before.counts.marked.get(actor.id) ?? 0);
            if (run.error || referencing <= 0) {
              // 23503 from this foreign key: it only accepts parents of the same tenant.
              // So does a composite key beside it that includes the tenant ((tenant_id, project_id) -> projects (tenant_id, id)).
              const guard = relation.foreignKeys.find((candidate) => candidate.name === run.error?.constraint);
              const held =
                run.error?.code === '23503' &&
                (run.error.constraint === foreignKey.name || (guard !== undefined && guard.references === foreignKey.references && relationPlan.tenantColumn !== null && guard.columns.includes(relationPlan.tenantColumn)));
              records.push(() => recordWrite(context, this.meta.id, target, actor, sql, held ? 'pass' : quietOutcome(target, run.error), run.rowCount, 0, run.error));
              if (retryable(run.error)) continue;
              return { records };
            }
            records.push(() => recordWrite(context, this.meta.id, target, actor, sql, 'leak', run.rowCount, referencing));
            const reported: Finding[] = [];
            const keep = new Set([...(relation.primaryKey ?? []), ...(relationPlan.tenantColumn ? [relationPlan.tenantColumn] : []), ...foreignKey.columns]);
            const evidence = writeEvidence(context, actor, row.sql, row.params);
            const fix = compositeKeyFix(context, relation, relationPlan, foreignKey);
            const pointed = columns.map((column) => `${column} = ${literal(overrides[column] ?? null)}`).join(', ');
            reported.push(report({
              severity: 'medium',
              object: constraintObject(relation.qualified, foreignKey.name, foreignKey.columns),
              tenant: actor.id,
              foreignTenant: victim.id,
              message: `As ${actor.label}, a row of ${relation.qualified} can reference ${victim.label}'s row of ${foreignKey.references} (${pointed}): the foreign key ${foreignKey.name} (${foreignKey.columns.join(', ')}) does not include the tenant, and foreign-key checks ignore row-level security.`,
              evidence: { ...evidence, rowCount: run.rowCount, sampleRows: [maskRow(row.values, keep, context.tenants)], details: `The referenced row ${pointed} of ${foreignKey.references} belongs to ${victim.label} (seeded).` },
              fix,
            }));
            const copied = run.after.copied;
            if (copied.length) {
              const triggers = context.catalog.triggers.filter((trigger) => trigger.relation === relation.qualified && trigger.enabled);
              // Show the read-back too: the acting tenant selects its own new row (by the key it inserted) and sees the copied values.
              const key = rowKey(relation);
              const readBack = key.every((column) => row.values[column] !== undefined && row.values[column] !== null)
                ? [`select * from ${relationIdent(relation)} where ${keyCondition(relation, key, row.params.length)}`]
                : [];
              const copiedEvidence = readBack.length ? writeEvidence(context, actor, [row.sql, ...readBack].join(';\n'), [...row.params, ...key.map((column) => row.values[column] ?? null)]) : evidence;
              reported.push(report({
                check: 'copied-values',
                severity: 'medium',
                object: constraintObject(relation.qualified, foreignKey.name, foreignKey.columns),
                tenant: actor.id,
                foreignTenant: victim.id,
                message: `As ${actor.label}, inserting a row of ${relation.qualified} that references ${victim.label}'s row of ${foreignKey.references} stores ${victim.label}'s values in ${actor.label}'s row${triggers.length ? ` (trigger${triggers.length > 1 ? 's' : ''} ${triggers.map((trigger) => trigger.name).join(', ')})` : ''}: ${actor.label} can read them back.`,
                evidence: {
                  ...copiedEvidence,
                  rowCount: copied.length,
                  sampleRows: copied.slice(0, 3).map((values) => maskRow(values, keep, context.tenants)),
                  details: `Read back as the administrator, the new row of ${actor.label} carries the canary of ${victim.label} outside its foreign-key columns.${triggers.length ? ` Triggers on ${relation.qualified}: ${triggers.map((trigger) => trigger.definition).join('; ')}.` : ''}`,
                },
                fix: appendFix(
                  fix,
                  makeFix([
                    comment(
                      `and make ${commentText(triggers.length ? `the trigger function${triggers.length > 1 ? 's' : ''} ${triggers.map((trigger) => trigger.function).join(', ')}` : 'whatever fills these columns')} read the parent only within the row's own tenant (e.g. where parent.tenant_id = new.tenant_id), without SECURITY DEFINER`,
                    ),
                  ]),
                ),
              }));
            }
            return { records, findings: reported };
          }
          return { records };
        });
        findings.push(...found);
      }
    }
    return findings;
  },
});

/**
 * As the administrator: rows of `actor` pointing at the given parent values whose other columns carry
 * `victim`'s canary (the foreign-key columns themselves may legitimately hold it).
 */
function copiedRows(context: ProbeContext, target: WriteTarget, actor: Tenant, victim: Tenant, columns: string[], values: (string | null)[]): Promise<Record<string, string | null>[]> {
  const matches = columns.map((name, index) => `r.${ident(name)} = $${index + 3}::${requireColumn(target.relation, name).type}`).join(' and ');
  const sent = context.session.send(
    `select (to_jsonb(r) - $2::text[])::text as row from ${target.scope.from} where ${tenantIs(target.scope, 1)} and ${matches}`,
    [actor.id, columns, ...values],
  );
  return sent.then(({ rows }) => rows
    .map((row) => JSON.parse(row.row ?? '{}') as Record<string, unknown>)
    .filter((row) => context.ledger.tenantsByCanary(row).some((tenant) => tenant.id === victim.id))
    .map((row) => Object.fromEntries(Object.entries(row).map(([column, value]) => [column, value === null ? null : typeof value === 'string' ? value : JSON.stringify(value)]))));
}
