/**
 * Questions the checks ask of the analysis model, answered from it (no SQL text is read here).
 */
import type { Policy, Relation } from '../catalog/types.js';
import { clauseAnalysis, commandAnalysis, relationAnalysis } from './index.js';
import type { Analysis, Branch, Clause, Command, ContextReference, ExpressionAnalysis, OpenKind } from './model.js';

export interface CommandClause {
  command: Command;
  clause: Clause;
}

/** Where a policy decides which rows a command may touch (USING) and which rows it may write (WITH CHECK). */
export const READ_CLAUSES: readonly CommandClause[] = [
  { command: 'SELECT', clause: 'using' },
  { command: 'UPDATE', clause: 'using' },
  { command: 'DELETE', clause: 'using' },
];
export const WRITE_CLAUSES: readonly CommandClause[] = [
  { command: 'INSERT', clause: 'check' },
  { command: 'UPDATE', clause: 'check' },
];
export const ALL_CLAUSES: readonly CommandClause[] = [...READ_CLAUSES, ...WRITE_CLAUSES];

export interface OpenPolicy {
  policy: Policy;
  /** Commands (and clauses) through which the policy lets rows through. */
  uses: CommandClause[];
  /** Its open branches, with the kind that gets through once restrictive policies are ANDed in. */
  branches: { branch: Branch; kind: OpenKind }[];
  /** Restrictive policies that apply and do not fence it. */
  restrictive: Policy[];
}

/**
 * Permissive policies that let rows through without the context, for the commands the role may run, keeping the
 * branches whose effective kind is one of `kinds`. Empty unless row-level security is enabled on the relation.
 */
export function openPolicies(analysis: Analysis, relation: Relation, clauses: readonly CommandClause[], kinds: readonly OpenKind[], commands: readonly Command[]): OpenPolicy[] {
  if (!relation.rlsEnabled) return [];
  const byPolicy = new Map<string, OpenPolicy>();
  for (const { command, clause } of clauses) {
    if (!commands.includes(command)) continue;
    const result = commandAnalysis(analysis, relation.qualified, command, clause);
    for (const path of result?.open ?? []) {
      if (!kinds.includes(path.kind)) continue;
      let entry = byPolicy.get(path.policy.name);
      if (!entry) {
        entry = { policy: path.policy, uses: [], branches: [], restrictive: path.restrictive };
        byPolicy.set(path.policy.name, entry);
      }
      if (!entry.uses.some((use) => use.command === command && use.clause === clause)) entry.uses.push({ command, clause });
      if (!entry.branches.some((known) => known.branch.text === path.branch.text && known.kind === path.kind)) entry.branches.push({ branch: path.branch, kind: path.kind });
    }
  }
  return [...byPolicy.values()];
}

/** Policies that apply to the role for a command (PUBLIC's and those of roles whose rights it inherits). */
export function applyingPolicies(analysis: Analysis, relation: Relation, command: Command): Policy[] {
  return analysis.policies
    .filter((entry) => entry.applies && entry.policy.relation === relation.qualified && (entry.policy.command === 'ALL' || entry.policy.command === command))
    .map((entry) => entry.policy);
}

/** Row-level security applies to the role on this relation (enabled; not a superuser, BYPASSRLS or unforced owner). */
export function rlsApplies(analysis: Analysis, relation: Relation): boolean {
  return relationAnalysis(analysis, relation.qualified)?.rlsApplies ?? false;
}

/** The analysis of a policy's clause (WITH CHECK falls back to USING), or null when the policy has none for it. */
export function policyClause(analysis: Analysis, policy: Policy, clause: Clause): ExpressionAnalysis | null {
  return clauseAnalysis(analysis, policy, clause);
}

/** Every setting reference in the policies that apply to the role on a relation, per policy (USING and WITH CHECK as written). */
export function policySettingUses(analysis: Analysis, relation: Relation): { policy: Policy; uses: ContextReference[] }[] {
  return analysis.policies
    .filter((entry) => entry.applies && entry.policy.relation === relation.qualified)
    .map((entry) => ({
      policy: entry.policy,
      uses: [...(entry.using?.references ?? []), ...(entry.policy.withCheck !== null ? (entry.check?.references ?? []) : [])].filter(
        (reference) => reference.via === null && reference.missingOk !== null,
      ),
    }))
    .filter((entry) => entry.uses.length);
}

/** The settings (names) a policy reads, directly or through helper functions. */
export function settingsRead(analysis: Analysis, policy: Policy): string[] {
  const entry = analysis.policies.find((candidate) => candidate.policy === policy);
  const references = [...(entry?.using?.references ?? []), ...(entry?.check?.references ?? [])];
  const names = new Set<string>();
  for (const reference of references) {
    if (reference.source.kind === 'setting') names.add(reference.source.setting);
    else if (reference.source.kind === 'jwt-claim' && reference.source.setting) names.add(reference.source.setting);
  }
  return [...names];
}

/** True when a policy clause keeps rows to the current tenant/actor (every branch confined; an absent clause does not). */
export function clauseConfines(analysis: Analysis, policy: Policy, clause: Clause): boolean {
  return clauseAnalysis(analysis, policy, clause)?.verdict === 'confined';
}
