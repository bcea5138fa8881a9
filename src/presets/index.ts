import type { Catalog } from '../catalog/types.js';


/** What the project's own configuration says of its API roles (postgrest.conf: db-anon-role, the user of db-uri). */
export interface PresetRoles {
  anonymousRole?: string;
  authenticator?: string;
}

/** What an ecosystem provides and how its requests carry the tenant and the user. */
export interface Preset {
  name: PresetName;
  /**
   * SQL run as the bootstrap superuser before the schema files, on a database the audit owns (embedded,
   * container): what the platform creates before any migration runs. Never run against a url target.
   */
  setupSql: string | null;
  /** The role a signed-in request runs as, when the scenario gives none. */
  role(catalog: Catalog, given?: PresetRoles): string | null;
  /** The role a request without a JWT runs as (the "missing context" of the platform). */
  anonymousRole(catalog: Catalog, given?: PresetRoles): string | null;
  /** The table of users, whose key a JWT's `sub` carries. */
  usersTable: string | null;
  /**
   * Schemas the platform owns (Supabase's auth, storage, ...): their functions are the platform's API, such
   * as auth.uid(), not the application's, and are not called by function-leak.
   */
  platformSchemas: string[];
  /** The setting the claims travel in. */
  setting: string;
  /**
   * Claims (path prefixes) the signed-in user writes itself, through the platform's own API: a policy that reads
   * the tenant or a role from one of them trusts the user to say who it is (Supabase's user_metadata, which
   * supabase.auth.updateUser({ data }) sets; app_metadata only the service role writes).
   */
  userEditableClaims: string[][];
  /** Columns the signed-in user writes itself through the platform's API (Supabase's auth.users.raw_user_meta_data, which user_metadata is). */
  userEditableColumns: { relation: string; column: string }[];
  /**
   * The request's context as the platform sets it: `$user` is the signed-in user (`sub`), `$tenant` the
   * tenant a claim carries (`tenantClaim`), `$role` the role claim.
   */
  contextSql(tenantClaim: string[]): string;
  /**
   * The claim path the tenant is assumed to travel in when neither the scenario (`tenantClaim`) nor the
   * policies say which claim carries it.
   */
  defaultTenantClaim: string[];
  /**
   * SQL for the signed-in user's id in the policies a fix writes (`(select auth.uid())`), read once per
   * statement; null: the JWT's `sub` read from `setting`.
   */
  currentUserSql: string | null;
  /** How requests reach the application role, as messages name it (the API layer that sends no TRUNCATE or DDL). */
  apiLayer: string;
  /**
   * Where the platform's projects keep their pgTAP tests, as paths relative to the project root: when `marker`
   * is a file there, `--format pgtap` (without --out) writes its test to `file`, which the platform's test
   * runner picks up. Absent: the report folder.
   */
  pgtapTests?: { marker: string[]; file: string[] };
}

/** `json_build_object('a', json_build_object('b', $tenant))` for the claim path a.b. */
export function claimsObject(path: string[]): string {
  return `json_build_object(${claimObject(path)})`;
}

function claimObject(path: string[]): string {
  const [head, ...rest] = path;
  return rest.length ? `'${head}', json_build_object(${claimObject(rest)})` : `'${head}', $tenant`;
}

/**
 * What a fresh Supabase project holds before its migrations run. Facts (not code) from supabase/postgres
 * (migrations/db/init-scripts, migrations/db/migrations, migrations/schema.sql), supabase/auth (migrations)
 * and supabase/storage (migrations/tenant), as of 2025:
 * - roles anon, authenticated (NOLOGIN; INHERIT since 2023) and service_role (BYPASSRLS); authenticator
 *   (LOGIN NOINHERIT) is granted all three; supabase_auth_admin and supabase_storage_admin own their schemas'
 *   tables; anon and authenticated have a short statement_timeout;
 * - the publication supabase_realtime, empty;
 * - schema extensions with uuid-ossp and pgcrypto; the postgres role's search_path is
 *   "$user", public, extensions (so unqualified gen_random_bytes() resolves), as PostgREST's
 *   db-extra-search-path is for API requests;
 * - public: USAGE and default privileges (ALL on tables, functions, sequences) for anon, authenticated,
 *   service_role, as for graphql_public;
 * - auth: users (with raw_app_meta_data, raw_user_meta_data, is_anonymous, ...; RLS enabled, no policy,
 *   no grant to the API roles), identities; auth.uid(), auth.role(), auth.email() (the
 *   request.jwt.claim.<name> setting, else request.jwt.claims ->> name) and auth.jwt() (the claims as jsonb);
 * - storage: buckets and objects (RLS enabled on both; ALL granted to the API roles, so that what a project
 *   may do with files is what its policies on storage.objects allow), storage.foldername(), filename(),
 *   extension().
 * Extensions Supabase adds that the embedded PostgreSQL does not ship (pgjwt, pg_graphql, supabase_vault)
 * are left out; a migration that creates one stops with a message that names it (see schema-files.ts).
 */
