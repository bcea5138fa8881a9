import type { ContextReference } from '../analysis/model.js';
import { relationObject } from '../findings.js';
import { PRESETS, userEditableClaim } from '../presets/index.js';
import { listWords, policiesDetails, policiesSql } from './relation-facts.js';
import { defineRule } from './types.js';

/** What a policy decides with a claim: who the tenant or user is (compared with a row column), or a role or flag (compared with a constant). */
function decides(reference: ContextReference): string | null {
  if (reference.use.kind === 'equality') return `compares ${reference.use.relation === reference.relation ? reference.use.column : `${reference.use.relation}.${reference.use.column}`} with it`;
  if (reference.use.kind === 'escape') return reference.use.constant !== null ? `admits rows when it is '${reference.use.constant}'` : 'admits rows on it';
  return null;
}

export const userEditableClaimRule = defineRule({
  meta: {
    id: 'user-editable-claim',
    title: 'Policy reads the tenant or a role from a claim the user writes itself',
    severity: 'high',
    objectKind: 'table',
    summary: 'A policy (or a helper it calls) reads the tenant or a role from a JWT claim the signed-in user can set itself (Supabase user_metadata).',
    example: "On public.invoices, policy members_use_invoices compares org_id with the JWT claim user_metadata.org_id (through public.current_org()): every signed-in user sets it itself with supabase.auth.updateUser({ data }).",
    explanation:
      "Supabase's user_metadata (auth.users.raw_user_meta_data) is written by the user through the auth API " +
      '(`supabase.auth.updateUser({ data: { org_id } })`), and the next token carries it. A policy, or a helper function it calls, ' +
      "that reads the tenant (`org_id = auth.jwt() -> 'user_metadata' ->> 'org_id'`) or a role (`... ->> 'role' = 'admin'`) from " +
      "it lets every signed-in user say which tenant it belongs to: one API call, and it reads another tenant's rows. Read from " +
      'the policy expressions and the helper bodies the analysis inlines, with the claims the preset marks as the user\'s own ' +
      "(Supabase's linter, splinter, flags the same). The probe claim-spoof proves it on data: as a tenant's user, with only " +
      "the user-editable claim set to another tenant, it reads that tenant's rows. Fix: carry the tenant in app_metadata, which " +
      'only the service role writes (auth.admin.updateUserById, a custom access token hook), or look membership up in a table.',
    precondition:
      "high: the preset marks the claim as the user's to write (Supabase user_metadata) and a policy that applies to the role compares a row column, or a constant, with it: any signed-in user rewrites it through the platform's own API",
    confirmedBy: ['claim-spoof'],
  },
  evaluate({ catalog, plan, analysis }, report) {
    const preset = plan.preset ? PRESETS[plan.preset] : null;
    if (!preset || !preset.userEditableClaims.length) return [];
    return catalog.relations
      .filter((relation) => relation.rlsEnabled)
      .flatMap((relation) => {
        const uses: { policy: string; claim: string; via: string | null; how: string }[] = [];
        for (const entry of analysis.policies) {
          if (!entry.applies || entry.policy.relation !== relation.qualified) continue;
          for (const clause of [entry.using, entry.check]) {
            for (const reference of clause?.references ?? []) {
              if (reference.source.kind !== 'jwt-claim' || !userEditableClaim(preset, reference.source.path)) continue;
              const how = decides(reference);
              if (!how) continue;
              const claim = reference.source.path.join('.');
              if (!uses.some((use) => use.policy === entry.policy.name && use.claim === claim && use.how === how)) uses.push({ policy: entry.policy.name, claim, via: reference.via, how });
            }
          }
        }
        if (!uses.length) return [];
        const claims = [...new Set(uses.map((use) => use.claim))];
        const helpers = [...new Set(uses.flatMap((use) => (use.via ? [use.via] : [])))];
        return [
          report({
            severity: 'high',
            object: relationObject(relation),
            message:
              `On ${relation.qualified}, ${uses.map((use) => `policy ${use.policy} ${use.how.replace(/ it\b/, ` the JWT claim ${use.claim}`)}${use.via ? ` (through ${use.via})` : ''}`).join('; ')}: ` +
              `every signed-in user sets ${listWords(claims)} itself (supabase.auth.updateUser({ data })) and so chooses which tenant it reads.`,
            sql: policiesSql(relation),
            details: policiesDetails(relation.policies),
            fix:
              `-- read ${listWords(claims.map((claim) => claim.split('.').slice(1).join('.') || claim))} from app_metadata, which only the service role writes ` +
              `(auth.admin.updateUserById, a custom access token hook), in ${helpers.length ? listWords(helpers) : `the policies ${listWords([...new Set(uses.map((use) => use.policy))])} on ${relation.qualified}`}, e.g.\n` +
              `-- auth.jwt() -> 'app_metadata' ->> '${claims[0]!.split('.').slice(1).join('.')}' instead of auth.jwt() -> 'user_metadata' ->> '${claims[0]!.split('.').slice(1).join('.')}'`,
          }),
        ];
      });
  },
});
