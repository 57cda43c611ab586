// Refusals that need this host's facts, made after planning and before
// anything is changed: a VIP or real server that is the network or broadcast
// address of a subnet this host is on, and a VIP that another host on the
// segment already answers for (adding it here too would have two hosts
// answer ARP for one address and split its traffic). The second costs an ARP
// exchange, so it is asked only about the VIPs the plan is about to add:
// the controller's periodic plans, which add nothing, do not pay for it.
import * as fs from 'node:fs';
import { intToIpv4, ipv4ToInt } from '../model/ip';
import { Config, serviceKey } from '../model/types';
import { NetInterface, Rtnl, RtnlError } from '../kernel/rtnl/rtnl';
import { Op } from '../plan/types';
import { ResolveError } from './resolve';
import { connectedAddresses } from './interfaces';

/** How long another host has to answer the ARP request for a VIP (a host on the segment answers within a millisecond or two). */
export const ARP_ANSWER_WAIT_MS = 300;
const POLL_MS = 20;
/** Neighbour states in which the kernel has a MAC it heard from recently: someone answers for the address. */
const LIVE_STATES = ['reachable', 'stale', 'delay', 'probe'];

/** Whether `address` is the network or broadcast address of a connected subnet, said as the reason it is refused. */
export function subnetEdge(address: string, interfaces: readonly NetInterface[]): string | undefined {
  const n = ipv4ToInt(address);
  for (const a of connectedAddresses(interfaces)) {
    // /31 (RFC 3021) and /32 have no network or broadcast address.
    if (a.prefixLength >= 31 || Math.floor(n / a.size) * a.size !== a.network) continue;
    const { size, network } = a;
    if (n !== network && n !== network + size - 1) continue;
    const subnet = `${intToIpv4(network)}/${a.prefixLength} on ${a.iface.name}`;
    if (n === network) return `the network address of ${subnet}, which names the subnet, not a host in it`;
    return `the broadcast address of ${subnet}, which reaches every host there, not one`;
  }
  return undefined;
}

function refuseSubnetEdges(config: Config, interfaces: readonly NetInterface[], only?: readonly number[]): void {
  const indexes = only ?? config.services.map((_, i) => i);
  indexes.forEach((i) => {
    const s = config.services[i];
    if (!s) return;
    const where = `services[${i}]`;
    const addresses: [string, string][] = [
      [`${where}.vip (${serviceKey(s)})`, s.vip],
      ...s.realServers.map((r, j): [string, string] => [`${where}.realServers[${j}].address (${serviceKey(s)})`, r.address]),
      ...(s.sorryServer ? [[`${where}.sorryServer.address (${serviceKey(s)})`, s.sorryServer.address] as [string, string]] : []),
      ...sourcesOf(s).map((x): [string, string] => [`${where}.${x.key} (${serviceKey(s)})`, x.address]),
    ];
    for (const [path, address] of addresses) {
      const edge = subnetEdge(address, interfaces);
      if (edge) throw new ResolveError(path, `${address} is ${edge}; choose a host address inside the subnet`);
    }
  });
}

/** A fullnat service's configured source addresses, with the key each is written under. */
function sourcesOf(s: Config['services'][number]): { key: string; address: string }[] {
  if (s.mode !== 'fullnat') return [];
  if (s.snatPool) return s.snatPool.map((address, i) => ({ key: `snatAddresses[${i}]`, address }));
  return s.snatAddress ? [{ key: 'snatAddress', address: s.snatAddress }] : [];
}

interface Holder {
  mac: string;
  how: string;
}

function liveMac(entries: { states: string[]; mac?: string }[]): { mac: string; state: string } | undefined {
  for (const e of entries) {
    const state = e.states.find((s) => LIVE_STATES.includes(s));
    if (state && e.mac) return { mac: e.mac, state };
  }
  return undefined;
}

/**
 * Which of these addresses another host answers for: one already in the
 * neighbour table with a live MAC, or one that answers an ARP request sent
 * on its interface within `waitMs`. All are asked at once (in batches the
 * neighbour table can hold).
 */
export async function heldAddresses(
  rtnl: Rtnl,
  targets: readonly { address: string; iface: NetInterface }[],
  waitMs = ARP_ANSWER_WAIT_MS,
): Promise<Map<string, Holder>> {
  // The kernel's neighbour table refuses entries past gc_thresh3 (ENOBUFS; 1,024 by default):
  // thousands of new VIPs are asked about in batches of half of it, each batch's entries gone before the next.
  const batch = Math.max(16, Math.floor(neighbourTableLimit() / 2));
  const held = new Map<string, Holder>();
  let rest = [...targets];
  // The table is shared by every namespace: when it is full anyway (ENOBUFS), what was not asked
  // waits for the next batch; a batch that could ask nothing waits a second, a few times, then fails.
  for (let stalled = 0; rest.length > 0;) {
    const { held: answered, notAsked } = await heldAddressesOf(rtnl, rest.slice(0, batch), waitMs);
    for (const [address, holder] of answered) held.set(address, holder);
    const asked = Math.min(batch, rest.length) - notAsked.length;
    rest = [...notAsked, ...rest.slice(batch)];
    if (asked > 0) stalled = 0;
    else if (++stalled > 5)
      throw new RtnlError(`ARP requests for ${rest.length} new VIPs`, new Error('ENOBUFS: the neighbour table stays full (gc_thresh3)'));
    else await new Promise((r) => setTimeout(r, 1000));
  }
  return held;
}

