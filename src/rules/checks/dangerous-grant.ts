import type { Catalog, Relation } from '../../catalog/types.js';
import { fix, revoke } from '../../findings/fix.js';
import { relationObject, type Finding } from '../../findings/finding.js';
import type { TenancyPlan } from '../../plan/tenancy.js';
import { ident, literal, relationIdent } from '../../target/sql.js';
import { worstSeverity, type Severity } from '../../findings/severity.js';
import { apiBarrier, apiBreach, canCreateTemporary, creatableSchemas, reachableBy, regclassLiteral, tenantTables, truncateReach } from '../privilege-helpers.js';
import type { Analysis } from '../../analysis/model.js';
import { defineRule } from '../types.js';

const PRIVILEGES = ['TRUNCATE', 'TRIGGER', 'REFERENCES'] as const;
type Dangerous = (typeof PRIVILEGES)[number];

interface Holding {
  privilege: Dangerous;
  via: string;
}

/** How far the role can really take a privilege it holds on a table: the severity, and why, in words. */
interface Reach {
  severity: Severity;
  why: string;
}

const names = (relations: Relation[]) => relations.map((relation) => relation.qualified).join(', ');

/**
 * The severity of each privilege is that of the path the role can take with it (design.md, severity rubric):
 * - a role reached only through an API layer (PostgREST) runs no TRUNCATE and no DDL: info, unless a function it
 *   may call runs dynamic SQL;
 * - TRUNCATE ignores row-level security: high when it would run (nothing references the table, or the role may
 *   truncate every referencing table, which CASCADE empties too); low when a referencing table it may not
 *   truncate blocks it;
 * - TRIGGER needs a trigger function of the role's own: high when it may create one (CREATE on a schema, or
 *   TEMPORARY on the database for a pg_temp function), low otherwise;
 * - REFERENCES needs a table of the role's own (not a temporary one: those may reference only temporary tables):
 *   an existence oracle (low) either way, which without CREATE on a schema it cannot even build.
 */
function reachOf(catalog: Catalog, analysis: Analysis, plan: TenancyPlan, relation: Relation, privilege: Dangerous, barrier: string | null): Reach {
  if (barrier) return { severity: 'info', why: `${privilege} is out of reach: ${barrier}` };
  const breach = apiBreach(catalog, analysis, plan);
  const through = breach ? ` (${breach})` : '';
  switch (privilege) {
    case 'TRUNCATE': {
      const reach = truncateReach(catalog, plan.role, relation);
      if (reach.kind === 'direct') return { severity: 'high', why: `TRUNCATE ignores row-level security and removes every tenant's rows${through}` };
      if (reach.kind === 'cascade') {
        return { severity: 'high', why: `TRUNCATE ignores row-level security: with CASCADE (foreign keys of ${names(reach.tables)} reference it, and the role may truncate those too) it removes every tenant's rows of all of them${through}` };
      }
      return {
        severity: 'low',
        why:
          `TRUNCATE would ignore row-level security, but foreign keys of ${names(reach.tables)} reference the table, so it runs only with CASCADE, ` +
          `which needs TRUNCATE on ${names(reach.blocking)} as well, and the role lacks it: exploitable only if it gains that privilege (then CASCADE empties those tables too)`,
      };
    }
    case 'TRIGGER': {
      const schemas = creatableSchemas(catalog, plan.role);
      const temporary = canCreateTemporary(catalog, plan.role);
      if (schemas.length || temporary) {
        const where = [...schemas.map((schema) => `schema ${schema}`), ...(temporary ? ['pg_temp (TEMPORARY on the database)'] : [])].join(', ');
        return { severity: 'high', why: `TRIGGER lets the role attach a trigger function of its own (it may create one in ${where}) that sees, changes or copies out every tenant's inserted and updated rows${through}` };
      }
      return {
        severity: 'low',
        why: 'TRIGGER would let the role attach a trigger that sees every tenant\'s writes, but it needs a trigger function of its own, and the role may create one nowhere (no CREATE on any schema, no TEMPORARY on the database): exploitable only if it gains one of those',
      };
    }
    case 'REFERENCES': {
      const schemas = creatableSchemas(catalog, plan.role);
      return {
        severity: 'low',
        why: schemas.length
          ? `REFERENCES lets the role point a foreign key of a table of its own (it may create one in ${schemas.map((schema) => `schema ${schema}`).join(', ')}) at this one; the referential check ignores policies, so it reveals which keys exist in other tenants${through}`
          : 'REFERENCES would let the role probe which keys exist in other tenants through a foreign key of a table of its own, but it may create a table in no schema (temporary tables may reference only temporary ones): exploitable only if it gains CREATE on a schema',
      };
    }
  }
}

