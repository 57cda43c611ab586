// Child processes of the crash and lock tests: slbctl started in a namespace
// (optionally in a process group of its own, so that it can be killed with
// every child it started, as a cgroup stop would), and the members of such a
// group read from /proc.
import { ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import { CLI_ENTRY } from '../../src/util/self';

export interface Started {
  child: ChildProcess;
  /** The node process running slbctl (`ip netns exec` execs it, keeping the pid). */
  pid: number;
  /** Everything written to stdout and stderr so far. */
  out(): string;
  err(): string;
  /** Resolves with the exit code, or the signal's name when killed. */
  exited: Promise<number | NodeJS.Signals>;
  /** Whether the process has exited (its exit code is known). */
  done(): boolean;
}

/** Start `node script args…` inside `ns`; `group`: in a process group of its own (its pid is the group's id). */
export function startIn(ns: string, argv: readonly string[], group = false): Started {
  const child = spawn('ip', ['netns', 'exec', ns, process.execPath, ...argv], { stdio: ['ignore', 'pipe', 'pipe'], detached: group });
  let out = '';
  let err = '';
  let finished = false;
  child.stdout.on('data', (d: Buffer) => {
    out += d.toString();
  });
  child.stderr.on('data', (d: Buffer) => {
    err += d.toString();
  });
  const exited = new Promise<number | NodeJS.Signals>((resolve) => {
    child.on('close', (code, signal) => {
      finished = true;
      resolve(signal ?? code ?? -1);
    });
  });
  if (child.pid === undefined) throw new Error(`could not start ${argv.join(' ')}`);
  return { child, pid: child.pid, out: () => out, err: () => err, exited, done: () => finished };
}

/** `slbctl ARGS` inside `ns`, not waited for. */
export function startSlbctl(ns: string, args: readonly string[], group = false): Started {
  return startIn(ns, [CLI_ENTRY, ...args], group);
}

export interface Member {
  pid: number;
  comm: string;
}

/** The processes whose process group is `pgid` (read from /proc/PID/stat; a process gone meanwhile is skipped). */
export function groupMembers(pgid: number): Member[] {
  const found: Member[] = [];
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    let stat: string;
    try {
      stat = fs.readFileSync(`/proc/${name}/stat`, 'utf8');
    } catch {
      continue;
    }
    // "PID (COMM) STATE PPID PGRP …": COMM may hold spaces and parentheses, so split after the last ')'.
    const close = stat.lastIndexOf(')');
    const fields = stat.slice(close + 2).split(' ');
    if (Number(fields[2]) === pgid && fields[0] !== 'Z') found.push({ pid: Number(name), comm: stat.slice(stat.indexOf('(') + 1, close) });
  }
  return found;
}

/** Wait until no live process is left in group `pgid`. */
export async function waitGroupGone(pgid: number, timeoutMs: number): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (groupMembers(pgid).length > 0) {
    if (Date.now() > until) throw new Error(`process group ${pgid} still has ${JSON.stringify(groupMembers(pgid))} after ${timeoutMs} ms`);
    await sleep(20);
  }
}

/** Kill whatever is left of group `pgid` (cleanup; no error when it is gone). */
export function killGroup(pgid: number): void {
  try {
    process.kill(-pgid, 'SIGKILL');
  } catch {
    // already gone
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Poll `test` every `everyMs` until it holds; throw naming `what` after `timeoutMs`. */
export async function waitUntil(what: string, timeoutMs: number, test: () => boolean | Promise<boolean>, everyMs = 25): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    if (await test()) return;
    if (Date.now() > until) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await sleep(everyMs);
  }
}
