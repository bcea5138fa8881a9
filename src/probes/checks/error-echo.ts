import { relationObject, type Finding } from '../../findings/finding.js';
import { alterView, comment, fix } from '../../findings/fix.js';
import { oneLine } from '../../analysis/sql-text.js';
import type { Tenant } from '../../seed/ledger.js';
import { ident, relationIdent } from '../../target/sql.js';
import { describeContext, reproduction, runAs, sourcesOf } from '../context.js';
import { tallyRows } from '../foreign-rows.js';
import { readTargets } from '../targets.js';
import { defineProbe, type ProbeContext } from '../types.js';

/** Conditions whose failure message quotes the value it failed on; the cheaper first (the planner runs cheap quals first). */
const CASTS = [(column: string) => `(${column})::integer is null`, (column: string) => `(${column})::integer = 0`];
const MAX_COLUMNS = 6;

/** Hide a quoted value in an error message, keeping any canary readable: the value is another tenant's. */
function maskQuoted(message: string, tenants: Tenant[]): string {
  return message.replace(/"([^"]*)"/g, (whole, value: string) => {
    const canaries = tenants.filter((tenant) => value.includes(tenant.canary));
    if (!canaries.length) return whole;
    return `"${value.slice(0, 2)}****** [${canaries.map((tenant) => `canary of ${tenant.label}`).join(', ')}]"`;
  });
}

/**
 * Only error text is looked at, for values of other tenants (their canaries): a unique violation's
 * DETAIL quotes the value the statement itself supplied, and an error that names a constraint or a
 * column reveals nothing of another tenant, so neither is a finding.
 */
function foreignInError(context: ProbeContext, message: string, tenant: Tenant): Tenant[] {
  return context.ledger.tenantsByCanary({ message }).filter((other) => other.id !== tenant.id);
}

export const errorEcho = defineProbe({
  order: 130,
  meta: {
    id: 'error-echo',
    matrix: 'read',
    title: "An error message carries another tenant's values",
    severity: 'medium',
    objectKind: 'table',
    summary: "An error message returned to a tenant carries another tenant's values.",
    example: `\`select 1 from "public"."my_documents" where ("title")::integer is null\` fails with an error quoting tenant B's value: the view is not a security barrier.`,
    explanation:
      'A view that filters rows itself (where tenant_id = current_setting(...)) but is not a security barrier lets the planner evaluate a ' +
      "caller's condition before the view's own filter. A condition that fails, such as a cast of a text column to integer, then fails on " +
      "another tenant's row and the error quotes its value: invalid input syntax for type integer: \"<another tenant's text>\". For every " +
      'tenant-owned view the application role reads that is not a security barrier and shows no other tenant\'s rows to a plain read, the ' +
      "probe runs such casts on its text columns as each tenant and reports errors that carry another tenant's canary (medium: values " +
      'leak). Tables under row-level security are not affected: policies are always evaluated first. Make the view a security barrier, or ' +
      'better, filter with row-level security on the table and make the view security_invoker.',
    precondition:
      'Medium: a tenant-owned view the role reads is not a security barrier and shows no other tenant\'s rows to a plain read (that ' +
      'would be read-isolation\'s finding), and, as a tenant, a failing cast of one of its text columns in a WHERE clause raises an ' +
      'error that quotes another tenant\'s canary: values leak through error messages.',
  },
  split: 'whole',
  async run(context, report) {
    const findings: Finding[] = [];
    const targets = readTargets(context, (relation) => sourcesOf(context, relation)).filter(
      (target) => target.relation.kind === 'view' && !target.relation.securityBarrier,
    );
    for (const target of targets) {
      const { relation, relationPlan, sources } = target;
      const columns = relation.columns.filter((column) => column.category === 'S' && !column.isArray && target.access.selectColumns.includes(column.name)).slice(0, MAX_COLUMNS);
      if (!columns.length) continue;
      let echo: { tenant: Tenant; statement: string; message: string; foreign: Tenant[] } | null = null;
      for (const tenant of context.tenants) {
        if (echo) break;
        const state = { kind: 'tenant' as const, tenant };
        const plain = await runAs(context, state, target.statement);
        // A view that already shows other tenants' rows is the read-isolation probe's finding; an error adds nothing.
        if (plain.error || tallyRows(context, tenant, plain.rows, { relation: { relation, relationPlan, sources } }).foreignRows) break;
        for (const column of columns) {
          if (echo) break;
          for (const cast of CASTS) {
            const statement = `select 1 from ${relationIdent(relation)} where ${cast(ident(column.name))}`;
            const result = await runAs(context, state, statement);
            const foreign = result.error ? foreignInError(context, result.error.message, tenant) : [];
            context.record({
              check: this.meta.id, relation: relation.qualified, context: tenant.label, tenant: tenant.id, sql: statement,
              outcome: foreign.length ? 'leak' : 'pass', rows: result.rowCount, foreignRows: foreign.length, missingOwnRows: 0,
              ...(result.error ? { error: maskQuoted(result.error.message, context.tenants) } : {}),
            });
            if (foreign.length) {
              echo = { tenant, statement, message: result.error!.message, foreign };
              break;
            }
          }
        }
      }
      if (!echo) continue;
      const state = { kind: 'tenant' as const, tenant: echo.tenant };
      const masked = maskQuoted(echo.message, context.tenants);
      findings.push(report({
        severity: 'medium',
        object: relationObject(relation),
        tenant: echo.tenant.id,
        foreignTenant: echo.foreign[0]!.id,
        message:
          `As ${echo.tenant.label}, ${echo.statement} fails with an error that quotes a value of ${echo.foreign.map((other) => other.label).join(', ')} (${masked}): ` +
          `${relation.qualified} is not a security barrier, so the caller's condition runs before the view's own tenant filter.`,
        evidence: {
          sql: reproduction(context, state, echo.statement),
          context: describeContext(context, state),
          error: masked,
          details: `view definition: ${relation.viewDefinition ? oneLine(relation.viewDefinition) : '(unknown)'}`,
        },
        fix: fix([
          comment(`make the view's own conditions run before any condition of the caller:`),
          alterView(relationIdent(relation), 'set (security_barrier = true)'),
          comment('better: enable row-level security on the tables it reads and let the policies filter (security_invoker views, PostgreSQL 15+)'),
        ]),
      }));
    }
    return findings;
  },
});
