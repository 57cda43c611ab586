// CPU time for benchmarks, from /proc, in clock ticks (USER_HZ): the whole
// machine's busy time, the time of the processes living in some network
// namespaces, and the time of this process's reaped children (a tool that
// ran and exited during the measurement, e.g. the load generator).
import * as fs from 'node:fs';
import { run } from '../../src/util/exec';

/** Busy and total ticks of the whole machine (first line of /proc/stat). */
export function machineTicks(): { busy: number; total: number } {
  return statTicks(fs.readFileSync('/proc/stat', 'utf8'));
}

/** Busy and total ticks of a /proc/stat text (a VM's, read over ssh). */
export function statTicks(procStat: string): { busy: number; total: number } {
  const line = procStat.split('\n')[0] ?? '';
  // user nice system idle iowait irq softirq steal (guest time is already in user and nice).
  const [user, nice, system, idle, iowait, irq, softirq, steal] = line.trim().split(/\s+/).slice(1, 9).map(Number);
  const busy = user + nice + system + irq + softirq;
  return { busy, total: busy + idle + iowait + steal };
}

/** /proc/<pid>/stat's fields from the state on (field 3), so that index 11 is utime (field 14). */
function statFields(pid: number | 'self'): string[] | undefined {
  try {
    const text = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) is in parentheses and may hold spaces or ')'.
    return text.slice(text.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined; // exited
  }
}

/** user + system ticks of these processes (those that have exited count 0). */
export function processTicks(pids: readonly number[]): number {
  let ticks = 0;
  for (const pid of pids) {
    const f = statFields(pid);
    if (f) ticks += Number(f[11]) + Number(f[12]);
  }
  return ticks;
}

/** user + system ticks of a process and of its children that have exited and been waited for (a controller's nft runs). */
export function processTreeTicks(pid: number): number {
  const f = statFields(pid);
  return f ? Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]) : 0;
}

/** user + system ticks of this process's children that have exited and been waited for. */
export function reapedChildrenTicks(): number {
  const f = statFields('self');
  return f ? Number(f[13]) + Number(f[14]) : 0;
}

/** The processes in a network namespace now. */
export async function pidsIn(netns: string): Promise<number[]> {
  const r = await run(['ip', 'netns', 'pids', netns]);
  return r.stdout.split(/\s+/).filter(Boolean).map(Number).filter(Number.isInteger);
}

/** Seconds per tick (1 / USER_HZ). */
export async function secondsPerTick(): Promise<number> {
  const r = await run(['getconf', 'CLK_TCK']);
  const hz = Number(r.stdout.trim());
  return 1 / (Number.isFinite(hz) && hz > 0 ? hz : 100);
}
