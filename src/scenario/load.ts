import { existsSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { parse as parseYaml, YAMLParseError } from 'yaml';
import { z } from 'zod';
import { compileContextSql } from '../analysis/context-sql.js';
import { loadParser, ParseError } from '../analysis/parse.js';
import { AuditError, errorMessage } from '../errors.js';
import { connectionFromEnvironment } from '../target/index.js';
import { SCENARIO_OPTIONS, type OptionOverrides } from './options.js';
import { scenarioSchema, type Scenario, type ScenarioInput } from './schema.js';

/**
 * Options from the command line (see CLI_OPTIONS in options.ts), and what a project found in the directory
 * gives; each overrides the scenario file. Paths are relative to the cwd. `schemaFrom: ''` copies the database
 * the environment names (DATABASE_URL, else PG*).
 */
export type ScenarioOverrides = OptionOverrides & Partial<Pick<Scenario, (typeof PROJECT_FIELDS)[number]>>;

/** What a project found in the directory sets besides the options (see layout.ts): its name and API roles. */
const PROJECT_FIELDS = ['name', 'anonymousRole', 'authenticator', 'apiSchemas'] as const;

export function formatZodError(error: z.ZodError, source: string): string {
  const lines = error.issues.map((issue) => {
    const field = issue.path.length ? issue.path.join('.') : '(top level)';
    return `  ${field}: ${issue.message}`;
  });
  return `${source} is not a valid scenario:\n${lines.join('\n')}`;
}

async function readScenarioFile(file: string): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    throw new AuditError(`cannot read scenario file ${file}: ${errorMessage(error)}`);
  }
  let data: unknown;
  try {
    data = parseYaml(text);
  } catch (error) {
    const where = error instanceof YAMLParseError && error.linePos ? ` line ${error.linePos[0].line}` : '';
    throw new AuditError(`${file}${where}: not valid YAML: ${errorMessage(error).split('\n')[0]}`);
  }
  if (data === null || data === undefined) return {};
  if (typeof data !== 'object' || Array.isArray(data)) {
    throw new AuditError(`${file}: a scenario is a YAML mapping (name:, schema:, role:, ...)`);
  }
  return data as Record<string, unknown>;
}

/** The names a scenario found without being named on the command line may have. */
export const CONFIG_FILE_NAMES = ['rls-audit.yaml', 'rls-audit.yml'] as const;

/** `rls-audit.yaml` (or `.yml`) in `cwd` or the nearest of its parents that has one. */
export function findConfigFile(cwd = process.cwd()): string | undefined {
  for (let dir = path.resolve(cwd); ; dir = path.dirname(dir)) {
    for (const name of CONFIG_FILE_NAMES) {
      const candidate = path.join(dir, name);
      if (existsSync(candidate) && statSync(candidate).isFile()) return candidate;
    }
    if (path.dirname(dir) === dir) return undefined;
  }
}

/**
 * Validate a scenario given as a value (the library's `audit()` takes a partial one): the schema's
 * defaults fill what is missing; a bad field fails with its path.
 */
export async function parseScenario(input: ScenarioInput, source = 'the scenario', options: { requireSchema?: boolean } = {}): Promise<Scenario> {
  const result = scenarioSchema.safeParse(input);
  if (!result.success) throw new AuditError(formatZodError(result.error, source));
  const scenario = result.data;
  if (scenario.target.kind === 'url' && !scenario.target.url && connectionFromEnvironment() === undefined) {
    throw new AuditError(`${source}: target.kind is url but no database URL was given: use --database-url URL, or set DATABASE_URL or the PG* variables (PGHOST, PGDATABASE, PGUSER, PGPASSWORD)`);
  }
  if (scenario.target.schemaFrom === '' && connectionFromEnvironment() === undefined) {
    throw new AuditError(`${source}: --schema-from needs a database URL: give it, or set DATABASE_URL or the PG* variables`);
  }
  if ((options.requireSchema ?? true) && scenario.target.kind !== 'url' && scenario.target.schemaFrom === undefined && scenario.schema.length === 0) {
    throw new AuditError('nothing to audit: give a schema (--schema FILE.sql or schema: in the scenario), a database to copy (--schema-from URL) or an existing database (--database-url), or run in a project directory (rls-audit.yaml, supabase/, postgrest.conf, prisma/migrations, drizzle/, db/structure.sql or migrations/)');
  }
  if (scenario.contextSql !== undefined) {
    // Read with PostgreSQL's lexer now, so a context SQL without a parameter stops before any database starts.
    await loadParser();
    try {
      compileContextSql(scenario.contextSql);
    } catch (error) {
      if (!(error instanceof AuditError || error instanceof ParseError)) throw error;
      throw new AuditError(`${source}: contextSql: must use $1 (or $tenant, $user, $role) for the values it sets: ${error.message}`);
    }
  }
  return scenario;
}

