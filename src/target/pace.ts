import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';

/** Shorter debts are carried over: a pause costs a timer, and a millisecond's pause a whole timer tick. */
const SMALLEST_PAUSE_MS = 4;

/**
 * Keeps a connection's share of busy time at most `share`: the time during which a statement of it is on the
 * server (sent, not yet answered), over the time since the pacer started. Before each new piece of work the
 * audit asks for its turn, and waits while it owes idle time.
 *
 * Why: on a database the audit does not own, the audit's one backend, kept busy without a pause by a
 * pipelined connection, holds a core of the server for the whole run; the application's queries then wait
 * for a core (on a 2-core server, pgbench's p99 grew fourfold during an audit). Paced at 0.5, the backend
 * leaves the server at least every other moment, in bursts of a few milliseconds.
 */
export class Pacer {
  private inFlight = 0;
  private busySince = 0;
  private busyMs = 0;
  /** Time the audit waited for its turn. */
  pausedMs = 0;
  private readonly started: number;

  constructor(
    readonly share: number,
    private readonly now: () => number = () => performance.now(),
    private readonly wait: (ms: number) => Promise<unknown> = sleep,
  ) {
    if (!(share > 0 && share <= 1)) throw new RangeError(`a pace is a share of time in (0, 1], not ${share}`);
    this.started = this.now();
  }

  /** Time the connection has had a statement on the server. */
  busy(): number {
    return this.busyMs + (this.inFlight ? this.now() - this.busySince : 0);
  }

  /** A statement went to the server. */
  sent(): void {
    if (this.inFlight++ === 0) this.busySince = this.now();
  }

  /** A statement's answer came back. */
  answered(): void {
    if (--this.inFlight === 0) this.busyMs += this.now() - this.busySince;
  }

  /** Wait, if the connection was busy for more than its share so far, until it is back at its share. */
  async turn(): Promise<void> {
    if (this.share >= 1) return;
    const owed = this.busy() / this.share - (this.now() - this.started);
    if (owed < SMALLEST_PAUSE_MS) return;
    this.pausedMs += owed;
    await this.wait(owed);
  }
}
