// One writer per network namespace. Two locks (flock(2), through the native
// addon), both files under the runtime directory named by the namespace:
//
// - write: held by whoever changes the kernel (apply, destroy, drain,
//   undrain, and the controller for each reconcile), for as long as the
//   change takes. Kernel tools started meanwhile (nft, iptables) inherit it,
//   so a killed slbctl whose nft child is still committing keeps it locked
//   until that child is gone too.
// - controller: held by `slbctl run` for its whole life. apply and destroy
//   refuse while it is held (the controller would undo them), unless forced.
//
// The kernel drops a flock when its last holder dies, even by SIGKILL, so a
// crash never leaves a namespace locked. The holder writes its pid and
// command line into the file, for the refusal message of the next one.
import * as fs from 'node:fs';
import { BusyError, PreflightError } from '../util/errors';
import { native } from '../util/netns';
import { runDir } from '../util/rundir';
import { ensureDirectory } from './files';
import { NetnsIdentity, currentNetns } from './netns';

export type LockKind = 'write' | 'controller';

export interface Holder {
  pid: number;
  command: string;
  since: number;
}

export function lockFile(kind: LockKind, id: NetnsIdentity = currentNetns()): string {
  return runDir('locks', `net-${id.inode}.${kind}.lock`);
}

/** Locks this process holds: a second tryLock from the same process would see its own lock as another's. */
const held = new Map<string, Lock>();

export class Lock {
  private constructor(
    readonly kind: LockKind,
    readonly file: string,
    private fd: number,
  ) {}

  /** The descriptor to pass on to a child that must keep the lock while it runs (undefined once released). */
  get descriptor(): number | undefined {
    return this.fd >= 0 ? this.fd : undefined;
  }

  static tryAcquire(kind: LockKind, id: NetnsIdentity = currentNetns()): Lock | undefined {
    const file = lockFile(kind, id);
    if (held.has(file)) throw new Error(`slbctl: this process already holds the ${kind} lock ${file}`);
    let fd: number;
    try {
      ensureDirectory(runDir('locks'));
      fd = native().tryLock(file);
    } catch (e) {
      throw new PreflightError(
        `cannot take the network namespace's ${kind} lock ${file}: ${(e as Error).message}; run slbctl as root or as the systemd unit, whose RuntimeDirectory it uses`,
      );
    }
    if (fd < 0) return undefined;
    if (!stillNamed(fd, file)) {
      // The holder before us unlinked the file after we opened it (see release): this lock guards nothing.
      native().unlock(fd);
      return Lock.tryAcquire(kind, id);
    }
    const holder: Holder = { pid: process.pid, command: commandLine(), since: Date.now() };
    fs.ftruncateSync(fd, 0);
    fs.writeSync(fd, `${JSON.stringify(holder)}\n`, 0);
    const lock = new Lock(kind, file, fd);
    held.set(file, lock);
    return lock;
  }

  /**
   * Take the lock, waiting up to `waitMs` for the holder to finish; then
   * refuse with one sentence naming the holder.
   */
  static async acquire(kind: LockKind, waitMs: number, id: NetnsIdentity = currentNetns()): Promise<Lock> {
    const until = Date.now() + waitMs;
    for (;;) {
      const lock = Lock.tryAcquire(kind, id);
      if (lock) return lock;
      if (Date.now() >= until) throw new BusyError(busyMessage(kind, holderOf(kind, id), waitMs));
      await new Promise((r) => setTimeout(r, Math.min(50, Math.max(1, until - Date.now()))));
    }
  }

  release(): void {
    if (this.fd < 0) return;
    held.delete(this.file);
    // Removed while still held, so files of namespaces long gone do not pile up under locks/. A process
    // that opened it meanwhile sees (stillNamed) that its lock is on an unlinked file and opens it anew.
    try {
      fs.unlinkSync(this.file);
    } catch {
      // already gone; the lock is dropped all the same
    }
    native().unlock(this.fd);
    this.fd = -1;
  }
}

/** Whether the path still names the file the descriptor has open. */
function stillNamed(fd: number, file: string): boolean {
  try {
    const open = fs.fstatSync(fd);
    const named = fs.statSync(file);
    return open.ino === named.ino && open.dev === named.dev;
  } catch {
    return false;
  }
}

function commandLine(): string {
  const [, script, ...args] = process.argv;
  const name = script && /cli[/\\]main\.js$/.test(script) ? 'slbctl' : (script ?? 'node');
  return [name, ...args].join(' ');
}

/** Who holds the lock now, or undefined when nobody does. */
export function holderOf(kind: LockKind, id: NetnsIdentity = currentNetns()): Holder | undefined {
  const file = lockFile(kind, id);
  const mine = held.get(file);
  if (mine) return { pid: process.pid, command: commandLine(), since: 0 };
  if (!fs.existsSync(file)) return undefined;
  const probe = native().tryLock(file);
  if (probe >= 0) {
    // Nobody holds it: the file is a crashed holder's (or our probe made it); held, it may go (see release).
    if (stillNamed(probe, file)) fs.rmSync(file, { force: true });
    native().unlock(probe);
    return undefined;
  }
  try {
    const h = JSON.parse(fs.readFileSync(file, 'utf8')) as Partial<Holder>;
    if (typeof h.pid === 'number') return { pid: h.pid, command: h.command ?? '?', since: h.since ?? 0 };
  } catch {
    // written a moment ago and not yet filled in
  }
  return { pid: 0, command: 'unknown', since: 0 };
}

export function describeHolder(h: Holder | undefined): string {
  if (!h) return 'another process';
  const age = h.since ? `, for ${((Date.now() - h.since) / 1000).toFixed(1)} s` : '';
  // The lock outlives a killed slbctl while the nft or iptables it started still runs: say so, not just a dead pid.
  const gone = h.pid > 0 && !alive(h.pid) ? ', which has exited; a program it started (nft, iptables) still holds the lock' : '';
  return `pid ${h.pid || '?'} (\`${h.command}\`${age}${gone})`;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    // EPERM: it exists but is not ours to signal.
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function busyMessage(kind: LockKind, h: Holder | undefined, waitMs: number): string {
  if (kind === 'controller')
    return `slbctl run is already running in this network namespace: ${describeHolder(h)}; stop it first (waited ${waitMs / 1000} s)`;
  return `another slbctl is changing this network namespace: ${describeHolder(h)}; waited ${waitMs / 1000} s for it (raise --wait to wait longer)`;
}

/** Refuse when a controller manages this namespace (apply and destroy would be undone by it). */
export function refuseUnderController(what: string, id: NetnsIdentity = currentNetns()): void {
  const h = holderOf('controller', id);
  if (!h || h.pid === process.pid) return;
  throw new BusyError(
    `slbctl run manages this network namespace (${describeHolder(h)}), so a plain \`${what}\` would be undone at its next resync: ` +
      `change its config file and reload it (kill -HUP ${h.pid || 'PID'}, or systemctl reload slbctl), or pass --force to ${what} anyway`,
  );
}

/** The write lock of this process, while it holds one: kernel tools started now inherit it. */
export function heldWriteLock(): Lock | undefined {
  for (const l of held.values()) if (l.kind === 'write') return l;
  return undefined;
}

/** Run `fn` holding this namespace's write lock (waiting up to `waitMs` for another writer). */
export async function withWriteLock<T>(waitMs: number, fn: () => Promise<T>): Promise<T> {
  const lock = await Lock.acquire('write', waitMs);
  try {
    return await fn();
  } finally {
    lock.release();
  }
}
