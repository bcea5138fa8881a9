import { readFile } from 'node:fs/promises';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { audit } from '../src/audit.js';
import { introspect } from '../src/catalog/introspect.js';
import { planTenancy } from '../src/plan/tenancy.js';
import { renderConsole } from '../src/report/console.js';
import type { Report } from '../src/report/model.js';
import { scenarioSchema } from '../src/scenario/schema.js';
import type { SeedOutcome } from '../src/seed/outcome.js';
import { seed } from '../src/seed/seed.js';
import { AuditSession } from '../src/target/session.js';
import { startEmbedded } from '../src/target/embedded.js';
import type { Target } from '../src/target/types.js';
import { allFindings, FIXTURES } from './helpers.js';

/**
 * One cluster: the whole audit of the seed-graphs fixture (coverage, findings, verdict), then the seeder
 * alone on the same database, whose rows are inspected before the transaction is rolled back.
 */
const schemaFile = path.join(FIXTURES, 'seed-graphs', 'schema.sql');
const scenario = scenarioSchema.parse({ schema: [schemaFile], role: 'app_user', seed: 7 });
let target: Target;
let report: Report;
let session: AuditSession;
let seeded: SeedOutcome;

beforeAll(async () => {
  target = await startEmbedded();
  const admin = new pg.Client({ connectionString: target.connectionString });
  await admin.connect();
  await admin.query(await readFile(schemaFile, 'utf8'));
  await admin.end();
  report = await audit(scenario, { target, schemaApplied: true });
  session = await AuditSession.open(target.connectionString);
  const catalog = await introspect(session.client);
  seeded = await seed(session, catalog, planTenancy(catalog, scenario), { tenants: 3, rows: 20, seed: 7 });
}, 240_000);

afterAll(async () => {
  await session?.end();
  await target?.close();
});

async function rows(sql: string): Promise<Record<string, string | null>[]> {
  return (await session.query(sql)).rows;
}

