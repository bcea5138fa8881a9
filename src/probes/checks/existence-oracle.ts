import type { Column, Relation } from '../../catalog/types.js';
import { defaultGenerator } from '../../analysis/sql-text.js';
import { constraintObject, type Finding } from '../../findings/finding.js';
import { alterTable, comment, createIndex, dropIndex, fix, type Fix } from '../../findings/fix.js';
import type { RelationPlan } from '../../plan/tenancy.js';
import type { Tenant } from '../../seed/ledger.js';
import { commentText, ident, inlineParameters, relationIdent } from '../../target/sql.js';
import { describeContext, reproduction, runAs } from '../context.js';
import { CONFLICT_CODES, OwnRowBuilder, type RowInsert } from '../own-row.js';
import { defineProbe, type ProbeContext } from '../types.js';
import { sequenceSkip } from '../write-targets.js';
import { requireColumn, requireRelation } from '../../catalog/lookup.js';

interface UniqueKey {
  name: string;
  kind: 'primary-key' | 'unique' | 'exclusion' | 'unique-index';
  columns: string[];
  definition: string;
}

/**
 * Keys whose values the database, not the tenant, chooses: identity columns, sequences, generated uuids.
 * A unique constraint on such a surrogate key spans tenants too, but a tenant cannot pick another
 * tenant's value to test with short of guessing it, and the value says nothing about the other tenant's
 * data: flagging every `id bigserial primary key` would bury the real oracles (emails, slugs, names).
 */
function surrogate(column: Column): boolean {
  return Boolean(column.identity) || column.generated || defaultGenerator(column.default) !== null;
}

/** Columns that scope a key to one tenant: the tenant column, and foreign keys to tenant-owned rows (a key under a tenant's parent). */
function scopeColumns(context: ProbeContext, relation: Relation, relationPlan: RelationPlan): Set<string> {
  const scope = new Set<string>(relationPlan.tenantColumn ? [relationPlan.tenantColumn] : []);
  for (const foreignKey of relation.foreignKeys) {
    const parent = context.plan.relations.find((entry) => entry.relation === foreignKey.references);
    if (parent && parent.tenancy !== 'shared') foreignKey.columns.forEach((column) => scope.add(column));
  }
  return scope;
}

/** Unique and exclusion constraints and unique indexes that do not include a scoping column and constrain a value a tenant chooses. */
function crossTenantKeys(context: ProbeContext, relation: Relation, relationPlan: RelationPlan): UniqueKey[] {
  const scope = scopeColumns(context, relation, relationPlan);
  const keys: UniqueKey[] = [];
  for (const constraint of relation.constraints) {
    // An exclusion constraint with an expression element is left out, as expression indexes are.
    if (constraint.kind === 'primary-key' || constraint.kind === 'unique' || (constraint.kind === 'exclusion' && constraint.columns.every((column) => column !== null))) {
      keys.push({ name: constraint.name, kind: constraint.kind, columns: constraint.columns as string[], definition: constraint.definition });
    }
  }
  const constraintNames = new Set(keys.map((key) => key.name));
  for (const index of relation.indexes) {
    // Expression indexes (lower(email)) are left out: which column value collides is not known here.
    if (!index.unique || index.definition === null || constraintNames.has(index.name) || index.columns.some((column) => column === null)) continue;
    keys.push({ name: index.name, kind: 'unique-index', columns: index.columns as string[], definition: index.definition });
  }
  return keys.filter((key) => {
    if (!key.columns.length || key.columns.some((column) => scope.has(column))) return false;
    const columns = key.columns.map((name) => requireColumn(relation, name));
    return !columns.every(surrogate);
  });
}

function fixFor(relation: Relation, relationPlan: RelationPlan, key: UniqueKey): Fix {
  const target = relationIdent(relation);
  const scope = relationPlan.tenantColumn ?? relationPlan.path?.[0]?.columns.join(', ') ?? 'tenant_id';
  const scopeIdents = (relationPlan.tenantColumn ? [relationPlan.tenantColumn] : relationPlan.path?.[0]?.columns ?? ['tenant_id']).map(ident);
  const columns = [...scopeIdents, ...key.columns.map(ident)].join(', ');
  switch (key.kind) {
    case 'unique':
      return fix([comment(`make the key unique per tenant: include ${commentText(scope)}`), alterTable(target, `drop constraint ${ident(key.name)}, add constraint ${ident(key.name)} unique (${columns})`)]);
    case 'primary-key':
      return fix([
        comment(`make the key unique per tenant: include ${commentText(scope)} (foreign keys that reference it must include it too)`),
        alterTable(target, `drop constraint ${ident(key.name)}, add primary key (${columns})`),
      ]);
    case 'unique-index':
      return fix([
        comment(`make the index unique per tenant: include ${commentText(scope)}`),
        dropIndex(`${ident(relation.schema)}.${ident(key.name)}`),
        createIndex(target, `create unique index ${ident(key.name)} on ${target} (${columns});`),
      ]);
    case 'exclusion':
      return fix([
        comment(`exclude only within a tenant: add "${commentText(scope)} with =" to the constraint (needs the btree_gist extension for scalar columns)`),
        comment(`currently: ${commentText(key.definition)}`),
        alterTable(target, `drop constraint ${ident(key.name)}`),
      ]);
  }
}