const SUPABASE_SETUP = `
do $$ begin
  if not exists (select from pg_roles where rolname = 'anon') then create role anon nologin noinherit; end if;
  if not exists (select from pg_roles where rolname = 'authenticated') then create role authenticated nologin noinherit; end if;
  if not exists (select from pg_roles where rolname = 'service_role') then create role service_role nologin noinherit bypassrls; end if;
  if not exists (select from pg_roles where rolname = 'authenticator') then create role authenticator login noinherit; end if;
  if not exists (select from pg_roles where rolname = 'supabase_auth_admin') then create role supabase_auth_admin login noinherit createrole noreplication; end if;
  if not exists (select from pg_roles where rolname = 'supabase_storage_admin') then create role supabase_storage_admin login noinherit createrole noreplication; end if;
end $$;
alter role anon inherit;
alter role authenticated inherit;
alter role service_role inherit;
alter role anon set statement_timeout = '3s';
alter role authenticated set statement_timeout = '8s';
grant anon, authenticated, service_role to authenticator;
grant authenticator to supabase_storage_admin;
create publication supabase_realtime;
create schema if not exists extensions;
create extension if not exists "uuid-ossp" with schema extensions;
create extension if not exists pgcrypto with schema extensions;
grant usage on schema extensions to anon, authenticated, service_role;
alter role current_user set search_path to "$user", public, extensions;
set search_path to "$user", public, extensions;
grant usage on schema public to anon, authenticated, service_role;
alter default privileges in schema public grant all on tables to anon, authenticated, service_role;
alter default privileges in schema public grant all on functions to anon, authenticated, service_role;
alter default privileges in schema public grant all on sequences to anon, authenticated, service_role;
create schema if not exists graphql_public;
grant usage on schema graphql_public to anon, authenticated, service_role;
alter default privileges in schema graphql_public grant all on tables to anon, authenticated, service_role;
alter default privileges in schema graphql_public grant all on functions to anon, authenticated, service_role;
alter default privileges in schema graphql_public grant all on sequences to anon, authenticated, service_role;
create schema if not exists auth authorization supabase_auth_admin;
create table auth.users (
  instance_id uuid, id uuid not null, aud varchar(255), "role" varchar(255), email varchar(255),
  encrypted_password varchar(255), email_confirmed_at timestamptz, invited_at timestamptz,
  confirmation_token varchar(255), confirmation_sent_at timestamptz, recovery_token varchar(255), recovery_sent_at timestamptz,
  email_change_token_new varchar(255), email_change varchar(255), email_change_sent_at timestamptz, last_sign_in_at timestamptz,
  raw_app_meta_data jsonb, raw_user_meta_data jsonb, is_super_admin boolean, created_at timestamptz, updated_at timestamptz,
  phone text unique default null, phone_confirmed_at timestamptz, phone_change text default '', phone_change_token varchar(255) default '',
  phone_change_sent_at timestamptz,
  confirmed_at timestamptz generated always as (least(email_confirmed_at, phone_confirmed_at)) stored,
  email_change_token_current varchar(255) default '',
  email_change_confirm_status smallint default 0 check (email_change_confirm_status >= 0 and email_change_confirm_status <= 2),
  banned_until timestamptz, reauthentication_token varchar(255) default '', reauthentication_sent_at timestamptz,
  is_sso_user boolean not null default false, deleted_at timestamptz, is_anonymous boolean not null default false,
  constraint users_pkey primary key (id)
);
create unique index users_email_partial_key on auth.users (email) where is_sso_user = false;
create index users_instance_id_idx on auth.users (instance_id);
create table auth.identities (
  provider_id text not null, user_id uuid not null references auth.users (id) on delete cascade, identity_data jsonb not null,
  provider text not null, last_sign_in_at timestamptz, created_at timestamptz, updated_at timestamptz,
  email text generated always as (lower(identity_data ->> 'email')) stored,
  id uuid not null default gen_random_uuid() primary key,
  constraint identities_provider_id_provider_unique unique (provider_id, provider)
);
create index identities_user_id_idx on auth.identities (user_id);
alter table auth.users enable row level security;
alter table auth.identities enable row level security;
alter table auth.users owner to supabase_auth_admin;
alter table auth.identities owner to supabase_auth_admin;
create function auth.uid() returns uuid language sql stable as $f$
  select coalesce(nullif(current_setting('request.jwt.claim.sub', true), ''), (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub'))::uuid
$f$;
create function auth.role() returns text language sql stable as $f$
  select coalesce(nullif(current_setting('request.jwt.claim.role', true), ''), (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'role'))::text
$f$;
create function auth.email() returns text language sql stable as $f$
  select coalesce(nullif(current_setting('request.jwt.claim.email', true), ''), (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'email'))::text
$f$;
create function auth.jwt() returns jsonb language sql stable as $f$
  select coalesce(nullif(current_setting('request.jwt.claim', true), ''), nullif(current_setting('request.jwt.claims', true), ''))::jsonb
$f$;
alter function auth.uid() owner to supabase_auth_admin;
alter function auth.role() owner to supabase_auth_admin;
alter function auth.email() owner to supabase_auth_admin;
alter function auth.jwt() owner to supabase_auth_admin;
grant usage on schema auth to anon, authenticated, service_role;
create schema if not exists storage authorization supabase_storage_admin;
grant usage on schema storage to anon, authenticated, service_role;
create type storage.buckettype as enum ('STANDARD', 'ANALYTICS', 'VECTOR');
create table storage.buckets (
  id text not null primary key, name text not null, owner uuid, created_at timestamptz default now(), updated_at timestamptz default now(),
  public boolean default false, avif_autodetection boolean default false, file_size_limit bigint, allowed_mime_types text[], owner_id text,
  type storage.buckettype not null default 'STANDARD'
);
create unique index bname on storage.buckets (name);
create table storage.objects (
  id uuid not null default gen_random_uuid() primary key, bucket_id text references storage.buckets (id), name text, owner uuid,
  created_at timestamptz default now(), updated_at timestamptz default now(), last_accessed_at timestamptz default now(), metadata jsonb,
  path_tokens text[] generated always as (string_to_array(name, '/')) stored, version text, owner_id text, user_metadata jsonb
);
create unique index bucketid_objname on storage.objects (bucket_id, name);
create index name_prefix_search on storage.objects (name text_pattern_ops);
alter table storage.buckets enable row level security;
alter table storage.objects enable row level security;
create function storage.foldername(name text) returns text[] language plpgsql immutable as $f$
declare _parts text[];
begin
  select string_to_array(name, '/') into _parts;
  return _parts[1 : array_length(_parts, 1) - 1];
end
$f$;
create function storage.filename(name text) returns text language plpgsql immutable as $f$
declare _parts text[];
begin
  select string_to_array(name, '/') into _parts;
  return _parts[array_length(_parts, 1)];
end
$f$;
create function storage.extension(name text) returns text language plpgsql immutable as $f$
declare _parts text[]; _filename text;
begin
  select string_to_array(name, '/') into _parts;
  select _parts[array_length(_parts, 1)] into _filename;
  return reverse(split_part(reverse(_filename), '.', 1));
end
$f$;
alter table storage.buckets owner to supabase_storage_admin;
alter table storage.objects owner to supabase_storage_admin;
alter function storage.foldername(text) owner to supabase_storage_admin;
alter function storage.filename(text) owner to supabase_storage_admin;
alter function storage.extension(text) owner to supabase_storage_admin;
grant all on storage.buckets, storage.objects to anon, authenticated, service_role;
`;

