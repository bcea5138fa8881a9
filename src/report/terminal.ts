/**
 * What the command line shows on a terminal: a progress bar per phase (only on a TTY, never in CI logs or
 * when piped), colour (on a TTY, or where FORCE_COLOR asks for it; never with NO_COLOR), and the notes a
 * reader of the summary should not miss.
 */
import cliProgress from 'cli-progress';
import type { AuditPhase, AuditProgress } from '../audit.js';
import type { Report } from './model.js';
import { isSeedingNote, notesOf, noteText } from './notes.js';

export interface Palette {
  enabled: boolean;
  red: (text: string) => string;
  yellow: (text: string) => string;
  green: (text: string) => string;
  cyan: (text: string) => string;
  bold: (text: string) => string;
  dim: (text: string) => string;
}

type Env = Record<string, string | undefined>;

/**
 * Colour on a TTY, never when NO_COLOR is set (and not empty: no-color.org) or TERM is dumb; FORCE_COLOR=1
 * (or empty, or true) forces it when piped and FORCE_COLOR=0 (or false) turns it off, but NO_COLOR wins.
 */
export function colourEnabled(stream: { isTTY?: boolean }, env: Env = process.env): boolean {
  if (env.NO_COLOR) return false;
  const force = env.FORCE_COLOR;
  if (force !== undefined) return !['0', 'false'].includes(force.toLowerCase());
  if (env.TERM === 'dumb') return false;
  return Boolean(stream.isTTY);
}

export function palette(enabled: boolean): Palette {
  const sgr = (open: number, close: number) => (enabled ? (text: string) => `\u001b[${open}m${text}\u001b[${close}m` : (text: string) => text);
  return { enabled, red: sgr(31, 39), yellow: sgr(33, 39), green: sgr(32, 39), cyan: sgr(36, 39), bold: sgr(1, 22), dim: sgr(2, 22) };
}

/** Progress bars only where a person watches: a TTY, outside CI. */
export function progressEnabled(stream: { isTTY?: boolean }, env: Env = process.env): boolean {
  return Boolean(stream.isTTY) && !env.CI && env.TERM !== 'dumb';
}

const PHASE_LABELS: Record<AuditPhase, string> = {
  target: 'database',
  schema: 'schema',
  catalog: 'catalog',
  seeding: 'seeding',
  probes: 'probes',
};

/** One bar per phase, left on screen when its phase ends; a log line ends the bar above it. */
export class ProgressBars {
  private current: { phase: AuditPhase; bar: cliProgress.SingleBar } | undefined;

  /** `write` prints log lines (through the command line's redaction); the bars draw on `stream`. */
  constructor(
    private readonly stream: NodeJS.WritableStream,
    private readonly colours: Palette,
    private readonly write: (text: string) => void = (text) => stream.write(text),
  ) {}

  update(event: AuditProgress): void {
    if (event.total === 0) return;
    const payload = { phase: PHASE_LABELS[event.phase].padEnd(8), step: event.step ?? '' };
    if (this.current?.phase !== event.phase) {
      this.end();
      const bar = new cliProgress.SingleBar({
        stream: this.stream,
        format: `${this.colours.cyan('{phase}')} {bar} {value}/{total} ${this.colours.dim('{step}')}`,
        barCompleteChar: '\u2588',
        barIncompleteChar: '\u2591',
        barsize: 30,
        hideCursor: true,
        clearOnComplete: false,
        // The decision to draw is progressEnabled()'s: a bar never writes to a pipe.
        noTTYOutput: false,
      });
      bar.start(event.total, event.completed, payload);
      this.current = { phase: event.phase, bar };
      return;
    }
    this.current.bar.setTotal(event.total);
    this.current.bar.update(event.completed, payload);
  }

  private end(): void {
    this.current?.bar.stop();
    this.current = undefined;
  }

  log(line: string): void {
    this.end();
    this.write(`${line}\n`);
  }

  stop(): void {
    this.end();
  }
}

const SEVERITY_COLOUR: Record<string, keyof Omit<Palette, 'enabled'>> = { CRITICAL: 'red', HIGH: 'red', MEDIUM: 'yellow', LOW: 'cyan', INFO: 'dim' };

/** Colour the console summary's severity labels and verdict; the text is otherwise left as it is. */
export function colourSummary(text: string, colours: Palette): string {
  if (!colours.enabled) return text;
  return text
    .split('\n')
    .map((line) =>
      line
        .replace(/^(\s+)(CRITICAL|HIGH|MEDIUM|LOW|INFO)(?=\s)/, (_match, indent: string, severity: string) => `${indent}${colours[SEVERITY_COLOUR[severity]!](severity)}`)
        .replace(/(verdict: )(PASS|FAIL|INCONCLUSIVE)\b/, (_match, label: string, verdict: string) =>
          `${label}${colours.bold(verdict === 'PASS' ? colours.green(verdict) : verdict === 'FAIL' ? colours.red(verdict) : colours.yellow(verdict))}`,
        ),
    )
    .join('\n');
}

/**
 * The notes a reader must see before trusting the verdict: what the audit assumed or discovered about the
 * tenancy, and the probes that did not run to a result (skipped, unreliable, inconclusive, errors).
 */
export function renderNotes(report: Report): string[] {
  // Seeding notes are in the summary already.
  const lines = notesOf(report).filter((note) => !isSeedingNote(note)).map((note) => `note: ${noteText(note)}`);
  const unresolved = report.probes.filter((probe) => ['skipped', 'unreliable', 'inconclusive', 'error'].includes(probe.outcome));
  const byOutcome = new Map<string, typeof unresolved>();
  for (const probe of unresolved) byOutcome.set(probe.outcome, [...(byOutcome.get(probe.outcome) ?? []), probe]);
  for (const [outcome, probes] of byOutcome) {
    const examples = probes.slice(0, 3).map((probe) => `${probe.check} on ${probe.relation} (${probe.context})${probe.error ? `: ${probe.error}` : ''}`);
    lines.push(`note: ${probes.length} probe statement${probes.length === 1 ? '' : 's'} ${outcome === 'error' ? 'failed' : `${probes.length === 1 ? 'was' : 'were'} ${outcome}`}, e.g. ${examples.join('; ')}${probes.length > 3 ? '; see report.json' : ''}`);
  }
  return lines;
}

/** Where the command line's progress goes: bars on a TTY, plain lines anywhere else, nothing when quiet. */
export interface ConsoleProgress {
  log: (line: string) => void;
  progress?: (event: AuditProgress) => void;
  stop: () => void;
}

export function consoleProgress(options: { quiet?: boolean; err: (text: string) => void; stream?: NodeJS.WritableStream & { isTTY?: boolean }; env?: Env }): ConsoleProgress {
  if (options.quiet) return { log: () => undefined, stop: () => undefined };
  const env = options.env ?? process.env;
  if (!options.stream || !progressEnabled(options.stream, env)) return { log: (line) => options.err(`${line}\n`), stop: () => undefined };
  const bars = new ProgressBars(options.stream, palette(colourEnabled(options.stream, env)), options.err);
  return { log: (line) => bars.log(line), progress: (event) => bars.update(event), stop: () => bars.stop() };
}