export const dangerousGrant = defineRule({
  order: 210,
  meta: {
    id: 'dangerous-grant',
    title: 'TRUNCATE, TRIGGER or REFERENCES on a tenant table is granted to the application role',
    severity: 'high',
    objectKind: 'table',
    summary: 'TRUNCATE, TRIGGER or REFERENCES on a tenant table is granted to the application role.',
    example: 'app_user holds TRUNCATE, TRIGGER on public.projects.',
    explanation:
      'Row-level security filters SELECT, INSERT, UPDATE and DELETE only. TRUNCATE empties the table for every tenant. TRIGGER lets the ' +
      "role create a trigger that runs on every tenant's writes and can copy their rows elsewhere. REFERENCES lets it create a foreign " +
      'key from a table of its own to the tenant table; the referential check ignores policies, so the role learns which keys exist in ' +
      "other tenants (an existence oracle). This rule reads each tenant table's ACL for grants to the application role, to PUBLIC and to " +
      'roles it belongs to, and rates each privilege by what the role needs to use it (see the precondition). What a table\'s owner holds ' +
      'is ownership, reported by owner-without-force and role-owns-table. Fix: REVOKE the privilege.',
    precondition:
      'A role reached only through an API layer (--preset, or `api: true`) runs no TRUNCATE and no DDL: info, unless a function it may call ' +
      'runs dynamic SQL. TRUNCATE: high when it would run (no foreign key references the table, or the role may truncate every referencing ' +
      'table, which CASCADE empties too; the truncate probe runs it), low when a referencing table it may not truncate blocks it. TRIGGER: ' +
      'high when the role may create a trigger function (CREATE on a schema, or TEMPORARY on the database for pg_temp), low otherwise. ' +
      'REFERENCES: low (an existence oracle; without CREATE on a schema it cannot even build the referencing table).',
    confirmedBy: ['truncate'],
  },
  evaluate({ catalog, plan, analysis }, report) {
    const findings: Finding[] = [];
    const reachable = reachableBy(catalog, plan.role);
    const barrier = apiBarrier(catalog, analysis, plan);
    for (const { relation } of tenantTables(catalog, plan)) {
      const holdings = heldPrivileges(relation, reachable);
      if (!holdings.length) continue;
      const privileges = [...new Set(holdings.map((holding) => holding.privilege))];
      const reaches = new Map(privileges.map((privilege) => [privilege, reachOf(catalog, analysis, plan, relation, privilege, barrier)]));
      const severity = worstSeverity([...reaches.values()].map((reach) => reach.severity));
      const grantees = [...new Set(holdings.map((holding) => holding.via))];
      findings.push(
        report({
          severity,
          object: relationObject(relation),
          message: `The application role ${plan.role} holds ${privileges.join(', ')} on ${relation.qualified} (${grantees
            .map((grantee) => (grantee === plan.role ? 'granted to it' : grantee === 'public' ? 'granted to PUBLIC' : `through ${grantee}`))
            .join(', ')}): ${
            barrier
              ? `${privileges.length === 1 ? 'it is' : 'they are'} out of reach: ${barrier} (info)`
              : privileges.map((privilege) => `${reaches.get(privilege)!.why} (${reaches.get(privilege)!.severity})`).join('; ')
          }.`,
          sql:
            `select case when a.grantee = 0 then 'public' else pg_get_userbyid(a.grantee) end as grantee, a.privilege_type ` +
            `from pg_class c, aclexplode(coalesce(c.relacl, acldefault('r', c.relowner))) a ` +
            `where c.oid = ${regclassLiteral(relation.qualified)} and a.privilege_type in (${privileges.map((privilege) => literal(privilege)).join(', ')});`,
          details: holdings.map((holding) => `${holding.privilege} via ${holding.via}: ${reaches.get(holding.privilege)!.severity}`).join('\n'),
          fix: fix(holdings.map((holding) => revoke(holding.privilege.toLowerCase(), relationIdent(relation), holding.via === 'public' ? 'public' : ident(holding.via)))),
        }),
      );
    }
    return findings;
  },
});

/** TRUNCATE, TRIGGER and REFERENCES granted to the role, to PUBLIC or to a role it can become (not the owner's implicit rights). */
function heldPrivileges(relation: Relation, reachable: Set<string>): Holding[] {
  const holdings: Holding[] = [];
  const seen = new Set<string>();
  for (const grant of relation.grants) {
    if (!(PRIVILEGES as readonly string[]).includes(grant.privilege)) continue;
    // The owner's own ACL entries are its implicit rights: ownership is reported by owner-without-force and role-owns-table.
    if (grant.grantee === relation.owner) continue;
    if (grant.grantee !== 'public' && !reachable.has(grant.grantee)) continue;
    const key = `${grant.privilege}:${grant.grantee}`;
    if (seen.has(key)) continue;
    seen.add(key);
    holdings.push({ privilege: grant.privilege as Dangerous, via: grant.grantee });
  }
  return holdings.sort((a, b) => PRIVILEGES.indexOf(a.privilege) - PRIVILEGES.indexOf(b.privilege));
}
