import { createHash } from 'node:crypto';
import type { Cause } from './cause.js';
import { renderFix, type Fix } from './fix.js';
import type { Severity } from './severity.js';

export type SampleRow = Record<string, string | null>;

export interface Evidence {
  /** The exact SQL that reproduces the finding, with the context it ran under, ready for psql. */
  sql: string;
  /** Who ran it and with which tenant context, in words. */
  context: string;
  /** Rows the statement returned or affected. */
  rowCount?: number;
  /** A few of those rows, values masked (keys, tenant ids and canaries stay readable). */
  sampleRows?: SampleRow[];
  /** The error the statement raised, when that is the finding. */
  error?: string;
  /** Anything else a reviewer needs: the policy text, a plan, counts per tenant. */
  details?: string;
}

/** What a finding can be about. A sequence is named on its own: it is neither a table nor a view. */
export const OBJECT_KINDS = ['table', 'view', 'function', 'role', 'policy', 'setting', 'query', 'constraint', 'sequence'] as const;
export type ObjectKind = (typeof OBJECT_KINDS)[number];

/** The database object a finding concerns. */
export interface FindingObject {
  kind: ObjectKind;
  /**
   * Qualified relation (`public.notes`), function signature, role, setting, query name; for a policy or a
   * constraint its own name (the table it belongs to is `relation`).
   */
  name: string;
  /** The table a policy or constraint belongs to. */
  relation?: string;
  /** The columns the defect is about (a foreign key's or unique key's columns), when it is about some columns only. */
  columns?: string[];
}

/** How a report names an object in one line: `public.notes`, `notes_tenant_fkey on public.notes`. */
export function objectLabel(object: FindingObject): string {
  return object.relation ? `${object.name} on ${object.relation}` : object.name;
}

/** The relation (or other top-level object) a finding is about: a policy's or constraint's table, else the object itself. */
export function objectSubject(object: FindingObject): string {
  return object.relation ?? object.name;
}

export interface Finding {
  /** Stable check id (kebab-case): what users accept and dashboards key on. */
  check: string;
  severity: Severity;
  /** What the finding concerns; its kind is the one the check declares unless the object is of another kind (a view read by a table check). */
  object: FindingObject;
  /** The tenant whose context the statement ran under. */
  tenant?: string;
  /** The tenant whose rows crossed the boundary. */
  foreignTenant?: string;
  evidence: Evidence;
  /** One sentence a reviewer understands. */
  message: string;
  /** SQL a user would run to fix it: `fixSteps` rendered (findings/fix.ts). */
  fix: string;
  /**
   * The fix as data: the statements to run and the alternatives. Set on every finding a check reports; a
   * report written before findings carried it (or a finding made up by hand) has only `fix`.
   */
  fixSteps?: Fix;
  /**
   * The defect this finding is a symptom of (see findings/cause.ts): findings with the same cause are one
   * finding. Without one, a finding is a defect of its own (or confirms a rule finding on its object).
   */
  cause?: Cause;
  /** `probe` when proved on data, `rule` when read from the catalog. */
  source: 'probe' | 'rule';
  /**
   * The probe findings that prove this defect on data (a probe of the check's `confirmedBy` on the same
   * object, or another probe of the same cause): one finding per defect, its proofs listed here.
   */
  confirmedBy?: LinkedFinding[];
  /** Other rule findings of the same defect (the same cause), folded into this one. */
  related?: LinkedFinding[];
  /** Objects other than `object` that the same defect reaches (from the findings folded into this one). */
  affected?: FindingObject[];
  /** For rule findings lowered because probes exercised the path and saw no leak. */
  refutedBy?: string;
  /** Set when the scenario accepts this finding; accepted findings do not fail the run unless expired. */
  accepted?: { reason: string; expires?: string; expired: boolean };
  /**
   * Identifies the same problem across runs (see `fingerprintFindings`): what a baseline and an acceptance
   * by fingerprint match on. Set on every finding of a report.
   */
  fingerprint?: string;
  /**
   * Against a baseline (`--baseline`): `unchanged` was there at the same or a worse severity and does not
   * fail the run; `worse` was there at a milder severity; `new` was not there.
   */
  baseline?: 'new' | 'worse' | 'unchanged';
}

/**
 * Each finding's fingerprint: the one it carries, else the one `fingerprintFindings` gives it (a report
 * written before findings carried them, or findings made up by hand).
 */
export function fingerprintsOf(findings: readonly Finding[]): string[] {
  const computed = findings.every((finding) => finding.fingerprint) ? null : fingerprintFindings(findings);
  return findings.map((finding, index) => finding.fingerprint ?? computed![index]!.fingerprint!);
}

/**
 * Fingerprints that identify the same problem across runs: the check and the object (kind, name, table,
 * columns), never a tenant id, a seeded value, a severity or a message (they change with the seed and
 * with the evidence). When one check reports the same object several times, the n-th of them gets the
 * ordinal n; `findings` must be in report order (sorted), which is the same in every run.
 */
