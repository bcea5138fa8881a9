import { existsSync, statSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { parse as parseToml } from 'smol-toml';
import { AuditError, errorMessage } from '../errors.js';
import type { PresetName } from '../presets/index.js';

/**
 * A project found in a directory without a scenario: where its migrations are, in the order its tool
 * applies them, and the platform it runs on.
 */
export interface ProjectLayout {
  /** What was found, e.g. `supabase/ (config.toml, 3 migrations)`, for the terminal and the scenario's header. */
  description: string;
  /** The SQL files (or a directory of them, applied by name), absolute, in the order the project's tool applies them. */
  schema: string[];
  preset?: PresetName;
  /** From postgrest.conf: db-anon-role, the user of db-uri, db-schemas; exposedSchemas also from Supabase's config.toml ([api] schemas). */
  anonymousRole?: string;
  authenticator?: string;
  exposedSchemas?: string[];
  /** The scenario's name: the project directory's. */
  name: string;
}

const isFile = (file: string) => existsSync(file) && statSync(file).isFile();
const isDirectory = (dir: string) => existsSync(dir) && statSync(dir).isDirectory();
const count = (files: string[], what = 'migration') => `${files.length} ${what}${files.length === 1 ? '' : 's'}`;

async function sqlFilesIn(dir: string): Promise<string[]> {
  const names = (await readdir(dir)).filter((name) => name.toLowerCase().endsWith('.sql') && isFile(path.join(dir, name))).sort();
  // Tools that keep both directions (golang-migrate, sqlx, node-pg-migrate's sql files): only the way up.
  const up = names.filter((name) => /\.up\.sql$/i.test(name));
  return (up.length ? up : names.filter((name) => !/\.down\.sql$/i.test(name))).map((name) => path.join(dir, name));
}

/** `supabase/config.toml` with `supabase/migrations/*.sql`, applied by name (their timestamp) as `supabase db reset` does. */
async function supabaseLayout(cwd: string): Promise<Omit<ProjectLayout, 'name'> | null> {
  const root = path.join(cwd, 'supabase');
  if (!isFile(path.join(root, 'config.toml'))) return null;
  const migrations = path.join(root, 'migrations');
  const schema = isDirectory(migrations) ? await sqlFilesIn(migrations) : [];
  if (!schema.length) throw new AuditError('supabase/config.toml found but supabase/migrations holds no .sql file: create the migrations (supabase migration new NAME, or supabase db diff), or give --schema FILE.sql');
  const exposedSchemas = await supabaseApiSchemas(path.join(root, 'config.toml'));
  // The directory, which stands for its *.sql in name order: a scenario init writes keeps up with new migrations.
  return {
    description: `supabase/ (config.toml${exposedSchemas ? `, API schemas ${exposedSchemas.join(', ')}` : ''}, ${count(schema)} in supabase/migrations)`,
    schema: [migrations],
    preset: 'supabase',
    ...(exposedSchemas ? { exposedSchemas } : {}),
  };
}

/** The schemas Supabase's REST API exposes: `[api] schemas` of config.toml (what PostgREST gets as db-schemas). */
async function supabaseApiSchemas(file: string): Promise<string[] | undefined> {
  let config: Record<string, unknown>;
  try {
    config = parseToml(await readFile(file, 'utf8'));
  } catch (error) {
    throw new AuditError(`${file} is not valid TOML (${errorMessage(error)}): fix it, or give a scenario with --schema`);
  }
  const schemas = (config.api as { schemas?: unknown } | undefined)?.schemas;
  return Array.isArray(schemas) && schemas.every((entry) => typeof entry === 'string') && schemas.length ? schemas : undefined;
}

/** `prisma/migrations/<timestamp>_<name>/migration.sql`, in directory order as `prisma migrate deploy` applies them. */
async function prismaLayout(cwd: string): Promise<Omit<ProjectLayout, 'name'> | null> {
  const migrations = path.join(cwd, 'prisma', 'migrations');
  if (!isDirectory(migrations)) return null;
  const dirs = (await readdir(migrations)).filter((name) => isDirectory(path.join(migrations, name))).sort();
  const schema = dirs.map((name) => path.join(migrations, name, 'migration.sql')).filter(isFile);
  if (!schema.length) return null;
  return { description: `prisma/migrations (${count(schema)})`, schema };
}

interface DrizzleJournal {
  entries?: { idx?: number; tag?: string }[];
}

/** `drizzle/*.sql` in the order of `drizzle/meta/_journal.json`, which drizzle-kit migrate follows. */
async function drizzleLayout(cwd: string): Promise<Omit<ProjectLayout, 'name'> | null> {
  const root = path.join(cwd, 'drizzle');
  const journalFile = path.join(root, 'meta', '_journal.json');
  if (!isFile(journalFile)) return null;
  let journal: DrizzleJournal;
  try {
    journal = JSON.parse(await readFile(journalFile, 'utf8')) as DrizzleJournal;
  } catch (error) {
    throw new AuditError(`drizzle/meta/_journal.json cannot be read: ${errorMessage(error)}. Fix it, or give the migrations with --schema`);
  }
  const entries = [...(journal.entries ?? [])].sort((a, b) => (a.idx ?? 0) - (b.idx ?? 0));
  const schema = entries.map((entry) => path.join(root, `${entry.tag ?? ''}.sql`));
  const missing = schema.filter((file) => !isFile(file));
  if (missing.length) throw new AuditError(`drizzle/meta/_journal.json lists ${missing.map((file) => path.relative(cwd, file)).join(', ')}, which ${missing.length === 1 ? 'does' : 'do'} not exist: run drizzle-kit generate, or give --schema`);
  if (!schema.length) return null;
  return { description: `drizzle/ (${count(schema)} in the order of drizzle/meta/_journal.json)`, schema };
}

/** Rails with `config.active_record.schema_format = :sql`: db/structure.sql, a pg_dump of the schema. */
async function railsLayout(cwd: string): Promise<Omit<ProjectLayout, 'name'> | null> {
  const file = path.join(cwd, 'db', 'structure.sql');
  return isFile(file) ? { description: 'db/structure.sql', schema: [file] } : null;
}

async function migrationsLayout(cwd: string): Promise<Omit<ProjectLayout, 'name'> | null> {
  const dir = path.join(cwd, 'migrations');
  if (!isDirectory(dir)) return null;
  const schema = await sqlFilesIn(dir);
  if (!schema.length) return null;
  // The directory stands for every *.sql in it by name: kept when that is exactly these files (no .down.sql beside them).
  const every = (await readdir(dir)).filter((name) => name.toLowerCase().endsWith('.sql') && isFile(path.join(dir, name)));
  return { description: `migrations/ (${count(schema)}, by name)`, schema: every.length === schema.length ? [dir] : schema };
}

/** The settings of a PostgREST configuration file: `key = "value"` or `key = value`, `#` comments. */
export function parsePostgrestConfig(text: string): Map<string, string> {
  const settings = new Map<string, string>();
  for (const line of text.split(/\r?\n/)) {
    const match = /^\s*([A-Za-z][\w.-]*)\s*=\s*(.*?)\s*$/.exec(line);
    if (!match) continue;
    let value = match[2]!;
    if (/^"/.test(value)) value = /^"((?:[^"\\]|\\.)*)"/.exec(value)?.[1]?.replace(/\\(.)/g, '$1') ?? value;
    else value = value.replace(/\s+#.*$/, '');
    settings.set(match[1]!, value);
  }
  return settings;
}

/** The user a PostgreSQL URI logs in as, when it is a URI (not `$(PGRST_DB_URI)` nor a key=value string). */
function uriUser(uri: string | undefined): string | undefined {
  if (!uri || !/^postgres(ql)?:\/\//i.test(uri)) return undefined;
  try {
    return decodeURIComponent(new URL(uri).username) || undefined;
  } catch {
    return undefined;
  }
}

const POSTGREST_CONFIGS = ['postgrest.conf', 'postgrest.config'];

async function postgrestConfig(cwd: string): Promise<{ file: string; anonymousRole?: string; authenticator?: string; exposedSchemas?: string[] } | null> {
  const file = POSTGREST_CONFIGS.map((name) => path.join(cwd, name)).find(isFile);
  if (!file) return null;
  const settings = parsePostgrestConfig(await readFile(file, 'utf8'));
  const plain = (value: string | undefined) => (value && !value.startsWith('$(') ? value : undefined);
  const schemas = plain(settings.get('db-schemas') ?? settings.get('db-schema'));
  return {
    file,
    anonymousRole: plain(settings.get('db-anon-role')),
    authenticator: uriUser(settings.get('db-uri')),
    exposedSchemas: schemas?.split(',').map((entry) => entry.trim()).filter(Boolean),
  };
}

/**
 * The project in `cwd`, when there is one: a Supabase project, else the SQL of prisma, drizzle, Rails or a
 * plain migrations/ folder, with PostgREST's settings when a postgrest.conf is beside it. Null: none found.
 */
export async function findProjectLayout(cwd: string): Promise<ProjectLayout | null> {
  const name = path.basename(path.resolve(cwd)).replace(/[^A-Za-z0-9._-]/g, '_') || 'audit';
  const supabase = await supabaseLayout(cwd);
  if (supabase) return { ...supabase, name };
  const postgrest = await postgrestConfig(cwd);
  let sql: Omit<ProjectLayout, 'name'> | null = null;
  for (const layout of [prismaLayout, drizzleLayout, railsLayout, migrationsLayout]) {
    sql = await layout(cwd);
    if (sql) break;
  }
  if (postgrest) {
    const config = path.basename(postgrest.file);
    if (!sql) throw new AuditError(`${config} found but no SQL to apply (supabase/, prisma/migrations, drizzle/, db/structure.sql, migrations/*.sql): give the schema with --schema FILE.sql`);
    const { file: _file, ...settings } = postgrest;
    const roles = [settings.anonymousRole && `anonymous role ${settings.anonymousRole}`, settings.authenticator && `authenticator ${settings.authenticator}`, settings.exposedSchemas && `schemas ${settings.exposedSchemas.join(', ')}`].filter(Boolean);
    return { ...sql, ...settings, preset: 'postgrest', description: `${config} (preset postgrest${roles.length ? `; ${roles.join(', ')}` : ''}) with ${sql.description}`, name };
  }
  return sql ? { ...sql, name } : null;
}
