import { relationObject, type Finding } from '../../findings/finding.js';
import { comment, fix } from '../../findings/fix.js';
import { PRESETS, userEditableClaim } from '../../presets/index.js';
import type { Actor } from '../../seed/actors.js';
import { actorOf, contextSetter, reproduction, runAs, sourcesOf } from '../context.js';
import { describeForeign, tallyRows } from '../foreign-rows.js';
import { readTargets, shownStatement } from '../targets.js';
import { defineProbe } from '../types.js';

export const claimSpoof = defineProbe({
  order: 110,
  meta: {
    id: 'claim-spoof',
    matrix: 'read',
    title: "A tenant's user sets the claim that carries the tenant to another tenant",
    severity: 'high',
    objectKind: 'table',
    summary: "As a tenant's user, with only the user-editable claim that carries the tenant set to another tenant, reads that tenant's rows.",
    example:
      "As tenant A's user, with the JWT claim user_metadata.org_id set to tenant B (supabase.auth.updateUser({ data: { org_id } })), `select * from \"public\".\"invoices\"` returns 20 rows of tenant B.",
    explanation:
      "Runs when the tenant travels in a claim the preset marks as the user's own (Supabase's user_metadata, which " +
      '`supabase.auth.updateUser({ data })` writes and the next token carries). As each tenant\'s user, it keeps every claim the ' +
      "platform signs for that user (sub, role, app_metadata) and sets only the user-editable claim to another tenant's id, " +
      "as the user can, then reads every tenant-owned table. Other tenants' rows read that way are high: any signed-in user " +
      'reads any tenant it names. Fix: carry the tenant in app_metadata, which only the service role writes, or look membership ' +
      'up in a table (the rule user-editable-claim names the policies and helpers that read it).',
    precondition:
      "high: the tenant travels in a claim the preset marks as the user's to write (Supabase user_metadata), and, as a tenant's user with only that claim set to another tenant, a read returns that tenant's rows",
  },
  split: 'whole',
  async run(context, report) {
    const { plan } = context;
    const preset = plan.preset ? PRESETS[plan.preset] : null;
    const claim = plan.tenantClaim;
    if (!preset || !claim || !userEditableClaim(preset, claim) || context.scenario.contextSql !== undefined || context.tenants.length < 2) return [];
    const findings: Finding[] = [];
    for (const target of readTargets(context, (relation) => sourcesOf(context, relation))) {
      const { relation, relationPlan, statement, sources } = target;
      const shown = shownStatement(statement);
      for (const [index, tenant] of context.tenants.entries()) {
        const victim = context.tenants[(index + 1) % context.tenants.length]!;
        const own = actorOf(context, tenant);
        // The same user (sub, role, app_metadata as the platform signs them); only the claim it writes itself names the victim.
        const spoofer: Actor = { label: `${tenant.label}'s user with ${claim.join('.')} = ${victim.label}`, tenants: [victim], user: own.user, role: own.role };
        const state = { kind: 'actor' as const, actor: spoofer };
        const result = await runAs(context, state, statement);
        const base = { check: this.meta.id, relation: relation.qualified, context: `${tenant.label}, ${claim.join('.')} = '${victim.id}'`, tenant: tenant.id, sql: `${contextSetter(context, spoofer)} ${shown}`, missingOwnRows: 0 };
        if (result.error) {
          context.record({ ...base, outcome: result.contextFailed ? 'error' : 'pass', rows: 0, foreignRows: 0, error: result.error.message });
          continue;
        }
        const tally = tallyRows(context, tenant, result.rows, { relation: { relation, relationPlan, sources } });
        context.record({ ...base, outcome: tally.foreignRows ? 'leak' : target.reliable ? 'pass' : 'unreliable', rows: tally.rows, foreignRows: tally.foreignRows });
        if (!tally.foreignRows) continue;
        findings.push(report({
          severity: 'high',
          object: relationObject(relation),
          tenant: tenant.id,
          foreignTenant: [...tally.foreign.keys()][0],
          message:
            `As ${tenant.label}'s user, with the JWT claim ${claim.join('.')} set to ${victim.label} (a claim the user writes itself: supabase.auth.updateUser({ data })), ` +
            `${shown} returns ${describeForeign(context, tally.foreign)}.`,
          evidence: {
            sql: reproduction(context, state, shown),
            context: `role ${plan.role}, the claims of ${tenant.label}'s user${own.user !== null ? ` (user ${own.user})` : ''}, with ${claim.join('.')} = '${victim.id}' (${victim.label}): the one claim changed, as the user can`,
            rowCount: tally.rows,
            sampleRows: tally.samples,
            details: `claims: ${contextSetter(context, spoofer)}; rows of other tenants read: ${tally.foreignRows}`,
          },
          fix: fix([
            comment('carry the tenant in app_metadata, which only the service role writes (auth.admin.updateUserById, a custom access token hook),'),
            comment(`and read it there in the policies of ${relation.qualified} and the helpers they call (see user-editable-claim)`),
          ]),
        }));
        break;
      }
    }
    return findings;
  },
});
