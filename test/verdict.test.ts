import { describe, expect, it } from 'vitest';
import { verdictOf } from '../src/findings/verdict.js';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { auditFixture, FIXTURES, runCli } from './helpers.js';

describe('verdict', () => {
  it('is fail on a proven leak, inconclusive on any reason otherwise, pass only with neither', () => {
    const reason = { reason: 'x', hint: 'y' };
    expect(verdictOf(1, [reason])).toBe('fail');
    expect(verdictOf(0, [reason])).toBe('inconclusive');
    expect(verdictOf(0, [])).toBe('pass');
  });

  it('is inconclusive, exit 2, when the context hides every tenant its own rows, and says why in the terminal', async () => {
    const run = await auditFixture('uuid-tenants', ['--context-sql', "select set_config('app.not_read_by_any_policy', $1, true)"]);
    expect(run.code).toBe(2);
    expect(run.report!.summary.verdict).toBe('inconclusive');
    // One reason for a context that is wrong everywhere; --quiet still prints it: which relations, which context SQL, what to try.
    expect(run.report!.summary.inconclusive).toHaveLength(1);
    expect(run.err).toMatch(/inconclusive: no tenant sees its own rows on any of the 3 tenant-owned tables \(.*public\.pages.*\) as app_user after `select set_config\('app\.not_read_by_any_policy'/);
    expect(run.err).toMatch(/tenant A sees 0 of its \d+ rows/);
    expect(run.err).toMatch(/try: .*--setting.*--context-sql/);
    expect(run.err).not.toMatch(/unexpected error/);
  });

  it('is inconclusive when the role reads only views (PostgREST) and the context shows no tenant its rows through them', async () => {
    // Without api.tags (the planted leak), nothing fails: a context that sets a claim no policy reads must not pass.
    const leak = 'create policy tags_update on data.tags for update to api_owner using (true) with check (true);';
    const schema = await readFile(path.join(FIXTURES, 'tenancy', 'postgrest.sql'), 'utf8');
    expect(schema).toContain(leak);
    const dir = await mkdtemp(path.join(os.tmpdir(), 'rls-audit-views-only-'));
    try {
      const file = path.join(dir, 'schema.sql');
      await writeFile(file, schema.replace(leak, ''));
      const run = await runCli(['run', '--schema', file, '--preset', 'postgrest', '--seed', '7', '--quiet', '--context-sql', "select set_config('request.jwt.claims', json_build_object('nothing', $tenant)::text, true)"]);
      expect(run.report!.summary.inconclusive).toEqual([expect.objectContaining({ reason: expect.stringMatching(/^no tenant sees its own rows on any of the \d+ views over tenant-owned tables \(the only relations the role may read\)/) })]);
      expect(run.err).toMatch(/inconclusive: no tenant sees its own rows/);
      expect(run.code).toBe(2);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
