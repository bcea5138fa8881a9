import { relationObject, type Finding } from '../../findings/finding.js';
import { createIndex, fix } from '../../findings/fix.js';
import { ident, relationIdent } from '../../target/sql.js';
import { regclassLiteral, tenantTables } from '../privilege-helpers.js';
import { defineRule } from '../types.js';

export const missingTenantIndex = defineRule({
  order: 290,
  meta: {
    id: 'missing-tenant-index',
    title: 'A tenant table has no index that starts with the tenant column',
    severity: 'info',
    objectKind: 'table',
    summary: "No index starts with the tenant column, so every tenant query scans all tenants' rows.",
    example: 'No index on public.events starts with tenant_id.',
    explanation:
      'Every query on a tenant table carries the policy predicate `tenant_column = <current tenant>`. Without an index whose first ' +
      'column is the tenant column, PostgreSQL reads the whole table (every tenant\'s rows) and filters them, and the cost of each ' +
      'tenant\'s queries grows with the size of all tenants together. A primary key or index such as (tenant_id, id) counts; partial ' +
      'and expression indexes do not. Add an index on the tenant column, or lead existing keys with it.',
    precondition:
      'Info: performance: no index leads with the tenant column, so every query reads every tenant\'s rows to filter them; nothing ' +
      'leaks.',
  },
  evaluate({ catalog, plan }, report) {
    const findings: Finding[] = [];
    for (const { relation, relationPlan } of tenantTables(catalog, plan)) {
      // Partitions inherit their parent's indexes: the parent is reported.
      const column = relationPlan.tenantColumn;
      if (!column || relation.partitionOf) continue;
      if (relation.indexes.some((index) => !index.partial && index.columns[0] === column)) continue;
      const name = `${relation.name}_${column}_idx`.slice(0, 63);
      findings.push(
        report({
          severity: 'info',
          object: relationObject(relation),
          message: `No index on ${relation.qualified} starts with ${column}: every query filtered by the tenant policy scans all tenants' rows.`,
          sql: `select indexrelid::regclass as index, pg_get_indexdef(indexrelid) as definition from pg_index where indrelid = ${regclassLiteral(relation.qualified)};`,
          details: relation.indexes.length
            ? relation.indexes.map((index) => index.definition ?? `${index.name} (${index.columns.map((name) => name ?? 'expression').join(', ')})`).join('\n')
            : 'no indexes',
          fix: fix([createIndex(relationIdent(relation), `create index ${relation.kind === 'table' ? 'concurrently ' : ''}${ident(name)} on ${relationIdent(relation)} (${ident(column)});`)]),
        }),
      );
    }
    return findings;
  },
});
