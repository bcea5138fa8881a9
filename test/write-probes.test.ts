import { readFile } from 'node:fs/promises';
import path from 'node:path';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { objectSubject, type Finding } from '../src/findings/finding.js';
import { atLeast, type Severity } from '../src/findings/severity.js';
import { startEmbedded } from '../src/target/embedded.js';
import { allFindings, FIXTURES, runCli, TARGETS, type CliRun } from './helpers.js';

function fixture(check: string, name: string): string {
  return path.join(FIXTURES, check, `${name}.sql`);
}

/** One audit per fixture file and target, shared by the assertions that read it. */
const runs = new Map<string, Promise<CliRun>>();
function audit(file: string, args: string[]): Promise<CliRun> {
  const key = `${file}\u0000${args.join(' ')}`;
  if (!runs.has(key)) runs.set(key, runCli(['run', '--schema', file, '--role', 'app_user', '--seed', '7', '--quiet', ...args]));
  return runs.get(key)!;
}

function findings(run: CliRun, check: string): Finding[] {
  return allFindings(run.report?.findings ?? []).filter((finding) => finding.check === check);
}

interface Case {
  check: string;
  table: string;
  severity: Severity;
  /** What the fix must say for this cause. */
  fix: RegExp;
  /** What the reproducing statement must be. */
  statement: RegExp;
}

