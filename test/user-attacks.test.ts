import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { atLeast } from '../src/findings/severity.js';
import { allFindings, expectNoFalseAlarm, FIXTURES, runCli, type CliRun } from './helpers.js';

/**
 * What a signed-in user can do to who it is (issue 18): join another tenant, move or raise its membership,
 * point its own row at another tenant, move its own row out, call an RPC with another tenant's keys, set a
 * claim it controls. Each vulnerable fixture fails with a finding whose evidence shows the write (or the call)
 * and the read that proves the impact; each secure twin, fixed the way its authors would, gets nothing at
 * medium or above and passes.
 */
interface Case {
  name: string;
  folder: string;
  vulnerable: string;
  secure: string;
  check: string;
  table: string;
  /** In the evidence SQL: the write or call. */
  write: RegExp;
  /** In the evidence SQL: a read that shows the impact (absent when the administrator's count is the proof). */
  read?: RegExp;
  message: RegExp;
  /** Without a read in the SQL: what the evidence's details say the administrator counted. */
  details?: RegExp;
}

const CASES: Case[] = [
  {
    name: 'self-join',
    folder: 'self-join',
    vulnerable: 'vulnerable.sql',
    secure: 'secure.sql',
    check: 'self-join',
    table: 'public.team_members',
    write: /insert into "public"\."team_members" \("team_id", "user_id"/,
    read: /select \* from "public"\."projects"/,
    message: /insert into public\.team_members \(team_id = tenant B, user_id = itself\) succeeds \(1 row\); then .*public\.projects returns 20 rows of tenant B/,
  },
  {
    name: 'membership move',
    folder: 'membership-escalation',
    vulnerable: 'move-vulnerable.sql',
    secure: 'move-secure.sql',
    check: 'membership-escalation',
    table: 'public.team_members',
    write: /update "public"\."team_members" set "team_id" = '[^']+'::uuid where current of rls_audit_row/,
    read: /select \* from "public"\."projects"/,
    message: /set team_id = tenant B on its own membership of tenant A succeeds \(1 row\); then .*public\.projects returns 20 rows of tenant B/,
  },
  {
    name: 'role escalation',
    folder: 'membership-escalation',
    vulnerable: 'role-vulnerable.sql',
    secure: 'role-secure.sql',
    check: 'membership-escalation',
    table: 'public.team_members',
    write: /update "public"\."team_members" set "role" = 'owner'::text where current of rls_audit_row/,
    read: /select \* from "public"\."invoices"/,
    message: /set role = 'owner' on its own membership of tenant A \(as a member\) succeeds \(1 row\); then public\.invoices returns 20 rows of its own tenant it could not read before/,
  },
  {
    name: 'active-team pointer',
    folder: 'user-pointer',
    vulnerable: 'vulnerable.sql',
    secure: 'secure.sql',
    check: 'user-pointer',
    table: 'public.profiles',
    write: /update "public"\."profiles" set "active_team_id" = '[^']+'::uuid where current of rls_audit_row/,
    read: /select \* from "public"\."projects"/,
    message: /set active_team_id = tenant B on its own row succeeds \(1 row\); then .*public\.projects returns 20 rows of tenant B/,
  },
  {
    name: 'owner-scoped UPDATE without WITH CHECK',
    folder: 'owner-move',
    vulnerable: 'vulnerable.sql',
    secure: 'secure.sql',
    check: 'tenant-reassignment',
    table: 'public.documents',
    write: /update "public"\."documents" set "team_id" = '[^']+'::uuid/,
    message: /moves \d+ rows? of public\.documents to tenant [A-C]/,
    details: /without WHERE: \d+ rows? moved to tenant [A-C]/,
  },
  {
    name: 'unchecked RPC read',
    folder: 'rpc-foreign-keys',
    vulnerable: 'read-vulnerable.sql',
    secure: 'read-secure.sql',
    check: 'function-leak',
    table: 'get_team_projects(uuid)',
    write: /select \* from "public"\."get_team_projects"\('[^']+'::uuid\)/,
    message: /with tenant B's keys returns 20 rows of tenant B/,
    details: /called as tenant A with tenant B's keys/,
  },
  {
    name: "RPC with another tenant's user id",
    folder: 'rpc-foreign-keys',
    vulnerable: 'user-vulnerable.sql',
    secure: 'user-secure.sql',
    check: 'function-leak',
    table: 'projects_of_member(uuid)',
    write: /select \* from "public"\."projects_of_member"\('[0-9a-f-]{36}'::uuid\)/,
    message: /with tenant B's keys returns 20 rows of tenant B/,
    // The argument that held the key: the id of tenant B's user.
    details: /called as tenant A with tenant B's keys \(member_id: the user of tenant B \(public\.team_members\.user_id\)\)/,
  },
  {
    name: 'invitation accept',
    folder: 'rpc-foreign-keys',
    vulnerable: 'invitation-vulnerable.sql',
    secure: 'invitation-secure.sql',
    check: 'function-leak',
    table: 'accept_invitation(bigint)',
    write: /select "public"\."accept_invitation"\('\d+'::bigint\)/,
    read: /select \* from "public"\."projects"/,
    message: /public\.team_members: 1 row added\): the caller is now a member of tenant B; then .*public\.projects returns 20 rows of tenant B/,
  },
];

