// Processes of the netns lab: the real servers' HTTP servers (started
// detached, so they outlive the `slbctl lab up` that started them) and the
// sweep that stops everything left running in the lab's namespaces.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawn } from 'node:child_process';
import { run } from '../util/exec';
import { LabError } from './errors';
import { labStateDir } from './state';

export const RS_HTTP_SCRIPT = path.join(__dirname, 'rs-http-server.js');

export interface StartedServer {
  pid: number;
  logFile: string;
  /** Set once the process has exited (only observed while this process lives). */
  exited: () => string | undefined;
}

/** Start the RS HTTP server inside `netns`; its output goes to <state dir>/<name>-http.log. */
export function startHttpServer(lab: string, netns: string, name: string, port: number): StartedServer {
  const dir = labStateDir(lab);
  fs.mkdirSync(dir, { recursive: true });
  const logFile = path.join(dir, `${name}-http.log`);
  const fd = fs.openSync(logFile, 'a');
  let exit: string | undefined;
  try {
    // `ip netns exec` execs the program in place, so this pid is the server's own.
    const child = spawn('ip', ['netns', 'exec', netns, process.execPath, RS_HTTP_SCRIPT, '--name', name, '--port', String(port)], {
      detached: true,
      stdio: ['ignore', fd, fd],
    });
    child.once('exit', (code, signal) => (exit = String(signal ?? code)));
    child.once('error', (e) => (exit = e.message));
    child.unref();
    if (child.pid === undefined) throw new LabError(`could not start the HTTP server in ${netns}`);
    fs.writeFileSync(path.join(dir, `${name}-http.pid`), `${child.pid}\n`);
    return { pid: child.pid, logFile, exited: () => exit };
  } finally {
    fs.closeSync(fd);
  }
}

function logTail(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8').trim().split('\n').slice(-3).join(' / ');
  } catch {
    return '';
  }
}

/** Poll with curl from inside the server's own namespace until it answers, or the deadline passes. */
export async function waitForHttp(netns: string, server: StartedServer, url: string, deadline: number): Promise<void> {
  for (;;) {
    const r = await run(['curl', '-s', '-o', '/dev/null', '--max-time', '1', url], { netns });
    if (r.code === 0) return;
    const exit = server.exited();
    if (exit !== undefined || Date.now() > deadline) {
      const why = exit !== undefined ? `exited (${exit})` : 'did not answer within 5 s';
      throw new LabError(`the HTTP server in ${netns} ${why} at ${url}; log ${server.logFile}: ${logTail(server.logFile)}`);
    }
    await sleep(100);
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function pidsIn(netns: string): Promise<number[]> {
  const r = await run(['ip', 'netns', 'pids', netns]);
  // Never signal ourselves: `slbctl lab down` may itself run inside a lab namespace.
  return r.stdout
    .split(/\s+/)
    .filter(Boolean)
    .map(Number)
    .filter((pid) => Number.isInteger(pid) && pid > 1 && pid !== process.pid);
}

function signalAll(pids: number[], signal: NodeJS.Signals): void {
  for (const pid of pids) {
    try {
      process.kill(pid, signal);
    } catch {
      // already gone
    }
  }
}

/**
 * The lab's HTTP servers by their pid files, if still running: they are
 * found even when their namespace was deleted from under them (the process
 * then keeps an unnamed namespace alive, invisible to `ip netns pids`).
 * The command line is checked so a reused pid is never signalled.
 */
export function recordedServerPids(stateDir: string): number[] {
  let files: string[];
  try {
    files = fs.readdirSync(stateDir).filter((f) => f.endsWith('-http.pid'));
  } catch {
    return [];
  }
  const pids: number[] = [];
  for (const f of files) {
    const pid = Number(fs.readFileSync(path.join(stateDir, f), 'utf8').trim());
    if (!Number.isInteger(pid) || pid <= 1 || pid === process.pid) continue;
    try {
      if (fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').includes(RS_HTTP_SCRIPT)) pids.push(pid);
    } catch {
      // not running
    }
  }
  return pids;
}

/** SIGTERM every process in these namespaces (and `extra`), then SIGKILL whatever is still there after about a second. */
export async function stopAllIn(namespaces: readonly string[], extra: () => number[] = () => []): Promise<number> {
  const all = async () => [...new Set([...(await Promise.all(namespaces.map(pidsIn))).flat(), ...extra()])];
  const first = await all();
  if (first.length === 0) return 0;
  signalAll(first, 'SIGTERM');
  const deadline = Date.now() + 1000;
  let left = await all();
  while (left.length > 0 && Date.now() < deadline) {
    await sleep(50);
    left = await all();
  }
  signalAll(left, 'SIGKILL');
  return first.length;
}
