// One HAProxy per network namespace, started and owned by slbctl: a master
// (-W, daemon) whose worker serves the config, reloaded seamlessly through
// the master CLI. Everything the instance has lives in its private directory
// (/run/slbctl/haproxy/<id>/, mode 0700): config, PEM files, pid file, the
// runtime and master sockets, the saved server state. Programs are started
// with argument arrays only (util/exec), never through a shell.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { EXIT, SlbctlError } from '../../util/errors';
import { run } from '../../util/exec';
import { runDir } from '../../util/rundir';
import { writeFileNoFollow } from '../../util/safe-write';
import { InstancePaths, instancePaths, L7Service, pemPathOf } from './render';
import { parseShowProc, ProcEntry, RuntimeClient, socketCommand } from './runtime';
import { assertHaproxyInstalled, checkFile, checkMessages } from './check';
import { alive, childrenOf, signal, waitFor } from './processes';

/** The instance could not be started, reloaded or stopped as asked. */
export class HaproxyError extends SlbctlError {
  readonly exitCode = EXIT.kernel;
}

/** A file of the instance's own (a PEM), written mode 0600 into its directory before the config that names it. */
export interface PrivateFile {
  path: string;
  content: string;
}

/**
 * The PEM files of the https services: certificate then key in one file, as
 * `bind … ssl crt` reads them, at pemPathOf(). Read here, once per apply, so
 * a renewed certificate arrives with the next reload.
 */