/** One audit per fixture and preset, shared by the tests that read it (the RPC read pair is in both tables below). */
const audits = new Map<string, Promise<CliRun>>();
function audit(folder: string, file: string, preset = 'supabase'): Promise<CliRun> {
  const key = `${folder}/${file} ${preset}`;
  if (!audits.has(key)) audits.set(key, runCli(['run', '--schema', path.join(FIXTURES, folder, file), '--preset', preset, '--seed', '7', '--quiet']));
  return audits.get(key)!;
}

describe('what a signed-in user can do to who it is', () => {
  it.each(CASES)('$name: the vulnerable fixture fails with the chain, its secure twin passes', async (entry) => {
    const vulnerable = await audit(entry.folder, entry.vulnerable);
    expect(vulnerable.err).not.toMatch(/unexpected error/);
    expect(vulnerable.report!.summary.inconclusive).toEqual([]);
    expect(vulnerable.code).toBe(1);
    const found = allFindings(vulnerable.report!.findings).filter((finding) => finding.check === entry.check && finding.table === entry.table);
    // One finding per defect; a function proven two ways (another tenant's keys, and its own arguments) has two proofs.
    const listed = JSON.stringify(allFindings(vulnerable.report!.findings).map((finding) => [finding.check, finding.message]));
    if (entry.check === 'function-leak') expect(found.length, listed).toBeGreaterThan(0);
    else expect(found.length, listed).toBe(1);
    const finding = found.find((candidate) => entry.message.test(candidate.message));
    expect(finding, found.map((candidate) => candidate.message).join('\n')).toBeDefined();
    expect(finding!.severity).toBe('high');
    expect(finding!.evidence.sql).toMatch(entry.write);
    if (entry.read) {
      // The read comes after the write, in the same transaction.
      expect(finding!.evidence.sql.search(entry.read)).toBeGreaterThan(finding!.evidence.sql.search(entry.write));
    } else {
      // The administrator's count, in the same rolled-back savepoint, is the read.
      expect(finding!.evidence.details).toMatch(entry.details!);
    }
    expect(finding!.evidence.sql).toMatch(/^begin;[\s\S]*rollback;$/);

    const secure = await audit(entry.folder, entry.secure);
    // secure-fixtures.test.ts's assertions, on this audit (its expect.yaml: auditedBy).
    expectNoFalseAlarm(secure);
    expect(secure.report!.summary.inconclusive).toEqual([]);
    expect(allFindings(secure.report!.findings).filter((candidate) => atLeast(candidate.severity, 'medium')).map((candidate) => `${candidate.check}: ${candidate.message}`)).toEqual([]);
    expect(secure.code).toBe(0);
    // The secure twin was probed the same way, and held.
    const probed = secure.report!.probes.filter((probe) => probe.check === entry.check);
    expect(probed.length).toBeGreaterThan(0);
    expect(probed.every((probe) => probe.outcome !== 'leak')).toBe(true);
  });
});

/**
 * The same RPCs as the platform's anonymous role (Supabase anon, PostgREST's web_anon), where it holds EXECUTE: a
 * request without credentials that reaches tenant rows is critical. The secure twins revoke EXECUTE from it (and PUBLIC).
 */
