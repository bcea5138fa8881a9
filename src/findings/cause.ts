import { objectLabel, type FindingObject } from './finding.js';

/**
 * Why a finding exists: the defect it is one symptom of. Rules name the cause they read in the catalog;
 * probes attach the evidence they gathered to the cause the diagnosis (findings/diagnose.ts) reads for it.
 * Findings with the same cause are one defect (rules/reconcile.ts), whatever their fix says.
 */
export interface Cause {
  kind: CauseKind;
  /** The object the defect is in: the role that bypasses RLS, the view that runs as its owner, the table, the key. */
  object: FindingObject;
  /** What tells two defects of one kind on one object apart: the command and clause, the policies to blame. */
  facts: Record<string, string | readonly string[]>;
}

export const CAUSE_KINDS = [
  /** The application role is a superuser or has BYPASSRLS: no policy applies to it. */
  'role-bypasses-rls',
  /** A view runs with its owner's rights, and the owner is not held to the tenant policies of what it reads. */
  'definer-view',
  /** A materialized view stores every tenant's rows; RLS does not apply to it. */
  'materialized-view',
  /** A partition or inheritance child without RLS of its own, reached directly. */
  'partition-without-rls',
  /** Row-level security is disabled on a tenant table. */
  'rls-disabled',
  /** The application role owns the table (or inherits its owner's rights), which does not force RLS. */
  'owner-bypass',
  /** No policy applies to the application role for a command. */
  'no-policy',
  /** Permissive policies whose clause does not confine rows to the current tenant. */
  'loose-policy',
  /** The policies together admit other tenants' rows. */
  'policies-admit',
  /** The policies let rows through, or fail, when the tenant setting is missing or empty. */
  'fails-open',
  /** A unique key (constraint or index) spans tenants. */
  'key-without-tenant',
  /** The tenant is read from a JWT claim the user writes itself. */
  'user-editable-claim',
] as const;
export type CauseKind = (typeof CAUSE_KINDS)[number];

export function cause(kind: CauseKind, object: FindingObject, facts: Cause['facts'] = {}): Cause {
  return { kind, object, facts };
}

/** The identity of a defect: its kind, its object and its facts (lists compared as sets). */
export function causeKey(cause: Cause): string {
  const facts = Object.keys(cause.facts)
    .sort()
    .map((name) => {
      const value = cause.facts[name]!;
      return `${name}=${typeof value === 'string' ? value : [...value].sort().join(',')}`;
    });
  return [cause.kind, cause.object.kind, objectLabel(cause.object), (cause.object.columns ?? []).join(','), ...facts].join('\u0000');
}
