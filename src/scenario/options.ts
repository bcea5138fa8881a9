import os from 'node:os';
import { InvalidArgumentError } from 'commander';
import { z } from 'zod';
import { SEVERITIES } from '../findings/severity.js';
import { PRESET_NAMES } from '../presets/index.js';
import { REPORT_FORMATS, type ReportFormat } from '../report/formats.js';

/**
 * The one table of the command line's options: for each, its flag and argument, its help, the commands that
 * have it, and the scenario field it sets with that field's zod type. The commander options (cli.ts), the
 * command-line overrides of a scenario (load.ts), the scenario fields they set (schema.ts) and README's
 * usage block (`npm run readme:checks`) are all built from it.
 */

export const identifier = z.string().min(1).regex(/^[^\u0000]+$/, 'must not contain NUL');

export type CommandName = 'run' | 'lint' | 'init' | 'merge' | 'checks';

/** The commands, in the order `--help` and the README list them. */
export const COMMANDS: Record<CommandName, { description: string; argument?: { name: string; help: string; usage: string } }> = {
  run: {
    description: 'seed tenants, probe every relation as the application role, run the rules, and write report.json and report.html',
    argument: { name: '[scenario]', help: 'scenario file (YAML)', usage: '[scenario.yaml]' },
  },
  lint: {
    description: 'run the static rules alone, read-only: no seeding, no probes',
    argument: { name: '[scenario]', help: 'scenario file (YAML)', usage: '[scenario.yaml]' },
  },
  init: { description: 'discover the tenancy of a schema or database and write a commented scenario (rls-audit.yaml) to confirm' },
  merge: {
    description: 'join the report.json of every shard of a run (rls-audit run --shard i/n) into one report and one verdict',
    argument: { name: '<reports...>', help: 'report.json files, one per shard', usage: 'REPORT.json ...' },
  },
  checks: { description: 'list every check (probes and rules) with its id, severity and what it finds' },
};

function integer(name: string, min: number) {
  return (value: string) => {
    const parsed = Number(value);
    if (!Number.isInteger(parsed) || parsed < min) throw new InvalidArgumentError(`${name} must be an integer >= ${min}`);
    return parsed;
  };
}

function share(name: string) {
  return (value: string) => {
    const parsed = Number(value);
    if (!(parsed > 0 && parsed <= 1)) throw new InvalidArgumentError(`${name} must be a share of time, greater than 0 and at most 1 (e.g. 0.5)`);
    return parsed;
  };
}

/** `90`, `90s`, `30m`, `2h` as seconds. */
function duration(value: string): number {
  const match = /^(\d+)\s*(s|m|h)?$/i.exec(value.trim());
  if (!match || Number(match[1]) < 1) throw new InvalidArgumentError('a duration such as 90s, 30m or 2h');
  return Number(match[1]) * ({ s: 1, m: 60, h: 3600 }[(match[2] ?? 's').toLowerCase() as 's' | 'm' | 'h']);
}

const collect = (value: string, previous: string[] = []) => [...previous, value];

/** `--format sarif,junit --format markdown`: comma-separated, repeatable, each value checked. */
function collectFormats(value: string, previous: ReportFormat[] = []): ReportFormat[] {
  const formats = [...previous];
  for (const entry of value.split(',').map((part) => part.trim().toLowerCase()).filter(Boolean)) {
    if (!(REPORT_FORMATS as readonly string[]).includes(entry)) throw new InvalidArgumentError(`unknown format ${entry}: use ${REPORT_FORMATS.join(', ')}`);
    if (!formats.includes(entry as ReportFormat)) formats.push(entry as ReportFormat);
  }
  return formats;
}

/** How an option appears in one command where it differs from its default spelling or help. */
interface CommandVariant {
  arg?: string;
  help?: string;
  usage?: string;
  /** In this command, listed just before that option instead of in table order. */
  before?: `--${string}`;
}

/** Where a command-line value lands in the scenario (see loadScenario in load.ts). */
interface ScenarioField {
  /** The key in ScenarioOverrides (the parsed flag is the flag in camelCase: see flagKey). */
  key: string;
  /** The scenario field: top level, or within `target`. */
  field: string;
  in?: 'target';
  zod: z.ZodTypeAny;
  /** A path: relative to the scenario file in the file, to the working directory on the command line. */
  path?: true;
  /** A list: a single value in the scenario file is a list of one; an empty one on the command line sets nothing. */
  list?: true;
  /** Also sets target.kind. */
  kind?: 'url' | 'embedded';
}

