// Plan -> one nftables transaction (the text `nft -f -` reads). Pure.
// Every change of a plan goes into one batch, so the kernel switches from the
// old ruleset to the new one atomically: packets never see half a change.
import { serviceKey, PROTOCOLS } from '../../model/types';
import { RealServerState, ServiceState } from '../../model/state';
import { familyOf } from '../../plan/planner';
import { Plan } from '../../plan/types';
import {
  FULLNAT_VIPS_MAP, MEMBERS_SET, OWNED_ADDRESSES_SET, SERVICES_MAP, TABLE, backendsMap, ingressChain, memberComment,
  serviceChain, serviceComment, serviceId, snatChain,
} from './names';

/** Fixed so that one flow hashes to the same real server on every apply. */
export const HASH_SEED = 0x51b;

/** Most slots one service takes in its backends map; larger weight sums are scaled down. */
export const MAX_SLOTS = 1024;

interface Slot { index: number; value: string }

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
    const r = s.realServers[best] as RealServerState;
    slots.push({ index, value: s.mode === 'dsr' ? (r.mac ?? '00:00:00:00:00:00') : `${r.address} . ${r.port}` });
  }
  return { total, slots };
}

export function backendKey(s: Pick<ServiceState, 'vip' | 'port'>, slot: Pick<Slot, 'index'>): string {
  return `${s.vip} . ${s.port} . ${slot.index}`;
}

const memberKey = (s: ServiceState, r: RealServerState) => `${s.protocol} . ${s.vip} . ${s.port} . ${r.address} . ${r.port}`;

function selector(s: ServiceState, total: number): string {
  const seed = `seed 0x${HASH_SEED.toString(16)}`;
  if (s.mode === 'dsr') {
    // No conntrack on the netdev hook: every packet of a flow must hash the same way.
    return s.scheduler === 'sh' ? `jhash ip saddr mod ${total} ${seed}` : `jhash ip saddr . ${s.protocol} sport mod ${total} ${seed}`;
  }
  return s.scheduler === 'sh' ? `jhash ip saddr mod ${total} ${seed}` : `numgen inc mod ${total}`;
}

function serviceRule(s: ServiceState): string {
  const fam = familyOf(s);
  const { total } = backendSlots(s);
  const head = `add rule ${fam} ${TABLE} ${serviceChain(serviceId(s))} meta l4proto ${s.protocol} counter`;
  const comment = `comment "${serviceComment(s)}"`;
  if (total === 0) return `${head} drop ${comment}`;
  const lookup = `ip daddr . ${s.protocol} dport . ${selector(s, total)} map @${backendsMap(s.protocol)}`;
  if (s.mode === 'dsr') return `${head} ether saddr set ${s.forwardMac} ether daddr set ${lookup} fwd to "${s.forwardDevice}" ${comment}`;
  return `${head} dnat ip to ${lookup} ${comment}`;
}

function removeContents(s: ServiceState): string[] {
  const fam = familyOf(s);
  const lines: string[] = [];
  const keys = s.backendKeys ?? backendSlots(s).slots.map((x) => backendKey(s, x));
  if (keys.length > 0) lines.push(`delete element ${fam} ${TABLE} ${backendsMap(s.protocol)} { ${keys.join(', ')} }`);
  if (s.realServers.length > 0) lines.push(`delete element ${fam} ${TABLE} ${MEMBERS_SET} { ${s.realServers.map((r) => memberKey(s, r)).join(', ')} }`);
  return lines;
}

function addContents(s: ServiceState, chainIsNew = false): string[] {
  const fam = familyOf(s);
  const lines: string[] = [];
  const { slots } = backendSlots(s);
  if (slots.length > 0) lines.push(`add element ${fam} ${TABLE} ${backendsMap(s.protocol)} { ${slots.map((x) => `${backendKey(s, x)} : ${x.value}`).join(', ')} }`);
  if (s.realServers.length > 0) lines.push(`add element ${fam} ${TABLE} ${MEMBERS_SET} { ${s.realServers.map((r) => `${memberKey(s, r)} comment "${memberComment(r)}"`).join(', ')} }`);
  if (!chainIsNew) lines.push(`flush chain ${fam} ${TABLE} ${serviceChain(serviceId(s))}`);
  lines.push(serviceRule(s));
  return lines;
}

function addService(s: ServiceState): string[] {
  const fam = familyOf(s);
  return [
    `add chain ${fam} ${TABLE} ${serviceChain(serviceId(s))}`,
    ...addContents(s, true),
    `add element ${fam} ${TABLE} ${SERVICES_MAP} { ${s.protocol} . ${s.vip} . ${s.port} : jump ${serviceChain(serviceId(s))} }`,
  ];
}

function deleteService(s: ServiceState): string[] {
  const fam = familyOf(s);
  const chain = serviceChain(serviceId(s));
  return [
    `delete element ${fam} ${TABLE} ${SERVICES_MAP} { ${s.protocol} . ${s.vip} . ${s.port} }`,
    `flush chain ${fam} ${TABLE} ${chain}`,
    `delete chain ${fam} ${TABLE} ${chain}`,
    ...removeContents(s),
  ];
}

