import type { ContextReference } from '../../analysis/model.js';
import { relationObject } from '../../findings/finding.js';
import { comment, fix } from '../../findings/fix.js';
import { cause } from '../../findings/cause.js';
import { PRESETS, userEditableClaim } from '../../presets/index.js';
import { listWords, policiesDetails, policiesSql } from '../relation-facts.js';
import { defineRule } from '../types.js';

/** What a policy decides with a claim (`subject`): who the tenant or user is (compared with a row column), or a role or flag (compared with a constant). */
function decides(reference: ContextReference, subject: string): string | null {
  if (reference.use.kind === 'equality') return `compares ${reference.use.relation === reference.relation ? reference.use.column : `${reference.use.relation}.${reference.use.column}`} with ${subject}`;
  if (reference.use.kind === 'escape') return reference.use.constant !== null ? `admits rows when ${subject} is '${reference.use.constant}'` : `admits rows on ${subject}`;
  return null;
}

export const userEditableClaimRule = defineRule({
  order: 160,
  meta: {
    id: 'user-editable-claim',
    title: 'Policy reads the tenant or a role from a claim the user writes itself',
    severity: 'high',
    objectKind: 'table',
    summary: 'A policy (or a helper it calls) reads the tenant or a role from a JWT claim the signed-in user can set itself (Supabase user_metadata, auth.users.raw_user_meta_data).',
    example: "On public.invoices, policy members_use_invoices compares org_id with the JWT claim user_metadata.org_id (through public.current_org()): every signed-in user sets it itself with supabase.auth.updateUser({ data }).",
    explanation:
      "Supabase's user_metadata (auth.users.raw_user_meta_data) is written by the user through the auth API " +
      '(`supabase.auth.updateUser({ data: { org_id } })`), and the next token carries it. A policy, or a helper function it calls, ' +
      "that reads the tenant (`org_id = auth.jwt() -> 'user_metadata' ->> 'org_id'`) or a role (`... ->> 'role' = 'admin'`) from " +
      "it, or from auth.users.raw_user_meta_data (the same metadata, read by a security definer helper), lets every signed-in user " +
      "say which tenant it belongs to: one API call, and it reads another tenant's rows. Read from " +
      'the policy expressions and the helper bodies the analysis inlines, with the claims the preset marks as the user\'s own ' +
      "(Supabase's linter, splinter, flags the same). The probe claim-spoof proves it on data: as a tenant's user, with only " +
      "the user-editable claim set to another tenant, it reads that tenant's rows. Fix: carry the tenant in app_metadata, which " +
      'only the service role writes (auth.admin.updateUserById, a custom access token hook), or look membership up in a table.',
    precondition:
      "high: the preset marks the claim as the user's to write (Supabase user_metadata) and a policy that applies to the role compares a row column, or a constant, with it, or reads the column that holds it (auth.users.raw_user_meta_data): any signed-in user rewrites it through the platform's own API",
    confirmedBy: ['claim-spoof'],
  },
  evaluate({ catalog, plan, analysis }, report) {
    const preset = plan.preset ? PRESETS[plan.preset] : null;
    if (!preset || (!preset.userEditableClaims.length && !preset.userEditableColumns.length)) return [];
    return catalog.relations
      .filter((relation) => relation.rlsEnabled)
      .flatMap((relation) => {
        const uses: { policy: string; claim: string; read: string; via: string | null; how: string }[] = [];
        const add = (use: (typeof uses)[number]) => {
          if (!uses.some((other) => other.policy === use.policy && other.how === use.how)) uses.push(use);
        };
        for (const entry of analysis.policies) {
          if (!entry.applies || entry.policy.relation !== relation.qualified) continue;
          for (const clause of [entry.using, entry.check]) {
            // The metadata itself, read from the users table (by a security definer helper: the API roles may not read it).
            for (const read of clause?.columnsRead ?? []) {
              if (!preset.userEditableColumns.some((column) => column.relation === read.relation && column.column === read.column)) continue;
              add({ policy: entry.policy.name, claim: `${read.relation}.${read.column}`, read: `${read.relation}.${read.column}`, via: null, how: `reads ${read.relation}.${read.column}` });
            }
            for (const reference of clause?.references ?? []) {
              if (reference.source.kind !== 'jwt-claim' || !userEditableClaim(preset, reference.source.path)) continue;
              const claim = reference.source.path.join('.');
              const how = decides(reference, `the JWT claim ${claim}`);
              if (how) add({ policy: entry.policy.name, claim, read: `auth.jwt() -> '${userEditableClaim(preset, reference.source.path)!.join("' -> '")}'`, via: reference.via, how });
            }
          }
        }
        if (!uses.length) return [];
        const claims = [...new Set(uses.map((use) => use.claim))];
        const where = [...new Set(uses.flatMap((use) => (use.via ? [use.via] : [])))];
        return [
          report({
            severity: 'high',
            object: relationObject(relation),
            message:
              `On ${relation.qualified}, ${uses.map((use) => `policy ${use.policy} ${use.how}${use.via ? ` (through ${use.via})` : ''}`).join('; ')}: ` +
              `every signed-in user sets ${listWords(claims)} itself (supabase.auth.updateUser({ data })) and so chooses what it reads.`,
            sql: policiesSql(relation),
            details: policiesDetails(relation.policies),
            fix: fix([
              comment('carry the tenant (and roles) in app_metadata, which only the service role writes (auth.admin.updateUserById, a custom access token hook),'),
              comment(
                `and read it there (auth.jwt() -> 'app_metadata' instead of ${listWords([...new Set(uses.map((use) => use.read))])}) ` +
                  `in ${where.length ? listWords(where) : `the policies ${listWords([...new Set(uses.map((use) => use.policy))])} on ${relation.qualified} and the helpers they call`}`,
              ),
            ]),
            // One helper that reads the claim is one defect, whichever tables' policies call it.
            cause: cause('user-editable-claim', where.length ? { kind: 'function', name: [...where].sort().join(', ') } : relationObject(relation), { reads: [...new Set(uses.map((use) => use.read))] }),
          }),
        ];
      });
  },
});
