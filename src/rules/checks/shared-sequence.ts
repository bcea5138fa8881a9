import type { Finding } from '../../findings/finding.js';
import { alterTable, comment, createSequence, fix, setSequence } from '../../findings/fix.js';
import { commentText, ident, literal, qualifiedIdent, relationIdent } from '../../target/sql.js';
import { relationPlanOf } from '../privilege-helpers.js';
import { defineRule } from '../types.js';
import { relationOf } from '../../catalog/lookup.js';

export const sharedSequence = defineRule({
  order: 280,
  meta: {
    id: 'shared-sequence',
    title: 'One sequence numbers the rows of several tables, including tenant tables',
    severity: 'info',
    objectKind: 'sequence',
    summary: "One sequence numbers rows of several tables including tenant tables, so ids reveal other tenants' activity.",
    example: "Sequence document_number_seq numbers public.credit_notes and public.invoices: ids reveal other tenants' write volume.",
    explanation:
      'A sequence is not tenant-scoped: every insert by every tenant advances it, and the gaps between the ids a tenant receives ' +
      'show how much everyone else writes. When one sequence feeds several tables, that volume signal spans all of them, and the ' +
      'tables are coupled (resetting or exhausting one affects the others). It is hygiene, not a leak of rows: give each table its ' +
      'own identity column or sequence, or use random UUIDs where the volume matters.',
    precondition:
      'Info: hygiene: one sequence feeds several tables, at least one of them tenant-owned; the gaps in a tenant\'s ids show ' +
      'everyone\'s write volume, no row leaks.',
  },
  evaluate({ catalog, plan }, report) {
    const findings: Finding[] = [];
    for (const { sequence, relations, columns: users } of catalog.sharedSequences) {
      const tenantOwned = relations.filter((name) => {
        const tenancy = relationPlanOf(plan, name)?.tenancy;
        return tenancy !== undefined && tenancy !== 'shared';
      });
      if (!tenantOwned.length) continue;
      const steps = users.slice(1).flatMap(({ relation: name, column }) => {
        const relation = relationOf(catalog, name)!;
        const own = qualifiedIdent(`${relation.schema}.${`${relation.name}_${column}_seq`.slice(0, 63)}`);
        return [
          createSequence(own, `${relationIdent(relation)}.${ident(column)}`),
          setSequence(own, `select setval(${literal(own)}, coalesce((select max(${ident(column)}) from ${relationIdent(relation)}), 0) + 1, false);`),
          alterTable(relationIdent(relation), `alter column ${ident(column)} set default nextval(${literal(own)})`),
        ];
      });
      findings.push(
        report({
          severity: 'info',
          object: sequence,
          message: `The sequence ${sequence} numbers ${users.map((user) => `${user.relation}.${user.column}`).join(', ')}: every tenant's inserts into any of them advance it, so ids reveal the others' write volume.`,
          sql: `select c.oid::regclass as relation, a.attname, pg_get_expr(d.adbin, d.adrelid) as default from pg_attrdef d join pg_class c on c.oid = d.adrelid join pg_attribute a on a.attrelid = d.adrelid and a.attnum = d.adnum join pg_depend k on k.classid = 'pg_attrdef'::regclass and k.objid = d.oid and k.refclassid = 'pg_class'::regclass where k.refobjid = ${literal(sequence)}::regclass;`,
          details: `${sequence} is the default of ${users.map((user) => `${user.relation}.${user.column}`).join(', ')}; tenant-owned: ${tenantOwned.join(', ')}`,
          fix: fix(steps.length ? steps : [comment(`give each table its own sequence or identity column instead of ${commentText(sequence)}`)]),
        }),
      );
    }
    return findings;
  },
});
