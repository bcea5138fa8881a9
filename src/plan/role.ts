/** Planning the application role when none is given. */
import type { Catalog } from '../catalog/types.js';
import { AuditError } from '../errors.js';
import { requireRelation } from '../catalog/lookup.js';
import type { RelationPlan } from './tenancy.js';
import type { PlanNote, RoleGrants } from './notes.js';

const DATA_PRIVILEGES = ['SELECT', 'INSERT', 'UPDATE', 'DELETE'];

/**
 * The application role when none is given, found as a reviewer would: a role granted privileges on tenant
 * data that owns no relation and is not a superuser. Of several, the one granted the most of SELECT, INSERT,
 * UPDATE and DELETE on tenant-owned relations (a role without BYPASSRLS first), and the note names the others.
 * None: the run stops and says why (a run as a role that reaches nothing would prove nothing).
 */
export function discoverRole(catalog: Catalog, relations: RelationPlan[], notes: PlanNote[]): string {
  const owners = new Set(catalog.relations.map((relation) => relation.owner));
  const roles = new Map(catalog.roles.map((role) => [role.name, role]));
  const tenantData = relations.filter((entry) => entry.tenancy !== 'shared').map((entry) => requireRelation(catalog, entry.relation));
  /** Per candidate: the relations it is granted anything on, and its SELECT/INSERT/UPDATE/DELETE grants there. */
  const candidates = new Map<string, { relations: Set<string>; data: Map<string, Set<string>> }>();
  const publicGrants = new Set<string>();
  for (const relation of tenantData) {
    for (const grant of relation.grants) {
      if (grant.grantee === 'public') {
        publicGrants.add(relation.qualified);
        continue;
      }
      if (owners.has(grant.grantee) || roles.get(grant.grantee)?.superuser) continue;
      const candidate = candidates.get(grant.grantee) ?? { relations: new Set<string>(), data: new Map<string, Set<string>>() };
      candidate.relations.add(relation.qualified);
      if (DATA_PRIVILEGES.includes(grant.privilege)) {
        const privileges = candidate.data.get(grant.privilege) ?? new Set<string>();
        privileges.add(relation.qualified);
        candidate.data.set(grant.privilege, privileges);
      }
      candidates.set(grant.grantee, candidate);
    }
  }
  if (!candidates.size) {
    const owner = [...new Set(tenantData.map((relation) => relation.owner))].sort();
    const reached = publicGrants.size ? ` (PUBLIC is granted access to ${[...publicGrants].sort().join(', ')}, which every role reaches)` : '';
    throw new AuditError(
      `no application role found: no role other than the owner of the tables (${owner.join(', ') || 'none'}) or a superuser is granted access to tenant data${reached}. ` +
        `If the application connects as ${owner.length === 1 ? owner[0] : 'an owner'}, row-level security does not apply to it unless the tables FORCE ROW LEVEL SECURITY (rls-audit lint reports it as owner-without-force). ` +
        "Create the role the application connects as and grant it what it uses (in a migration), or give it with --role NAME",
    );
  }
  const grantCount = (name: string) => [...candidates.get(name)!.data.values()].reduce((sum, set) => sum + set.size, 0);
  const ranked = [...candidates.keys()].sort(
    (a, b) =>
      Number(roles.get(a)?.bypassRls ?? false) - Number(roles.get(b)?.bypassRls ?? false) ||
      grantCount(b) - grantCount(a) ||
      candidates.get(b)!.relations.size - candidates.get(a)!.relations.size ||
      a.localeCompare(b),
  );
  const grantsOf = (name: string): RoleGrants => {
    const { data, relations: granted } = candidates.get(name)!;
    return {
      privileges: DATA_PRIVILEGES.filter((privilege) => data.has(privilege)).map((privilege) => ({ privilege, relations: data.get(privilege)!.size })),
      granted: granted.size,
      tenantRelations: tenantData.length,
      bypassRls: roles.get(name)?.bypassRls ?? false,
    };
  };
  const [role, ...others] = ranked;
  if (!others.length) {
    notes.push({ kind: 'role', source: 'only', role: role!, grants: grantsOf(role!) });
  } else {
    const why = roles.get(role!)?.bypassRls === roles.get(others[0]!)?.bypassRls ? 'most' : 'without-bypassrls';
    notes.push({ kind: 'role', source: 'ranked', role: role!, why, candidates: ranked.length, grants: grantsOf(role!), others: others.map((name) => ({ role: name, grants: grantsOf(name) })) });
  }
  return role!;
}
