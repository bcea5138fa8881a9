import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { atLeast } from '../src/findings/severity.js';
import { expectNoFalseAlarm, FIXTURES, findingsOf, runCli, type CliRun } from './helpers.js';

/**
 * Identity that lives in the database (issue 23): apps that keep part of the request's identity in their own
 * tables (a helper that reads a claim, role names in a tenants column, sessions, the app's users table over
 * the platform's, invitations beside memberships, an API view that hides the owner, a composite foreign key)
 * are audited right with at most --preset and --role: the secure twin passes with nothing at medium or above,
 * the vulnerable one fails on the real defect.
 */
const fixture = (name: string) => path.join(FIXTURES, 'identity-in-tables', `${name}.sql`);
const run = (file: string, extra: string[]) => runCli(['run', '--schema', file, '--seed', '7', '--quiet', ...extra]);
const notes = (result: CliRun) => result.report!.notes.join('\n');

function expectClean(secure: CliRun): void {
  expect(secure.err).not.toMatch(/unexpected error|^rls-audit: /m);
  expect(secure.report!.summary.inconclusive).toEqual([]);
  expect(findingsOf(secure).filter((finding) => atLeast(finding.severity, 'medium')).map((finding) => `${finding.check} ${finding.table}: ${finding.message}`)).toEqual([]);
  expect(secure.code).toBe(0);
}

async function pair(name: string, args: string[]): Promise<{ secure: CliRun; vulnerable: CliRun }> {
  const secure = await run(fixture(`${name}-secure`), args);
  const vulnerable = await run(fixture(`${name}-vulnerable`), args);
  return { secure, vulnerable };
}

