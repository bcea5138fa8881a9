import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Pacer } from '../src/target/pace.js';
import { allFindings, FIXTURES, FixtureCluster, runCli } from './helpers.js';

/** A pacer on a clock the test moves: what it waits for is recorded, not slept. */
function pacedClock(share: number) {
  let now = 1000;
  const waits: number[] = [];
  const pacer = new Pacer(
    share,
    () => now,
    async (ms) => {
      waits.push(ms);
      now += ms;
    },
  );
  return { pacer, waits, advance: (ms: number) => (now += ms) };
}

describe('Pacer', () => {
  it('waits as long as the connection was busy beyond its share, counting overlapping statements once', async () => {
    const { pacer, waits, advance } = pacedClock(0.5);
    pacer.sent();
    pacer.sent();
    advance(30);
    pacer.answered();
    advance(10);
    pacer.answered();
    expect(pacer.busy()).toBe(40);
    await pacer.turn();
    // Busy 40 of 40 ms: at 0.5 it owes another 40 ms of idle time.
    expect(waits).toEqual([40]);
    expect(pacer.pausedMs).toBe(40);
    await pacer.turn();
    expect(waits).toEqual([40]);
  });

  it('does not wait while the connection stayed within its share, and carries small debts over', async () => {
    const { pacer, waits, advance } = pacedClock(0.25);
    pacer.sent();
    advance(1);
    pacer.answered();
    advance(2);
    // Busy 1 of 3 ms at 0.25: owes 1 ms, less than a pause is worth.
    await pacer.turn();
    expect(waits).toEqual([]);
    pacer.sent();
    advance(9);
    pacer.answered();
    advance(3);
    // Busy 10 of 15 ms: owes 10 / 0.25 - 15 = 25 ms.
    await pacer.turn();
    expect(waits).toEqual([25]);
  });

  it('counts a statement still on the server as busy, and refuses a share outside (0, 1]', async () => {
    const { pacer, advance } = pacedClock(0.5);
    pacer.sent();
    advance(12);
    expect(pacer.busy()).toBe(12);
    expect(() => new Pacer(0)).toThrow(RangeError);
    expect(() => new Pacer(1.5)).toThrow(RangeError);
  });
});

describe('--pace on a database the audit does not own', () => {
  let cluster: FixtureCluster;
  beforeAll(async () => {
    cluster = await FixtureCluster.start();
  }, 120_000);
  afterAll(() => cluster?.close());

  it('pauses at its pace and says so, finds what an unpaced run finds, and runs without pause at --pace 1', async () => {
    const schema = path.join(FIXTURES, 'read-isolation', 'vulnerable.sql');
    const audit = (...extra: string[]) =>
      cluster.withDatabase([schema], ({ target }) => runCli(['run', '--database-url', target.connectionString, '--role', 'app_user', '--seed', '7', '--tenants', '2', '--rows', '5', '--quiet', ...extra]));
    const paced = await audit('--pace', '0.05');
    const unpaced = await audit('--pace', '1');
    expect(paced.code).toBe(1);
    expect(unpaced.code).toBe(1);
    const summary = (run: typeof paced) => allFindings(run.report!.findings).map((finding) => `${finding.check} ${finding.object.name} ${finding.severity}`).sort();
    expect(summary(paced)).toEqual(summary(unpaced));
    expect(paced.report!.timings.paused).toBeGreaterThan(0);
    expect(paced.report!.notes.filter((note) => note.startsWith('paced (--pace 0.05)'))).toHaveLength(1);
    expect(unpaced.report!.timings.paused).toBeUndefined();
    expect(unpaced.report!.notes.filter((note) => note.startsWith('paced'))).toEqual([]);
    expect((await runCli(['run', '--pace', '0', '--role', 'app_user'])).err).toContain('--pace must be a share of time');
  }, 180_000);
});