/** The user-editable claim (prefix) a claim path lies under, when the preset marks one. */
export function userEditableClaim(preset: Preset, path: readonly string[]): string[] | null {
  return preset.userEditableClaims.find((prefix) => prefix.length <= path.length && prefix.every((key, index) => path[index] === key)) ?? null;
}

const roleNamed = (catalog: Catalog, name: string) => (catalog.roles.some((role) => role.name === name) ? name : null);

const supabase: Preset = {
  name: 'supabase',
  setupSql: SUPABASE_SETUP,
  role: (catalog) => roleNamed(catalog, 'authenticated'),
  anonymousRole: (catalog) => roleNamed(catalog, 'anon'),
  usersTable: 'auth.users',
  platformSchemas: ['auth', 'storage', 'realtime', 'extensions', 'graphql', 'graphql_public', 'vault', 'pgsodium', 'supabase_functions'],
  setting: 'request.jwt.claims',
  userEditableClaims: [['user_metadata']],
  userEditableColumns: [{ relation: 'auth.users', column: 'raw_user_meta_data' }],
  // Supabase's docs put the tenant in app_metadata, which only the service role writes.
  defaultTenantClaim: ['app_metadata', 'tenant_id'],
  currentUserSql: '(select auth.uid())',
  apiLayer: "Supabase's REST API (PostgREST)",
  // `supabase test db` runs supabase/tests/*.sql.
  pgtapTests: { marker: ['supabase', 'config.toml'], file: ['supabase', 'tests', 'rls-audit.test.sql'] },
  contextSql: (tenantClaim) =>
    `select set_config('request.jwt.claims', json_build_object('sub', $user, 'role', 'authenticated', 'aud', 'authenticated', ` +
    `'email', $user || '@example.test', 'app_metadata', json_build_object('provider', 'email'${tenantClaim[0] === 'app_metadata' && tenantClaim.length > 1 ? `, ${claimObject(tenantClaim.slice(1))}` : ''})` +
    `${tenantClaim[0] !== 'app_metadata' ? `, ${claimObject(tenantClaim)}` : ''})::text, true)`,
};

