// Records under the runtime directory that the controller, `drain` and
// `status` share, one per network namespace (src/records/netns.ts: named by
// the namespace's inode, checked against its cookie), written atomically.
import { Drain, RealServerDecision } from './effective';
import { HealthState } from '../health/state';
import { CheckResult } from '../health/types';
import { readRecord, removeRecord, writeRecord } from '../records/netns';
import { holderOf } from '../records/lock';

export function readDrains(): Drain[] {
  const data = readRecord('drains')?.drains;
  return Array.isArray(data) ? (data as Drain[]).filter((d) => typeof d.service === 'string' && typeof d.realServer === 'string') : [];
}

export function writeDrains(drains: readonly Drain[]): void {
  if (drains.length === 0) removeRecord('drains');
  else writeRecord('drains', { drains });
}

/** Change the drains record; the caller holds the namespace's write lock, so no other writer interleaves. */
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
  /** ha.bgp: what this balancer announces, and to whom. */
  bgp?: { announced: string[]; peers: { address: string; asn: number }[]; maglevDisagreements?: string[] };
  /** ha.vrrp: this balancer's VRRP state as keepalived last logged it (absent until its first transition). */
  vrrp?: { state?: string; group: number; priority: number };
  /** ha.sync with engine ipvs: the sync daemons (master, backup) this controller started and stops. */
  ipvsSyncDaemons?: string[];
}

export function writeControllerRecord(r: ControllerRecord): void {
  writeRecord('controller', { ...r });
}

export function removeControllerRecord(pid: number): void {
  const r = readRecord('controller');
  if (r?.pid === pid) removeRecord('controller');
}

/**
 * The running controller of this namespace, or undefined when none runs. The
 * controller lock says whether one runs (a record can outlive a killed one);
 * the record adds what it reports.
 */
export function runningController(): ControllerRecord | undefined {
  const holder = holderOf('controller');
  if (!holder || holder.pid === 0) return undefined;
  const r = readRecord('controller') as ControllerRecord | undefined;
  if (r && r.pid === holder.pid) return r;
  return { pid: holder.pid, file: '', startedAt: holder.since, updatedAt: holder.since, backend: '?', services: [] };
}
