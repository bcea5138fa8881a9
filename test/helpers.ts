import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { expect } from 'vitest';
import { loadParser, statementSpans } from '../src/analysis/parse.js';
import { main } from '../src/cli.js';
import { startEmbedded } from '../src/target/embedded.js';
import type { Target } from '../src/target/types.js';
import type { Report } from '../src/report/model.js';
import { objectSubject, type Finding } from '../src/findings/finding.js';
import { atLeast } from '../src/findings/severity.js';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const FIXTURES = path.join(ROOT, 'test', 'fixtures');
export const PG15_BIN = '/usr/lib/postgresql/15/bin';

/** The PostgreSQL versions the integration suite runs on: the embedded default, and local PG 15 when present. */
export const TARGETS: { name: string; args: string[] }[] = [
  { name: 'embedded', args: [] },
  ...(existsSync(path.join(PG15_BIN, 'postgres')) ? [{ name: 'pg15', args: ['--pg-bin', PG15_BIN] }] : []),
];

export interface CliRun {
  code: number;
  out: string;
  err: string;
  report: Report | null;
}

/** Run the CLI in-process with its output captured; reads report.json back when one was written. */
export async function runCli(args: string[]): Promise<CliRun> {
  const outDir = await mkdtemp(path.join(os.tmpdir(), 'rls-audit-test-'));
  let out = '';
  let err = '';
  const withOut = args.includes('--out') || args[0] !== 'run' ? args : [...args, '--out', outDir];
  try {
    const code = await main(withOut, { out: (text) => (out += text), err: (text) => (err += text), cwd: ROOT });
    const reportFile = path.join(withOut.includes('--out') ? withOut[withOut.indexOf('--out') + 1]! : outDir, 'report.json');
    const report = existsSync(reportFile) ? (JSON.parse(await readFile(reportFile, 'utf8')) as Report) : null;
    return { code, out, err, report };
  } finally {
    await rm(outDir, { recursive: true, force: true });
  }
}

/** Audit one fixture schema (test/fixtures/<name>/schema.sql) as app_user. */
export function auditFixture(name: string, extra: string[] = []): Promise<CliRun> {
  return runCli(['run', '--schema', path.join(FIXTURES, name, 'schema.sql'), '--role', 'app_user', '--seed', '7', '--quiet', ...extra]);
}

/** A finding with `table`: the relation (or role, function, setting) it concerns, for comparing with expectations. */
export type FlatFinding = Finding & { table: string };

export function flatFinding(finding: Finding): FlatFinding {
  return { ...finding, table: objectSubject(finding.object) };
}

/**
 * A report's findings with the findings folded into them (a defect is one finding; the probe findings that
 * prove it are its `confirmedBy`, other rules' findings of it its `related`) listed as findings of their own.
 */
export function allFindings(findings: readonly Finding[]): FlatFinding[] {
  return findings.flatMap((finding) => [
    flatFinding(finding),
    ...[...(finding.confirmedBy ?? []), ...(finding.related ?? [])].map((linked) => flatFinding({ ...finding, ...linked, confirmedBy: [], related: [] })),
  ]);
}

export function findingsOf(run: CliRun, check?: string): FlatFinding[] {
  return allFindings(run.report?.findings ?? []).filter((finding) => !check || finding.check === check);
}

/**
 * The false-alarm budget (secure-fixtures.test.ts): the audit of a secure fixture ended without an error, with
 * a report, nothing at medium or above (the findings folded into others included), a conclusive pass and exit 0.
 * A test that audits a secure fixture exactly as secure-fixtures.test.ts would (same schema, same arguments)
 * asserts this on its own audit, and the fixture's expect.yaml names it (`auditedBy:`) so the audit runs once.
 */
export function expectNoFalseAlarm(run: CliRun): void {
  expect(run.err).not.toMatch(/^rls-audit: /m);
  expect(run.report, run.err).not.toBeNull();
  const alarms = allFindings(run.report!.findings)
    .filter((finding) => atLeast(finding.severity, 'medium'))
    .map((finding) => `${finding.severity} ${finding.check} ${finding.table}: ${finding.message}`);
  expect(alarms).toEqual([]);
  expect({ verdict: run.report!.summary.verdict, inconclusive: run.report!.summary.inconclusive }).toEqual({ verdict: 'pass', inconclusive: [] });
  expect(run.code).toBe(0);
}

/**
 * One cluster for many static audits of schema files: each `lint` gets a database of its own, into which the
 * files are applied statement by statement as the superuser (as the CLI applies them), and the CLI then
 * reads it with --database-url. Roles are cluster-wide: the roles a schema created are dropped afterwards.
 * A database is created in a tenth of the time a cluster starts in, and `lint` behaves the same on both.
 */
export class FixtureCluster {
  private audits = 0;
  private constructor(
    private readonly target: Target,
    private readonly scratch: string,
    private readonly roles: Set<string>,
  ) {}

  static async start(args: string[] = []): Promise<FixtureCluster> {
    const at = args.indexOf('--pg-bin');
    const target = await startEmbedded(at >= 0 ? { pgBin: args[at + 1]! } : {});
    const scratch = await mkdtemp(path.join(os.tmpdir(), 'rls-audit-fixture-cluster-'));
    const roles = await withClient(target.connectionString, async (client) => new Set((await client.query('select rolname from pg_roles')).rows.map((row) => row.rolname as string)));
    await loadParser();
    return new FixtureCluster(target, scratch, roles);
  }

