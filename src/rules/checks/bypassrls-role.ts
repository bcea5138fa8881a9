import { elevatedRoleFindings } from '../privilege-helpers.js';
import { defineRule } from '../types.js';

export const bypassrlsRole = defineRule({
  order: 190,
  meta: {
    id: 'bypassrls-role',
    title: 'The application role has, or can SET ROLE to a role with, BYPASSRLS',
    severity: 'critical',
    objectKind: 'role',
    summary: 'The application role has BYPASSRLS, or can SET ROLE to a role that has it.',
    example: 'The application role app_user has BYPASSRLS.',
    explanation:
      'A role with the BYPASSRLS attribute skips every row-level security policy, even on tables that FORCE it, so every tenant sees ' +
      'every row. The attribute is not inherited through membership, but a member can SET ROLE to the role whenever it likes. This rule ' +
      'flags the application role itself and every BYPASSRLS role it belongs to (superusers are reported by superuser-role). Fix with ' +
      'ALTER ROLE ... NOBYPASSRLS, or revoke the membership.',
    precondition:
      'Critical: the application role has BYPASSRLS, or is a member of a role with BYPASSRLS (not a superuser: superuser-role ' +
      'reports those) it can SET ROLE to: one statement and no policy applies. role-bypasses-rls and role-graph confirm it as the ' +
      'role.',
    confirmedBy: ['role-bypasses-rls', 'role-graph'],
  },
  evaluate: ({ catalog, plan }, report) => elevatedRoleFindings(catalog, plan, report, 'bypassRls'),
});
