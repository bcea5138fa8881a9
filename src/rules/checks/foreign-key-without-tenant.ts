import type { Analysis } from '../../analysis/model.js';
import { applyingPolicies, policyClause } from '../../analysis/queries.js';
import { foreignKeyClauses } from '../../analysis/sql-text.js';
import type { Catalog, ForeignKey, Relation } from '../../catalog/types.js';
import { constraintObject, type Finding } from '../../findings/finding.js';
import { alterTable, comment, fix, type Fix, type FixStep } from '../../findings/fix.js';
import { ident, literal, qualifiedIdent, relationIdent } from '../../target/sql.js';
import { regclassLiteral, relationPlanOf, roleHolds, tenantTables } from '../privilege-helpers.js';
import { defineRule } from '../types.js';
import { relationOf } from '../../catalog/lookup.js';

function sameColumns(a: readonly (string | null)[], b: readonly string[]): boolean {
  return a.length === b.length && b.every((column) => a.includes(column));
}

/** True when the parent has a primary key, unique constraint or full unique index on exactly these columns. */
function hasKeyOn(parent: Relation, columns: string[]): boolean {
  return (
    parent.constraints.some((constraint) => (constraint.kind === 'primary-key' || constraint.kind === 'unique') && sameColumns(constraint.columns, columns)) ||
    parent.indexes.some((index) => index.unique && !index.partial && sameColumns(index.columns, columns))
  );
}

/**
 * A write policy that itself requires the referenced parent row to be visible (e.g. `with check (exists (select 1 from
 * parent p where p.id = parent_id))`) keeps references inside the tenant: the sub-select is filtered by the parent's
 * policies. The references are safe when, for every write command the role holds, a restrictive policy does that or
 * every permissive policy does.
 */
function policiesCheckParent(catalog: Catalog, analysis: Analysis, relation: Relation, role: string, foreignKey: ForeignKey): boolean {
  const commands = (['INSERT', 'UPDATE'] as const).filter((command) => roleHolds(catalog, role, relation.owner, relation.grants, command));
  return commands.every((command) => {
    const policies = applyingPolicies(analysis, relation, command);
    // The check's sub-selects read the parent, and it reads the foreign key's columns of the row.
    const check = (policy: (typeof policies)[number]) => {
      const expression = policyClause(analysis, policy, 'check');
      return expression !== null && expression.relations.includes(foreignKey.references) && foreignKey.columns.every((column) => expression.rowColumns.includes(column));
    };
    const permissive = policies.filter((policy) => policy.permissive);
    return policies.some((policy) => !policy.permissive && check(policy)) || (permissive.length > 0 && permissive.every(check));
  });
}