export function assemblePemFiles(services: readonly L7Service[], paths: InstancePaths): PrivateFile[] {
  const files: PrivateFile[] = [];
  for (const s of services) {
    if (!s.tls) continue;
    const read = (what: string, file: string): string => {
      try {
        const text = fs.readFileSync(file, 'utf8');
        return text.endsWith('\n') ? text : `${text}\n`;
      } catch (e) {
        throw new HaproxyError(
          `service ${s.key}: cannot read its TLS ${what} ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
        );
      }
    };
    files.push({ path: pemPathOf(s.key, paths), content: read('certificate', s.tls.certificate) + read('key', s.tls.key) });
  }
  return files;
}

export interface InstanceOptions {
  /** Identifies the namespace (slbctl passes the namespace's identity); letters, digits, '_', '-', '.'. */
  id: string;
  /** The named network namespace HAProxy runs in; undefined: this process's own. */
  netns?: string;
  /** Where instance directories go; /run/slbctl/haproxy by default. */
  baseDir?: string;
  /** How long stop() lets workers finish their connections before it kills them. */
  stopDeadlineMs?: number;
}

export interface ReloadResult {
  /** The worker serving before the reload (now finishing its connections). */
  previousWorkers: number[];
  workerPid: number;
  /** From the master CLI's `reload` to the new worker answering on the runtime socket. */
  milliseconds: number;
}

export class HaproxyInstance {
  readonly paths: InstancePaths;
  readonly runtime: RuntimeClient;
  readonly netns: string | undefined;
  private readonly stopDeadlineMs: number;

  constructor(options: InstanceOptions) {
    if (!/^[A-Za-z0-9_.-]{1,64}$/.test(options.id) || options.id === '.' || options.id === '..')
      throw new Error(`haproxy instance: bad id ${JSON.stringify(options.id)}`);
    this.paths = instancePaths(path.join(options.baseDir ?? runDir('haproxy'), options.id));
    // A unix socket's path has 107 bytes, and HAProxy first binds "<path>.<pid>.tmp" then renames it.
    if (Buffer.byteLength(this.paths.runtimeSocket) + '.4194304.tmp'.length > 107)
      throw new Error(`haproxy instance: ${this.paths.runtimeSocket} is too long for a unix socket; use a shorter id or base directory`);
    this.runtime = new RuntimeClient(this.paths.runtimeSocket);
    this.netns = options.netns;
    this.stopDeadlineMs = options.stopDeadlineMs ?? 2000;
  }

  private get where(): string {
    return `haproxy in ${this.netns ? `netns ${this.netns}` : 'this namespace'} (${this.paths.dir})`;
  }

  /** The master's pid from the pid file, whether or not it still runs. */
  private pidFromFile(): number | undefined {
    try {
      const pid = Number(fs.readFileSync(this.paths.pidFile, 'utf8').trim().split('\n')[0]);
      return Number.isInteger(pid) && pid > 0 ? pid : undefined;
    } catch {
      return undefined;
    }
  }

  /**
   * The master's pid, only when that process is alive and is our HAProxy:
   * pids are reused, so the pid file alone proves nothing. It must be named
   * haproxy and have been started on this instance's config.
   */
  masterPid(): number | undefined {
    const pid = this.pidFromFile();
    if (pid === undefined || !alive(pid)) return undefined;
    try {
      if (fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim() !== 'haproxy') return undefined;
      const argv = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
      return argv.includes(this.paths.config) ? pid : undefined;
    } catch {
      return undefined;
    }
  }

  running(): boolean {
    return this.masterPid() !== undefined;
  }

  /** The master CLI's view: the master, current and old workers. */
  async processes(): Promise<ProcEntry[]> {
    return parseShowProc(await socketCommand(this.paths.masterSocket, 'show proc'));
  }

  private async writePrivate(files: readonly PrivateFile[]): Promise<void> {
    fs.mkdirSync(this.paths.dir, { recursive: true, mode: 0o700 });
    // mkdir's mode is cut by the umask and skipped for an existing directory.
    fs.chmodSync(this.paths.dir, 0o700);
    for (const f of files) {
      if (path.dirname(f.path) !== this.paths.dir) throw new Error(`haproxy instance: ${f.path} is not in ${this.paths.dir}`);
      writeFileNoFollow(f.path, f.content, 0o600);
    }
  }

  /** Write the config (and its files), check it, start master and worker, and wait for the runtime socket. */
  async start(configText: string, files: readonly PrivateFile[] = []): Promise<void> {
    assertHaproxyInstalled();
    if (this.running()) throw new HaproxyError(`${this.where}: already running (pid ${this.masterPid()}); reload it instead`);
    await this.writePrivate([...files, { path: this.paths.config, content: configText }]);
    await checkFile(this.where, this.paths.config);
    // Sockets and a pid file left by an instance that died would only confuse the waits below.
    for (const stale of [this.paths.pidFile, this.paths.runtimeSocket, this.paths.masterSocket]) fs.rmSync(stale, { force: true });
    // No state to carry yet: a state file with only its format version ("1",
    // as `show servers state` begins) keeps HAProxy from warning about it.
    writeFileNoFollow(this.paths.serverStateFile, '1\n', 0o600);
    // -W master-worker, -D daemon: this command returns once the listeners are
    // bound (a bind error comes back as its exit code and message).
    const r = await run(
      ['haproxy', '-W', '-D', '-f', this.paths.config, '-p', this.paths.pidFile, '-S', `${this.paths.masterSocket},mode,600`],
      { netns: this.netns, timeoutMs: 30_000 },
    );
    if (r.code !== 0) {
      const lines = checkMessages(`${r.stdout}\n${r.stderr}`).filter((l) => !l.startsWith('warning: '));
      throw new HaproxyError(`start ${this.where}: ${lines.length ? lines.join(' / ') : `exit ${r.signal ?? r.code}: ${r.stderr.trim()}`}`);
    }
    const pid = await waitFor(10_000, async () => {
      try {
        return await this.runtime.workerPid();
      } catch {
        return undefined;
      }
    });
    if (pid === undefined) {
      // Own nothing half-started: the caller sees one failure and no process left behind.
      await this.stop().catch(() => undefined);
      throw new HaproxyError(`${this.where}: started, but its runtime socket did not answer within 10 s`);
    }
  }

  /**
   * Seamless reload: the new config (and files) written beside the running
   * one and checked first, so a bad config leaves the running instance as it
   * is; the runtime state saved for the new worker; then the master CLI's
   * `reload`. The master re-executes itself and hands the new worker the
   * listening sockets through the runtime socket (expose-fd listeners), so no
   * connection is refused; the old worker finishes its connections and exits.
   */
  async reload(configText: string, files: readonly PrivateFile[] = []): Promise<ReloadResult> {
    assertHaproxyInstalled();
    if (!this.running()) throw new HaproxyError(`${this.where}: not running; start it first`);
    const next = `${this.paths.config}.new`;
    await this.writePrivate([...files, { path: next, content: configText }]);
    try {
      await checkFile(`reload ${this.where}`, next);
    } catch (e) {
      fs.rmSync(next, { force: true });
      throw e;
    }
    // What slbctl set at runtime (maint, drain, weights) would otherwise be lost with the old worker.
    writeFileNoFollow(this.paths.serverStateFile, await this.runtime.command('show servers state'), 0o600);
    const before = await this.processes();
    const previousWorkers = before.filter((p) => p.type === 'worker').map((p) => p.pid);
    const failedBefore = await this.failedReloads();
    fs.renameSync(next, this.paths.config);
    const started = Date.now();
    // HAProxy 2.6 answers `reload` by closing the connection (2.7+ reports the outcome): success is read from show proc.
    await socketCommand(this.paths.masterSocket, 'reload').catch(() => '');
    const workerPid = await waitFor(15_000, async () => {
      try {
        // Unknown (the master is mid re-exec) is not a failure: only a count that moved is.
        const failed = await this.failedReloads();
        if (failed !== undefined && failedBefore !== undefined && failed !== failedBefore) return -1;
        const current = (await this.processes()).find((p) => p.type === 'worker' && !p.old && !previousWorkers.includes(p.pid));
        if (!current) return undefined;
        return (await this.runtime.workerPid()) === current.pid ? current.pid : undefined;
      } catch {
        return undefined; // the master is re-executing; its socket comes back
      }
    });
    if (workerPid === undefined || workerPid === -1)
      throw new HaproxyError(
        `reload ${this.where}: ${workerPid === -1 ? 'the master reported a failed reload' : 'no new worker within 15 s'}; the previous worker goes on serving`,
      );
    return { previousWorkers, workerPid, milliseconds: Date.now() - started };
  }

  /** The master's count of failed reloads (`show proc`: "master 3 [failed: 0]"), or undefined. */
  private async failedReloads(): Promise<number | undefined> {
    try {
      const m = /\[failed:\s*(\d+)\]/.exec(await socketCommand(this.paths.masterSocket, 'show proc'));
      return m?.[1] === undefined ? undefined : Number(m[1]);
    } catch {
      return undefined;
    }
  }

  /** Is this exactly what the running instance was loaded with (config and every file)? */
  private loadedWith(configText: string, files: readonly PrivateFile[]): boolean {
    const same = (file: string, content: string): boolean => {
      try {
        return fs.readFileSync(file, 'utf8') === content;
      } catch {
        return false;
      }
    };
    return same(this.paths.config, configText) && files.every((f) => same(f.path, f.content));
  }

  /**
   * The instance serving exactly this: started when it is not running,
   * reloaded when anything differs, and left alone when nothing does, so
   * re-applying the same services costs no reload (and no new worker).
   */
  async apply(configText: string, files: readonly PrivateFile[] = []): Promise<'started' | 'reloaded' | 'unchanged'> {
    if (!this.running()) {
      await this.start(configText, files);
      return 'started';
    }
    if (this.loadedWith(configText, files)) return 'unchanged';
    await this.reload(configText, files);
    return 'reloaded';
  }

  /**
   * Stop: SIGUSR1 asks the master for a soft stop (workers finish their
   * connections, then everything exits); after stopDeadlineMs, SIGTERM, then
   * SIGKILL for the master and every worker it had. The directory goes last,
   * once no process can write into it.
   */
  async stop(): Promise<void> {
    const master = this.masterPid();
    if (master !== undefined) {
      const workers = childrenOf(master);
      const all = [master, ...workers];
      const gone = (): true | undefined => (all.some(alive) ? undefined : true);
      signal(master, 'SIGUSR1');
      if (!(await waitFor(this.stopDeadlineMs, gone))) {
        signal(master, 'SIGTERM');
        if (!(await waitFor(1000, gone))) {
          for (const pid of all) signal(pid, 'SIGKILL');
          if (!(await waitFor(5000, gone)))
            throw new HaproxyError(`stop ${this.where}: processes ${all.filter(alive).join(', ')} survived SIGKILL`);
        }
      }
    }
    fs.rmSync(this.paths.dir, { recursive: true, force: true });
  }
}
