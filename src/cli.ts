#!/usr/bin/env node
import { appendFile } from 'node:fs/promises';
import path from 'node:path';
import { existsSync, realpathSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Command, Option } from 'commander';
import { audit, lint } from './audit.js';
import { allChecks, renderChecks } from './findings/checks.js';
import { readBaseline } from './findings/baseline.js';
import type { Report } from './report/model.js';
import type { Scenario } from './scenario/schema.js';
import { AuditError, AuditTimeout, errorMessage } from './errors.js';
import { mergeReportFiles } from './findings/merge.js';
import { renderConsole } from './report/console.js';
import { renderMarkdown } from './report/markdown.js';
import { DEFAULT_REPORT_FORMATS, writeReports } from './report/write.js';
import { initScenario } from './scenario/init.js';
import { findConfigFile, loadScenario, type ScenarioOverrides } from './scenario/load.js';
import { COMMANDS, commandOptions, flagKey, SCENARIO_OPTIONS, type CommandFlags, type CommandName } from './scenario/options.js';
import { findProjectLayout, type ProjectLayout } from './scenario/layout.js';
import { Secrets, terminalLine, terminalSafe } from './report/output.js';
import { isConnectionLost } from './target/connect.js';
import { interruption } from './target/embedded.js';
import { maskConnectionString } from './target/types.js';
import { colourEnabled, colourSummary, consoleProgress, palette, renderNotes } from './report/terminal.js';
import { PRESETS } from './presets/index.js';
import { VERSION } from './version.js';

export interface CliIo {
  out: (text: string) => void;
  err: (text: string) => void;
  cwd: string;
  /** The terminal progress bars draw on, when it is one (see terminal.ts); absent: plain progress lines. */
  progressStream?: NodeJS.WritableStream & { isTTY?: boolean };
  /** Colour the summary (decided from stdout, NO_COLOR and FORCE_COLOR). */
  colour?: boolean;
}

const defaultIo: CliIo = {
  out: (text) => process.stdout.write(text),
  err: (text) => process.stderr.write(text),
  cwd: process.cwd(),
  progressStream: process.stderr,
  colour: colourEnabled(process.stdout),
};

type RunFlags = CommandFlags<'run'>;

/** A command with its argument and its options from the option table (scenario/options.ts). */
function declare(program: Command, name: CommandName): Command {
  const { description, argument } = COMMANDS[name];
  const command = program.command(name).description(description);
  if (argument) command.argument(argument.name, argument.help);
  for (const option of commandOptions(name)) {
    const declared = new Option(option.arg ? `${option.flag} ${option.arg}` : option.flag, option.help);
    if (option.choices) declared.choices(option.choices);
    if (option.parse) declared.argParser(option.parse as (value: string, previous: unknown) => unknown);
    if (option.defaultValue !== undefined) declared.default(option.defaultValue);
    command.addOption(declared);
  }
  return command;
}

/**
 * `--schema a.sql b.sql scenario.yaml`: --schema takes every argument up to the next option, so a scenario
 * file given after it is moved back to where it belongs; a .sql file given as the scenario is a schema file.
 */
function scenarioArgument(given: string | undefined, flags: RunFlags): string | undefined {
  const isScenario = (entry: string) => /\.ya?ml$/i.test(entry);
  const schema = flags.schema ?? [];
  const scenario = given ?? schema.find(isScenario);
  flags.schema = schema.filter((entry) => !isScenario(entry));
  if (scenario && !isScenario(scenario)) {
    flags.schema.push(scenario);
    return undefined;
  }
  if (!flags.schema.length) delete flags.schema;
  return scenario;
}

/** The scenario fields the flags set (see SCENARIO_OPTIONS), under their names in ScenarioOverrides. */
function overridesFrom(flags: RunFlags): ScenarioOverrides {
  const overrides: Record<string, unknown> = {};
  for (const option of SCENARIO_OPTIONS) {
    const value = (flags as Record<string, unknown>)[flagKey(option)];
    if (value !== undefined) overrides[option.scenario.key] = value;
  }
  // `--schema-from` without a value: '' stands for the environment (DATABASE_URL, else PG*).
  if (overrides.schemaFrom === true) overrides.schemaFrom = '';
  // `--database-url` without a value: the URL comes from the environment (DATABASE_URL, else PG*).
  if (overrides.databaseUrl === true) {
    delete overrides.databaseUrl;
    overrides.target = 'url';
  }
  return overrides as ScenarioOverrides;
}

