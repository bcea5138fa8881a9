import { functionAnalysis } from '../../analysis/index.js';
import { comment, fix as makeFix, or, policyStatement } from '../../findings/fix.js';
import { applyingPolicies, policyClause } from '../../analysis/queries.js';
import type { Policy } from '../../catalog/types.js';
import { restrictiveFence } from '../../findings/fixes.js';
import { relationObject, type Finding } from '../../findings/finding.js';
import { functionsNamed } from '../../rules/privilege-helpers.js';
import type { Tenant } from '../../seed/ledger.js';
import { ident, literal, relationIdent } from '../../target/sql.js';
import { describeContext, reproduction, runAs, sourcesOf } from '../context.js';
import { describeForeign, tallyRows, type RowTally } from '../foreign-rows.js';
import { readTargets, shownStatement, type ReadTarget } from '../targets.js';
import { defineProbe, type ProbeContext } from '../types.js';

/** Values an escape hatch is typically switched on with. */
const TRUTHY = ['on', 'true', '1', 'yes', 't'];

/**
 * Settings a policy's USING reads, directly, through a helper function the analysis inlined, or in the body of a
 * session function it calls, other than the tenant setting.
 */
function otherSettings(context: ProbeContext, policy: Policy): string[] {
  const found = new Set<string>();
  for (const reference of policyClause(context.analysis, policy, 'using')?.references ?? []) {
    const source = reference.source;
    if (source.kind === 'setting') found.add(source.setting);
    else if (source.kind === 'jwt-claim' && source.setting) found.add(source.setting);
    else if (source.kind === 'function') {
      for (const fn of functionsNamed(context.catalog, source.function)) for (const setting of functionAnalysis(context.analysis, fn.signature)?.settings ?? []) found.add(setting);
    }
  }
  found.delete(context.plan.setting);
  // The JWT the API verified, as PostgREST and Supabase put it in every request (request.jwt.claims, and
  // the older request.jwt.claim.sub, .role, ...): setting it forges the context itself, as setting the
  // tenant setting would; it is the context, not an escape hatch beside it.
  return [...found].filter((setting) => setting !== 'request.jwt.claims' && !setting.startsWith('request.jwt.claim.'));
}

/** Values to try: the usual switches, and the constants the policy compares a setting with (`= 'admin'`). */
function candidateValues(context: ProbeContext, policy: Policy): string[] {
  const constants = (policyClause(context.analysis, policy, 'using')?.references ?? []).flatMap((reference) =>
    reference.use.kind === 'escape' && reference.use.constant !== null && reference.use.constant !== '' ? [reference.use.constant] : [],
  );
  return [...new Set([...TRUTHY, ...constants])].slice(0, 12);
}

function setterFor(setting: string, value: string): string {
  return `select set_config(${literal(setting)}, ${literal(value)}, true)`;
}

interface Spoof {
  tenant: Tenant;
  setting: string;
  value: string;
  tally: RowTally;
  baseline: number;
}

