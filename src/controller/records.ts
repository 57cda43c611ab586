// Files under /run/slbctl (runDir) that the controller, `drain` and `status` share,
// one per network namespace (its inode names it), written atomically.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Drain, RealServerDecision } from './effective';
import { HealthState } from '../health/state';
import { CheckResult } from '../health/types';
import { runDir } from '../util/rundir';


function netnsTag(): string {
  return `net-${fs.statSync('/proc/self/ns/net').ino}`;
}

export function drainsFile(): string {
  return runDir('drains', `${netnsTag()}.json`);
}

export function controllerFile(): string {
  return runDir('controller', `${netnsTag()}.json`);
}

function writeAtomic(file: string, data: unknown): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, `${JSON.stringify(data, null, 2)}\n`);
  fs.renameSync(tmp, file);
}

function readJson(file: string): unknown {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8')) as unknown;
  } catch {
    return undefined;
  }
}

export function readDrains(file = drainsFile()): Drain[] {
  const data = readJson(file);
  return Array.isArray(data) ? (data as Drain[]).filter((d) => typeof d.service === 'string' && typeof d.realServer === 'string') : [];
}

export function writeDrains(drains: readonly Drain[], file = drainsFile()): void {
  if (drains.length === 0) fs.rmSync(file, { force: true });
  else writeAtomic(file, drains);
}

/** Change the drains record under a lock-free read-modify-write (one operator command at a time is assumed). */
export function updateDrains(fn: (d: Drain[]) => Drain[]): Drain[] {
  const next = fn(readDrains());
  writeDrains(next);
  return next;
}

export interface RealServerRuntime extends RealServerDecision {
  health: HealthState | 'unchecked';
  last?: CheckResult & { at: number };
  reason?: string;
  changedAt?: number;
  /** Per second, over the last resync interval (from the kernel's counters). */
  rates?: { packets: number; bytes: number; connections?: number };
}

export interface ServiceRuntime {
  key: string;
  name: string;
  /** Per second over the last resync interval; nftables counts new connections at the service rule. */
  rates?: { packets: number; bytes: number };
  realServers: RealServerRuntime[];
}

export interface ControllerRecord {
  pid: number;
  file: string;
  startedAt: number;
  updatedAt: number;
  backend: string;
  metrics?: string;
  services: ServiceRuntime[];
}

export function writeControllerRecord(r: ControllerRecord, file = controllerFile()): void {
  writeAtomic(file, r);
}

export function removeControllerRecord(pid: number, file = controllerFile()): void {
  const r = readJson(file) as Partial<ControllerRecord> | undefined;
  if (r?.pid === pid) fs.rmSync(file, { force: true });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The running controller's record in this namespace, or undefined when none runs. */
export function runningController(file = controllerFile()): ControllerRecord | undefined {
  const r = readJson(file) as ControllerRecord | undefined;
  if (!r || typeof r.pid !== 'number' || !alive(r.pid)) return undefined;
  // A zombie (its parent never reaped it) is not a controller.
  try {
    const stat = fs.readFileSync(`/proc/${r.pid}/stat`, 'utf8');
    if (/\) Z /.test(stat)) return undefined;
  } catch {
    return undefined;
  }
  return r;
}
