-- The one planted leak of the demo, applied on top of the hardened chat schema (../chat/schema.sql):
-- a view for the "recent activity" sidebar. A view runs with the rights of its owner unless it is
-- created with security_invoker; this one is owned by the superuser that applied the schema, so the
-- policies on messages do not apply to what it reads, and every tenant sees every tenant's messages.
create view recent_messages as
  select m.tenant_id, m.id, m.conversation_id, m.author_id, m.body, m.created_at
  from messages m
  order by m.created_at desc;

grant select on recent_messages to app_user;
