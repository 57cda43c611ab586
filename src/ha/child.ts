// What the HA engines (BIRD, keepalived, conntrackd) share as children of
// `slbctl run`: each is started through setpriv --pdeathsig, so it gets
// SIGTERM when the controller dies however it dies (kill -9 included), and
// one left by a controller killed before its child saw it is ended by pid.
import * as fs from 'node:fs';
import { ChildProcess, spawn } from 'node:child_process';
import { SlbctlError } from '../util/errors';

/** An HA engine that refused its config or did not come up: exit 2, like a config that cannot be served here. */
export class HaEngineError extends SlbctlError {
  readonly exitCode = 2;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The process in `pidFile`, if it is still `comm` (a reused pid is left alone): SIGTERM, and wait up to 3 s. */
export async function endLeftover(pidFile: string, comm: string): Promise<void> {
  let pid: number;
  try {
    pid = Number(fs.readFileSync(pidFile, 'utf8').trim());
  } catch {
    return;
  }
  if (!Number.isInteger(pid) || pid <= 1) return;
  try {
    if (fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim() !== comm) return;
  } catch {
    return;
  }
  process.kill(pid, 'SIGTERM');
  for (let i = 0; i < 150 && fs.existsSync(`/proc/${pid}`); i++) await sleep(20);
}

/** `argv` as this process's child, its output appended to `logFile`, ended with SIGTERM when this process dies. */
export function spawnTied(argv: readonly string[], logFile: string): ChildProcess {
  const out = fs.openSync(logFile, 'a');
  try {
    return spawn('setpriv', ['--pdeathsig', 'TERM', '--', ...argv], { stdio: ['ignore', out, out] });
  } finally {
    fs.closeSync(out);
  }
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves once the child has exited. */
export async function endChild(child: ChildProcess, graceMs: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const t = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await gone;
  clearTimeout(t);
}
