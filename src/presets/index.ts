import type { Catalog } from '../catalog/types.js';

export type PresetName = 'supabase' | 'postgrest';
export const PRESET_NAMES: readonly PresetName[] = ['supabase', 'postgrest'];

/** What an ecosystem provides and how its requests carry the tenant and the user. */
export interface Preset {
  name: PresetName;
  /**
   * SQL run as the bootstrap superuser before the schema files, on a database the audit owns (embedded,
   * container): what the platform creates before any migration runs. Never run against a url target.
   */
  setupSql: string | null;
  /** The role a signed-in request runs as, when the scenario gives none. */
  role(catalog: Catalog): string | null;
  /** The role a request without a JWT runs as (the "missing context" of the platform). */
  anonymousRole(catalog: Catalog): string | null;
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
   * The request's context as the platform sets it: `$user` is the signed-in user (`sub`), `$tenant` the
   * tenant a claim carries (`tenantClaim`), `$role` the role claim.
   */
  contextSql(tenantClaim: string[]): string;
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
 * Supabase (facts from supabase/postgres migrations/db/init-scripts and supabase/auth migrations): roles
 * anon, authenticated (NOLOGIN, INHERIT since 2023) and service_role (BYPASSRLS); authenticator (LOGIN
 * NOINHERIT) is granted all three; every API role has USAGE on public, and default privileges in public
 * grant ALL on tables, functions and sequences to anon, authenticated and service_role. Schema auth holds
 * auth.users (id uuid primary key, email unique, raw_app_meta_data jsonb, ...) and auth.uid(), auth.role(),
 * auth.email() (a request.jwt.claim.<name> setting, else request.jwt.claims ->> name) and auth.jwt() (the
 * claims as jsonb). Tables in auth belong to supabase_auth_admin; API roles have USAGE on auth but no
 * privilege on its tables.
 */
const SUPABASE_SETUP = `
do $$ begin
  if not exists (select from pg_roles where rolname = 'anon') then create role anon nologin noinherit; end if;
  if not exists (select from pg_roles where rolname = 'authenticated') then create role authenticated nologin noinherit; end if;
  if not exists (select from pg_roles where rolname = 'service_role') then create role service_role nologin noinherit bypassrls; end if;
  if not exists (select from pg_roles where rolname = 'authenticator') then create role authenticator login noinherit; end if;
  if not exists (select from pg_roles where rolname = 'supabase_auth_admin') then create role supabase_auth_admin nologin noinherit createrole; end if;
end $$;
alter role anon inherit;
alter role authenticated inherit;
alter role service_role inherit;
grant anon, authenticated, service_role to authenticator;
create schema if not exists extensions;
grant usage on schema public, extensions to anon, authenticated, service_role;
alter default privileges in schema public grant all on tables to anon, authenticated, service_role;
alter default privileges in schema public grant all on functions to anon, authenticated, service_role;
alter default privileges in schema public grant all on sequences to anon, authenticated, service_role;
create schema if not exists auth authorization supabase_auth_admin;
create table auth.users (
  instance_id uuid, id uuid not null unique, aud varchar(255), "role" varchar(255), email varchar(255) unique,
  encrypted_password varchar(255), email_confirmed_at timestamptz, invited_at timestamptz, confirmation_token varchar(255),
  confirmation_sent_at timestamptz, recovery_token varchar(255), recovery_sent_at timestamptz, last_sign_in_at timestamptz,
  raw_app_meta_data jsonb, raw_user_meta_data jsonb, is_super_admin boolean, created_at timestamptz, updated_at timestamptz,
  phone text unique, is_anonymous boolean not null default false,
  constraint users_pkey primary key (id)
);
alter table auth.users owner to supabase_auth_admin;
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
`;

const roleNamed = (catalog: Catalog, name: string) => (catalog.roles.some((role) => role.name === name) ? name : null);

const supabase: Preset = {
  name: 'supabase',
  setupSql: SUPABASE_SETUP,
  role: (catalog) => roleNamed(catalog, 'authenticated'),
  anonymousRole: (catalog) => roleNamed(catalog, 'anon'),
  usersTable: 'auth.users',
  platformSchemas: ['auth', 'storage', 'realtime', 'extensions', 'graphql', 'graphql_public', 'vault', 'pgsodium', 'supabase_functions'],
  setting: 'request.jwt.claims',
  contextSql: (tenantClaim) =>
    `select set_config('request.jwt.claims', json_build_object('sub', $user, 'role', 'authenticated', 'aud', 'authenticated', ` +
    `'email', $user || '@example.test', 'app_metadata', json_build_object('provider', 'email'${tenantClaim[0] === 'app_metadata' && tenantClaim.length > 1 ? `, ${claimObject(tenantClaim.slice(1))}` : ''})` +
    `${tenantClaim[0] !== 'app_metadata' ? `, ${claimObject(tenantClaim)}` : ''})::text, true)`,
};

/**
 * PostgREST: the server connects as an authenticator role (LOGIN NOINHERIT) and, per request, switches
 * to the JWT's role (`set local role`), stores the claims as JSON in request.jwt.claims (PostgREST 9 and
 * later) and each claim in request.jwt.claim.<name> (before 9); a request without a JWT runs as the
 * anonymous role (db-anon-role).
 */
const postgrest: Preset = {
  name: 'postgrest',
  setupSql: null,
  role: (catalog) => {
    // The role the authenticator switches to that is not the anonymous one.
    const authenticator = catalog.roles.find((role) => role.name === 'authenticator');
    const anonymous = postgrest.anonymousRole(catalog);
    const switched = (authenticator?.memberOf ?? []).filter((name) => name !== anonymous);
    return switched.length === 1 ? switched[0]! : null;
  },
  anonymousRole: (catalog) => roleNamed(catalog, 'web_anon') ?? roleNamed(catalog, 'anon') ?? roleNamed(catalog, 'api_anon'),
  usersTable: null,
  platformSchemas: [],
  setting: 'request.jwt.claims',
  contextSql: (tenantClaim) =>
    `select set_config('request.jwt.claims', json_build_object('sub', $user, 'role', current_user, ${claimObject(tenantClaim)})::text, true), ` +
    `set_config('request.jwt.claim.sub', coalesce($user, ''), true)` +
    (tenantClaim.length === 1 ? `, set_config('request.jwt.claim.${tenantClaim[0]}', $tenant, true)` : ''),
};

export const PRESETS: Record<PresetName, Preset> = { supabase, postgrest };
