// Daemons a bench starts in lab namespaces (HAProxy in mode tcp, iperf3
// servers): each writes a pid file in the bench's temp dir, and only that pid
// is ever signalled, after checking it is still the program that wrote it.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { sleep } from '../../src/lab/processes';

/** The pid in a daemon's pid file if that process still runs `program` (a reused pid is never returned). */
function runningPid(pidFile: string, program: string): number | undefined {
  let pid: number;
  try {
    pid = Number(fs.readFileSync(pidFile, 'utf8').trim().split('\n')[0]);
  } catch {
    return undefined;
  }
  if (!Number.isInteger(pid) || pid <= 1) return undefined;
  try {
    const exe = fs.readlinkSync(`/proc/${pid}/exe`);
    return path.basename(exe) === program ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** Wait up to `ms` for a daemon's pid file to name a running `program`. */
export async function waitForPidFile(pidFile: string, program: string, ms = 5000): Promise<number> {
  const deadline = Date.now() + ms;
  for (;;) {
    const pid = runningPid(pidFile, program);
    if (pid !== undefined) return pid;
    if (Date.now() > deadline) throw new Error(`${program} did not start: no running process in ${pidFile}`);
    await sleep(50);
  }
}

/** SIGTERM the daemon of this pid file, SIGKILL after a second; nothing if it is not running. */
export async function stopDaemon(pidFile: string, program: string): Promise<void> {
  const pid = runningPid(pidFile, program);
  if (pid === undefined) return;
  process.kill(pid, 'SIGTERM');
  const deadline = Date.now() + 1000;
  while (runningPid(pidFile, program) === pid && Date.now() < deadline) await sleep(50);
  if (runningPid(pidFile, program) === pid) process.kill(pid, 'SIGKILL');
  fs.rmSync(pidFile, { force: true });
}