export interface CliOption {
  flag: `--${string}`;
  /** commander's argument: `<n>` required, `[url]` optional, `<files...>` variadic. */
  arg?: string;
  help: string;
  /** The argument as the README's usage shows it; default: the argument's name in capitals, or the choices. */
  usage?: string;
  commands: Partial<Record<CommandName, true | CommandVariant>>;
  parse?: (value: string, previous: never) => unknown;
  choices?: readonly string[];
  defaultValue?: string;
  scenario?: ScenarioField;
}

const BASELINE_HELP =
  'an earlier report.json (or SARIF) of rls-audit: fail only on findings that are new or got worse since, and list new, fixed and unchanged ones';
const FORMAT_HELP = `report formats, comma-separated or repeated: ${REPORT_FORMATS.join(', ')} (default json,html; json is always written)`;
const PRESET_HELP = `what the platform provides and how requests carry the context: ${PRESET_NAMES.join(', ')}`;

const REPLAYLESS_FORMATS = REPORT_FORMATS.filter((format) => format !== 'pgtap').join(',');
const target = { run: true, lint: true } as const;
const runOnly = { run: true } as const;

export const CLI_OPTIONS = [
  {
    flag: '--schema',
    arg: '<files...>',
    help: 'SQL files, or directories of *.sql applied in name order (e.g. supabase/migrations), applied as the superuser before the audit (repeatable, in order; a shell glob works)',
    usage: 'FILE.sql ...',
    commands: { ...target, init: { arg: '<file>', help: 'SQL file of the schema (repeatable, in order)' } },
    parse: collect,
    /** SQL files applied in order, as the bootstrap superuser. Relative to the scenario file. */
    scenario: { key: 'schema', field: 'schema', zod: z.array(z.string().min(1)).default([]), path: true, list: true },
  },
  {
    flag: '--role',
    arg: '<name>',
    help: "the application's role",
    commands: { ...target, init: { help: "the application's role (discovered from the grants when absent)" } },
    /** The application's role. Probes run as this role. */
    scenario: { key: 'role', field: 'role', zod: identifier.optional() },
  },
  {
    flag: '--setting',
    arg: '<guc>',
    help: 'setting that carries the tenant (discovered from the policies when absent)',
    commands: { ...target, init: true },
    scenario: {
      key: 'setting',
      field: 'setting',
      zod: z
        .string()
        .regex(/^[A-Za-z_][A-Za-z0-9_$]*\.[A-Za-z_][A-Za-z0-9_$.]*$/, 'a custom setting looks like app.current_tenant')
        .optional(),
    },
  },
  {
    flag: '--tenant-column',
    arg: '<name>',
    help: 'column that holds the tenant id (repeatable; discovered when absent)',
    commands: { ...target, init: true },
    parse: collect,
    /** Column name(s) that carry the tenant in tenant-owned tables; discovered when absent. */
    scenario: { key: 'tenantColumn', field: 'tenantColumn', zod: z.array(identifier).default([]), list: true },
  },
  {
    flag: '--tenant-table',
    arg: '<name>',
    help: 'the table whose rows are the tenants, e.g. public.tenants (discovered when absent)',
    commands: target,
    scenario: { key: 'tenantTable', field: 'tenantTable', zod: identifier.optional() },
  },
  {
    flag: '--tenant-key',
    arg: '<column>',
    help: "the tenant table's column that identifies a tenant, when it is not the primary key",
    commands: target,
    /** The tenant table's column that identifies a tenant when it is not the primary key, e.g. tenant_id. */
    scenario: { key: 'tenantKey', field: 'tenantKey', zod: identifier.optional() },
  },
  {
    flag: '--preset',
    arg: '<name>',
    help: PRESET_HELP,
    choices: PRESET_NAMES,
    commands: { ...target, init: { help: `${PRESET_HELP} (found from supabase/ or postgrest.conf when absent)` } },
    /** What the platform provides and how its requests carry the context. */
    scenario: { key: 'preset', field: 'preset', zod: z.enum(PRESET_NAMES).optional() },
  },
  {
    flag: '--api',
    help: 'the application role is reached only through an API layer such as PostgREST (no TRUNCATE, no DDL); implied by --preset',
    commands: target,
    /**
     * The application role is reached only through an API layer (PostgREST, Supabase's REST API), which runs
     * SELECT, INSERT, UPDATE, DELETE and function calls but never TRUNCATE or DDL (CREATE TRIGGER, CREATE TABLE,
     * ALTER TABLE). Privileges only those statements use are then reported as info. Default: true with a preset.
     */
    scenario: { key: 'api', field: 'api', zod: z.boolean().optional() },
  },
  {
    flag: '--database-url',
    arg: '[url]',
    help: 'audit an existing database; nothing is left behind (everything is rolled back). Without a value: DATABASE_URL, else the PG* variables (keeps the password out of ps)',
    usage: 'URL',
    commands: { ...target, init: { arg: '<url>', help: 'read an existing database instead (read-only; the URL is not written)', before: '--role' } },
    scenario: { key: 'databaseUrl', field: 'url', in: 'target', kind: 'url', zod: z.string().min(1).optional() },
  },
  {
    flag: '--schema-from',
    arg: '[url]',
    help: 'copy the schema, roles and grants of a live database (pg_dump, read-only) into the embedded cluster and audit the copy: the safe way to audit staging or production. Without a value: DATABASE_URL, else the PG* variables',
    commands: target,
    /** Embedded target: copy the schema, roles and grants of this live database first ('' = DATABASE_URL or PG* variables). */
    scenario: { key: 'schemaFrom', field: 'schemaFrom', in: 'target', kind: 'embedded', zod: z.string().optional() },
  },
  {
    flag: '--pg-bin',
    arg: '<dir>',
    help: 'run the embedded target from local PostgreSQL binaries, e.g. /usr/lib/postgresql/15/bin',
    commands: { ...target, init: { help: 'run the embedded PostgreSQL from local binaries' } },
    scenario: { key: 'pgBin', field: 'pgBin', in: 'target', path: true, zod: z.string().min(1).optional() },
  },
  {
    flag: '--target',
    arg: '<kind>',
    help: 'where the database comes from',
    choices: ['embedded', 'url', 'container'],
    commands: target,
    scenario: { key: 'target', field: 'kind', in: 'target', zod: z.enum(['embedded', 'url', 'container']).default('embedded') },
  },
  {
    flag: '--pg-version',
    arg: '<n>',
    help: 'PostgreSQL major version for --target container',
    commands: target,
    scenario: { key: 'pgVersion', field: 'pgVersion', in: 'target', zod: z.string().regex(/^\d+(\.\d+)?$/, 'a PostgreSQL version such as 16 or 15.8').default('17') },
  },
  {
    flag: '--out',
    arg: '<dir>',
    help: 'where the reports go (default reports/<scenario name>/)',
    commands: { ...target, merge: { help: 'where the merged reports go (default reports/<scenario name>/)' } },
    scenario: { key: 'out', field: 'out', path: true, zod: z.string().min(1).optional() },
  },
  {
    flag: '--format',
    arg: '<list>',
    help: FORMAT_HELP,
    usage: REPORT_FORMATS.join(','),
    // pgtap replays the tenants a run seeded: lint seeds none, and a merged run's shards are gone.
    commands: { run: true, lint: { usage: REPLAYLESS_FORMATS }, merge: { usage: REPLAYLESS_FORMATS } },
    parse: collectFormats,
  },
  {
    flag: '--fail-on',
    arg: '<severity>',
    help: 'exit 1 when a finding is at or above this severity (default high)',
    choices: SEVERITIES,
    commands: target,
    scenario: { key: 'failOn', field: 'failOn', zod: z.enum(SEVERITIES).default('high') },
  },
  { flag: '--baseline', arg: '<file>', help: BASELINE_HELP, usage: 'REPORT', commands: { ...target, merge: true } },
  { flag: '--quiet', help: 'print nothing but errors', commands: { ...target, merge: true } },
  {
    flag: '--context-sql',
    arg: '<sql>',
    help: 'SQL the application runs to set the context: $tenant (or $1) the tenant id, $user the user id, $role the role',
    usage: '"SQL using $1"',
    commands: runOnly,
    /**
     * The SQL the application runs to set the context: `$tenant` (or `$1`) is the tenant id, `$user` the
     * user id, `$role` the tenant's role, each as text.
     */
    scenario: { key: 'contextSql', field: 'contextSql', zod: z.string().min(1).optional() },
  },
  {
    flag: '--tenants',
    arg: '<n>',
    help: 'number of tenants to seed (default 3)',
    commands: runOnly,
    parse: integer('--tenants', 2),
    scenario: { key: 'tenants', field: 'tenants', zod: z.number().int().min(2).max(1000).default(3) },
  },
  {
    flag: '--rows',
    arg: '<n>',
    help: 'rows per tenant-owned table per tenant (default 20)',
    commands: runOnly,
    parse: integer('--rows', 1),
    scenario: { key: 'rows', field: 'rows', zod: z.number().int().min(1).max(100_000).default(20) },
  },
  {
    flag: '--seed',
    arg: '<n>',
    help: 'seed for the fake data and tenant ids (reproducible runs)',
    commands: runOnly,
    parse: integer('--seed', 0),
    scenario: { key: 'seed', field: 'seed', zod: z.number().int().min(0).optional() },
  },
  {
    flag: '--timeout',
    arg: '<duration>',
    help: 'time limit for the whole run, e.g. 90s, 30m, 2h (default 30m); reached, the audit stops, writes what it did so far and exits 2',
    commands: runOnly,
    parse: duration,
    /** The whole run's time limit in seconds; reached, the audit stops, writes what it has, and exits 2. */
    scenario: { key: 'timeoutSeconds', field: 'timeoutSeconds', zod: z.number().int().min(1).default(1800) },
  },
  {
    flag: '--allow-sequence-gaps',
    help: "on a live database, let the audit's writes advance sequences through triggers or defaults that call nextval (a rollback does not undo nextval); without it, the tables they would reach are left out of seeding and of the write probes, and the run is inconclusive",
    commands: runOnly,
    /**
     * On a live database (url target), let the audit advance sequences through triggers or defaults that call nextval;
     * without it, the relations whose writes would do so are not seeded and not written by probes (inconclusive).
     */
    scenario: { key: 'allowSequenceGaps', field: 'allowSequenceGaps', zod: z.boolean().default(false) },
  },
  {
    flag: '--exhaustive',
    help: 'run the write probes as every tenant, not only the tenants that cover every policy path',
    commands: runOnly,
    /** Run the write families as every tenant, not only the few tenants that cover every policy path. */
    scenario: { key: 'exhaustive', field: 'exhaustive', zod: z.boolean().default(false) },
  },
  {
    flag: '--pace',
    arg: '<share>',
    help: "on a database the audit does not own, the share of time its connection may keep the server busy (default 0.5: it pauses as long as it worked, leaving the server to the application in between; 1: no pause)",
    commands: runOnly,
    parse: share('--pace'),
    /**
     * On a url target, the share of time the audit's connection may keep the server busy (target/pace.ts); the
     * audit pauses for the rest. 1 runs without pause. The audit's own cluster is never paced.
     */
    scenario: { key: 'pace', field: 'pace', zod: z.number().gt(0).max(1).default(0.5) },
  },
  {
    flag: '--jobs',
    arg: '<n>',
    help: 'connections that probe in parallel on the embedded target (default: the number of cores)',
    commands: runOnly,
    parse: integer('--jobs', 1),
    /** Connections that probe in parallel on a cluster that belongs to the run (a url target always uses one). */
    scenario: { key: 'jobs', field: 'jobs', zod: z.number().int().min(1).max(64).default(() => os.availableParallelism()) },
  },
  {
    flag: '--shard',
    arg: '<i/n>',
    help: 'run part i of n of the probe plan and write a partial report; join the parts with rls-audit merge',
    commands: runOnly,
    /** Run one part of the probe plan, e.g. `2/3`; `rls-audit merge` joins the parts' reports into one. */
    scenario: {
      key: 'shard',
      field: 'shard',
      zod: z
        .string()
        .regex(/^\d+\/\d+$/, 'a shard looks like 2/3 (this job, of how many)')
        .refine((text) => {
          const [index, count] = text.split('/').map(Number);
          return index! >= 1 && index! <= count!;
        }, 'the shard number must be between 1 and the number of shards')
        .optional(),
    },
  },
  { flag: '--file', arg: '<path>', help: 'where to write the scenario', usage: 'rls-audit.yaml', defaultValue: 'rls-audit.yaml', commands: { init: true } },
  { flag: '--force', help: 'replace the file if it exists', commands: { init: true } },
  { flag: '--json', help: 'as JSON', commands: { checks: true } },
] as const satisfies readonly CliOption[];

