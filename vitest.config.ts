import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';
import { BaseSequencer, type TestSpecification } from 'vitest/node';

/**
 * Seconds each file took on CI (a fresh clone on a quiet 2-core machine). Vitest starts the files it knows
 * nothing about in the order of their size, which on a fresh clone put the longest file last, running alone on
 * one worker while the other had nothing left to do. Started longest first, the two workers finish together.
 * A file not listed starts first (it may be long); the numbers need only be about right. secure-fixtures'
 * is an estimate after the audits it shares with other tests (auditedBy) left it.
 */
const SECONDS: Record<string, number> = {
  'rules-policy.test.ts': 96,
  'write-probes.test.ts': 85,
  'indirect-probes.test.ts': 76,
  'run-fixtures.test.ts': 74,
  'secure-fixtures.test.ts': 70,
  'tenancy-patterns.test.ts': 57,
  'user-attacks.test.ts': 53,
  'live-safety.test.ts': 44,
  'rules-privilege.test.ts': 41,
  'cli.test.ts': 34,
  'pgtap.test.ts': 28,
  'projects.test.ts': 27,
  'membership.test.ts': 27,
  'identity-in-tables.test.ts': 26,
  'html.test.ts': 26,
  'trusted-verdicts.test.ts': 25,
  'trusted-verdicts-privileges.test.ts': 22,
  'new-check.test.ts': 22,
  'embedded-safety.test.ts': 22,
  'package.test.ts': 19,
  'check-fixtures.test.ts': 19,
  'seeding-gaps.test.ts': 18,
  'schema-from.test.ts': 17,
  'ci-formats.test.ts': 14,
  'staging-scale.test.ts': 12,
  'seeding.test.ts': 12,
  'anonymous-write.test.ts': 12,
  'user-claims.test.ts': 11,
  'baseline.test.ts': 10,
  'fail-open-fixtures.test.ts': 9,
  'url-target.test.ts': 7,
  'terminal.test.ts': 7,
  'shard.test.ts': 7,
  'hostile-names.test.ts': 7,
  'library-api.test.ts': 6,
  'init.test.ts': 6,
  'verdict.test.ts': 5,
  'tenancy.test.ts': 5,
  'library.test.ts': 5,
  'library-supabase.test.ts': 5,
  'effects-live.test.ts': 5,
  'accept.test.ts': 5,
  'seed-graphs.test.ts': 4,
  'coverage.test.ts': 4,
  'action.test.ts': 4,
  'session.test.ts': 3,
  'vitest-example.test.ts': 2,
  'schema-files.test.ts': 2,
  'catalog-readers.test.ts': 2,
  'sql-text.test.ts': 1,
  'planner.test.ts': 1,
  'analysis.test.ts': 1,
  'values.test.ts': 0,
  'sql.test.ts': 0,
  'scenario.test.ts': 0,
  'reconcile-cause.test.ts': 0,
  'readme.test.ts': 0,
  'order.test.ts': 0,
  'locate.test.ts': 0,
  'ledger.test.ts': 0,
  'fix-data.test.ts': 0,
  'container.test.ts': 0,
};

/**
 * Longest first, by SECONDS (not by the durations vitest kept of earlier runs on this machine: a run of a
 * single test of a file records that file as short).
 */
class LongestFirst extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const seconds = (spec: TestSpecification) => SECONDS[path.basename(spec.moduleId)] ?? Number.MAX_SAFE_INTEGER;
    return (await super.sort(files)).sort((a, b) => seconds(b) - seconds(a));
  }
}

export default defineConfig({
  resolve: {
    // The README's examples import the package by name; in this repository that name is the source.
    alias: [
      { find: /^rls-audit\/vitest$/, replacement: fileURLToPath(new URL('./src/library/vitest.ts', import.meta.url)) },
      { find: /^rls-audit$/, replacement: fileURLToPath(new URL('./src/index.ts', import.meta.url)) },
    ],
  },
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: 'forks',
    maxWorkers: 2,
    // A worker runs file after file without starting afresh: the sources (and the SQL parser) are loaded once per
    // worker instead of once per file. The tests leave no state behind that another file could read (the
    // environment variables they set are restored, each file closes the clusters it started).
    isolate: false,
    sequence: { sequencer: LongestFirst },
  },
});
