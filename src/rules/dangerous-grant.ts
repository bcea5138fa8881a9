import type { Relation } from '../catalog/types.js';
import { relationObject, type Finding } from '../findings.js';
import { commentText, ident, literal, relationIdent } from '../sql.js';
import { atLeast, type Severity } from '../severity.js';
import { inheritedBy, reachableBy, regclassLiteral, tenantTables } from './privilege-helpers.js';
import { defineRule } from './types.js';

/**
 * Privileges that reach around row-level security, and how bad each is by the severity rubric:
 * - TRUNCATE empties the table for every tenant: policies do not apply to TRUNCATE (high: destroys other tenants' rows).
 * - TRIGGER lets the role attach a trigger that runs for every tenant's writes and can copy NEW rows out (high: a leak path).
 * - REFERENCES lets the role declare a foreign key from a table of its own to the tenant table; referential checks ignore
 *   policies, so inserting a key answers "does any tenant have this row?" (low: an existence oracle). It needs CREATE on
 *   some schema as well, and reads no row.
 */
const DANGEROUS: Record<string, { severity: Severity; why: string }> = {
  TRUNCATE: { severity: 'high', why: 'TRUNCATE ignores row-level security and removes every tenant\'s rows' },
  TRIGGER: { severity: 'high', why: "TRIGGER lets the role attach a trigger that sees (and can copy out) every tenant's inserted and updated rows" },
  REFERENCES: {
    severity: 'low',
    why: 'REFERENCES lets the role point a foreign key of its own table at this one; the referential check ignores policies, so it reveals which keys exist in other tenants',
  },
};

interface Holding {
  privilege: string;
  via: string;
}

export const dangerousGrant = defineRule({
  meta: {
    id: 'dangerous-grant',
    title: 'TRUNCATE, TRIGGER or REFERENCES on a tenant table is granted to the application role',
    severity: 'high',
    objectKind: 'table',
    summary: 'TRUNCATE, TRIGGER or REFERENCES on a tenant table is granted to the application role.',
    example: 'app_user holds TRUNCATE, TRIGGER on public.projects.',
    explanation:
      'Row-level security filters SELECT, INSERT, UPDATE and DELETE only. TRUNCATE empties the table for every tenant (high). TRIGGER ' +
      "lets the role create a trigger that runs on every tenant's writes and can copy their rows elsewhere (high). REFERENCES lets it " +
      'create a foreign key from a table of its own to the tenant table; the referential check ignores policies, so the role learns ' +
      "which keys exist in other tenants (low: an existence oracle, and it also needs CREATE on a schema). This rule reads each tenant " +
      'table\'s ACL for grants to the application role, to PUBLIC and to roles it belongs to; the privileges a table owner holds ' +
      'implicitly are reported here for tables that force RLS (otherwise owner-without-force covers them). Fix: REVOKE the privilege.',
    confirmedBy: ['truncate'],
  },
  evaluate({ catalog, plan }, report) {
    const findings: Finding[] = [];
    const reachable = reachableBy(catalog, plan.role);
    const inherited = inheritedBy(catalog, plan.role);
    for (const { relation } of tenantTables(catalog, plan)) {
      const holdings = heldPrivileges(relation, reachable, inherited.has(relation.owner));
      if (!holdings.length) continue;
      const severity = holdings.map((holding) => DANGEROUS[holding.privilege]!.severity).reduce((a, b) => (atLeast(a, b) ? a : b));
      const privileges = [...new Set(holdings.map((holding) => holding.privilege))];
      const grantees = [...new Set(holdings.map((holding) => holding.via))];
      const revokes = holdings
        .filter((holding) => holding.via !== relation.owner)
        .map((holding) => `revoke ${holding.privilege.toLowerCase()} on ${relationIdent(relation)} from ${holding.via === 'public' ? 'public' : ident(holding.via)};`);
      const owned = holdings.some((holding) => holding.via === relation.owner);
      findings.push(
        report({
          severity,
          object: relationObject(relation),
          message: `The application role ${plan.role} holds ${privileges.join(', ')} on ${relation.qualified} (${grantees
            .map((grantee) => (grantee === plan.role ? 'granted to it' : grantee === 'public' ? 'granted to PUBLIC' : grantee === relation.owner ? `as owner ${grantee}` : `through ${grantee}`))
            .join(', ')}): ${privileges.map((privilege) => DANGEROUS[privilege]!.why).join('; ')}${
            owned ? `; as the owner's member it can also turn FORCE ROW LEVEL SECURITY off` : ''
          }.`,
          sql:
            `select case when a.grantee = 0 then 'public' else pg_get_userbyid(a.grantee) end as grantee, a.privilege_type, pg_get_userbyid(c.relowner) as owner ` +
            `from pg_class c, aclexplode(coalesce(c.relacl, acldefault('r', c.relowner))) a ` +
            `where c.oid = ${regclassLiteral(relation.qualified)} and a.privilege_type in (${privileges.map((privilege) => literal(privilege)).join(', ')});`,
          details: holdings.map((holding) => `${holding.privilege} via ${holding.via}`).join('\n'),
          fix: [
            ...revokes,
            ...(owned ? [`-- ${commentText(plan.role)} holds every privilege as the owner's member: alter table ${commentText(relationIdent(relation))} owner to <a role the application does not use>;`] : []),
          ].join('\n'),
        }),
      );
    }
    return findings;
  },
});

function heldPrivileges(relation: Relation, reachable: Set<string>, actsAsOwner: boolean): Holding[] {
  const holdings: Holding[] = [];
  const seen = new Set<string>();
  for (const grant of relation.grants) {
    if (!(grant.privilege in DANGEROUS)) continue;
    // The owner's own ACL entries are its implicit rights, handled below.
    if (grant.grantee === relation.owner) continue;
    if (grant.grantee !== 'public' && !reachable.has(grant.grantee)) continue;
    const key = `${grant.privilege}:${grant.grantee}`;
    if (seen.has(key)) continue;
    seen.add(key);
    holdings.push({ privilege: grant.privilege, via: grant.grantee });
  }
  // An owner holds every privilege. When RLS is not forced, owner-without-force reports the table (critical); when it
  // is forced, the owner is still fenced for reads and writes but TRUNCATE and TRIGGER reach around it.
  if (actsAsOwner && relation.rlsEnabled && relation.rlsForced) {
    for (const privilege of Object.keys(DANGEROUS)) {
      if (!holdings.some((holding) => holding.privilege === privilege)) holdings.push({ privilege, via: relation.owner });
    }
  }
  return holdings.sort((a, b) => Object.keys(DANGEROUS).indexOf(a.privilege) - Object.keys(DANGEROUS).indexOf(b.privilege));
}