  /**
   * A fresh database holding `schemas` (applied statement by statement), handed to `work` as a target of
   * its own and a superuser client; dropped afterwards, with the roles the schemas created.
   */
  async withDatabase<T>(schemas: string[], work: (database: { target: Target; client: pg.Client }) => Promise<T>): Promise<T> {
    this.audits += 1;
    const database = `fixture_${this.audits}`;
    const url = new URL(this.target.connectionString);
    url.pathname = `/${database}`;
    await withClient(this.target.connectionString, (client) => client.query(`create database ${database}`));
    try {
      return await withClient(url.toString(), async (client) => {
        for (const schema of schemas) await applySql(client, await readFile(schema, 'utf8'));
        return work({ target: { ...this.target, connectionString: url.toString(), close: async () => undefined }, client });
      });
    } finally {
      await withClient(this.target.connectionString, async (client) => {
        await client.query(`drop database if exists ${database} with (force)`);
        const created = (await client.query('select rolname from pg_roles')).rows.map((row) => row.rolname as string).filter((name) => !this.roles.has(name));
        for (const role of created) await client.query(`drop role if exists "${role.replace(/"/g, '""')}"`);
      });
    }
  }

  /** `rls-audit lint --database-url` on a fresh database holding `schemas`; the reports go to `dir`. */
  lint(schemas: string[], extra: string[] = []): Promise<CliRun & { dir: string }> {
    return this.withDatabase(schemas, async ({ target }) => {
      const dir = path.join(this.scratch, `lint-${this.audits}`);
      const run = await runCli(['lint', '--database-url', target.connectionString, '--role', 'app_user', '--quiet', '--out', dir, ...extra]);
      return { ...run, dir };
    });
  }

  async close(): Promise<void> {
    await this.target.close();
    await rm(this.scratch, { recursive: true, force: true });
  }
}

/** Run SQL statement by statement, split by PostgreSQL's parser (CREATE INDEX CONCURRENTLY cannot share a query string). */
export async function applySql(client: pg.Client, sql: string): Promise<void> {
  await loadParser();
  for (const statement of statementSpans(sql)) await client.query(statement.text);
}

/** Run `work` on a connection of its own, closed afterwards. */
export async function withClient<T>(connectionString: string, work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}


/** The schemas a database's own objects live in (not the system's). */
const USER_SCHEMAS = `n.nspname not in ('pg_catalog', 'information_schema') and n.nspname not like 'pg_toast%' and n.nspname not like 'pg_temp%'`;

/**
 * Everything an audit could leave behind in a database: rows (count and checksum per table), sequences,
 * roles and memberships, schemas, relations, types, functions, triggers, policies, settings, prepared
 * transactions and the audit's sessions. Two equal fingerprints: the audit left no trace.
 */
export async function databaseFingerprint(connectionString: string): Promise<Record<string, unknown>> {
  return withClient(connectionString, async (client) => {
    const print: Record<string, unknown> = {};
    const tables = await client.query<{ name: string }>(
      `select format('%I.%I', n.nspname, c.relname) as name from pg_class c join pg_namespace n on n.oid = c.relnamespace
       where c.relkind in ('r', 'p', 'm') and ${USER_SCHEMAS} order by 1`,
    );
    for (const { name } of tables.rows) {
      print[`rows ${name}`] = (await client.query(`select count(*)::int as n, md5(coalesce(string_agg(t::text, '|' order by t::text), '')) as sum from ${name} t`)).rows[0];
    }
    const sequences = await client.query<{ name: string }>(`select format('%I.%I', schemaname, sequencename) as name from pg_sequences order by 1`);
    for (const { name } of sequences.rows) print[`sequence ${name}`] = (await client.query(`select last_value::text, is_called from ${name}`)).rows[0];
    print.roles = (await client.query(`select rolname, rolsuper, rolbypassrls, rolcanlogin from pg_roles order by 1`)).rows;
    print.memberships = (await client.query(`select roleid::regrole::text, member::regrole::text from pg_auth_members order by 1, 2`)).rows;
    print.schemas = (await client.query(`select n.nspname, n.nspacl::text from pg_namespace n where ${USER_SCHEMAS} order by 1`)).rows;
    print.objects = (await client.query(`select n.nspname, c.relname, c.relkind, c.relrowsecurity, c.relforcerowsecurity, c.relacl::text from pg_class c join pg_namespace n on n.oid = c.relnamespace where ${USER_SCHEMAS} order by 1, 2`)).rows;
    print.types = (await client.query(`select t.oid::regtype::text as type, array(select enumlabel from pg_enum e where e.enumtypid = t.oid order by e.enumsortorder)::text as labels from pg_type t join pg_namespace n on n.oid = t.typnamespace where ${USER_SCHEMAS} order by 1`)).rows;
    print.functions = (await client.query(`select p.oid::regprocedure::text, p.prosecdef, p.proacl::text from pg_proc p join pg_namespace n on n.oid = p.pronamespace where ${USER_SCHEMAS} order by 1`)).rows;
    print.triggers = (await client.query(`select tgrelid::regclass::text, tgname, tgenabled from pg_trigger where not tgisinternal order by 1, 2`)).rows;
    print.policies = (await client.query(`select polname, polrelid::regclass::text, pg_get_expr(polqual, polrelid) from pg_policy order by 1, 2`)).rows;
    print.settings = (await client.query(`select setdatabase, setrole, setconfig::text from pg_db_role_setting order by 1, 2`)).rows;
    print.prepared = (await client.query(`select count(*)::int from pg_prepared_xacts`)).rows;
    print.sessions = (await client.query(`select count(*)::int from pg_stat_activity where application_name like 'rls-audit%'`)).rows;
    return print;
  });
}
