import { defaultGenerator, keyColumnsMentioned, prefixKeyList } from '../analysis/sql-text.js';
import type { Column, Relation } from '../catalog/types.js';
import { constraintObject, type Finding } from '../findings.js';
import { commentText, ident, literal, qualifiedIdent, relationIdent } from '../sql.js';
import { canWrite, columnOf, regclassLiteral, tenantTables } from './privilege-helpers.js';
import { defineRule } from './types.js';

function isSequenceKey(column: Column): boolean {
  return column.identity !== null || defaultGenerator(column.default) === 'sequence';
}

/** A value the database generates and nobody chooses. */
function isRandomKey(column: Column): boolean {
  return defaultGenerator(column.default) === 'uuid';
}

interface Key {
  name: string;
  kind: 'primary key' | 'unique constraint' | 'exclusion constraint' | 'unique index';
  columns: (string | null)[];
  definition: string;
}

function keysOf(relation: Relation): Key[] {
  const keys: Key[] = [];
  const constraintNames = new Set<string>();
  for (const constraint of relation.constraints) {
    constraintNames.add(constraint.name);
    if (constraint.kind === 'primary-key') keys.push({ name: constraint.name, kind: 'primary key', columns: constraint.columns, definition: constraint.definition });
    else if (constraint.kind === 'unique') keys.push({ name: constraint.name, kind: 'unique constraint', columns: constraint.columns, definition: constraint.definition });
    else if (constraint.kind === 'exclusion') keys.push({ name: constraint.name, kind: 'exclusion constraint', columns: constraint.columns, definition: constraint.definition });
  }
  for (const index of relation.indexes) {
    // Indexes behind a constraint carry the constraint's name and no definition of their own: already listed.
    if (index.unique && index.definition !== null && !constraintNames.has(index.name)) keys.push({ name: index.name, kind: 'unique index', columns: index.columns, definition: index.definition });
  }
  return keys;
}

export const uniqueWithoutTenant = defineRule({
  meta: {
    id: 'unique-without-tenant',
    title: 'A unique or exclusion constraint on a tenant table does not include the tenant column',
    severity: 'low',
    objectKind: 'constraint',
    summary: "A unique key on a tenant table spans tenants, so a failed write reveals another tenant's value.",
    example: 'users_email_key on public.users (email) does not include tenant_id: an existence oracle (surrogate keys are not reported).',
    explanation:
      'Uniqueness is checked against every row of the table, whatever the policies hide. When a unique key, unique index or ' +
      'exclusion constraint on a tenant table does not include the tenant column, an insert or update with a value another ' +
      'tenant already uses fails with a unique violation: the error tells the caller that the value (an email, an invoice number, a ' +
      'booked time slot) exists in some other tenant, and blocks it from using it. Include the tenant column in the key. Keys whose ' +
      'values the database generates (identity columns, sequences, random UUID defaults) are not reported: a sequential id reveals ' +
      'nothing a caller could not count anyway (see shared-sequence) and a random UUID cannot be guessed, so the violation carries no ' +
      "information about another tenant's data. Only tables the application role may insert into or update are checked.",
    confirmedBy: ['existence-oracle'],
  },
  evaluate({ catalog, plan }, report) {
    const findings: Finding[] = [];
    for (const { relation, relationPlan } of tenantTables(catalog, plan)) {
      // The tenant table's keys are global by nature (one row per tenant); partitions repeat their parent's keys.
      if (relationPlan.tenancy === 'tenant-table' || relation.partitionOf) continue;
      const scope = relationPlan.tenantColumn ? [relationPlan.tenantColumn] : (relationPlan.path?.[0]?.columns ?? []);
      if (!scope.length || !canWrite(catalog, plan.role, relation)) continue;
      for (const key of keysOf(relation)) {
        const named = key.columns.filter((column): column is string => column !== null);
        const mentioned = key.columns.includes(null) ? keyColumnsMentioned(key.definition, key.kind === 'unique index' ? 'index' : 'constraint') : null;
        const expressionMentions = mentioned !== null && scope.every((column) => mentioned.has(column));
        if (scope.every((column) => named.includes(column)) || expressionMentions) continue;
        const columns = named.map((name) => columnOf(relation, name)).filter((column): column is Column => Boolean(column));
        // Generated keys: every column from a sequence, or any column a random UUID (the whole key is then unguessable).
        if (columns.some(isRandomKey) || (columns.length === key.columns.length && columns.every(isSequenceKey))) continue;
        const shown = key.columns.map((column) => column ?? '(expression)').join(', ');
        findings.push(
          report({
            severity: 'low',
            object: constraintObject(relation.qualified, key.name, key.columns),
            message: `The ${key.kind} ${key.name} on ${relation.qualified} (${shown}) does not include ${scope.join(', ')}: writing a value another tenant already uses fails, which tells ${plan.role} that it exists there.`,
            sql:
              key.kind === 'unique index'
                ? `select indexrelid::regclass as index, pg_get_indexdef(indexrelid) as definition from pg_index where indrelid = ${regclassLiteral(relation.qualified)} and indexrelid = ${literal(qualifiedIdent(`${relation.schema}.${key.name}`))}::regclass;`
                : `select conname, contype, pg_get_constraintdef(oid) as definition from pg_constraint where conrelid = ${regclassLiteral(relation.qualified)} and conname = ${literal(key.name)};`,
            details: key.definition,
            fix: keyFix(relation, key, scope),
          }),
        );
      }
    }
    return findings;
  },
});

function keyFix(relation: Relation, key: Key, scope: string[]): string {
  const target = relationIdent(relation);
  const prefix = scope.map(ident).join(', ');
  const columns = key.columns.filter((column): column is string => column !== null).map(ident).join(', ');
  switch (key.kind) {
    case 'primary key':
      return `-- foreign keys that reference ${commentText(key.name)} must be dropped first and re-created with ${commentText(scope.join(', '))}\nalter table ${target} drop constraint ${ident(key.name)}, add constraint ${ident(key.name)} primary key (${prefix}, ${columns});`;
    case 'unique constraint':
      return `alter table ${target} drop constraint ${ident(key.name)}, add constraint ${ident(key.name)} unique (${prefix}, ${columns});`;
    case 'exclusion constraint': {
      const definition = prefixKeyList(key.definition, scope.map((column) => `${ident(column)} WITH =`).join(', '));
      return `-- a gist exclusion on a scalar tenant column needs: create extension if not exists btree_gist;\nalter table ${target} drop constraint ${ident(key.name)}, add constraint ${ident(key.name)} ${definition};`;
    }
    case 'unique index': {
      const definition = prefixKeyList(key.definition, prefix);
      return `drop index ${qualifiedIdent(`${relation.schema}.${key.name}`)};\n${definition};`;
    }
  }
}