export const spoofableSetting = defineProbe({
  order: 100,
  meta: {
    id: 'spoofable-setting',
    matrix: 'read',
    title: 'A setting any session can set widens what a tenant sees',
    severity: 'high',
    objectKind: 'table',
    summary: 'A setting any session can set widens what a tenant sees, proven on data.',
    example: `As tenant A, after \`select set_config('app.bypass_rls', 'on', true)\` (which any session may run), \`select * from "public"."tickets"\` returns rows of tenant B.`,
    explanation:
      'Finds policies that read settings other than the tenant setting (an app.bypass_rls or app.is_admin escape hatch, also when read ' +
      "through a function the policy calls), sets each of them, as the application role with a tenant context, to 'on', 'true', '1', 'yes', " +
      "'t' and to the values the policy compares it with, and reports other tenants' rows that become visible. Any session may set any " +
      'custom setting, so such a policy is only as strong as every piece of SQL the application runs. Proven on data this is high: ' +
      "a path the application role can take (one set_config, from any query the application lets through, a pooled connection that " +
      "kept it, or a function that sets it) opens every other tenant's rows at once, and nothing about the tenant context has to be " +
      'forged. Seen only in the policy text, without data to prove it, the rule non-tenant-setting reports it as medium. Give ' +
      'administrative access its own role instead (a policy TO that role), or fence the hatch with a restrictive tenant policy.',
    precondition:
      'High: a policy (or a function it calls) reads a setting other than the tenant setting, and, as the application role with a ' +
      'tenant set, setting it to \'on\', \'true\', \'1\', \'yes\', \'t\' or a value the policy compares it with opens other tenants\' rows on ' +
      'data: any session may set a custom setting. Seen only in the policy text, the rule non-tenant-setting reports it as medium.',
  },
  split: 'whole',
  async run(context, report) {
    const findings: Finding[] = [];
    const targets: { target: ReadTarget; policy: Policy; settings: string[] }[] = [];
    for (const target of readTargets(context, (relation) => sourcesOf(context, relation))) {
      for (const policy of applyingPolicies(context.analysis, target.relation, 'SELECT')) {
        const settings = otherSettings(context, policy);
        if (settings.length) targets.push({ target, policy, settings });
      }
    }
    const reported = new Set<string>();
    for (const { target, policy, settings } of targets) {
      const { relation, relationPlan, statement, sources } = target;
      if (reported.has(relation.qualified)) continue;
      let spoof: Spoof | null = null;
      for (const tenant of context.tenants) {
        if (spoof) break;
        const state = { kind: 'tenant' as const, tenant };
        const plain = await runAs(context, state, statement);
        const baseline = plain.error ? 0 : tallyRows(context, tenant, plain.rows, { relation: { relation, relationPlan, sources } }).foreignRows;
        for (const setting of settings) {
          if (spoof) break;
          for (const value of candidateValues(context, policy)) {
            const result = await runAs(context, state, statement, [], { before: [setterFor(setting, value)] });
            const base = { check: this.meta.id, relation: relation.qualified, context: `${tenant.label}, ${setting} = '${value}'`, tenant: tenant.id, sql: `${setterFor(setting, value)}; ${shownStatement(statement)}`, missingOwnRows: 0 };
            if (result.error) {
              // The policy rejects the value (an invalid cast of it, say): this value opens nothing.
              context.record({ ...base, outcome: 'pass', rows: 0, foreignRows: 0, error: result.error.message });
              continue;
            }
            const tally = tallyRows(context, tenant, result.rows, { relation: { relation, relationPlan, sources } });
            const gained = tally.foreignRows > baseline;
            context.record({ ...base, outcome: gained ? 'leak' : target.reliable ? 'pass' : 'unreliable', rows: tally.rows, foreignRows: Math.max(0, tally.foreignRows - baseline) });
            if (gained) {
              spoof = { tenant, setting, value, tally, baseline };
              break;
            }
          }
        }
      }
      if (!spoof) continue;
      reported.add(relation.qualified);
      const state = { kind: 'tenant' as const, tenant: spoof.tenant };
      const shown = shownStatement(statement);
      findings.push(report({
        severity: 'high',
        object: relationObject(relation),
        tenant: spoof.tenant.id,
        foreignTenant: [...spoof.tally.foreign.keys()][0],
        message:
          `As ${spoof.tenant.label}, after ${setterFor(spoof.setting, spoof.value)} (which any session may run), ${shown} returns ${describeForeign(context, spoof.tally.foreign)}: ` +
          `policy ${policy.name} reads ${spoof.setting}.`,
        evidence: {
          sql: reproduction(context, state, `${setterFor(spoof.setting, spoof.value)};\n${shown}`),
          context: `${describeContext(context, state)}, and ${spoof.setting} = '${spoof.value}'`,
          rowCount: spoof.tally.rows,
          sampleRows: spoof.tally.samples,
          details: `policy ${policy.name} (${policy.permissive ? 'permissive' : 'restrictive'}, using ${policy.using ?? 'true'}); other tenants' rows without the setting: ${spoof.baseline}, with it: ${spoof.tally.foreignRows}`,
        },
        fix: makeFix(
          [
            comment('do not let a setting decide who sees every tenant: give administrators a role of their own and a policy TO that role'),
            policyStatement('drop-policy', { name: policy.name, table: relation.qualified }, `drop policy ${ident(policy.name)} on ${relationIdent(relation)};`, relationIdent(relation)),
          ],
          [or(' keep it, fenced: a restrictive tenant policy is ANDed with every permissive one', restrictiveFence(context.plan, relation, relationPlan))],
        ),
      }));
    }
    return findings;
  },
});
