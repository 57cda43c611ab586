// The IPVS connection-sync daemon as slbctl sees it, and its wire form. The
// kernel runs at most one master (sends every connection it schedules to a
// multicast group) and one backup (creates the connections it receives) per
// network namespace; both may run at once.
import { DaemonState, SYNC_DEFAULTS } from './constants';
import { Attrs } from './codec';

export type SyncDaemonState = 'master' | 'backup';

export interface IpvsSyncDaemon {
  state: SyncDaemonState;
  /** The interface the multicast goes out of (master) or is joined on (backup). */
  interface: string;
  /** 0-255 on the wire of the sync messages; a backup with a non-zero id drops messages of another id. */
  syncId: number;
  /** IPv4 multicast group (the kernel's default 224.0.0.81). */
  group: string;
  /** UDP port of the group (the kernel's default 8848). */
  port: number;
  /** Read back only: the multicast TTL and the largest sync message (from the interface's MTU when not set). */
  ttl?: number;
  maxLength?: number;
}

const STATES: Record<SyncDaemonState, number> = { master: DaemonState.MASTER, backup: DaemonState.BACKUP };

export const stateToWire = (state: SyncDaemonState): number => STATES[state];

export function daemonToWire(d: IpvsSyncDaemon): Attrs {
  return {
    state: STATES[d.state],
    mcastIfn: d.interface,
    syncId: d.syncId,
    mcastGroup: Buffer.from(d.group.split('.').map(Number)),
    mcastPort: d.port,
  };
}

/** undefined for a state this module does not know. */
export function daemonFromWire(a: Attrs): IpvsSyncDaemon | undefined {
  const state = (Object.keys(STATES) as SyncDaemonState[]).find((s) => STATES[s] === a.state);
  if (!state) return undefined;
  const g = a.mcastGroup as Buffer | undefined;
  const d: IpvsSyncDaemon = {
    state,
    interface: typeof a.mcastIfn === 'string' ? a.mcastIfn : '',
    syncId: Number(a.syncId ?? 0),
    // Kernels before 4.3 report neither group nor port: they use the defaults.
    group: g && g.length >= 4 ? `${g[0]}.${g[1]}.${g[2]}.${g[3]}` : SYNC_DEFAULTS.group,
    port: Number(a.mcastPort ?? SYNC_DEFAULTS.port),
  };
  if (a.mcastTtl !== undefined) d.ttl = Number(a.mcastTtl);
  if (a.syncMaxlen !== undefined) d.maxLength = Number(a.syncMaxlen);
  return d;
}

/** What makes two daemons the same for slbctl: state, interface, sync id, group and port. */
export function sameDaemon(a: IpvsSyncDaemon, b: IpvsSyncDaemon): boolean {
  return a.state === b.state && a.interface === b.interface && a.syncId === b.syncId && a.group === b.group && a.port === b.port;
}

export const describeDaemon = (d: IpvsSyncDaemon): string =>
  `${d.state} sync daemon on ${d.interface} (sync id ${d.syncId}, group ${d.group}:${d.port})`;