/**
 * PostgREST: the server connects as an authenticator role (LOGIN NOINHERIT; the user of db-uri) and, per
 * request, switches to the JWT's role (`set local role`), stores the claims as JSON in request.jwt.claims
 * (PostgREST 9 and later) and each claim in request.jwt.claim.<name> (before 9, and what policies written
 * for it still read); a request without a JWT runs as the anonymous role (db-anon-role).
 */
const postgrest: Preset = {
  name: 'postgrest',
  setupSql: null,
  role: (catalog, given = {}) => {
    // The role the authenticator switches to that is not the anonymous one.
    const authenticatorName = given.authenticator ?? 'authenticator';
    const authenticator = catalog.roles.find((role) => role.name === authenticatorName);
    const anonymous = postgrest.anonymousRole(catalog, given);
    const switched = (authenticator?.memberOf ?? []).filter((name) => name !== anonymous);
    return switched.length === 1 ? switched[0]! : null;
  },
  anonymousRole: (catalog, given = {}) =>
    (given.anonymousRole ? roleNamed(catalog, given.anonymousRole) : null) ?? roleNamed(catalog, 'web_anon') ?? roleNamed(catalog, 'anon') ?? roleNamed(catalog, 'api_anon'),
  usersTable: null,
  platformSchemas: [],
  setting: 'request.jwt.claims',
  // What a PostgREST JWT carries is whatever its issuer signs: no claim is the user's to write by itself.
  userEditableClaims: [],
  userEditableColumns: [],
  defaultTenantClaim: ['tenant_id'],
  currentUserSql: null,
  apiLayer: 'PostgREST',
  contextSql: (tenantClaim) =>
    `select set_config('request.jwt.claims', json_build_object('sub', $user, 'role', current_user, ${claimObject(tenantClaim)})::text, true), ` +
    `set_config('request.jwt.claim.sub', coalesce($user, ''), true), set_config('request.jwt.claim.role', current_user, true)` +
    (tenantClaim.length === 1 ? `, set_config('request.jwt.claim.${tenantClaim[0]}', $tenant, true)` : ''),
};

/** Every preset, by name: the one list of preset names (the scenario's `preset`, `--preset`). */
export const PRESETS = { supabase, postgrest };
export type PresetName = keyof typeof PRESETS;
export const PRESET_NAMES = Object.keys(PRESETS) as [PresetName, ...PresetName[]];
