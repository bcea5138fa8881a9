import { relationObject } from '../../findings/finding.js';
import { comment, fix, revoke } from '../../findings/fix.js';
import { currentTenantExpression } from '../../findings/fixes.js';
import { commentText, ident, literal, relationIdent } from '../../target/sql.js';
import { regclassLiteral } from '../privilege-helpers.js';
import { isTenantOwned, listWords, rowCommandsOf, tenantPredicateFor } from '../relation-facts.js';
import { defineRule } from '../types.js';

export const futurePartitions = defineRule({
  order: 70,
  meta: {
    id: 'future-partitions',
    title: 'Partitions created later start without row-level security',
    severity: 'info',
    objectKind: 'table',
    summary: 'Partitions created later on a partitioned tenant table start without row-level security.',
    example: 'app_user is granted privileges on the partitions of public.readings directly: each partition created later starts unprotected.',
    explanation:
      'Row-level security is enabled, forced and given policies per relation; CREATE TABLE ... PARTITION OF (or INHERITS) copies ' +
      'none of it. As long as the application reaches partitions only through their parent this does not matter. When it is ' +
      'granted privileges on the partitions themselves (typically by GRANT ... ON ALL TABLES or default privileges), every ' +
      'partition created later is one more relation to protect, and starts unprotected. Reported once per tenant-owned parent ' +
      'whose existing partitions show that pattern. Fix: stop granting partitions directly; otherwise give every new partition ' +
      'RLS, FORCE and the tenant policy in the same migration that creates it.',
    precondition:
      'Info: hygiene: the role is granted privileges on existing partitions or children of a tenant-owned parent directly, so each ' +
      'one created later starts without row-level security; what is exposed today is partition-without-rls\'s finding.',
  },
  evaluate({ catalog, plan, analysis }, report) {
    const scope = { catalog, plan, analysis };
    return catalog.relations
      .filter((relation) => (relation.kind === 'partitioned-table' || relation.kind === 'table') && isTenantOwned(scope, relation))
      .flatMap((parent) => {
        const children = catalog.relations.filter((relation) => relation.partitionOf === parent.qualified || relation.inheritsFrom.includes(parent.qualified));
        const granted = children.filter((child) => rowCommandsOf(scope, child).length);
        if (!granted.length) return [];
        const kind = parent.kind === 'partitioned-table' ? 'partitions' : 'inheritance children';
        const unprotected = granted.filter((child) => !child.rlsEnabled);
        const predicate = tenantPredicateFor(scope, parent) ?? `<tenant column> = ${currentTenantExpression(plan)}`;
        const template = [
          comment('for every new partition, in the migration that creates it:'),
          comment(`create table ${commentText(parent.schema)}.<new_partition> partition of ${commentText(relationIdent(parent))} for values ...;`),
          comment(`alter table ${commentText(parent.schema)}.<new_partition> enable row level security;`),
          comment(`alter table ${commentText(parent.schema)}.<new_partition> force row level security;`),
          comment(`create policy tenant_isolation on ${commentText(parent.schema)}.<new_partition> for all to ${commentText(ident(plan.role))} using (${commentText(predicate)}) with check (${commentText(predicate)});`),
        ];
        const through = `reach them through ${commentText(relationIdent(parent))}, whose policies cover every partition`;
        return [
          report({
            severity: 'info',
            object: relationObject(parent),
            message:
              `${plan.role} is granted privileges on ${granted.length} of the ${children.length} ${kind} of ${parent.qualified} directly ` +
              `(${granted.map((child) => child.name).join(', ')}${unprotected.length ? `; ${unprotected.length} without row-level security` : ''}): row-level security is per relation, so each one created later starts unprotected and needs its own RLS, FORCE and tenant policy.`,
            sql:
              `select c.oid::regclass as child, c.relrowsecurity, c.relforcerowsecurity, has_table_privilege(${literal(plan.role)}, c.oid, 'SELECT') as can_select ` +
              `from pg_inherits i join pg_class c on c.oid = i.inhrelid where i.inhparent = ${regclassLiteral(parent.qualified)} order by 1;`,
            details: granted.map((child) => `${child.qualified}: ${child.rlsEnabled ? 'RLS enabled' : 'RLS disabled'}, ${plan.role} may ${listWords(rowCommandsOf(scope, child))}`).join('\n'),
            fix: fix([...granted.map((child, index) => revoke('all', relationIdent(child), ident(plan.role), index === granted.length - 1 ? through : undefined)), ...template]),
          }),
        ];
      });
  },
});