type Option = (typeof CLI_OPTIONS)[number];
type WithField = Extract<Option, { scenario: ScenarioField }>;
type TopLevel = Extract<WithField, { scenario: { field: string; in?: undefined } }>;
type InTarget = Extract<WithField, { scenario: { in: 'target' } }>;

/** The top-level scenario fields the command line sets, with their zod types (spread into scenarioSchema). */
export type OptionFieldShape = { [O in TopLevel as O['scenario']['field']]: O['scenario']['zod'] };
/** The `target` fields the command line sets. */
export type OptionTargetShape = { [O in InTarget as O['scenario']['field']]: O['scenario']['zod'] };

function shapeOf(where: 'top' | 'target'): Record<string, z.ZodTypeAny> {
  const shape: Record<string, z.ZodTypeAny> = {};
  for (const option of CLI_OPTIONS as readonly CliOption[]) {
    if (option.scenario && (option.scenario.in === 'target') === (where === 'target')) shape[option.scenario.field] = option.scenario.zod;
  }
  return shape;
}

export const optionFields = shapeOf('top') as OptionFieldShape;
export const optionTargetFields = shapeOf('target') as OptionTargetShape;

/** The scenario fields the command line overrides, each as the option's value (paths relative to the cwd). */
export type OptionOverrides = { [O in WithField as O['scenario']['key']]?: Exclude<z.input<O['scenario']['zod']>, undefined> };