describe('identity that lives in the database', () => {
  it('an API view that hides the owner: a cross-user DELETE through it is proven, its secure twin passes', async () => {
    const { secure, vulnerable } = await pair('api-view', ['--preset', 'postgrest']);
    expectClean(secure);
    // secure-fixtures.test.ts's assertions, on this audit (its expect.yaml: auditedBy).
    expectNoFalseAlarm(secure);
    // The claim the policies read through request.user_id(), not an assumed tenant_id.
    expect(notes(secure)).toMatch(/the tenant travels in the claim user_id \(discovered/);
    // Writes by key ran through the view; what cannot run through it is said, not silent.
    const throughView = secure.report!.probes.filter((probe) => probe.relation === 'api.todos');
    expect(throughView.filter((probe) => probe.check === 'foreign-delete' && probe.outcome === 'pass').length).toBeGreaterThan(0);
    expect(throughView.filter((probe) => probe.check === 'foreign-update' && probe.outcome === 'pass').length).toBeGreaterThan(0);
    const skipped = throughView.find((probe) => probe.check === 'foreign-insert');
    expect(skipped).toMatchObject({ outcome: 'skipped' });
    expect(skipped!.error).toMatch(/api\.todos hides data\.todo\.owner_id/);

    expect(vulnerable.code).toBe(1);
    // A DELETE names no other user's row it can see (the SELECT policy hides them), but a DELETE without WHERE
    // (PostgREST's DELETE /todos) reaches every user's todo: proven through the view, fixed on the table.
    const deletes = findingsOf(vulnerable, 'blind-delete').filter((finding) => finding.table === 'api.todos');
    expect(deletes.map((finding) => finding.severity)).toEqual(['high']);
    expect(deletes[0]!.message).toMatch(/delete from "api"\."todos" \(no WHERE\) deletes 60 rows, 40 of them other tenants'.*permissive policy todo_delete/);
    expect(deletes[0]!.fix).toMatch(/alter policy "todo_delete" on "data"\."todo"/);
  });

  it("a view's own rows are counted against its table: a partial view is own-rows-hidden", async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'rls-audit-identity-'));
    try {
      const file = path.join(dir, 'partial.sql');
      const sql = (await readFile(fixture('api-view-secure'), 'utf8')).replace(
        'create policy todo_read on data.todo for select using (owner_id = request.user_id());',
        'create policy todo_read on data.todo for select using (owner_id = request.user_id() and not done);',
      );
      await writeFile(file, sql);
      const partial = await run(file, ['--preset', 'postgrest']);
      const hidden = findingsOf(partial, 'own-rows-hidden').filter((finding) => finding.table === 'api.todos');
      expect(hidden.length).toBe(1);
      const [, seen] = /returns (\d+) of the tenant's 20 rows/.exec(hidden[0]!.message) ?? [];
      expect(Number(seen)).toBeGreaterThan(0);
      expect(Number(seen)).toBeLessThan(20);
      const reads = partial.report!.probes.filter((probe) => probe.check === 'read-isolation' && probe.relation === 'api.todos');
      expect(reads.every((probe) => probe.outcome === 'hidden' && probe.missingOwnRows > 0)).toBe(true);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('a claim read through a PL/pgSQL helper is the tenant claim', async () => {
    const { secure, vulnerable } = await pair('helper-claim', ['--preset', 'postgrest']);
    expectClean(secure);
    // secure-fixtures.test.ts's assertions, on this audit (its expect.yaml: auditedBy).
    expectNoFalseAlarm(secure);
    expect(notes(secure)).toMatch(/the tenant travels in the claim account_id \(discovered/);
    expect(vulnerable.code).toBe(1);
    expect(findingsOf(vulnerable).filter((finding) => finding.severity === 'critical').map((finding) => finding.table)).toContain('app.invoice_lines');
  });

  it("role names in a tenants column: each tenant's role is stored in tenants.db_user", async () => {
    const { secure, vulnerable } = await pair('role-column', ['--role', 'app_user']);
    expectClean(secure);
    expect(notes(secure)).toMatch(/identity read through the tenant table: public\.tenants\.db_user -> public\.tenants\.id/);
    const reads = secure.report!.probes.filter((probe) => probe.check === 'read-isolation' && probe.relation === 'public.projects');
    expect(reads.map((probe) => [probe.outcome, probe.rows])).toEqual(reads.map(() => ['pass', 20]));
    expect(vulnerable.code).toBe(1);
    expect(findingsOf(vulnerable).filter((finding) => finding.severity === 'critical').map((finding) => finding.table)).toContain('public.projects');
  });

  it("identity through a session table: each actor gets a session row, and the claim carries its id", async () => {
    const { secure, vulnerable } = await pair('session', ['--role', 'app_user']);
    expectClean(secure);
    expect(notes(secure)).toMatch(/identity read through app_private\.sessions: app_private\.sessions\.uuid -> app_private\.sessions\.user_id/);
    // The unknown tenant is a session id no one holds, not a tenant id the uuid cast rejects.
    expect(findingsOf(secure, 'missing-context-error')).toEqual([]);
    expect(vulnerable.code).toBe(1);
    expect(findingsOf(vulnerable, 'read-isolation').map((finding) => [finding.table, finding.severity])).toContainEqual(['app_public.posts', 'critical']);
  });

  it("a users table over the platform's users is how memberships reference users", async () => {
    const { secure, vulnerable } = await pair('profiles', ['--preset', 'supabase']);
    expectClean(secure);
    // secure-fixtures.test.ts's assertions, on this audit (its expect.yaml: auditedBy).
    expectNoFalseAlarm(secure);
    expect(notes(secure)).toMatch(/members of tenants through public\.team_members\(user_id, team_id\).*through public\.users\.id, which references it/);
    expect(vulnerable.code).toBe(1);
    expect(findingsOf(vulnerable, 'read-isolation').map((finding) => finding.table)).toContain('public.documents');
  });

  it('invitations beside memberships: the membership is the one the PL/pgSQL helper joins, invitations are tenant data', async () => {
    const { secure, vulnerable } = await pair('invitations', ['--preset', 'supabase']);
    expectClean(secure);
    // secure-fixtures.test.ts's assertions, on this audit (its expect.yaml: auditedBy).
    expectNoFalseAlarm(secure);
    expect(notes(secure)).toMatch(/members of tenants through public\.memberships\(user_id, org_id\) \(discovered: the policies join it/);
    expect(notes(secure)).toMatch(/public\.invitations also has foreign keys to both but is not the policies' membership \(tenant data\)/);
    expect(vulnerable.code).toBe(1);
    expect(findingsOf(vulnerable, 'read-isolation').map((finding) => finding.table)).toContain('public.invitations');
  });

  it('a composite foreign key beside the simple one refutes foreign-key-without-tenant', async () => {
    const { secure, vulnerable } = await pair('composite-fk', ['--role', 'app_user']);
    expectClean(secure);
    const refuted = findingsOf(secure, 'foreign-key-without-tenant');
    expect(refuted.map((finding) => finding.severity)).toEqual(['info']);
    expect(refuted[0]!.message).toMatch(/tasks_project_same_tenant .* rejects a reference to another tenant's row: refuted by the schema/);
    expect(refuted[0]!.fix).not.toMatch(/alter table/);
    // The probe agrees: the composite key rejected every reference to another tenant's project.
    const probes = secure.report!.probes.filter((probe) => probe.check === 'cross-tenant-reference' && probe.relation === 'public.tasks');
    expect(probes.length).toBeGreaterThan(0);
    expect(probes.every((probe) => probe.outcome === 'pass' && /tasks_project_same_tenant/.test(probe.error ?? ''))).toBe(true);
    const flagged = findingsOf(vulnerable, 'foreign-key-without-tenant');
    expect(flagged.map((finding) => finding.severity)).toEqual(['medium']);
    expect(flagged[0]!.fix).toMatch(/foreign key \("tenant_id", "project_id"\) references "public"\."projects" \("tenant_id", "id"\)/);
  });
});
