// A service's backends as slots of its backends map: the weights become a
// number of slots per real server, interleaved so that consecutive
// connections spread out. Pure; render and the drift check share it.
import { ServiceState } from '../../model/state';
import { MAGLEV_SIZE, maglevTable } from './maglev';

/** Most slots one service takes in its backends map; larger weight sums are scaled down. */
export const MAX_SLOTS = 1024;

export interface Slot {
  index: number;
  value: string;
}

const gcd = (a: number, b: number): number => (b === 0 ? a : gcd(b, a % b));

/** Slot counts per real server: weight shares reduced by their gcd and capped at MAX_SLOTS in all. */
export function slotShares(s: Pick<ServiceState, 'scheduler' | 'realServers'>): number[] {
  const weights = s.realServers.map((r) => (r.weight <= 0 ? 0 : s.scheduler === 'rr' ? 1 : r.weight));
  const g = weights.reduce((acc, w) => (w > 0 ? gcd(acc, w) : acc), 0) || 1;
  let shares = weights.map((w) => w / g);
  const total = shares.reduce((a, b) => a + b, 0);
  if (total > MAX_SLOTS) shares = shares.map((w) => (w === 0 ? 0 : Math.max(1, Math.round((w * MAX_SLOTS) / total))));
  return shares;
}

/**
 * The backends of a service as slots 0..total-1 of the numgen/jhash space,
 * interleaved by smooth weighted round robin so that consecutive connections
 * spread over the real servers instead of arriving in bursts. Exact slots
 * (not ranges): nft 1.0.6 cannot delete interval elements whose last field is
 * the host-endian numgen value.
 */
export function backendSlots(s: ServiceState): { total: number; slots: Slot[] } {
  if (s.scheduler === 'mh') return maglevSlots(s);
  const shares = slotShares(s);
  const total = shares.reduce((a, b) => a + b, 0);
  const current = shares.map(() => 0);
  const slots: Slot[] = [];
  for (let index = 0; index < total; index++) {
    let best = -1;
    for (let i = 0; i < shares.length; i++) {
      if ((shares[i] ?? 0) === 0) continue;
      current[i] = (current[i] ?? 0) + (shares[i] ?? 0);
      if (best < 0 || (current[i] ?? 0) > (current[best] ?? 0)) best = i;
    }
    current[best] = (current[best] ?? 0) - total;
    slots.push({ index, value: slotValue(s, s.realServers[best]) });
  }
  return { total, slots };
}

function slotValue(s: ServiceState, r: ServiceState['realServers'][number]): string {
  return s.mode === 'dsr' ? (r.mac ?? '00:00:00:00:00:00') : `${r.address} . ${r.port}`;
}

/** mh: the Maglev table of the real servers (by identity and weight) as one slot per entry (maglev.size, MAGLEV_SIZE by default); none when no server has a weight. */
function maglevSlots(s: ServiceState): { total: number; slots: Slot[] } {
  const table = maglevTable(
    s.realServers.map((r) => ({ id: `${r.address}:${r.port}`, weight: r.weight > 0 ? r.weight : 0 })),
    s.maglev?.size ?? MAGLEV_SIZE,
  );
  if (table.some((i) => i < 0)) return { total: 0, slots: [] };
  return { total: table.length, slots: table.map((i, index) => ({ index, value: slotValue(s, s.realServers[i]) })) };
}

/** How many slots a service takes (backendSlots' total), without laying them out. */
export function slotTotal(s: Pick<ServiceState, 'scheduler' | 'realServers' | 'maglev'>): number {
  if (s.scheduler === 'mh') return s.realServers.some((r) => r.weight > 0) ? (s.maglev?.size ?? MAGLEV_SIZE) : 0;
  return slotShares(s).reduce((a, b) => a + b, 0);
}

export function backendKey(s: Pick<ServiceState, 'vip' | 'port'>, slot: Pick<Slot, 'index'>): string {
  return `${s.vip} . ${s.port} . ${slot.index}`;
}