/** Options with a scenario field, in table order (the order overrides apply: a later `--target` decides the kind). */
export const SCENARIO_OPTIONS: readonly (CliOption & { scenario: ScenarioField })[] = (CLI_OPTIONS as readonly CliOption[]).filter(
  (option): option is CliOption & { scenario: ScenarioField } => option.scenario !== undefined,
);

/** The options of a command, in table order, each as that command spells it. */
export function commandOptions(command: CommandName): (CliOption & CommandVariant)[] {
  const options = (CLI_OPTIONS as readonly CliOption[]).flatMap((option): (CliOption & CommandVariant)[] => {
    const variant = option.commands[command];
    return variant === undefined ? [] : [{ ...option, ...(variant === true ? {} : variant) }];
  });
  for (const moved of options.filter((option) => option.before)) {
    options.splice(options.indexOf(moved), 1);
    const at = options.findIndex((option) => option.flag === moved.before);
    if (at < 0) throw new Error(`${command} ${moved.flag}: no ${moved.before} to precede`);
    options.splice(at, 0, moved);
  }
  return options;
}

/** The parsed flags' key of an option: its flag in camelCase, as commander names it. */
export function flagKey(option: Pick<CliOption, 'flag'>): string {
  return option.flag.slice(2).replace(/-([a-z])/g, (_, letter: string) => letter.toUpperCase());
}