/**
 * Run the command line and return the exit code: 0 no finding at or above --fail-on, 1 at least one,
 * 2 the audit could not run. Never throws for a user error; prints the message without a stack.
 */
export async function main(argv: string[], given: CliIo = defaultIo): Promise<number> {
  let exitCode = 0;
  // Every line printed passes through here: no password this run knows of gets out.
  const secrets = new Secrets();
  const io: CliIo = { ...given, out: (text) => given.out(secrets.redact(text)), err: (text) => given.err(secrets.redact(text)) };
  const program = new Command('rls-audit')
    .description('Prove or disprove tenant isolation in a PostgreSQL database that uses row-level security.')
    .version(VERSION)
    .exitOverride()
    .configureOutput({ writeOut: io.out, writeErr: io.err });

  /**
   * With no scenario named, no rls-audit.yaml here or above, and nothing given to audit (--schema,
   * --database-url, --schema-from): the project in the working directory (supabase/, postgrest.conf, prisma,
   * drizzle, db/structure.sql, migrations/), as overrides of the scenario.
   */
  const projectOf = async (file: string | undefined, flags: RunFlags, config: string | undefined): Promise<ProjectLayout | null> => {
    if (file || config || flags.schema?.length || flags.databaseUrl !== undefined || flags.schemaFrom !== undefined || flags.target === 'url') return null;
    return findProjectLayout(io.cwd);
  };

  /** A project's files and platform, under what the flags give. */
  const withProject = (overrides: ScenarioOverrides, project: ProjectLayout | null): ScenarioOverrides =>
    project
      ? {
          name: project.name,
          schema: project.schema,
          ...(project.preset ? { preset: project.preset } : {}),
          ...(project.anonymousRole ? { anonymousRole: project.anonymousRole } : {}),
          ...(project.authenticator ? { authenticator: project.authenticator } : {}),
          ...(project.exposedSchemas?.length ? { apiSchemas: project.exposedSchemas } : {}),
          ...overrides,
        }
      : overrides;

  /** Progress for the terminal; says which rls-audit.yaml, or which project, is used when none was named. */
  const startConsole = async (file: string | undefined, flags: RunFlags) => {
    const terminal = consoleProgress({ quiet: flags.quiet, err: io.err, stream: io.progressStream });
    const config = file ? undefined : findConfigFile(io.cwd);
    if (config) terminal.log(`config: ${path.relative(io.cwd, config) || config}`);
    let project: ProjectLayout | null;
    try {
      project = await projectOf(file, flags, config);
    } catch (error) {
      terminal.stop();
      throw error;
    }
    if (project) terminal.log(`project: ${project.description}`);
    // Lines may carry names from the database: printed as escapes, so that none can forge a line.
    return { terminal: { ...terminal, log: (line: string) => terminal.log(terminalLine(line)) }, project, config };
  };

  /**
   * Where `--format pgtap` writes its test: in a project of the preset's platform (its `pgtapTests.marker` beside
   * the scenario that was found, or in the working directory; supabase/config.toml), the preset's test file
   * (supabase/tests/rls-audit.test.sql, which `supabase test db` runs); with --out (or out: in the scenario) or
   * elsewhere, the report folder.
   */
  const pgtapFile = (scenario: Scenario, flags: RunFlags, file: string | undefined, config: string | undefined): string | undefined => {
    const tests = scenario.preset ? PRESETS[scenario.preset].pgtapTests : undefined;
    if (!tests || flags.out !== undefined || scenario.out !== undefined || !flags.format?.includes('pgtap')) return undefined;
    const root = file ? path.dirname(path.resolve(io.cwd, file)) : config ? path.dirname(config) : io.cwd;
    const marker = path.join(root, ...tests.marker);
    return existsSync(marker) && statSync(marker).isFile() ? path.join(root, ...tests.file) : undefined;
  };

  /** The notes (stderr), then the summary with the files written (stdout). */
  const printSummary = (report: Report, files: string[]) => {
    // Names come from the database: printed as escapes, so that none can forge a line of the summary.
    const printable = terminalSafe(report);
    for (const line of renderNotes(printable)) io.err(`${line}\n`);
    io.out(colourSummary(renderConsole(printable, files.map((entry) => terminalLine(path.relative(io.cwd, entry) || entry))), palette(io.colour ?? false)));
  };

  /** The baseline named by --baseline, read before the audit starts so that a wrong path costs nothing. */
  const baselineOf = async (file: string | undefined) => (file === undefined ? undefined : readBaseline(path.resolve(io.cwd, file)));

  /** Write and print a finished report (see findings/finish.ts); nothing here changes what it says. */
  const finish = async (unsafeReport: Report, scenario: Scenario, flags: RunFlags, pgtap?: string) => {
    const report = secrets.redactValue(unsafeReport);
    const outDir = scenario.out ?? path.resolve(io.cwd, 'reports', scenario.name);
    const formats = flags.format ?? DEFAULT_REPORT_FORMATS;
    const files = await writeReports(report, outDir, formats, pgtap ? { pgtap } : {});
    const stepSummary = process.env.GITHUB_STEP_SUMMARY;
    if (stepSummary && formats.includes('markdown')) {
      // GitHub Actions shows this file on the run's summary page; a failure to append must not hide the verdict.
      await appendFile(stepSummary, `${renderMarkdown(report)}\n`).catch((error: unknown) => io.err(`rls-audit: could not append to GITHUB_STEP_SUMMARY (${stepSummary}): ${errorMessage(error)}\n`));
    }
    if (!flags.quiet) {
      printSummary(report, files);
    } else if (report.summary.verdict === 'inconclusive') {
      // Exit 2 is never silent: --quiet still says why the run proved nothing.
      for (const entry of terminalSafe(report).summary.inconclusive) io.err(`rls-audit: inconclusive: ${entry.reason}\n  try: ${entry.hint}\n`);
    }
    // A shard's verdict covers only its part: the merge of all parts decides (rls-audit merge). Inconclusive still says the part proved nothing.
    exitCode = report.summary.verdict === 'fail' ? (report.shard ? 0 : 1) : report.summary.verdict === 'inconclusive' ? 2 : 0;
  };

  declare(program, 'run')
    .action(async (given: string | undefined, flags: RunFlags) => {
      const file = scenarioArgument(given, flags);
      const { terminal, project, config } = await startConsole(file, flags);
      try {
        const scenario = await loadScenario(file, withProject(overridesFrom(flags), project), io.cwd);
        secrets.addConnection(scenario.target.url);
        const baseline = await baselineOf(flags.baseline);
        const pgtap = pgtapFile(scenario, flags, file, config);
        let report: Report;
        try {
          report = await audit(scenario, { log: terminal.log, progress: terminal.progress, replay: flags.format?.includes('pgtap'), ...(baseline ? { baseline } : {}) });
        } catch (error) {
          // The time limit: write what was done so far, then exit 2 with the reason.
          if (error instanceof AuditTimeout && error.report) {
            terminal.stop();
            await finish(error.report as Report, scenario, flags, pgtap);
          }
          throw error;
        }
        terminal.stop();
        await finish(report, scenario, flags, pgtap);
      } finally {
        terminal.stop();
      }
    });

  declare(program, 'lint')
    .action(async (given: string | undefined, flags: RunFlags) => {
      if (flags.format?.includes('pgtap')) throw new AuditError('--format pgtap replays the tenants a run seeded: use it with `rls-audit run`; lint seeds nothing');
      const file = scenarioArgument(given, flags);
      const { terminal, project } = await startConsole(file, flags);
      try {
        const scenario = await loadScenario(file, withProject(overridesFrom(flags), project), io.cwd);
        secrets.addConnection(scenario.target.url);
        const baseline = await baselineOf(flags.baseline);
        const report = await lint(scenario, { log: terminal.log, progress: terminal.progress, ...(baseline ? { baseline } : {}) });
        terminal.stop();
        await finish(report, scenario, flags);
      } finally {
        terminal.stop();
      }
    });

  declare(program, 'init')
    .action(async (flags: CommandFlags<'init'> & { file: string }) => {
      const { file, force, ...rest } = flags;
      // Without --schema or --database-url: the project in the working directory.
      const project = await projectOf(undefined, rest, undefined);
      if (project) io.err(`project: ${terminalLine(project.description)}\n`);
      const scenario = await loadScenario(null, withProject(overridesFrom(rest), project), io.cwd);
      const written = await initScenario(scenario, {
        file: path.resolve(io.cwd, file),
        force,
        source: flags.databaseUrl ? 'an existing database' : project ? project.description : scenario.schema.map((entry) => path.relative(io.cwd, entry) || entry).join(', '),
      });
      io.out(written.text);
      io.err(`wrote ${path.relative(io.cwd, written.file) || written.file}: check it, then run \`npx rls-audit run\`\n`);
    });

  declare(program, 'merge')
    .action(async (files: string[], flags: CommandFlags<'merge'>) => {
      if (flags.format?.includes('pgtap')) throw new AuditError('--format pgtap replays the tenants a run seeded: use it with `rls-audit run` (unsharded)');
      const baseline = await baselineOf(flags.baseline);
      const report = await mergeReportFiles(files.map((file) => path.resolve(io.cwd, file)), baseline ? { baseline } : {});
      const outDir = flags.out ? path.resolve(io.cwd, flags.out) : path.resolve(io.cwd, 'reports', report.scenario.name);
      const written = await writeReports(report, outDir, flags.format ?? DEFAULT_REPORT_FORMATS);
      if (!flags.quiet) printSummary(report, written);
      exitCode = report.summary.verdict === 'fail' ? 1 : report.summary.verdict === 'inconclusive' ? 2 : 0;
    });

  declare(program, 'checks')
    .action((flags: CommandFlags<'checks'>) => {
      io.out(flags.json ? `${JSON.stringify(allChecks(), null, 2)}\n` : renderChecks(allChecks()));
    });

  try {
    // Known before anything can fail: the URL given on the command line, even one that does not parse.
    for (const [index, arg] of argv.entries()) {
      if (arg === '--database-url' || arg === '--schema-from') secrets.addConnection(argv[index + 1]);
      else if (arg.startsWith('--database-url=') || arg.startsWith('--schema-from=')) secrets.addConnection(arg.slice(arg.indexOf('=') + 1));
    }
    await program.parseAsync(argv, { from: 'user' });
    return exitCode;
  } catch (error) {
    // Ctrl-C or SIGTERM while an embedded cluster ran: its handler is removing the cluster and says so (exit 130 / 143).
    const signal = interruption();
    if (signal) return signal === 'SIGINT' ? 130 : 143;
    const commanderError = error as { code?: string; exitCode?: number };
    if (commanderError.code === 'commander.helpDisplayed' || commanderError.code === 'commander.version' || commanderError.code === 'commander.help') return 0;
    if (commanderError.code?.startsWith('commander.')) return 2;
    if (error instanceof AuditError) {
      io.err(`rls-audit: ${maskConnectionString(error.message)}\n`);
      return 2;
    }
    if (isConnectionLost(error)) {
      io.err(`rls-audit: the connection to the database was lost (${errorMessage(error)}): the server closed it, restarted, or a function the audit called ended the session. Nothing the audit did was committed; run it again.\n`);
      return 2;
    }
    io.err(`rls-audit: unexpected error: ${errorMessage(error)}\n`);
    if (process.env.RLS_AUDIT_DEBUG && error instanceof Error && error.stack) io.err(`${error.stack}\n`);
    return 2;
  }
}

function isEntryPoint(): boolean {
  if (!process.argv[1]) return false;
  try {
    return realpathSync(process.argv[1]) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isEntryPoint()) {
  main(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
  });
}
