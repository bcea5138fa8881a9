import type { Catalog, Policy, Relation, Role } from './types.js';

/** The role and every role it is a member of, transitively (whose policies and grants apply to it). */
export function memberships(catalog: Catalog, role: string): Set<string> {
  const byName = new Map(catalog.roles.map((candidate) => [candidate.name, candidate]));
  const seen = new Set<string>();
  const queue = [role];
  while (queue.length) {
    const name = queue.shift()!;
    if (seen.has(name)) continue;
    seen.add(name);
    queue.push(...(byName.get(name)?.memberOf ?? []));
  }
  return seen;
}

/** Roles whose privileges the role holds without SET ROLE (membership through INHERIT roles). */
export function inheritedRoles(catalog: Catalog, role: string): Set<string> {
  const byName = new Map(catalog.roles.map((candidate) => [candidate.name, candidate]));
  const seen = new Set<string>([role]);
  const queue = [role];
  while (queue.length) {
    const current = byName.get(queue.shift()!);
    if (!current?.inherit) continue;
    for (const parent of current.memberOf) {
      if (seen.has(parent)) continue;
      seen.add(parent);
      queue.push(parent);
    }
  }
  return seen;
}

export function roleInfo(catalog: Catalog, role: string): Role | undefined {
  return catalog.roles.find((candidate) => candidate.name === role);
}

/**
 * Policies that apply to the role for a command: PUBLIC's, its own and those of roles whose privileges it
 * inherits (check_role_for_policy uses has_privs_of_role: membership through NOINHERIT roles does not count).
 */
export function policiesFor(catalog: Catalog, relation: Relation, role: string, command: 'SELECT' | 'INSERT' | 'UPDATE' | 'DELETE'): Policy[] {
  const roles = inheritedRoles(catalog, role);
  return relation.policies.filter(
    (policy) => (policy.command === 'ALL' || policy.command === command) && policy.roles.some((name) => name === 'public' || roles.has(name)),
  );
}

/** True when the role exercises the owner's rights on the relation, so RLS does not apply unless FORCEd. */
export function actsAsOwner(catalog: Catalog, relation: Relation, role: string): boolean {
  return inheritedRoles(catalog, role).has(relation.owner);
}