export function fingerprintFindings(findings: readonly Finding[]): Finding[] {
  const seen = new Map<string, number>();
  return findings.map((finding) => {
    const key = `${finding.check}\u0000${finding.object.kind}\u0000${objectLabel(finding.object)}\u0000${(finding.object.columns ?? []).join(',')}`;
    const ordinal = seen.get(key) ?? 0;
    seen.set(key, ordinal + 1);
    return { ...finding, fingerprint: createHash('sha256').update(`rls-audit/v1\u0000${key}\u0000${ordinal}`).digest('hex').slice(0, 32) };
  });
}

/** A finding folded into another one of the same defect: what it said and the evidence it had. */
export interface LinkedFinding {
  check: string;
  source: 'probe' | 'rule';
  severity: Severity;
  object: FindingObject;
  tenant?: string;
  foreignTenant?: string;
  message: string;
  evidence: Evidence;
}

export function linkedFinding(finding: Finding): LinkedFinding {
  const { check, source, severity, object, tenant, foreignTenant, message, evidence } = finding;
  return { check, source, severity, object, ...(tenant === undefined ? {} : { tenant }), ...(foreignTenant === undefined ? {} : { foreignTenant }), message, evidence };
}

/** Two objects are the same when kind, name and owning table agree (one foreign key is not another of the same table). */
export function sameObject(a: FindingObject, b: FindingObject): boolean {
  return a.kind === b.kind && a.name === b.name && (a.relation ?? null) === (b.relation ?? null);
}

/** Every check that reported a defect: the finding's own and those folded into it. */
export function checksOf(finding: Finding): string[] {
  return [...new Set([finding.check, ...(finding.confirmedBy ?? []).map((entry) => entry.check), ...(finding.related ?? []).map((entry) => entry.check)])];
}

/** What a check is, as the report carries it: everything a renderer needs without the check's code. */
export interface CheckMeta {
  /** Stable, kebab-case. */
  id: string;
  title: string;
  /** The most severe level this check reports; individual findings may be lower. */
  severity: Severity;
  /** `probe`: proved on seeded data; `rule`: read from the catalog. */
  source: 'probe' | 'rule';
  /** What its findings are about. */
  objectKind: ObjectKind;
  /** One line: what it finds. */
  summary: string;
  /** A finding as it reads in a report, for the README and `rls-audit checks`. */
  example: string;
  /** One paragraph: what is checked, why it matters, how it is fixed. */
  explanation: string;
  /**
   * What sets the severity of a finding: the precondition of the exploit and how the check establishes it, for
   * every severity it can report (design.md: each rule states its precondition and checks it). Rendered in the README.
   */
  precondition: string;
  /** Rules: probe check ids that prove (or refute) its findings on data. */
  confirmedBy?: string[];
  /** Checks reported along the way by a probe: the id of that probe. */
  reportedBy?: string;
}

/** What a check's definition declares; `source` and `reportedBy` are filled by defineRule / defineProbe. */
export type CheckMetaInput = Omit<CheckMeta, 'source' | 'reportedBy'>;

/** A finding as a check reports it: id, source and the object's kind are filled in from the check's metadata. */
export type FindingInput = Omit<Finding, 'check' | 'source' | 'object' | 'fix' | 'fixSteps'> & {
  /** The fix as data (findings/fix.ts). */
  fix: Fix;
  /** Another check id this check declares (a related check of a probe); defaults to the check's own id. */
  check?: string;
  /** The object's name (of the declared kind), or the object itself. */
  object: string | FindingObject;
};

/** Builds findings for checks whose metadata it holds; throws on an id the check did not declare. */
export function findingBuilder(metas: readonly CheckMeta[]): (input: FindingInput) => Finding {
  const byId = new Map(metas.map((meta) => [meta.id, meta]));
  const own = metas[0]!;
  return ({ check = own.id, object, fix, ...rest }) => {
    const meta = byId.get(check);
    if (!meta) throw new Error(`check ${own.id} reported ${check}, which it does not declare`);
    return { check, ...rest, object: typeof object === 'string' ? { kind: meta.objectKind, name: object } : object, fix: renderFix(fix), fixSteps: fix, source: meta.source };
  };
}

/** A relation as a finding's object: views and materialized views are views, everything else with rows a table. */
export function relationObject(relation: { qualified: string; kind: string }): FindingObject {
  return { kind: relation.kind === 'view' || relation.kind === 'materialized-view' ? 'view' : 'table', name: relation.qualified };
}

/** A constraint (or unique index) of a table as a finding's object. */
export function constraintObject(relation: string, name: string, columns: readonly (string | null)[]): FindingObject {
  return { kind: 'constraint', name, relation, columns: columns.filter((column): column is string => column !== null) };
}
