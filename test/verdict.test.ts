import { describe, expect, it } from 'vitest';
import { verdictOf } from '../src/verdict.js';
import { auditFixture } from './helpers.js';

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
});