const CASES: Case[] = [
  { check: 'foreign-insert', table: 'public.tasks', severity: 'critical', fix: /alter policy "tenant_insert" on "public"."tasks"\s+with check \("tenant_id" = /, statement: /insert into "public"."tasks" \(/ },
  { check: 'foreign-update', table: 'public.tasks', severity: 'critical', fix: /alter policy "edit_any" on "public"."tasks"\s+using \("tenant_id" = /, statement: /update "public"."tasks" set "\w+" = "\w+" where "tenant_id" = '\d+'::integer and "id" = '\d+'::bigint;/ },
  { check: 'foreign-delete', table: 'public.tasks', severity: 'critical', fix: /alter policy "delete_any" on "public"."tasks"\s+using \("tenant_id" = /, statement: /delete from "public"."tasks" where "tenant_id" = '\d+'::integer and "id" = '\d+'::bigint;/ },
  { check: 'blind-update', table: 'public.tasks', severity: 'high', fix: /alter policy "edit_any" on "public"."tasks"\s+using \("tenant_id" = /, statement: /update "public"."tasks" set "title" = '[^']+'::text;/ },
  { check: 'blind-delete', table: 'public.tasks', severity: 'high', fix: /alter policy "purge_any" on "public"."tasks"\s+using \("tenant_id" = /, statement: /delete from "public"."tasks";/ },
  { check: 'tenant-reassignment', table: 'public.tasks', severity: 'high', fix: /alter policy "tenant_update" on "public"."tasks"\s+with check \("tenant_id" = /, statement: /update "public"."tasks" set "tenant_id" = '\d+'::integer, "project_id" = '\d+'::bigint;/ },
  { check: 'truncate', table: 'public.tasks', severity: 'high', fix: /^revoke truncate on "public"."tasks" from "app_user";$/, statement: /truncate table "public"."tasks";/ },
  { check: 'upsert-conflict', table: 'public.products', severity: 'critical', fix: /alter table "public"."products" drop constraint "products_sku_key", add constraint "products_sku_key" unique \("tenant_id", "sku"\)/, statement: /on conflict \("sku"\) do update set "\w+" = excluded\."\w+";/ },
  { check: 'cross-tenant-reference', table: 'public.tasks', severity: 'medium', fix: /foreign key \("tenant_id", "project_id"\) references "public"."projects" \("tenant_id", "id"\)/, statement: /insert into "public"."tasks" \(/ },
  { check: 'copied-values', table: 'public.tasks', severity: 'medium', fix: /foreign key \("tenant_id", "project_id"\) references "public"."projects" \("tenant_id", "id"\)[\s\S]*trigger function copy_project_name\(\)/, statement: /insert into "public"."tasks" \(/ },
];

/** Every row and sequence of the database, to prove that a run that wrote into it left nothing behind. */
async function fingerprint(connectionString: string): Promise<Record<string, unknown>> {
  const client = new pg.Client({ connectionString });
  await client.connect();
  try {
    const print: Record<string, unknown> = {};
    const tables = await client.query<{ name: string }>(
      `select format('%I.%I', n.nspname, c.relname) as name from pg_class c join pg_namespace n on n.oid = c.relnamespace where c.relkind in ('r', 'p') and n.nspname = 'public' order by 1`,
    );
    for (const { name } of tables.rows) {
      print[name] = (await client.query(`select count(*)::int as n, md5(coalesce(string_agg(t::text, '|' order by t::text), '')) as sum from ${name} t`)).rows[0];
    }
    for (const { name } of (await client.query<{ name: string }>(`select format('%I.%I', schemaname, sequencename) as name from pg_sequences order by 1`)).rows) {
      print[name] = (await client.query(`select last_value::text, is_called from ${name}`)).rows[0];
    }
    return print;
  } finally {
    await client.end();
  }
}

describe.each(TARGETS)('write isolation probes on $name', ({ args }) => {
  describe.each(CASES)('$check', ({ check, table, severity, fix, statement }) => {
    it('flags the vulnerable fixture with evidence and a fix', async () => {
      const run = await audit(fixture(check, 'vulnerable'), args);
      expect(run.err).toBe('');
      const found = findings(run, check);
      expect(found.map(({ object, severity: level }) => ({ table: objectSubject(object), severity: level }))).toEqual([{ table, severity }]);
      const [finding] = found;
      expect(finding!.evidence.sql).toMatch(/^begin;\nset local role "app_user";\nselect set_config\('app.current_tenant', '\d+'::text, true\);  -- tenant [A-C]\n/);
      expect(finding!.evidence.sql).toMatch(statement);
      expect(finding!.evidence.sql).toMatch(/\nrollback;$/);
      expect(finding!.evidence.context).toMatch(/^role app_user, app.current_tenant = '\d+' \(tenant [A-C]\)$/);
      expect(finding!.fix).toMatch(fix);
      expect(run.code).toBe(atLeast(severity, 'high') ? 1 : 0);
    });

    it('does not flag the secure twin', async () => {
      const run = await audit(fixture(check, 'secure'), args);
      expect(run.err).toBe('');
      expect(findings(run, check)).toEqual([]);
      expect(run.report!.findings.filter((finding) => atLeast(finding.severity, 'medium'))).toEqual([]);
      expect(run.code).toBe(0);
      // The probe really ran on the table and was turned away (or changed only the tenant's own rows): conclusive passes.
      const records = run.report!.probes.filter((probe) => probe.check === (check === 'copied-values' ? 'cross-tenant-reference' : check) && probe.relation === table);
      // (The secure twins of truncate and upsert-conflict take away what the probe needs: the privilege, a key without the tenant.)
      if (check !== 'truncate' && check !== 'upsert-conflict') expect(records.length).toBeGreaterThan(0);
      expect(records.map((probe) => probe.outcome)).toEqual(records.map(() => 'pass'));
    });
  });

  it('blind-delete flags `for delete using (true)` beside a tenant SELECT policy, which the targeted delete does not', async () => {
    const run = await audit(fixture('blind-delete', 'vulnerable'), args);
    expect(findings(run, 'blind-delete')).toHaveLength(1);
    expect(findings(run, 'foreign-delete')).toEqual([]);
    expect(findings(run, 'read-isolation')).toEqual([]);
    const targeted = run.report!.probes.filter((probe) => probe.check === 'foreign-delete' && probe.relation === 'public.tasks');
    // The policies are tenant-symmetric: the lowest- and highest-id tenants, each on the other, cover them (coverage.ts).
    expect(targeted).toHaveLength(2);
    expect(targeted.every((probe) => probe.outcome === 'pass' && probe.rows === 0)).toBe(true);
    const blind = findings(run, 'blind-delete')[0]!;
    expect(blind.message).toMatch(/deletes 60 rows, 40 of them other tenants' \(tenant [A-C] owns 20\)/);
    expect(blind.evidence.details).toMatch(/^Deleted: 20 rows of tenant [A-C], 20 of tenant [A-C]\./);
  });

  it('blind-update flags `for update using (true)`, which the targeted update does not', async () => {
    const run = await audit(fixture('blind-update', 'vulnerable'), args);
    expect(findings(run, 'foreign-update')).toEqual([]);
    expect(findings(run, 'blind-update')[0]!.message).toMatch(/updates 60 rows, 40 of them other tenants'/);
  });

  it('tenant-reassignment reports both forms: the SELECT policy stops the targeted move, not the one without WHERE', async () => {
    const run = await audit(fixture('tenant-reassignment', 'vulnerable'), args);
    const [finding] = findings(run, 'tenant-reassignment');
    expect(finding!.evidence.details).toMatch(/^by key: rejected \(new row violates row-level security policy for table "tasks"\); without WHERE: 20 rows moved to tenant [A-C]\.$/);
    expect(finding!.message).toMatch(/moves 20 rows of public\.tasks to tenant [A-C] \(20 rows of tenant [A-C]; tenant_id, project_id rewritten\)/);
    expect(findings(run, 'foreign-insert')).toEqual([]);
  });

  it('upsert-conflict reports a DO NOTHING existence side channel as low when DO UPDATE is refused', async () => {
    const run = await audit(fixture('upsert-conflict', 'oracle'), args);
    expect(findings(run, 'upsert-conflict').map(({ object, severity }) => ({ table: objectSubject(object), severity }))).toEqual([{ table: 'public.products', severity: 'low' }]);
    expect(findings(run, 'upsert-conflict')[0]!.evidence.sql).toMatch(/on conflict \("sku"\) do nothing;/);
    expect(run.report!.findings.filter((finding) => atLeast(finding.severity, 'medium'))).toEqual([]);
  });

  it("copied-values shows the other tenant's canary in the acting tenant's row", async () => {
    const run = await audit(fixture('copied-values', 'vulnerable'), args);
    const [finding] = findings(run, 'copied-values');
    const victim = run.report!.tenants.find((tenant) => tenant.id === finding!.foreignTenant)!;
    expect(JSON.stringify(finding!.evidence.sampleRows)).toContain(`canary of ${victim.label}`);
    expect(findings(run, 'copied-values')).toHaveLength(1);
    expect(findings(run, 'cross-tenant-reference')).toHaveLength(1);
    // The secure twin of cross-tenant-reference has no trigger: nothing is copied when the reference is refused.
    expect(findings(await audit(fixture('cross-tenant-reference', 'vulnerable'), args), 'copied-values')).toEqual([]);
  });

  // The hardened chat scenario passing every write probe is asserted in run-fixtures.test.ts, on its run of the scenario.

  it('leaves an existing database exactly as it was, although the writes succeeded', async () => {
    const target = await startEmbedded({ pgBin: args[1] });
    try {
      const client = new pg.Client({ connectionString: target.connectionString });
      await client.connect();
      await client.query(await readFile(fixture('blind-update', 'vulnerable'), 'utf8'));
      await client.query('grant truncate on tasks to app_user');
      await client.query(`insert into tenants values (1, 'Acme'), (2, 'Globex');
        insert into projects (tenant_id, name) values (1, 'Launch'), (2, 'Audit');
        insert into tasks (tenant_id, project_id, title) select tenant_id, id, 'Plan ' || name from projects;`);
      await client.end();
      const before = await fingerprint(target.connectionString);
      const run = await runCli(['run', '--database-url', target.connectionString, '--role', 'app_user', '--seed', '3', '--quiet']);
      expect(run.err).toBe('');
      for (const check of ['blind-update', 'tenant-reassignment', 'truncate']) expect(findings(run, check).map((finding) => objectSubject(finding.object))).toEqual(['public.tasks']);
      // Not the audit's database: TRUNCATE is proved by the privilege, never run (it would lock out the application).
      const truncated = allFindings(run.report!.findings).find((finding) => finding.check === 'truncate')!;
      expect(truncated.evidence.details).toMatch(/TRUNCATE itself was not run/);
      expect(run.report!.probes.filter((probe) => probe.check === 'truncate').every((probe) => !/^truncate/.test(probe.sql))).toBe(true);
      expect(await fingerprint(target.connectionString)).toEqual(before);
    } finally {
      await target.close();
    }
  });
});