function neighbourTableLimit(): number {
  try {
    const n = Number(fs.readFileSync('/proc/sys/net/ipv4/neigh/default/gc_thresh3', 'utf8').trim());
    return Number.isInteger(n) && n > 0 ? n : 1024;
  } catch {
    return 1024;
  }
}

type Target = { address: string; iface: NetInterface };

async function heldAddressesOf(
  rtnl: Rtnl,
  targets: readonly Target[],
  waitMs: number,
): Promise<{ held: Map<string, Holder>; notAsked: Target[] }> {
  const held = new Map<string, Holder>();
  const asked: { address: string; iface: NetInterface; ours: boolean }[] = [];
  const notAsked: Target[] = [];
  for (const t of targets) {
    if (notAsked.length > 0) {
      notAsked.push(t);
      continue;
    }
    const entries = await rtnl.neighbourEntries(t.address);
    const known = liveMac(entries);
    if (known) {
      held.set(t.address, { mac: known.mac, how: `this host's neighbour table has it at ${known.mac} (${known.state})` });
      continue;
    }
    // An entry made by our request is ours to remove if nobody answers it.
    try {
      await rtnl.solicitNeighbour(t.iface.index, t.address);
    } catch (e) {
      if (!/ENOBUFS/.test((e as Error).message)) throw e;
      notAsked.push(t);
      continue;
    }
    asked.push({ ...t, ours: !entries.some((e) => e.ifindex === t.iface.index) });
  }
  const deadline = Date.now() + waitMs;
  let waiting = asked;
  try {
    while (waiting.length > 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, POLL_MS));
      const still: typeof waiting = [];
      for (const t of waiting) {
        const answer = liveMac(await rtnl.neighbourEntries(t.address));
        if (answer) held.set(t.address, { mac: answer.mac, how: `${answer.mac} answered an ARP request for it on ${t.iface.name}` });
        else still.push(t);
      }
      waiting = still;
    }
  } finally {
    // The kernel would retry and then keep a FAILED entry: leave nothing of ours behind.
    for (const t of waiting) if (t.ours) await rtnl.deleteNeighbour(t.iface.index, t.address).catch(() => undefined);
  }
  return { held, notAsked };
}

async function refuseHeldVips(rtnl: Rtnl, config: Config, ops: readonly Op[], interfaces: readonly NetInterface[]): Promise<void> {
  const targets: { address: string; iface: NetInterface; index: number; key: string }[] = [];
  // Asked unless every service on the VIP allows it: the first service that does not, by VIP.
  const asking = new Map<string, { index: number; key: string }>();
  config.services.forEach((s, i) => {
    if (s.vipAlreadyPresent !== 'allow' && !asking.has(s.vip)) asking.set(s.vip, { index: i, key: 'vip' });
    // A source address another host holds would take that host's replies: always asked.
    for (const x of sourcesOf(s)) if (!asking.has(x.address)) asking.set(x.address, { index: i, key: x.key });
  });
  for (const op of ops) {
    if (op.op !== 'add-address' && op.op !== 'add-route') continue;
    const ask = asking.get(op.address);
    const iface = interfaces.find((i) => i.name === op.device);
    // A VIP this host holds already in the other form (vipAs switched) is its own, not another host's.
    const heldHere =
      iface && (iface.addresses.some((a) => a.address === op.address) || iface.localRoutes?.some((r) => r.address === op.address));
    if (ask && iface && !heldHere) targets.push({ address: op.address, iface, ...ask });
  }
  if (targets.length === 0) return;
  const held = await heldAddresses(rtnl, targets);
  for (const t of targets) {
    const holder = held.get(t.address);
    const s = config.services[t.index];
    if (!holder || !s) continue;
    if (t.key !== 'vip')
      throw new ResolveError(
        `services[${t.index}].${t.key} (${serviceKey(s)})`,
        `${t.address} is already held by another host: ${holder.how}; a source address must be this host's alone. Choose a free address of the subnet that faces the real servers`,
      );
    throw new ResolveError(
      `services[${t.index}].vip (${serviceKey(s)})`,
      `${t.address} is already held by another host: ${holder.how}; adding it here too would have two hosts answer for it. Remove it from that host or choose another VIP; if it is meant to move here, set vipAlreadyPresent: allow on the service (or at the top of the config)`,
    );
  }
}

/**
 * Every refusal above; the plan's add-address and add-route operations say which VIPs are
 * new here. `only`: the indexes of the services to check for subnet edges
 * (a plan of the services a change touched; the others passed before on the
 * same interfaces).
 */
export async function checkVips(
  rtnl: Rtnl,
  config: Config,
  interfaces: readonly NetInterface[],
  ops: readonly Op[],
  only?: readonly number[],
): Promise<void> {
  refuseSubnetEdges(config, interfaces, only);
  await refuseHeldVips(rtnl, config, ops, interfaces);
}
