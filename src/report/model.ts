import type { BaselineEntry } from '../findings/baseline.js';
import type { CheckMeta, Finding } from '../findings/finding.js';
import type { Acceptance } from '../scenario/schema.js';
import type { FamilyCoverage } from '../probes/coverage.js';
import type { ProbeOutcome, ProbeRecord } from '../probes/types.js';
import type { SeedResult } from '../seed/outcome.js';
import type { Severity } from '../findings/severity.js';
import type { InconclusiveReason, Verdict } from '../findings/verdict.js';
import type { SourceLocation } from './locate.js';
import type { Note } from './notes.js';
import type { Replay } from './replay.js';

export const REPORT_SCHEMA_VERSION = 2;

export interface RelationReport {
  name: string;
  kind: string;
  tenancy: string;
  tenantColumn: string | null;
  /** Foreign-key path to the tenant, e.g. `public.attachments(message_id) -> public.messages`. */
  path: string | null;
  reason: string;
  rlsEnabled: boolean;
  rlsForced: boolean;
  /** How the relation was seeded (tenants: rows per tenant id, inserted and adopted from triggers). */
  seeding: Omit<SeedResult, 'relation' | 'hint'> | null;
}

export interface Report {
  schemaVersion: typeof REPORT_SCHEMA_VERSION;
  tool: { name: 'rls-audit'; version: string };
  command: 'run' | 'lint';
  startedAt: string;
  scenario: {
    name: string;
    role: string;
    setting: string;
    contextSql: string;
    tenantKey: string;
    tenantColumns: string[];
    rowsPerTenant: number;
    /** Seed of the fake data; null for lint, which seeds nothing. */
    seed: number | null;
    failOn: Severity;
  };
  target: { kind: string; description: string; serverVersion: string; database: string };
  tenants: { id: string; label: string; canary: string }[];
  relations: RelationReport[];
  /**
   * Where each object a finding names is created in the schema files (empty for a url target without them):
   * keyed by the object's subject or label, and by `findingLocationKey` for a finding located elsewhere
   * than its object (a policy's CREATE POLICY). See report/locate.ts.
   */
  locations: Record<string, SourceLocation>;
  /**
   * The directory `locations` paths are relative to, as a file:// URI ending in '/': the git repository
   * that holds the audit's working directory, else that directory.
   */
  sourceRoot?: string;
  /** How tenancy was discovered; anything the reader should know about the run. */
  notes: string[];
  /** The same notes as data (kind and what they are about): what renderers choose notes by. */
  structuredNotes?: Note[];
  /** The checks this run evaluated (rules; for `run` also probes), with everything a renderer needs to describe them. */
  checks: CheckMeta[];
  probes: ProbeRecord[];
  /** Which tenants each write family acted as, and why that covers every policy path (run only). */
  coverage?: FamilyCoverage[];
  /**
   * Set on the report of one part of a sharded run (`--shard i/n`): what `rls-audit merge` needs to decide
   * over all parts (the rule findings before probe evidence, the probe findings, the acceptances).
   */
  shard?: { index: number; count: number; ruleFindings: Finding[]; probeFindings: Finding[]; accept: Acceptance[] };
  findings: Finding[];
  /** The seeded rows and the context, to recreate the tenants in a test (`run --format pgtap` only). */
  replay?: Replay;
  /**
   * Set when the run was compared with a baseline (`--baseline`): how many findings are new, worse or
   * unchanged (those do not fail the run), and the baseline's findings that are gone.
   */
  baseline?: { source: string; new: number; worse: number; unchanged: number; fixed: BaselineEntry[] };
  summary: {
    /** `inconclusive` (exit 2): part of the run proved nothing; `inconclusive` says what and what to try. */
    verdict: Verdict;
    inconclusive: InconclusiveReason[];
    failOn: Severity;
    findings: Record<Severity, number>;
    /** Findings at or above failOn that are not accepted (or whose acceptance expired). */
    failing: number;
    /**
     * Set on a failing run whose context showed no tenant its rows (see `inconclusive[].context`) when no failing
     * finding was proved by a probe: the verdict rests on static findings only.
     */
    staticOnly?: boolean;
    accepted: number;
    probes: Partial<Record<ProbeOutcome, number>>;
    rowsSeeded: number;
    queries: number;
  };
  /** Milliseconds per phase. */
  timings: { start: number; schema: number; introspection: number; seeding: number; probes: number; report: number; total: number; /** Milliseconds per probe. */ perProbe: Record<string, number>; /** Milliseconds the audit paused for its pace (--pace, a url target only). */ paused?: number };
}
