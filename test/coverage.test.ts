import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createFaker, tenantIds } from '../src/seed/values.js';
import { findingsOf, runCli, type CliRun } from './helpers.js';

const SEED = 7;
const TENANTS = 5;
const CURRENT = "(select nullif(current_setting('app.current_tenant', true), '')::integer)";

/**
 * Write families run on a few tenants when the policies are tenant-symmetric, and on every tenant (plus every
 * pair through a tenant a policy names) when they are not. A policy that opens one tenant's rows to one other
 * tenant must still be found, although neither is the lowest or highest id the symmetric pair would use.
 */
describe('prove each fact once: write families on covering tenant pairs', () => {
  const ids = tenantIds(createFaker(SEED), 'int4', TENANTS);
  const byId = [...ids].sort((a, b) => Number(a) - Number(b));
  // The actor has the second-lowest id; the victim is a middle tenant that does not follow it in the ring.
  const actor = byId[1]!;
  const actorIndex = ids.indexOf(actor);
  const victim = byId.slice(2, 4).find((id) => ids.indexOf(id) !== (actorIndex + 1) % TENANTS)!;
  const singled = `(${CURRENT} = ${actor} and tenant_id = ${victim})`;
  const schema = `
create role app_user nologin;
create table tenants (id integer primary key, name text not null);
alter table tenants enable row level security;
alter table tenants force row level security;
create policy tenant_self on tenants using (id = ${CURRENT});
grant select on tenants to app_user;
create table notes (tenant_id integer not null references tenants (id), id bigint generated always as identity primary key, body text not null);
create table docs (tenant_id integer not null references tenants (id), id bigint generated always as identity primary key, title text not null);
create table files (tenant_id integer not null references tenants (id), id bigint generated always as identity primary key, name text not null);
alter table notes enable row level security;
alter table notes force row level security;
alter table docs enable row level security;
alter table docs force row level security;
alter table files enable row level security;
alter table files force row level security;
create policy tenant_isolation on notes using (tenant_id = ${CURRENT}) with check (tenant_id = ${CURRENT});
create policy docs_read on docs for select using (tenant_id = ${CURRENT});
create policy docs_insert on docs for insert with check (tenant_id = ${CURRENT});
create policy docs_update on docs for update using (tenant_id = ${CURRENT} or ${singled}) with check (tenant_id = ${CURRENT} or ${singled});
create policy docs_delete on docs for delete using (tenant_id = ${CURRENT});
create policy files_all on files using (tenant_id = ${CURRENT} or ${singled}) with check (tenant_id = ${CURRENT} or ${singled});
grant select, insert, update, delete on notes, docs, files to app_user;
`;
  let dir: string;
  let run: CliRun;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'rls-audit-coverage-'));
    const file = path.join(dir, 'schema.sql');
    await writeFile(file, schema);
    run = await runCli(['run', '--schema', file, '--role', 'app_user', '--seed', String(SEED), '--tenants', String(TENANTS), '--rows', '3', '--quiet']);
  }, 180_000);
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('seeds the tenant ids the policies name', () => {
    expect(run.report?.tenants.map((tenant) => tenant.id)).toEqual(ids);
  });

  it('finds a blind update only one tenant can make, on one other tenant', () => {
    // On public.files the blind update is the same defect as the targeted one (one policy, one fix): it is
    // that finding's evidence, not a finding of its own.
    const found = findingsOf(run, 'blind-update');
    expect(found.map((finding) => [finding.object.name, finding.tenant, finding.foreignTenant]).sort()).toEqual([
      ['public.docs', actor, victim],
      ['public.files', actor, victim],
    ]);
  });

  it('finds a targeted update and delete that only one tenant pair can make', () => {
    for (const check of ['foreign-update', 'foreign-delete']) {
      const found = findingsOf(run, check);
      expect(found.map((finding) => [finding.object.name, finding.tenant, finding.foreignTenant])).toEqual([['public.files', actor, victim]]);
    }
  });

  it('runs symmetric tables with two tenants and says why, and every tenant where a policy names one', () => {
    const blind = run.report!.coverage!.find((entry) => entry.check === 'blind-update')!;
    expect(blind).toMatchObject({ paired: 1, everyTenant: 2 });
    expect(blind.reason).toMatch(/lowest and highest id/);
    expect(blind.reason).toMatch(new RegExp(`policy docs_update on public\\.docs is not tenant-symmetric: .* = ${actor}\\) AND \\(tenant_id = ${victim}\\) singles out a tenant`));
    const notes = run.report!.probes.filter((probe) => probe.check === 'blind-update' && probe.relation === 'public.notes');
    expect(new Set(notes.map((probe) => probe.tenant))).toEqual(new Set([byId[0], byId[TENANTS - 1]]));
    // docs: every tenant acts until the one the policy singles out finds the leak.
    const docs = run.report!.probes.filter((probe) => probe.check === 'blind-update' && probe.relation === 'public.docs');
    expect(docs.map((probe) => probe.tenant)).toEqual(ids.slice(0, actorIndex + 1));
    const pairs = run.report!.probes.filter((probe) => probe.check === 'foreign-update' && probe.relation === 'public.notes');
    expect(pairs).toHaveLength(2);
  });
});