export const foreignKeyWithoutTenant = defineRule({
  order: 270,
  meta: {
    id: 'foreign-key-without-tenant',
    title: 'A foreign key between tenant tables does not include the tenant column',
    severity: 'medium',
    objectKind: 'constraint',
    summary: 'A foreign key between tenant tables accepts a parent row of another tenant.',
    example: 'messages_conversation_id_fkey (conversation_id) -> public.conversations (id) does not include tenant_id.',
    explanation:
      'Foreign-key checks ignore row-level security: PostgreSQL looks the referenced row up with the rights of the table owner. A ' +
      'foreign key from one tenant table to another on the id alone (conversation_id -> conversations.id) therefore accepts an id ' +
      "that belongs to another tenant: a tenant's message can point into another tenant's conversation, and the error for an id that " +
      'does not exist anywhere tells the two cases apart. Make the key composite, (tenant_id, conversation_id) -> conversations ' +
      "(tenant_id, id), so the reference must stay within the tenant (the parent needs a unique key on (tenant_id, id)). A write " +
      'policy that itself requires the parent row to be visible also prevents it and is recognised; so does a composite key beside the ' +
      'single-column one (tenant_id, project_id) -> projects (tenant_id, id), which refutes the finding (info, nothing to fix). Only tables the application role ' +
      'may insert into or update are checked.',
    precondition:
      'Medium: a foreign key from a tenant table the role may insert into or update to another tenant table names the id alone (not ' +
      'the tenant) and no write policy requires the parent to be visible: a row can reference another tenant\'s parent (a ' +
      'cross-tenant reference). cross-tenant-reference proves it on data.',
    confirmedBy: ['cross-tenant-reference'],
  },
  evaluate({ catalog, plan, analysis }, report) {
    const findings: Finding[] = [];
    for (const { relation, relationPlan } of tenantTables(catalog, plan)) {
      const tenantColumn = relationPlan.tenantColumn;
      if (relationPlan.tenancy !== 'direct' || !tenantColumn || relation.partitionOf) continue;
      if (!['INSERT', 'UPDATE'].some((privilege) => roleHolds(catalog, plan.role, relation.owner, relation.grants, privilege))) continue;
      for (const foreignKey of relation.foreignKeys) {
        const parent = relationOf(catalog, foreignKey.references);
        const parentPlan = relationPlanOf(plan, foreignKey.references);
        if (!parent || parentPlan?.tenancy !== 'direct' || !parentPlan.tenantColumn) continue;
        const parentTenant = parentPlan.tenantColumn;
        const scoped = foreignKey.columns.some((column, index) => column === tenantColumn && foreignKey.referencedColumns[index] === parentTenant);
        if (scoped || policiesCheckParent(catalog, analysis, relation, plan.role, foreignKey)) continue;
        // A composite key beside it (tenant_id, project_id) -> projects (tenant_id, id) rejects the reference the
        // single-column key would accept: refuted by the schema itself; the fix exists already.
        const guard = relation.foreignKeys.find(
          (other) =>
            other !== foreignKey &&
            other.references === foreignKey.references &&
            other.columns.some((column, index) => column === tenantColumn && other.referencedColumns[index] === parentTenant) &&
            foreignKey.columns.every((column, index) => other.columns.some((candidate, position) => candidate === column && other.referencedColumns[position] === foreignKey.referencedColumns[index])),
        );
        if (guard) {
          findings.push(
            report({
              severity: 'info',
              object: constraintObject(relation.qualified, foreignKey.name, foreignKey.columns),
              message: `The foreign key ${foreignKey.name} on ${relation.qualified} (${foreignKey.columns.join(', ')}) -> ${parent.qualified} (${foreignKey.referencedColumns.join(', ')}) does not include ${tenantColumn}, but ${guard.name} (${guard.columns.join(', ')}) -> ${parent.qualified} (${guard.referencedColumns.join(', ')}) rejects a reference to another tenant's row: refuted by the schema; ${foreignKey.name} is redundant.`,
              sql: `select conname, pg_get_constraintdef(oid) as definition from pg_constraint where conrelid = ${regclassLiteral(relation.qualified)} and conname in (${literal(foreignKey.name)}, ${literal(guard.name)});`,
              details: `${foreignKey.definition}\n${guard.definition}`,
              fix: fix([comment(`nothing to fix: ${guard.name} keeps the reference within the tenant; ${foreignKey.name} may be dropped as redundant`)]),
            }),
          );
          continue;
        }
        findings.push(
          report({
            severity: 'medium',
            object: constraintObject(relation.qualified, foreignKey.name, foreignKey.columns),
            message: `The foreign key ${foreignKey.name} on ${relation.qualified} (${foreignKey.columns.join(', ')}) -> ${parent.qualified} (${foreignKey.referencedColumns.join(', ')}) does not include ${tenantColumn}: a row of one tenant can reference another tenant's ${parent.qualified} row, because the check ignores policies.`,
            sql: `select conname, pg_get_constraintdef(oid) as definition from pg_constraint where conrelid = ${regclassLiteral(relation.qualified)} and conname = ${literal(foreignKey.name)};`,
            details: `${foreignKey.definition}\n${relation.qualified}.${tenantColumn} and ${parent.qualified}.${parentTenant} carry the tenant`,
            fix: foreignKeyFix(catalog, relation, parent, foreignKey, tenantColumn, parentTenant),
          }),
        );
      }
    }
    return findings;
  },
});

function foreignKeyFix(catalog: Catalog, relation: Relation, parent: Relation, foreignKey: ForeignKey, tenantColumn: string, parentTenant: string): Fix {
  const steps: FixStep[] = [];
  const pairs = foreignKey.columns
    .map((column, index) => [column, foreignKey.referencedColumns[index]!] as const)
    .filter(([column, referenced]) => column !== tenantColumn && referenced !== parentTenant);
  const columns = [tenantColumn, ...pairs.map(([column]) => column)];
  const parentKey = [parentTenant, ...pairs.map(([, referenced]) => referenced)];
  if (!hasKeyOn(parent, parentKey)) steps.push(alterTable(relationIdent(parent), `add unique (${parentKey.map(ident).join(', ')})`));
  // ON DELETE SET NULL / SET DEFAULT would also clear the tenant column: limit it to the reference's own columns (PG 15+).
  const actions = foreignKeyClauses(foreignKey.definition, catalog.serverVersionNum >= 150000 ? pairs.map(([column]) => column) : null);
  steps.push(
    alterTable(
      relationIdent(relation),
      `drop constraint ${ident(foreignKey.name)},\n` +
        `  add constraint ${ident(foreignKey.name)} foreign key (${columns.map(ident).join(', ')}) references ${qualifiedIdent(parent.qualified)} (${parentKey.map(ident).join(', ')})${actions ? ` ${actions}` : ''}`,
    ),
  );
  return fix(steps);
}
