-- The chat schema from the project's seed document (tenants, users, conversations, messages), made correct:
--   * every tenant-owned table has RLS enabled AND forced (so even the owner is fenced);
--   * the tenant setting is read with missing_ok and nullif(..., ''), so a connection with no tenant, or
--     one whose transaction-local tenant ended (the setting then reads ''), sees nothing instead of
--     erroring or seeing everything;
--   * the setting is read once per statement (the `(select ...)` initplan form), not once per row;
--   * every policy has a WITH CHECK, so rows cannot be written into, or moved to, another tenant;
--   * foreign keys include tenant_id, so a row cannot reference another tenant's parent;
--   * unique constraints include tenant_id, so they reveal nothing about other tenants;
--   * every index on a tenant table starts with tenant_id;
--   * the application role is an ordinary role: no superuser, no BYPASSRLS, owns nothing, no TRUNCATE.

create role app_user nologin;

create table tenants (
  id         integer primary key,
  name       text not null,
  plan       text not null default 'free' check (plan in ('free', 'team', 'enterprise')),
  created_at timestamptz not null default now()
);

create table users (
  tenant_id    integer not null references tenants (id),
  id           bigint generated always as identity,
  email        text not null,
  display_name text not null,
  role         text not null default 'member' check (role in ('member', 'admin')),
  created_at   timestamptz not null default now(),
  primary key (tenant_id, id),
  unique (tenant_id, email)
);

create table conversations (
  tenant_id  integer not null references tenants (id),
  id         bigint generated always as identity,
  created_by bigint not null,
  title      text not null check (char_length(title) between 1 and 200),
  status     text not null default 'active' check (status in ('active', 'archived')),
  created_at timestamptz not null default now(),
  primary key (tenant_id, id),
  foreign key (tenant_id, created_by) references users (tenant_id, id)
);

create table messages (
  tenant_id       integer not null references tenants (id),
  id              bigint generated always as identity,
  conversation_id bigint not null,
  author_id       bigint not null,
  body            text not null,
  created_at      timestamptz not null default now(),
  primary key (tenant_id, id),
  foreign key (tenant_id, conversation_id) references conversations (tenant_id, id),
  foreign key (tenant_id, author_id) references users (tenant_id, id)
);

create index conversations_status_idx on conversations (tenant_id, status);
create index conversations_created_by_idx on conversations (tenant_id, created_by);
create index messages_conversation_idx on messages (tenant_id, conversation_id, created_at);
create index messages_author_idx on messages (tenant_id, author_id);

alter table tenants enable row level security;
alter table tenants force row level security;
alter table users enable row level security;
alter table users force row level security;
alter table conversations enable row level security;
alter table conversations force row level security;
alter table messages enable row level security;
alter table messages force row level security;

create policy tenant_self on tenants
  using (id = (select nullif(current_setting('app.current_tenant', true), '')::integer))
  with check (id = (select nullif(current_setting('app.current_tenant', true), '')::integer));

create policy tenant_isolation on users
  using (tenant_id = (select nullif(current_setting('app.current_tenant', true), '')::integer))
  with check (tenant_id = (select nullif(current_setting('app.current_tenant', true), '')::integer));

create policy conversation_isolation on conversations
  using (tenant_id = (select nullif(current_setting('app.current_tenant', true), '')::integer))
  with check (tenant_id = (select nullif(current_setting('app.current_tenant', true), '')::integer));

create policy message_isolation on messages
  using (tenant_id = (select nullif(current_setting('app.current_tenant', true), '')::integer))
  with check (tenant_id = (select nullif(current_setting('app.current_tenant', true), '')::integer));

grant select on tenants to app_user;
grant select, insert, update, delete on users, conversations, messages to app_user;