/**
 * Build the validated scenario from a YAML file and command-line overrides. Without a file (undefined),
 * the nearest `rls-audit.yaml` in `cwd` or its parents is the file, when there is one; null: flags only.
 * Schema paths in the file are relative to the file; paths given as flags are relative to the cwd.
 * Without a role (given or in the file), the plan discovers it from the grants (see planTenancy) and says
 * which one it used and why.
 */
export async function loadScenario(given: string | null | undefined, overrides: ScenarioOverrides = {}, cwd = process.cwd()): Promise<Scenario> {
  const file = given === null ? undefined : (given ?? findConfigFile(cwd));
  const raw: Record<string, unknown> = file ? await readScenarioFile(path.resolve(cwd, file)) : {};
  const baseDir = file ? path.dirname(path.resolve(cwd, file)) : cwd;
  const rawTarget = raw.target && typeof raw.target === 'object' && !Array.isArray(raw.target) ? (raw.target as Record<string, unknown>) : undefined;
  for (const { scenario: option } of SCENARIO_OPTIONS) {
    const holder = option.in === 'target' ? rawTarget : raw;
    if (!holder) continue;
    let value = holder[option.field];
    if (option.list && typeof value === 'string') value = [value];
    if (option.path) {
      const resolve = (entry: unknown) => (typeof entry === 'string' ? path.resolve(baseDir, entry) : entry);
      value = Array.isArray(value) ? value.map(resolve) : resolve(value);
    }
    if (value !== undefined) holder[option.field] = value;
  }
  if (typeof rawTarget?.pgVersion === 'number') rawTarget.pgVersion = String(rawTarget.pgVersion);

  const merged: ScenarioInput & Record<string, unknown> = { ...raw };
  if (!file && overrides.schema?.length) {
    const first = path.resolve(cwd, overrides.schema[0]!);
    const base = path.basename(first).replace(/\.sql$/i, '');
    // `fixtures/chat/schema.sql` names its report after the folder, not after "schema".
    merged.name = (/^(schema|init|setup|dump)$/i.test(base) ? path.basename(path.dirname(first)) : base).replace(/[^A-Za-z0-9._-]/g, '_') || 'audit';
  }
  for (const field of PROJECT_FIELDS) if (overrides[field] !== undefined) (merged as Record<string, unknown>)[field] = overrides[field];
  const target: Record<string, unknown> = { ...((raw.target as Record<string, unknown> | undefined) ?? {}) };
  for (const { scenario: option } of SCENARIO_OPTIONS) {
    const value = (overrides as Record<string, unknown>)[option.key];
    if (value === undefined || (option.list && !(value as unknown[]).length)) continue;
    const resolved = !option.path ? value : Array.isArray(value) ? value.map((entry: string) => path.resolve(cwd, entry)) : path.resolve(cwd, value as string);
    if (option.in === 'target') {
      if (option.kind) target.kind = option.kind;
      target[option.field] = resolved;
    } else {
      merged[option.field] = resolved;
    }
  }
  if (Object.keys(target).length) merged.target = target as ScenarioInput['target'];

  return await parseScenario(merged, file ?? 'the command line');
}