describe('seeding real schemas (seed-graphs fixture)', () => {
  it('gives every tenant rows in every tenant-owned relation and every partition', () => {
    const ids = report.tenants.map((tenant) => tenant.id);
    const owned = report.relations.filter((relation) => relation.tenancy !== 'shared' && relation.seeding);
    expect(owned.map((relation) => relation.name).sort()).toEqual(
      ['archived_notes', 'attachments', 'audit_log', 'categories', 'departments', 'employees', 'events', 'folders', 'invoices', 'metrics', 'notes', 'players', 'project_members', 'projects', 'readings', 'squads', 'tenant_profiles', 'tenant_settings', 'tenants', 'users'].map((name) => `public.${name}`),
    );
    for (const relation of owned) {
      expect({ relation: relation.name, status: relation.seeding!.status, reason: relation.seeding!.reason }).toEqual({ relation: relation.name, status: 'seeded', reason: null });
      for (const id of ids) expect({ relation: relation.name, rows: relation.seeding!.tenants[id]! > 0 }).toEqual({ relation: relation.name, rows: true });
    }
    const partitions = owned.flatMap((relation) => relation.seeding!.partitions);
    expect(partitions.map((partition) => partition.relation).sort()).toEqual(
      ['audit_log_0', 'audit_log_1', 'events_2023', 'events_2024', 'events_2025', 'metrics_eu', 'metrics_other', 'metrics_us', 'readings_0', 'readings_1', 'readings_2'].map((name) => `public.${name}`),
    );
    for (const partition of partitions.filter((candidate) => !candidate.relation.startsWith('public.audit_log'))) {
      expect(partition.waived).toBeNull();
      for (const id of ids) expect({ partition: partition.relation, rows: partition.tenants[id]! > 0 }).toEqual({ partition: partition.relation, rows: true });
    }
    // Hashed on the tenant column: each tenant's rows are in exactly one partition, which is not a gap.
    const hashed = partitions.filter((candidate) => candidate.relation.startsWith('public.audit_log'));
    for (const id of ids) expect(hashed.filter((partition) => partition.tenants[id]! > 0)).toHaveLength(1);
    expect(hashed.some((partition) => partition.waived !== null)).toBe(true);
    expect(seeded.gaps).toEqual([]);
    expect(report.notes.filter((note) => /not seeded|partly seeded/.test(note))).toEqual([]);
  });

  it('attributes every row seeded for several tenants in one statement to the tenant its tenant column names', async () => {
    const checked = ['notes', 'projects', 'users', 'invoices'];
    for (const name of checked) {
      const ledgerRows = seeded.ledger.rows(`public.${name}`);
      expect(ledgerRows.length).toBeGreaterThan(0);
      for (const row of ledgerRows) expect({ name, tenant: row.values.tenant_id }).toEqual({ name, tenant: row.tenant });
      // What the ledger holds of a row is what the database stores, column by column as text (most of it is
      // taken from the values sent rather than read back).
      for (const tenant of seeded.tenants) {
        const full = seeded.ledger.rows(`public.${name}`, tenant.id).slice(0, 5);
        const columns = Object.keys(full[0]!.values);
        const stored = await rows(`select ${columns.map((column) => `${column}::text as ${column}`).join(', ')} from ${name} where id::text = any('{${full.map((row) => row.values.id).join(',')}}') order by id`);
        expect(stored).toEqual(full.map((row) => row.values).sort((a, b) => Number(a.id) - Number(b.id)));
      }
      const inDatabase = await rows(`select tenant_id::text as tenant, count(*)::text as count from ${name} group by 1 order by 1`);
      expect(inDatabase).toEqual(seeded.tenants.map((tenant) => ({ tenant: tenant.id, count: String(seeded.ledger.count(`public.${name}`, tenant.id)) })).sort((a, b) => a.tenant.localeCompare(b.tenant)));
    }
  });

  it('chooses tenant ids that fit the policies\u2019 ::int cast of a bigint key', () => {
    const ids = report.tenants.map((tenant) => BigInt(tenant.id));
    expect(new Set(ids).size).toBe(3);
    expect(ids.every((id) => id > 0n && id < 2n ** 31n)).toBe(true);
    const own = report.probes.filter((probe) => probe.check === 'read-isolation' && probe.relation === 'public.invoices');
    expect(own.map((probe) => [probe.outcome, probe.missingOwnRows])).toEqual([['pass', 0], ['pass', 0], ['pass', 0]]);
    // The tenant that does not exist is one the cast accepts too: the probe runs, it is not denied by an out-of-range error.
    const unknown = report.probes.filter((probe) => probe.check === 'missing-context' && probe.relation === 'public.invoices' && probe.context === 'unknown tenant');
    expect(unknown.length).toBeGreaterThan(0);
    expect(unknown.map((probe) => [probe.outcome, probe.error ?? null])).toEqual(unknown.map(() => ['pass', null]));
  });

  it('adopts the rows a trigger creates instead of fighting it, and seeds one row per tenant where the tenant is unique', () => {
    const seeding = (name: string) => report.relations.find((relation) => relation.name === name)!.seeding!;
    expect([seeding('public.tenant_settings').rows, seeding('public.tenant_settings').adopted]).toEqual([0, 3]);
    expect(Object.values(seeding('public.tenant_profiles').tenants)).toEqual([1, 1, 1]);
    const terminal = renderConsole(report);
    expect(terminal).toMatch(/rows per tenant \(A\/B\/C\):/);
    expect(terminal).toMatch(/public\.tenant_profiles 1\/1\/1,/);
    expect(terminal).toMatch(/public\.tenant_settings 1\/1\/1 \(3 from triggers\)/);
    expect(terminal).toMatch(/public\.events \d+\/\d+\/\d+ \[events_2023 \d+\/\d+\/\d+, events_2024/);
  });

  it('finds the time partition granted directly without RLS, and not its twin reached through the parent', () => {
    const findings = allFindings(report.findings).filter((finding) => finding.check === 'partition-without-rls');
    expect(findings.map((finding) => [finding.object.name, finding.severity])).toEqual([['public.events_2024', 'high']]);
    expect(report.summary.verdict).toBe('fail');
  });

  it('links self references, cycles and join tables within one tenant', async () => {
    const categories = await rows(`select count(*) filter (where c.parent_id is not null)::text as children, count(*) filter (where p.tenant_id <> c.tenant_id)::text as crossed
      from categories c left join categories p on p.id = c.parent_id`);
    expect(Number(categories[0]!.children)).toBeGreaterThan(0);
    expect(categories[0]!.crossed).toBe('0');
    const folders = await rows(`select count(*) filter (where parent_id is not null)::text as children from folders`);
    expect(Number(folders[0]!.children)).toBeGreaterThan(0);
    const departments = await rows(`select count(*) filter (where d.manager_id is null)::text as unmanaged, count(*) filter (where e.tenant_id <> d.tenant_id)::text as crossed
      from departments d left join employees e on e.id = d.manager_id`);
    expect(departments[0]).toEqual({ unmanaged: '0', crossed: '0' });
    const squads = await rows(`select count(*) filter (where c.tenant_id <> s.tenant_id)::text as captains_crossed,
      (select count(*) from players p join squads q on q.id = p.squad_id where q.tenant_id <> p.tenant_id)::text as players_crossed,
      (select count(*) from players p left join squads q on q.id = p.squad_id where q.id is null)::text as dangling
      from squads s join players c on c.id = s.captain_id`);
    expect(squads[0]).toEqual({ captains_crossed: '0', players_crossed: '0', dangling: '0' });
    const members = await rows(`select count(*)::text as pairs, count(distinct (project_id, user_id))::text as distinct_pairs from project_members`);
    expect(Number(members[0]!.pairs)).toBe(60);
    expect(members[0]!.pairs).toBe(members[0]!.distinct_pairs);
    const attachments = await rows(`select count(*) filter (where num_nonnulls(invoice_id, project_id) = 1)::text as ok, count(*)::text as total from attachments`);
    expect(attachments[0]!.ok).toBe(attachments[0]!.total);
    const users = await rows(`select count(*) filter (where username ~ '^[a-z0-9_]+$' and position(t.canary in username) > 0)::text as ok, count(*)::text as total
      from users u join (select unnest($1::text[]) as id, unnest($2::text[]) as canary) t on t.id = u.tenant_id::text`.replace('$1', `'{${seeded.tenants.map((tenant) => tenant.id).join(',')}}'`).replace('$2', `'{${seeded.tenants.map((tenant) => tenant.canary).join(',')}}'`));
    expect(users[0]).toEqual({ ok: '60', total: '60' });
  });
});