export const existenceOracle = defineProbe({
  order: 120,
  meta: {
    id: 'existence-oracle',
    matrix: 'read',
    title: "A unique key reveals whether another tenant holds a value",
    severity: 'low',
    objectKind: 'constraint',
    summary: 'A unique key lets a tenant test whether another tenant holds a value.',
    example: 'Inserting an email that tenant B holds fails with a unique violation while a fresh one succeeds: contacts_email_key spans tenants.',
    explanation:
      'For every unique or exclusion constraint and unique index of a tenant table that does not include the tenant column (or a foreign ' +
      "key to a tenant's row), the probe inserts, as one tenant, a valid row whose key equals a value another tenant holds, and then the " +
      'same row with a fresh value. When the first fails with a unique or exclusion violation and the second succeeds, any tenant can test ' +
      "whether a value (an email, a slug, a booking slot) exists in another tenant, without seeing the row. Keys the database fills itself " +
      '(identity, sequences, generated uuids) are not reported: a tenant does not choose them. Include the tenant column in the key.',
    precondition:
      'Low: a unique or exclusion key of a tenant table that leaves out the tenant column and that the tenant fills itself (not ' +
      'identity, sequence or generated uuid), where, as one tenant, inserting a value another tenant holds fails with the violation ' +
      'and the same row with a fresh value succeeds: a tenant learns that a value exists elsewhere without seeing the row (an ' +
      'existence oracle).',
  },
  split: 'whole',
  async run(context, report) {
    const findings: Finding[] = [];
    if (context.tenants.length < 2) return findings;
    const builder = new OwnRowBuilder(context);
    const [tenant, other] = context.tenants as [Tenant, Tenant];
    const state = { kind: 'tenant' as const, tenant };
    for (const relationPlan of context.plan.relations) {
      if (relationPlan.tenancy !== 'direct' && relationPlan.tenancy !== 'fk-path') continue;
      const relation = requireRelation(context.catalog, relationPlan.relation);
      if (relation.partitionOf || (relation.kind !== 'table' && relation.kind !== 'partitioned-table') || !context.access.get(relation.qualified)?.insert) continue;
      if (sequenceSkip(context, this.meta.id, relation.qualified, ['INSERT'])) continue;
      for (const key of crossTenantKeys(context, relation, relationPlan)) {
        const held = context.ledger.rows(relation.qualified, other.id).find((row) => key.columns.every((column) => row.values[column] !== null && row.values[column] !== undefined));
        if (!held) continue;
        const overrides = Object.fromEntries(key.columns.map((column) => [column, held.values[column]!]));
        const base = { check: this.meta.id, relation: relation.qualified, context: tenant.label, tenant: tenant.id, missingOwnRows: 0 };
        let probe: RowInsert | null = null;
        let probeError: string | undefined;
        let control: RowInsert | null = null;
        let controlError: string | undefined = 'no valid row of the tenant could be built';
        for (let attempt = 0; attempt < 3; attempt += 1) {
          // A fresh value elsewhere in the row may still collide with a seeded one: try again with new values.
          probe = builder.ownRow(relation, relationPlan, tenant, overrides);
          control = builder.ownRow(relation, relationPlan, tenant);
          if (!probe || !control) break;
          const withHeld = await runAs(context, state, probe.sql, probe.params);
          const fresh = await runAs(context, state, control.sql, control.params);
          probeError = withHeld.error && CONFLICT_CODES.has(withHeld.error.code ?? '') && withHeld.error.message.includes(`"${key.name}"`) ? withHeld.error.message : undefined;
          controlError = fresh.error?.message;
          if (!controlError || !CONFLICT_CODES.has(fresh.error?.code ?? '')) break;
        }
        const oracle = Boolean(probe && control && probeError && !controlError);
        context.record({
          ...base,
          sql: probe ? inlineParameters(probe.sql, probe.params) : `insert into ${relationIdent(relation)} ...`,
          outcome: oracle ? 'leak' : controlError ? 'error' : 'pass',
          rows: 0,
          foreignRows: oracle ? 1 : 0,
          ...(controlError && !oracle ? { error: `control insert with a fresh value: ${controlError}` } : {}),
        });
        if (!oracle) continue;
        const shownColumns = key.columns.join(', ');
        findings.push(report({
          severity: 'low',
          object: constraintObject(relation.qualified, key.name, key.columns),
          tenant: tenant.id,
          foreignTenant: other.id,
          message:
            `As ${tenant.label}, inserting a row whose ${shownColumns} equals ${other.label}'s fails with "${probeError}", while a fresh value succeeds: ` +
            `${key.name} (${shownColumns}) spans tenants, so any tenant can test whether a value exists in another tenant.`,
          evidence: {
            sql: reproduction(
              context,
              state,
              [
                `savepoint probe;`,
                `-- ${commentText(shownColumns)} as ${commentText(other.label)} holds it: fails`,
                `${inlineParameters(probe!.sql, probe!.params)};`,
                `rollback to savepoint probe;`,
                `-- the same row with a fresh value: succeeds`,
                inlineParameters(control!.sql, control!.params),
              ].join('\n'),
            ),
            context: describeContext(context, state),
            error: probeError,
            details: `${key.kind === 'unique-index' ? 'unique index' : key.kind} ${key.name}: ${key.definition}`,
          },
          fix: fixFor(relation, relationPlan, key),
        }));
      }
    }
    return findings;
  },
});
