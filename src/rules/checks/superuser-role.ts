import { elevatedRoleFindings } from '../privilege-helpers.js';
import { defineRule } from '../types.js';

export const superuserRole = defineRule({
  order: 180,
  meta: {
    id: 'superuser-role',
    title: 'The application role is, or can become, a superuser',
    severity: 'critical',
    objectKind: 'role',
    summary: 'The application role is, or can SET ROLE to, a superuser.',
    example: 'app_user can SET ROLE to ops_admin, a superuser (app_user -> support -> ops_admin).',
    explanation:
      'A superuser is exempt from every row-level security policy, FORCEd or not. This rule flags the application role when it is a ' +
      'superuser, and every superuser role it is a member of (directly or through other roles): membership lets it SET ROLE to that ' +
      'role at any time, and superuser status itself is never inherited, so the risk is one statement away. Give the application an ' +
      'ordinary role (ALTER ROLE ... NOSUPERUSER) and revoke memberships in superuser roles.',
    precondition:
      'Critical: the application role is a superuser, or is a member (directly or through other roles) of a superuser role it can ' +
      'SET ROLE to: one statement and no policy applies. role-bypasses-rls and role-graph confirm it as the role.',
    confirmedBy: ['role-bypasses-rls', 'role-graph'],
  },
  evaluate: ({ catalog, plan }, report) => elevatedRoleFindings(catalog, plan, report, 'superuser'),
});