/** Rebuild the source-NAT chain of one VIP from the full-NAT services it has after the plan. */
function refreshSnat(vip: string, before: ServiceState[], after: ServiceState[]): string[] {
  const had = before.some((s) => s.vip === vip && s.mode === 'fullnat');
  const services = after.filter((s) => s.vip === vip && s.mode === 'fullnat').sort((a, b) => a.port - b.port);
  const chain = snatChain(vip);
  if (services.length === 0) {
    return had ? [`delete element ip ${TABLE} ${FULLNAT_VIPS_MAP} { ${vip} }`, `flush chain ip ${TABLE} ${chain}`, `delete chain ip ${TABLE} ${chain}`] : [];
  }
  const lines = [`add chain ip ${TABLE} ${chain}`, `flush chain ip ${TABLE} ${chain}`];
  for (const s of services) {
    lines.push(`add rule ip ${TABLE} ${chain} meta l4proto ${s.protocol} ct original proto-dst ${s.port} snat ip to ${s.snatAddress} random`);
  }
  if (!had) lines.push(`add element ip ${TABLE} ${FULLNAT_VIPS_MAP} { ${vip} : jump ${chain} }`);
  return lines;
}

function createTable(family: 'ip' | 'netdev'): string[] {
  const common = [
    `add table ${family} ${TABLE}`,
    `add map ${family} ${TABLE} ${SERVICES_MAP} { type inet_proto . ipv4_addr . inet_service : verdict; }`,
    `add set ${family} ${TABLE} ${MEMBERS_SET} { type inet_proto . ipv4_addr . inet_service . ipv4_addr . inet_service; }`,
    ...PROTOCOLS.map((p) => `add map ${family} ${TABLE} ${backendsMap(p)} { typeof ip daddr . ${p} dport . numgen inc mod 1 : ${family === 'netdev' ? 'ether daddr' : `ip daddr . ${p} dport`}; }`),
  ];
  if (family === 'netdev') return common;
  return [
    ...common,
    `add set ip ${TABLE} ${OWNED_ADDRESSES_SET} { type ipv4_addr; }`,
    `add map ip ${TABLE} ${FULLNAT_VIPS_MAP} { type ipv4_addr : verdict; }`,
    `add chain ip ${TABLE} prerouting { type nat hook prerouting priority dstnat; policy accept; }`,
    `add chain ip ${TABLE} output { type nat hook output priority -100; policy accept; }`,
    `add chain ip ${TABLE} postrouting { type nat hook postrouting priority srcnat; policy accept; }`,
    `add rule ip ${TABLE} prerouting meta l4proto . ip daddr . th dport vmap @${SERVICES_MAP}`,
    `add rule ip ${TABLE} output meta l4proto . ip daddr . th dport vmap @${SERVICES_MAP}`,
    `add rule ip ${TABLE} postrouting ct status dnat ct original ip daddr vmap @${FULLNAT_VIPS_MAP}`,
  ];
}

/** The nftables script for a plan; empty when the plan has no nftables work. */
export function renderPlan(plan: Plan): string {
  const lines: string[] = [];
  const before = plan.observed.kernel.services;
  const programmed = new Map(before.map((s) => [serviceKey(s), s]));
  const snatVips = new Set<string>();
  const refreshed = new Set<string>();
  const deletedTables = new Set<string>();
  const noteSnat = (s: ServiceState) => { if (s.mode === 'fullnat') snatVips.add(s.vip); };
  const refresh = (s: ServiceState) => {
    const key = serviceKey(s);
    if (refreshed.has(key)) return;
    refreshed.add(key);
    const was = programmed.get(key);
    lines.push(...(was ? removeContents(was) : []), ...addContents(s));
  };

  for (const op of plan.ops) {
    switch (op.op) {
      case 'create-table': lines.push(...createTable(op.family)); break;
      case 'delete-table': deletedTables.add(op.family); break;
      case 'add-ingress':
        lines.push(
          `add chain netdev ${TABLE} ${ingressChain(op.device)} { type filter hook ingress device "${op.device}" priority -500; policy accept; }`,
          `add rule netdev ${TABLE} ${ingressChain(op.device)} meta protocol ip meta l4proto . ip daddr . th dport vmap @${SERVICES_MAP}`,
        );
        break;
      case 'delete-ingress': lines.push(`flush chain netdev ${TABLE} ${ingressChain(op.device)}`, `delete chain netdev ${TABLE} ${ingressChain(op.device)}`); break;
      case 'add-address': lines.push(`add element ip ${TABLE} ${OWNED_ADDRESSES_SET} { ${op.address} comment "${op.device}" }`); break;
      case 'delete-address': case 'forget-address': lines.push(`delete element ip ${TABLE} ${OWNED_ADDRESSES_SET} { ${op.address} }`); break;
      case 'add-service': lines.push(...addService(op.service)); noteSnat(op.service); break;
      case 'delete-service': lines.push(...deleteService(op.service)); noteSnat(op.service); break;
      case 'update-service':
        if (familyOf(op.before) !== familyOf(op.after)) lines.push(...deleteService(op.before), ...addService(op.after));
        else refresh(op.after);
        noteSnat(op.before);
        noteSnat(op.after);
        break;
      case 'add-real-server': case 'update-real-server': case 'delete-real-server': refresh(op.service); break;
      case 'set-sysctl': break; // not nftables
    }
  }
  // Deleting a whole table takes its contents with it: nothing else is said about it.
  const kept = lines.filter((l) => !deletedTables.has(l.split(' ')[2] ?? ''));
  if (!deletedTables.has('ip')) for (const vip of [...snatVips].sort()) kept.push(...refreshSnat(vip, before, plan.desired.services));
  kept.push(...[...deletedTables].map((f) => `delete table ${f} ${TABLE}`));
  return kept.length > 0 ? `${kept.join('\n')}\n` : '';
}