const ANONYMOUS = [
  // A check that lets a caller without a user through (meant for a service job): signed-in callers are refused, anon is not.
  { name: 'a caller without a user let through', preset: 'supabase', role: 'anon', folder: 'anonymous-function-leak', vulnerable: 'vulnerable.sql', secure: 'secure.sql', schema: 'public', fn: 'org_invoices(bigint)', arg: /'\d+'::bigint/, keys: /org: public\.invoices\.org_id/ },
  // The unchecked RPC read: EXECUTE was never revoked from anon, so it reads any team's projects too.
  { name: 'the unchecked RPC read', preset: 'supabase', role: 'anon', folder: 'rpc-foreign-keys', vulnerable: 'read-vulnerable.sql', secure: 'read-secure.sql', schema: 'public', fn: 'get_team_projects(uuid)', arg: /'[0-9a-f-]{36}'::uuid/, keys: /team: public\.projects\.team_id/ },
  // PostgREST: a new function is executable by PUBLIC, web_anon included; a claim-less fallback lets it through.
  { name: 'a fallback without claims (PostgREST)', preset: 'postgrest', role: 'web_anon', folder: 'anonymous-function-leak', vulnerable: 'postgrest-vulnerable.sql', secure: 'postgrest-secure.sql', schema: 'api', fn: 'api.recent_orders(integer)', arg: /'\d+'::integer/, keys: /shop: api\.orders\.shop_id/ },
];

describe('the same RPCs without credentials', () => {
  it.each(ANONYMOUS)('$name: $role reads tenant rows through $fn (critical); the twin that revokes EXECUTE passes', async (entry) => {
    const vulnerable = await audit(entry.folder, entry.vulnerable, entry.preset);
    expect(vulnerable.err).not.toMatch(/unexpected error/);
    expect(vulnerable.report!.summary.inconclusive).toEqual([]);
    expect(vulnerable.code).toBe(1);
    const found = allFindings(vulnerable.report!.findings).filter((finding) => finding.check === 'anonymous-function-leak');
    expect(found.map((finding) => finding.table)).toEqual([entry.fn]);
    const finding = found[0]!;
    expect(finding.severity).toBe('critical');
    const name = entry.fn.replace(/\(.*/, '').replace(/^\w+\./, '');
    expect(finding.message).toMatch(new RegExp(`^Without credentials, as ${entry.role}, select \\* from "${entry.schema}"\\."${name}"\\(.+\\) returns 20 rows of tenant [A-C]: ${entry.role} may EXECUTE`));
    // The call as the anonymous role, with no claims set, and the tenant rows it returned.
    expect(finding.evidence.sql).toMatch(new RegExp(`^-- a request without credentials, on a new connection\\nbegin;\\nset local role "${entry.role}";\\nselect \\* from `));
    expect(finding.evidence.sql).toMatch(entry.arg);
    expect(finding.evidence.sql).not.toMatch(/set_config|request\.jwt/);
    expect(finding.evidence.rowCount).toBe(20);
    expect(finding.evidence.sampleRows!.length).toBeGreaterThan(0);
    expect(JSON.stringify(finding.evidence.sampleRows)).toMatch(/canary of tenant [A-C]/);
    // Each tenant's key, taken from the column the body compares the argument with.
    expect(finding.evidence.details).toMatch(new RegExp(`with tenant A's keys \\(${entry.keys.source} of tenant A\\): returned 20 rows of tenant A; with tenant B's keys \\(${entry.keys.source} of tenant B\\): returned 20 rows of tenant B`));
    expect(finding.fix).toContain(`revoke execute on function ${entry.fn} from public, "${entry.role}";`);

    const secure = await audit(entry.folder, entry.secure, entry.preset);
    // secure-fixtures.test.ts's assertions, on this audit (its expect.yaml: auditedBy).
    expectNoFalseAlarm(secure);
    expect(secure.report!.summary.inconclusive).toEqual([]);
    expect(allFindings(secure.report!.findings).filter((candidate) => atLeast(candidate.severity, 'medium')).map((candidate) => `${candidate.check}: ${candidate.message}`)).toEqual([]);
    expect(secure.code).toBe(0);
    // anon may not EXECUTE it: it is not called as anon; the functions anon may call were, and leaked nothing.
    const anonymous = secure.report!.probes.filter((probe) => probe.check === 'anonymous-function-leak');
    expect(anonymous.length).toBeGreaterThan(0);
    expect(anonymous.some((probe) => probe.relation === entry.fn)).toBe(false);
    expect(anonymous.every((probe) => probe.outcome !== 'leak')).toBe(true);
  });
});
