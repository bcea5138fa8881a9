import path from 'node:path';
import { objectSubject } from '../src/findings/finding.js';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { atLeast, type Severity } from '../src/findings/severity.js';
import { startEmbedded } from '../src/target/embedded.js';
import { allFindings, FIXTURES, findingsOf, runCli, TARGETS, type CliRun } from './helpers.js';

/** How one fixture of a check is audited: a schema file with the fixture defaults, or a scenario YAML beside it. */
type Source = { schema: string; extra?: string[] } | { scenario: string };

interface Case {
  check: string;
  vulnerable: Source;
  secure: Source;
  /** Findings the vulnerable fixture must produce. */
  flags: { table: string; severity: Severity; message?: RegExp }[];
  /** Objects of the vulnerable fixture the check must not name. */
  spares?: string[];
  /** False when a correct schema gives the probe nothing to execute (a key that includes the tenant column is not probed). */
  probesSecure?: boolean;
}

const CASES: Case[] = [
  {
    check: 'function-leak',
    vulnerable: { schema: 'vulnerable.sql' },
    secure: { schema: 'secure.sql' },
    flags: [
      { table: 'search_messages(text)', severity: 'high', message: /SECURITY DEFINER and runs with the rights of its owner/ },
      { table: 'messages_of(integer)', severity: 'high', message: /with tenant [BC]'s keys returns \d+ rows of tenant [BC]/ },
    ],
  },
  {
    check: 'definer-trigger',
    vulnerable: { schema: 'vulnerable.sql' },
    secure: { schema: 'secure.sql' },
    flags: [{ table: 'public.messages', severity: 'high', message: /INSERT .* fires messages_bump_counters .* changed \d+ rows? of tenant [BC] in public\.counters/ }],
  },
  {
    check: 'role-graph',
    vulnerable: { schema: 'vulnerable.sql' },
    secure: { schema: 'secure.sql' },
    flags: [
      { table: 'auditor', severity: 'critical', message: /can SET ROLE auditor\b.*auditor has BYPASSRLS/ },
      { table: 'support', severity: 'high', message: /support_reads_all/ },
    ],
  },
  {
    check: 'application-query',
    vulnerable: { scenario: 'vulnerable.yaml' },
    secure: { scenario: 'secure.yaml' },
    flags: [{ table: 'overdue_invoices', severity: 'critical', message: /row-level security is disabled on public\.invoices/ }],
    spares: ['tenant_invoices'],
  },
  {
    check: 'context-persistence',
    vulnerable: { scenario: 'vulnerable.yaml' },
    secure: { scenario: 'secure.yaml' },
    flags: [{ table: 'app.current_tenant', severity: 'high', message: /still reads app\.current_tenant = '\d+' and sees \d+ rows of tenant A/ }],
  },
  {
    check: 'spoofable-setting',
    vulnerable: { schema: 'vulnerable.sql' },
    secure: { schema: 'secure.sql' },
    // Proven on data, an escape hatch any session can switch on is high: the default gate fails (exit 1).
    flags: [{ table: 'public.tickets', severity: 'high', message: /set_config\('app\.bypass_rls', 'on', true\).*support_bypass reads app\.bypass_rls/ }],
  },
  {
    check: 'existence-oracle',
    vulnerable: { schema: 'vulnerable.sql' },
    secure: { schema: 'secure.sql' },
    flags: [{ table: 'public.contacts', severity: 'low', message: /contacts_email_key \(email\) spans tenants/ }],
    probesSecure: false,
  },
  {
    check: 'error-echo',
    vulnerable: { schema: 'vulnerable.sql' },
    secure: { schema: 'secure.sql' },
    flags: [{ table: 'public.my_documents', severity: 'medium', message: /quotes a value of tenant [A-C].*canary of tenant/ }],
  },
  {
    check: 'seq-scan',
    vulnerable: { schema: 'vulnerable.sql', extra: ['--rows', '600'] },
    secure: { schema: 'secure.sql', extra: ['--rows', '600'] },
    flags: [{ table: 'public.events', severity: 'info', message: /Seq Scan.*no index starts with tenant_id/ }],
  },
];

/** One audit per fixture and arguments, shared by the tests that read it (context-persistence's secure scenario is read twice). */
const audits = new Map<string, Promise<CliRun>>();
function audit(check: string, source: Source, args: string[]): Promise<CliRun> {
  const folder = path.join(FIXTURES, check);
  const command =
    'scenario' in source
      ? ['run', path.join(folder, source.scenario), '--quiet', ...args]
      : ['run', '--schema', path.join(folder, source.schema), '--role', 'app_user', '--seed', '7', '--quiet', ...(source.extra ?? []), ...args];
  const key = command.join('\u0000');
  if (!audits.has(key)) audits.set(key, runCli(command));
  return audits.get(key)!;
}

describe.each(TARGETS)('privileged paths, context handling and side channels on $name', ({ args }) => {
  it.each(CASES)('$check flags its vulnerable fixture', async ({ check, vulnerable, flags, spares }) => {
    const run = await audit(check, vulnerable, args);
    expect(run.err).toBe('');
    const found = allFindings(run.report!.findings).filter((finding) => finding.check === check);
    for (const flag of flags) {
      const finding = found.find((candidate) => objectSubject(candidate.object) === flag.table);
      expect(finding, `${check} on ${flag.table}; found ${JSON.stringify(found.map((candidate) => [objectSubject(candidate.object), candidate.message]))}`).toBeDefined();
      expect(finding!.severity).toBe(flag.severity);
      expect(finding!.source).toBe('probe');
      if (flag.message) expect(finding!.message).toMatch(flag.message);
      // Evidence a reviewer can paste into psql: as the application role, under the tenant, rolled back.
      expect(finding!.evidence.sql).toMatch(/set local role "app_user"/);
      expect(finding!.evidence.sql).toMatch(/rollback;/);
      expect(finding!.fix.length).toBeGreaterThan(20);
    }
    for (const spared of spares ?? []) expect(found.map((finding) => objectSubject(finding.object))).not.toContain(spared);
    expect(found).toHaveLength(flags.length);
    if (flags.some((flag) => atLeast(flag.severity, 'high'))) expect(run.code).toBe(1);
    // The rows are attributed to tenants, not guessed: every leaked sample row is masked but names its tenant.
    for (const finding of found) for (const row of finding.evidence.sampleRows ?? []) expect(JSON.stringify(row)).not.toMatch(/zq[a-z0-9]{6}/);
  });

  it.each(CASES)('$check does not flag its secure twin', async ({ check, secure, probesSecure }) => {
    const run = await audit(check, secure, args);
    expect(run.err).toBe('');
    expect(findingsOf(run, check)).toEqual([]);
    expect(findingsOf(run).filter((finding) => atLeast(finding.severity as Severity, 'medium'))).toEqual([]);
    expect(run.code).toBe(0);
    // The probe really ran on the secure twin and saw it hold.
    if (probesSecure !== false) expect(run.report!.probes.filter((probe) => probe.check === check && probe.outcome === 'pass').length).toBeGreaterThan(0);
  });
});

describe.each(TARGETS)('definer-trigger on $name', ({ args }) => {
  it('reports a trigger that copies another tenant\'s values into the tenant\'s own row', async () => {
    const run = await audit('definer-trigger', { schema: 'copies.sql' }, args);
    expect(run.err).toBe('');
    const found = allFindings(run.report!.findings).filter((candidate) => candidate.check === 'definer-trigger');
    expect(found).toHaveLength(1);
    const [finding] = found;
    expect(finding).toMatchObject({ object: { kind: 'table', name: 'public.messages' }, severity: 'high' });
    expect(finding!.message).toMatch(/messages_sign \(sign_message\(\).*copied values of tenant [B-C].* into 1 row of public\.messages/);
    expect(finding!.evidence.sampleRows![0]).toMatchObject({ effect: 'copied', tenant_id: finding!.tenant });
  });
});

describe('context-persistence on a rolled-back transaction', () => {
  it('reads the setting as empty after rollback and after commit when the tenant is transaction-local', async () => {
    const run = await audit('context-persistence', { scenario: 'secure.yaml' }, []);
    const records = run.report!.probes.filter((probe) => probe.check === 'context-persistence');
    expect(records.map((probe) => [probe.context, probe.outcome])).toEqual([
      ['tenant A, after rollback', 'pass'],
      ['tenant A, after commit', 'pass'],
    ]);
  });
});

/**
 * A database the audit does not own, with a function that writes (and advances a sequence) when called,
 * a unique key across tenants, an escape-hatch setting and an application that sets the tenant for the
 * session: the probes that call functions, insert rows, set settings and commit on a second connection
 * must leave it exactly as it was.
 */
const EXISTING_DATABASE = `
create role app_user nologin;
create table tenants (id integer primary key, name text not null);
create table jobs (id bigserial primary key, tenant_id integer not null references tenants (id), title text not null, claimed boolean not null default false);
create table contacts (id bigserial primary key, tenant_id integer not null references tenants (id), email text not null unique);
alter table tenants enable row level security;
alter table jobs enable row level security;
alter table jobs force row level security;
alter table contacts enable row level security;
alter table contacts force row level security;
create policy tenant_self on tenants using (id = (select nullif(current_setting('app.current_tenant', true), '')::integer));
create policy tenant_isolation on jobs using (tenant_id = (select nullif(current_setting('app.current_tenant', true), '')::integer))
  with check (tenant_id = (select nullif(current_setting('app.current_tenant', true), '')::integer));
create policy support_bypass on jobs for select using (current_setting('app.bypass_rls', true) = 'on');
create policy tenant_isolation on contacts using (tenant_id = (select nullif(current_setting('app.current_tenant', true), '')::integer))
  with check (tenant_id = (select nullif(current_setting('app.current_tenant', true), '')::integer));
create function claim_job() returns setof jobs language sql volatile security definer set search_path = pg_catalog, public, pg_temp as $$
  insert into public.jobs (tenant_id, title) select id, 'follow-up' from public.tenants order by id limit 1;
  update public.jobs set claimed = true where not claimed returning *;
$$;
grant select on tenants to app_user;
grant select, insert, update, delete on jobs, contacts to app_user;
insert into tenants values (1, 'Acme'), (2, 'Globex');
insert into jobs (tenant_id, title) values (1, 'invoice run'), (2, 'payroll');
insert into contacts (tenant_id, email) values (1, 'ann@acme.test'), (2, 'cy@globex.test');
`;

async function fingerprint(connectionString: string): Promise<Record<string, unknown>> {
  const client = new pg.Client({ connectionString });
  await client.connect();
  try {
    return {
      tenants: (await client.query('select * from tenants order by id')).rows,
      jobs: (await client.query('select * from jobs order by id')).rows,
      contacts: (await client.query('select * from contacts order by id')).rows,
      sequences: (await client.query('select sequencename, last_value from pg_sequences order by 1')).rows,
      settings: (await client.query('select setdatabase, setrole, setconfig::text from pg_db_role_setting order by 1, 2')).rows,
    };
  } finally {
    await client.end();
  }
}

describe.each(TARGETS)('privileged and context probes against an existing database on $name', ({ args }) => {
  it('leave no trace, and skip calling a function that writes', async () => {
    const target = await startEmbedded({ pgBin: args[1] });
    try {
      const client = new pg.Client({ connectionString: target.connectionString });
      await client.connect();
      await client.query(EXISTING_DATABASE);
      await client.end();
      const before = await fingerprint(target.connectionString);
      const run = await runCli([
        'run', '--database-url', target.connectionString, '--role', 'app_user', '--seed', '3', '--quiet',
        '--context-sql', "select set_config('app.current_tenant', $1, false)",
      ]);
      // The function that writes was not called: the run is inconclusive about it, and says so.
      expect(run.err.split('\n').filter((line) => line && !/^rls-audit: inconclusive: function-leak did not call claim_job\(\)|^ {2}try: /.test(line))).toEqual([]);
      expect(run.report!.summary.inconclusive.map((entry) => entry.relation)).toContain('claim_job()');
      expect(findingsOf(run, 'context-persistence').map((finding) => objectSubject(finding.object))).toEqual(['app.current_tenant']);
      expect(findingsOf(run, 'spoofable-setting').map((finding) => objectSubject(finding.object))).toEqual(['public.jobs']);
      expect(findingsOf(run, 'existence-oracle').map((finding) => objectSubject(finding.object))).toEqual(['public.contacts']);
      const calls = run.report!.probes.filter((probe) => probe.check === 'function-leak');
      expect(calls.length).toBeGreaterThan(0);
      expect(calls.every((probe) => probe.outcome === 'skipped' && /not called on a live database .*: it writes \(INSERT\)/.test(probe.error ?? ''))).toBe(true);
      expect(await fingerprint(target.connectionString)).toEqual(before);
    } finally {
      await target.close();
    }
  });
});
