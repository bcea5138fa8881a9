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

export interface Finding {
  /** Stable check id (kebab-case): what users accept and dashboards key on. */
  check: string;
  severity: Severity;
  /** Qualified relation, or the view, function or role the finding concerns. */
  table: string;
  /** The tenant whose context the statement ran under. */
  tenant?: string;
  /** The tenant whose rows crossed the boundary. */
  foreignTenant?: string;
  evidence: Evidence;
  /** One sentence a reviewer understands. */
  message: string;
  /** SQL a user would run to fix it. */
  fix: string;
  /** `probe` when proved on data, `rule` when read from the catalog. */
  source: 'probe' | 'rule';
  /** For rule findings: the probe findings that confirmed it. */
  confirmedBy?: string[];
  /** For rule findings lowered because probes exercised the path and saw no leak. */
  refutedBy?: string;
  /** Set when the scenario accepts this finding; accepted findings do not fail the run unless expired. */
  accepted?: { reason: string; expires?: string; expired: boolean };
}

export interface Check {
  id: string;
  title: string;
  /** The most severe level this check reports; individual findings may be lower. */
  severity: Severity;
  kind: 'probe' | 'rule';
  /** One paragraph: what is checked, why it matters, how it is fixed. */
  explanation: string;
}
