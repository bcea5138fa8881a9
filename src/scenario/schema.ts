import os from 'node:os';
import { z } from 'zod';
import { SEVERITIES } from '../findings/severity.js';

const identifier = z.string().min(1).regex(/^[^\u0000]+$/, 'must not contain NUL');

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
    /** SQL files applied in order, as the bootstrap superuser. Relative to the scenario file. */
    schema: z.array(z.string().min(1)).default([]),
    /** The application's role. Probes run as this role. */
    role: identifier.optional(),
    /** The setting that carries the tenant; discovered from the policies when absent. */
    setting: z
      .string()
      .regex(/^[A-Za-z_][A-Za-z0-9_$]*\.[A-Za-z_][A-Za-z0-9_$.]*$/, 'a custom setting looks like app.current_tenant')
      .optional(),
    /**
     * The SQL the application runs to set the context: `$tenant` (or `$1`) is the tenant id, `$user` the
     * user id, `$role` the tenant's role, each as text.
     */
    contextSql: z.string().min(1).optional(),
    /** What the platform provides and how its requests carry the context. */
    preset: z.enum(['supabase', 'postgrest']).optional(),
    /**
     * The application role is reached only through an API layer (PostgREST, Supabase's REST API), which runs
     * SELECT, INSERT, UPDATE, DELETE and function calls but never TRUNCATE or DDL (CREATE TRIGGER, CREATE TABLE,
     * ALTER TABLE). Privileges only those statements use are then reported as info. Default: true with a preset.
     */
    api: z.boolean().optional(),
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
    /** The tenant table, e.g. public.tenants; discovered when absent. */
    tenantTable: identifier.optional(),
    /** The tenant table's column that identifies a tenant when it is not the primary key, e.g. tenant_id. */
    tenantKey: identifier.optional(),
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
    /** Column name(s) that carry the tenant in tenant-owned tables; discovered when absent. */
    tenantColumn: z.array(identifier).default([]),
    tenants: z.number().int().min(2).max(1000).default(3),
    rows: z.number().int().min(1).max(100_000).default(20),
    seed: z.number().int().min(0).optional(),
    /** Schemas to audit; by default every non-system schema. */
    schemas: z.array(identifier).default([]),
    target: z
      .object({
        kind: z.enum(['embedded', 'url', 'container']).default('embedded'),
        url: z.string().min(1).optional(),
        pgBin: z.string().min(1).optional(),
        /** Embedded target: copy the schema, roles and grants of this live database first ('' = DATABASE_URL or PG* variables). */
        schemaFrom: z.string().optional(),
        pgVersion: z.string().regex(/^\d+(\.\d+)?$/, 'a PostgreSQL version such as 16 or 15.8').default('17'),
      })
      .strict()
      .default({ kind: 'embedded', pgVersion: '17' }),
    /**
     * On a live database (url target), let the audit advance sequences through triggers or defaults that call nextval;
     * without it, the relations whose writes would do so are not seeded and not written by probes (inconclusive).
     */
    allowSequenceGaps: z.boolean().default(false),
    /** The whole run's time limit in seconds; reached, the audit stops, writes what it has, and exits 2. */
    timeoutSeconds: z.number().int().min(1).default(1800),
    out: z.string().min(1).optional(),
    failOn: z.enum(SEVERITIES).default('high'),
    /** Cap on rows fetched by one probe query (the count is always exact). */
    maxRowsPerQuery: z.number().int().min(10).default(10_000),
    queries: z.array(namedQuerySchema).default([]),
    /** Run the write families as every tenant, not only the few tenants that cover every policy path. */
    exhaustive: z.boolean().default(false),
    /** Connections that probe in parallel on a cluster that belongs to the run (a url target always uses one). */
    jobs: z
      .number()
      .int()
      .min(1)
      .max(64)
      .default(() => os.availableParallelism()),
    /** Run one part of the probe plan, e.g. `2/3`; `rls-audit merge` joins the parts' reports into one. */
    shard: z
      .string()
      .regex(/^\d+\/\d+$/, 'a shard looks like 2/3 (this job, of how many)')
      .refine((text) => {
        const [index, count] = text.split('/').map(Number);
        return index! >= 1 && index! <= count!;
      }, 'the shard number must be between 1 and the number of shards')
      .optional(),
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
