import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { atLeast } from '../src/findings/severity.js';
import { allFindings, expectNoFalseAlarm, FIXTURES, runCli } from './helpers.js';

/**
 * Claims the user controls (issue 18): Supabase's user_metadata is written by the user through the auth API. A
 * tenant read from it is the user's to choose; read from app_metadata, only the service role sets it.
 */
const audit = (file: string) => runCli(['run', '--schema', path.join(FIXTURES, 'user-editable-claim', file), '--preset', 'supabase', '--seed', '7', '--quiet']);

describe('a claim the user writes itself', () => {
  it('the tenant in user_metadata: the context carries it there, the rule and the spoofed claims prove it; in app_metadata: passes', async () => {
    const vulnerable = await audit('vulnerable.sql');
    expect(vulnerable.err).not.toMatch(/unexpected error/);
    // The preset followed the policies: the context works, nothing is inconclusive.
    expect(vulnerable.report!.summary.inconclusive).toEqual([]);
    expect(vulnerable.report!.notes.join('\n')).toMatch(/the tenant travels in the claim user_metadata\.org_id \(discovered/);
    expect(vulnerable.code).toBe(1);
    const all = allFindings(vulnerable.report!.findings);
    const listed = JSON.stringify(all.map((finding) => [finding.check, finding.table, finding.message]));

    const rule = all.filter((finding) => finding.check === 'user-editable-claim' && finding.table === 'public.invoices');
    expect(rule.length, listed).toBe(1);
    expect(rule[0]!.severity).toBe('high');
    expect(rule[0]!.message).toMatch(/policy members use invoices compares org_id with the JWT claim user_metadata\.org_id \(through current_org\(\)\)/);

    const proofs = all.filter((finding) => finding.check === 'claim-spoof' && finding.table === 'public.invoices');
    expect(proofs.length, listed).toBe(1);
    const proof = proofs[0]!;
    expect(proof.severity).toBe('high');
    expect(proof.message).toMatch(/As tenant A's user, with the JWT claim user_metadata\.org_id set to tenant B .* returns 20 rows of tenant B/);
    // The claims used: app_metadata as the platform signs it (no tenant there), the tenant only in user_metadata; then the read.
    const claims = /set_config\('request\.jwt\.claims', json_build_object\(.*'app_metadata', json_build_object\('provider', 'email'\), 'user_metadata', json_build_object\('org_id', '([^']+)'::text\)\)::text, true\)/;
    const setter = proof.evidence.sql.match(claims);
    expect(setter, proof.evidence.sql).not.toBeNull();
    expect(setter![1]).toBe(proof.foreignTenant);
    expect(proof.evidence.sql.search(/select \* from "public"\."invoices"/)).toBeGreaterThan(proof.evidence.sql.search(claims));
    expect(proof.evidence.sql).toMatch(/^begin;[\s\S]*rollback;$/);
    expect(proof.evidence.context).toContain(`user_metadata.org_id = '${proof.foreignTenant}' (tenant B)`);
    expect(proof.evidence.rowCount).toBe(20);
    expect(proof.evidence.sampleRows!.every((row) => row.org_id === proof.foreignTenant)).toBe(true);

    const secure = await audit('secure.sql');
    // secure-fixtures.test.ts's assertions, on this audit (its expect.yaml: auditedBy).
    expectNoFalseAlarm(secure);
    expect(secure.report!.summary.inconclusive).toEqual([]);
    expect(secure.report!.notes.join('\n')).toMatch(/the tenant travels in the claim app_metadata\.org_id \(discovered/);
    expect(allFindings(secure.report!.findings).filter((candidate) => atLeast(candidate.severity, 'medium')).map((candidate) => `${candidate.check}: ${candidate.message}`)).toEqual([]);
    expect(secure.code).toBe(0);
    // app_metadata is not the user's to write: the probe has nothing to spoof, and the rule nothing to report.
    expect(secure.report!.probes.filter((probe) => probe.check === 'claim-spoof')).toEqual([]);
    expect(allFindings(secure.report!.findings).filter((finding) => finding.check === 'user-editable-claim')).toEqual([]);
  });

  const lint = async (file: string) => {
    const out = await mkdtemp(path.join(os.tmpdir(), 'rls-audit-user-claims-'));
    return runCli(['lint', '--schema', path.join(FIXTURES, 'user-editable-claim', file), '--preset', 'supabase', '--quiet', '--out', out]).finally(() => rm(out, { recursive: true, force: true }));
  };

  it('a role read from user_metadata is reported from the catalog', async () => {
    const run = await lint('role-vulnerable.sql');
    const found = allFindings(run.report!.findings).filter((finding) => finding.check === 'user-editable-claim');
    expect(found.map((finding) => [finding.table, finding.severity])).toEqual([['public.invoices', 'high']]);
    expect(found[0]!.message).toMatch(/policy members or admins admits rows when the JWT claim user_metadata\.role is 'admin'/);
    expect(run.code).toBe(1);
  });

  it('a helper that reads the tenant from auth.users.raw_user_meta_data (user_metadata itself) is reported from the catalog', async () => {
    const run = await lint('raw-vulnerable.sql');
    expect(run.err).not.toMatch(/unexpected error/);
    const found = allFindings(run.report!.findings).filter((finding) => finding.check === 'user-editable-claim');
    expect(found.map((finding) => finding.table).sort()).toEqual(['public.invoices', 'public.orgs']);
    expect(found.every((finding) => finding.severity === 'high')).toBe(true);
    expect(found.find((finding) => finding.table === 'public.invoices')!.message).toMatch(/policy members use invoices reads auth\.users\.raw_user_meta_data/);
    expect(run.code).toBe(1);
  });
});
