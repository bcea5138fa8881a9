import { relationObject, type Finding } from '../findings.js';
import type { Tenant } from '../seed/ledger.js';
import { attribute, describeContext, maskRow, reproduction, runAs, sourcesOf } from './context.js';
import { diagnoseReadLeak } from './diagnose.js';
import { plural } from '../text.js';
import { expectedOwnRows, isIndirect, mayHideTenantRows, readTargets, shownStatement } from './targets.js';
import { defineProbe } from './types.js';

export const readIsolation = defineProbe({
  meta: {
    id: 'read-isolation',
    title: 'Other tenants\' rows are visible',
    severity: 'critical',
    objectKind: 'table',
    summary: "As a tenant, the application role reads other tenants' rows.",
    example: 'As tenant A, `select * from "public"."documents"` returns 20 rows of tenant B and 20 of other tenants: permissive policy support_can_read (using true) does not restrict rows to the current tenant, and permissive policies are ORed together.',
    explanation:
      'For every tenant and every relation the application role can select from (tables, partitions, inheritance children, views, materialized views), ' +
      'the probe sets the tenant context the way the application does, runs select * as the application role, and attributes every returned row ' +
      'to its tenant through the tenant column, the seeded keys or the per-tenant canary in text values. Any row of another tenant is a leak: ' +
      'critical on a table queried normally, high on a partition, child, view or materialized view queried directly.',
  },
  related: [
    {
      id: 'own-rows-hidden',
      title: 'A tenant cannot read its own rows',
      severity: 'low',
      objectKind: 'table',
      summary: 'A tenant sees fewer of its own rows than it owns, or its read fails.',
      example: `As tenant A, \`select * from "public"."tenants"\` returns 0 of the tenant's 1 rows: a policy hides the tenant's own data.`,
      explanation:
        'Reported by the read-isolation probe when a tenant sees fewer of its own seeded rows than it owns, or its read fails: ' +
        'a policy that hides a tenant\'s own data is a defect, not a leak.',
    },
  ],
  async run(context, report) {
    const findings: Finding[] = [];
    for (const target of readTargets(context, (relation) => sourcesOf(context, relation))) {
      const { relation, relationPlan, statement } = target;
      const keep = new Set([...(relation.primaryKey ?? []), ...(relationPlan.tenantColumn ? [relationPlan.tenantColumn] : []), ...context.plan.tenantColumns]);
      const leaks: { tenant: Tenant; foreign: Map<string, number>; rows: number; samples: Record<string, string | null>[] }[] = [];
      const hidden: { tenant: Tenant; expected: number; seen: number; error?: string }[] = [];
      for (const tenant of context.tenants) {
        const result = await runAs(context, { kind: 'tenant', tenant }, statement, [], { name: `rls_audit_read_${relation.oid}` });
        const base = { check: this.meta.id, relation: relation.qualified, context: tenant.label, tenant: tenant.id, sql: shownStatement(statement) };
        if (result.error) {
          context.record({ ...base, outcome: 'error', rows: 0, foreignRows: 0, missingOwnRows: 0, error: result.error.message });
          hidden.push({ tenant, expected: expectedOwnRows(context, relation.qualified, tenant) ?? 0, seen: 0, error: result.error.message });
          continue;
        }
        const foreign = new Map<string, number>();
        const samples: Record<string, string | null>[] = [];
        let own = 0;
        for (const row of result.rows) {
          const owner = attribute(row, relationPlan, relation, context.ledger, context.plan.tenantColumns, target.sources);
          if (owner.kind === 'tenant' && owner.tenant.id === tenant.id) own += 1;
          if ((owner.kind === 'tenant' && owner.tenant.id !== tenant.id) || owner.kind === 'other-tenant') {
            const id = owner.kind === 'tenant' ? owner.tenant.id : owner.value;
            foreign.set(id, (foreign.get(id) ?? 0) + 1);
            if (samples.length < 3) samples.push(maskRow(row, keep, context.tenants));
          }
        }
        const foreignRows = [...foreign.values()].reduce((sum, count) => sum + count, 0);
        const expected = target.reliable && result.rows.length <= context.scenario.maxRowsPerQuery && !mayHideTenantRows(context, relation.qualified) ? expectedOwnRows(context, relation.qualified, tenant) : null;
        const missing = expected === null ? 0 : Math.max(0, expected - own);
        const outcome = foreignRows ? 'leak' : !target.reliable ? 'unreliable' : missing ? 'hidden' : 'pass';
        context.record({ ...base, outcome, rows: result.rows.length, foreignRows, missingOwnRows: missing });
        if (foreignRows) leaks.push({ tenant, foreign, rows: result.rows.length, samples });
        if (missing) hidden.push({ tenant, expected: expected!, seen: own });
      }
      if (leaks.length) {
        const first = leaks[0]!;
        const diagnosis = diagnoseReadLeak(context, relation, relationPlan);
        const [foreignTenant, foreignCount] = [...first.foreign][0]!;
        const name = (id: string) => context.ledger.tenant(id)?.label ?? `tenant ${id} (not seeded)`;
        const perTenant = leaks.map((leak) => `${leak.tenant.label} sees ${[...leak.foreign].map(([id, count]) => `${count} of ${name(id)}`).join(', ')}`);
        findings.push(report({
          severity: isIndirect(relation) ? 'high' : 'critical',
          object: relationObject(relation),
          tenant: first.tenant.id,
          foreignTenant,
          message: `As ${first.tenant.label}, ${shownStatement(statement)} returns ${plural(foreignCount, 'row')} of ${name(foreignTenant)}${first.foreign.size > 1 ? ` and ${[...first.foreign.values()].slice(1).reduce((sum, count) => sum + count, 0)} of other tenants` : ''}: ${diagnosis.cause}.`,
          evidence: {
            sql: reproduction(context, { kind: 'tenant', tenant: first.tenant }, shownStatement(statement)),
            context: describeContext(context, { kind: 'tenant', tenant: first.tenant }),
            rowCount: first.rows,
            sampleRows: first.samples,
            details: `${perTenant.join('; ')} (${leaks.length} of ${context.tenants.length} tenants affected)`,
          },
          fix: diagnosis.fix,
        }));
      }
      const ownHidden = hidden.filter((entry) => entry.error || entry.seen < entry.expected);
      if (ownHidden.length && !leaks.length) {
        const first = ownHidden[0]!;
        findings.push(report({
          check: 'own-rows-hidden',
          severity: 'low',
          object: relationObject(relation),
          tenant: first.tenant.id,
          message: first.error
            ? `As ${first.tenant.label}, ${shownStatement(statement)} fails (${first.error}): the tenant cannot read its own rows.`
            : `As ${first.tenant.label}, ${shownStatement(statement)} returns ${first.seen} of the tenant's ${first.expected} rows: a policy hides the tenant's own data.`,
          evidence: {
            sql: reproduction(context, { kind: 'tenant', tenant: first.tenant }, shownStatement(statement)),
            context: describeContext(context, { kind: 'tenant', tenant: first.tenant }),
            error: first.error,
            details: ownHidden.map((entry) => `${entry.tenant.label}: ${entry.error ? `error ${entry.error}` : `${entry.seen} of ${entry.expected} own rows`}`).join('; '),
          },
          fix: `-- check the USING clauses on ${relation.qualified}: a row of the current tenant must satisfy at least one permissive and every restrictive policy\n-- and the role needs EXECUTE on any function the policies call`,
        }));
      }
    }
    return findings;
  },
});