export const README_USAGE_START = '<!-- usage:start: generated from the option table (src/scenario/options.ts) by `npm run readme:checks` -->';
export const README_USAGE_END = '<!-- usage:end -->';
const USAGE_WIDTH = 104;

function usageOf(option: CliOption & CommandVariant): string {
  if (!option.arg) return `[${option.flag}]`;
  const name = option.arg.replace(/[<>[\].]/g, '');
  const shown = option.usage ?? (option.choices ? option.choices.join('|') : name.toUpperCase());
  return `[${option.flag} ${shown}]`;
}

/** The README's usage block: one entry per command, its options in table order, wrapped. */
export function renderUsage(): string {
  const lines: string[] = [];
  for (const command of Object.keys(COMMANDS) as CommandName[]) {
    const head = `rls-audit ${command}`;
    const words = [...(COMMANDS[command].argument ? [COMMANDS[command].argument!.usage] : []), ...commandOptions(command).map(usageOf)];
    let line = head;
    let empty = true;
    for (const word of words) {
      if (!empty && line.length + 1 + word.length > USAGE_WIDTH) {
        lines.push(line);
        line = ' '.repeat(head.length);
      }
      line += ` ${word}`;
      empty = false;
    }
    lines.push(line);
  }
  return [README_USAGE_START, '```', ...lines, '```', README_USAGE_END].join('\n');
}

/** README text with its usage block replaced by `usage`; throws when the markers are missing. */
export function replaceUsage(readme: string, usage: string = renderUsage()): string {
  const start = readme.indexOf(README_USAGE_START);
  const end = readme.indexOf(README_USAGE_END);
  if (start < 0 || end < start) throw new Error(`README.md has no ${README_USAGE_START} ... ${README_USAGE_END} section`);
  return `${readme.slice(0, start)}${usage}${readme.slice(end + README_USAGE_END.length)}`;
}

type Camel<S extends string> = S extends `${infer Head}-${infer Tail}` ? `${Head}${Capitalize<Camel<Tail>>}` : S;
type ValueOf<O extends Option> = O extends { parse: (...args: never[]) => infer R }
  ? R
  : O extends { choices: readonly (infer C)[] }
    ? C
    : O extends { arg: `[${string}` }
      ? string | true
      : O extends { arg: string }
        ? string
        : boolean;

/** The flags commander parses for a command, typed from the table. */
export type CommandFlags<C extends CommandName> = {
  [O in Extract<Option, { commands: { [K in C]: unknown } }> as O['flag'] extends `--${infer Name}` ? Camel<Name> : never]?: ValueOf<O>;
};
