import { z } from 'zod';
import { identifier, optionFields, optionTargetFields } from './options.js';

export const acceptanceSchema = z
  .object({
    check: identifier.describe('check id, e.g. existence-oracle').optional(),
    object: identifier.describe('relation, view, function or role the finding concerns, e.g. public.users').optional(),
    /** With check and object: only the finding about exactly these columns (one foreign key of a table, not the others). */
    columns: z.array(identifier).min(1).optional(),
    /** Instead of check and object: the finding's fingerprint, as report.json and SARIF give it. */
    fingerprint: z.string().regex(/^[0-9a-f]{32}$/, 'a fingerprint is the 32 hex digits of a finding in report.json or SARIF').optional(),
    reason: z.string().min(3, 'say why this finding is accepted'),
    expires: z
      .string()
      .regex(/^\d{4}-\d{2}-\d{2}$/, 'expected a date as YYYY-MM-DD')
      .optional(),
  })
  .strict()
  .refine((entry) => entry.fingerprint !== undefined || (entry.check !== undefined && entry.object !== undefined), {
    message: 'name the finding by check and object (optionally columns), or by fingerprint',
  })
  .refine((entry) => entry.columns === undefined || (entry.check !== undefined && entry.object !== undefined), {
    message: 'columns narrow a check and object: give those too',
    path: ['columns'],
  });

export const unseededSchema = z
  .object({
    relation: identifier.describe('relation or partition, e.g. public.events_2019'),
    reason: z.string().min(3, 'say why this relation may stay unseeded'),
  })
  .strict();

export const namedQuerySchema = z
  .object({
    name: identifier,
    sql: z.string().min(1),
    /** Parameters bound per tenant: the literal `$tenant` is replaced by the tenant id. */
    params: z.array(z.union([z.string(), z.number(), z.boolean(), z.null()])).default([]),
  })
  .strict();

export const scenarioSchema = z
  .object({
    name: z
      .string()
      .regex(/^[A-Za-z0-9._-]+$/, 'use letters, digits, dot, dash or underscore (it names the report folder)')
      .default('audit'),
    /** The fields the command line sets too (see CLI_OPTIONS in options.ts). */
    ...optionFields,
    /**
     * With a preset: the role a request without a JWT runs as (PostgREST's db-anon-role); common names
     * (web_anon, anon, api_anon) when absent.
     */
    anonymousRole: identifier.optional(),
    /**
     * With `api` (a preset): the schemas the API layer exposes (PostgREST's db-schemas). A relation or function
     * outside them is reached only through what is exposed (views, functions, triggers); findings on one that
     * nothing exposed reaches are info. Absent: every schema counts as exposed.
     */
    apiSchemas: z.array(identifier).min(1).optional(),
    /**
     * With a preset: the role the API server logs in as (the user of PostgREST's db-uri); the signed-in role is
     * the one it switches to that is not the anonymous role. `authenticator` when absent.
     */
    authenticator: identifier.optional(),
    /** With a preset: the JWT claim path that carries the tenant, e.g. [app_metadata, tenant_id]. */
    tenantClaim: z.array(identifier).min(1).optional(),
    /** Who probes run as; discovered from the context SQL and the schema when absent. */
    actor: z
      .object({
        kind: z.enum(['tenant', 'user', 'role']).optional(),
        usersTable: identifier.optional(),
        membershipTable: identifier.optional(),
        /** Role name per tenant, `{tenant}` standing for the tenant id, e.g. tenant_{tenant}. */
        roleTemplate: z.string().includes('{tenant}', { message: 'must contain {tenant}' }).optional(),
      })
      .strict()
      .optional(),
    /** Schemas to audit; by default every non-system schema. */
    schemas: z.array(identifier).default([]),
    target: z
      .object({ ...optionTargetFields })
      .strict()
      .default({ kind: 'embedded', pgVersion: '17' }),
    /** Cap on rows fetched by one probe query (the count is always exact). */
    maxRowsPerQuery: z.number().int().min(10).default(10_000),
    queries: z.array(namedQuerySchema).default([]),
    accept: z.array(acceptanceSchema).default([]),
    /**
     * Tenant-owned relations (or partitions) that may stay without rows of some tenant, and why; any other
     * unseeded one makes the verdict inconclusive.
     */
    unseeded: z.array(unseededSchema).default([]),
  })
  .strict();

export type Scenario = z.output<typeof scenarioSchema>;
export type ScenarioInput = z.input<typeof scenarioSchema>;
export type Acceptance = z.output<typeof acceptanceSchema>;
export type NamedQuery = z.output<typeof namedQuerySchema>;
export type Unseeded = z.output<typeof unseededSchema>;

/** The scenario's `unseeded` entry for a relation (named qualified, or bare in public), if it has one. */
export function unseededEntry(scenario: Pick<Scenario, 'unseeded'>, relation: string): Unseeded | undefined {
  const unqualified = relation.startsWith('public.') ? relation.slice('public.'.length) : relation;
  return scenario.unseeded.find((entry) => entry.relation === relation || entry.relation === unqualified);
}
