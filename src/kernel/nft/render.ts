// Plan -> one nftables transaction (the text `nft -f -` reads). Pure.
// Every change of a plan goes into one batch, so the kernel switches from the
// old ruleset to the new one atomically: packets never see half a change.
import { serviceKey } from '../../model/types';
import { ServiceState } from '../../model/state';
import { familyOf } from '../../plan/planner';
import { Op, Plan } from '../../plan/types';
import {
  FULLNAT_VIPS_MAP, OWNED_ADDRESSES_SET, SERVICES_MAP, TABLE, backendsMap, ingressChain, memberComment, membersSet,
  serviceChain, serviceComment, serviceId, snatChain,
} from './names';

/** Fixed so that one flow hashes to the same real server on every apply. */
export const DSR_HASH_SEED = 0x51b;

interface Slot { from: number; to: number; value: string }

/** Each real server gets a range of the numgen/jhash space as wide as its share. */
export function backendSlots(s: ServiceState): { total: number; slots: Slot[] } {
  const slots: Slot[] = [];
  let cursor = 0;
  for (const r of s.realServers) {
    if (r.weight <= 0) continue;
    const width = s.scheduler === 'rr' ? 1 : r.weight;
    const value = s.mode === 'dsr' ? (r.mac ?? '00:00:00:00:00:00') : `${r.address} . ${r.port}`;
    slots.push({ from: cursor, to: cursor + width - 1, value });
    cursor += width;
  }
  return { total: cursor, slots };
}

function elements(slots: Slot[]): string {
  return slots.map((x) => `${x.from === x.to ? x.from : `${x.from}-${x.to}`} : ${x.value}`).join(', ');
}

function selector(s: ServiceState, total: number): string {
  if (s.mode === 'dsr') {
    // No conntrack on the netdev hook: every packet of a flow must hash the same way.
    const key = s.scheduler === 'sh' ? 'ip saddr' : `ip saddr . ${s.protocol} sport`;
    return `jhash ${key} mod ${total} seed 0x${DSR_HASH_SEED.toString(16)}`;
  }
  if (s.scheduler === 'sh') return `jhash ip saddr mod ${total} seed 0x${DSR_HASH_SEED.toString(16)}`;
  return `numgen inc mod ${total}`;
}

function serviceRule(s: ServiceState, fam: string, id: string): string {
  const { total } = backendSlots(s);
  const head = `add rule ${fam} ${TABLE} ${serviceChain(id)} meta l4proto ${s.protocol} counter`;
  const comment = `comment "${serviceComment(s)}"`;
  if (total === 0) return `${head} drop ${comment}`;
  if (s.mode === 'dsr') {
    return `${head} ether saddr set ${s.forwardMac} ether daddr set ${selector(s, total)} map @${backendsMap(id)} fwd to "${s.forwardDevice}" ${comment}`;
  }
  return `${head} dnat ip to ${selector(s, total)} map @${backendsMap(id)} ${comment}`;
}

/** Refill a service's chain, backend map and member set from its desired form. */
function refreshService(s: ServiceState): string[] {
  const fam = familyOf(s);
  const id = serviceId(s);
  const { slots } = backendSlots(s);
  const lines = [
    `flush chain ${fam} ${TABLE} ${serviceChain(id)}`,
    `flush map ${fam} ${TABLE} ${backendsMap(id)}`,
    `flush set ${fam} ${TABLE} ${membersSet(id)}`,
  ];
  if (slots.length > 0) lines.push(`add element ${fam} ${TABLE} ${backendsMap(id)} { ${elements(slots)} }`);
  if (s.realServers.length > 0) {
    const members = s.realServers.map((r) => `${r.address} . ${r.port} comment "${memberComment(r)}"`).join(', ');
    lines.push(`add element ${fam} ${TABLE} ${membersSet(id)} { ${members} }`);
  }
  lines.push(serviceRule(s, fam, id));
  return lines;
}

function addService(s: ServiceState): string[] {
  const fam = familyOf(s);
  const id = serviceId(s);
  const value = s.mode === 'dsr' ? 'ether daddr' : `ip daddr . ${s.protocol} dport`;
  return [
    `add chain ${fam} ${TABLE} ${serviceChain(id)}`,
    `add map ${fam} ${TABLE} ${backendsMap(id)} { typeof numgen inc mod 1 : ${value}; flags interval; }`,
    `add set ${fam} ${TABLE} ${membersSet(id)} { type ipv4_addr . inet_service; }`,
    ...refreshService(s),
    `add element ${fam} ${TABLE} ${SERVICES_MAP} { ${s.protocol} . ${s.vip} . ${s.port} : jump ${serviceChain(id)} }`,
  ];
}

function deleteService(s: ServiceState): string[] {
  const fam = familyOf(s);
  const id = serviceId(s);
  return [
    `delete element ${fam} ${TABLE} ${SERVICES_MAP} { ${s.protocol} . ${s.vip} . ${s.port} }`,
    `flush chain ${fam} ${TABLE} ${serviceChain(id)}`,
    `delete chain ${fam} ${TABLE} ${serviceChain(id)}`,
    `delete map ${fam} ${TABLE} ${backendsMap(id)}`,
    `delete set ${fam} ${TABLE} ${membersSet(id)}`,
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
    lines.push(`add rule ip ${TABLE} ${chain} meta l4proto ${s.protocol} ct original proto-dst ${s.port} snat ip to ${s.snatAddress}`);
  }
  if (!had) lines.push(`add element ip ${TABLE} ${FULLNAT_VIPS_MAP} { ${vip} : jump ${chain} }`);
  return lines;
}

function createTable(family: 'ip' | 'netdev'): string[] {
  if (family === 'netdev') {
    return [`add table netdev ${TABLE}`, `add map netdev ${TABLE} ${SERVICES_MAP} { type inet_proto . ipv4_addr . inet_service : verdict; }`];
  }
  return [
    `add table ip ${TABLE}`,
    `add set ip ${TABLE} ${OWNED_ADDRESSES_SET} { type ipv4_addr; }`,
    `add map ip ${TABLE} ${SERVICES_MAP} { type inet_proto . ipv4_addr . inet_service : verdict; }`,
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
  const after = plan.desired.services;
  const snatVips = new Set<string>();
  const refreshed = new Set<string>();
  const noteSnat = (s: ServiceState) => { if (s.mode === 'fullnat') snatVips.add(s.vip); };
  const deleteTables: string[] = [];

  const handlers: { [K in Op['op']]?: (op: Extract<Op, { op: K }>) => void } = {
    'create-table': (op) => lines.push(...createTable(op.family)),
    'delete-table': (op) => deleteTables.push(`delete table ${op.family} ${TABLE}`),
    'add-ingress': (op) => lines.push(
      `add chain netdev ${TABLE} ${ingressChain(op.device)} { type filter hook ingress device "${op.device}" priority -500; policy accept; }`,
      `add rule netdev ${TABLE} ${ingressChain(op.device)} meta protocol ip meta l4proto . ip daddr . th dport vmap @${SERVICES_MAP}`,
    ),
    'delete-ingress': (op) => lines.push(`flush chain netdev ${TABLE} ${ingressChain(op.device)}`, `delete chain netdev ${TABLE} ${ingressChain(op.device)}`),
    'add-address': (op) => lines.push(`add element ip ${TABLE} ${OWNED_ADDRESSES_SET} { ${op.address} comment "${op.device}" }`),
    'delete-address': (op) => lines.push(`delete element ip ${TABLE} ${OWNED_ADDRESSES_SET} { ${op.address} }`),
    'add-service': (op) => { lines.push(...addService(op.service)); noteSnat(op.service); },
    'delete-service': (op) => { lines.push(...deleteService(op.service)); noteSnat(op.service); },
    'update-service': (op) => {
      if (familyOf(op.before) !== familyOf(op.after)) lines.push(...deleteService(op.before), ...addService(op.after));
      else lines.push(...refreshService(op.after));
      noteSnat(op.before);
      noteSnat(op.after);
    },
  };
  const refresh = (s: ServiceState) => {
    const key = serviceKey(s);
    if (refreshed.has(key)) return;
    refreshed.add(key);
    lines.push(...refreshService(s));
  };

  for (const op of plan.ops) {
    if (op.op === 'add-real-server' || op.op === 'update-real-server' || op.op === 'delete-real-server') refresh(op.service);
    else (handlers[op.op] as ((o: Op) => void) | undefined)?.(op);
  }
  // Deleting a whole table takes its contents with it; emit nothing else for it.
  const dropped = new Set(deleteTables.map((l) => l.split(' ')[2]));
  const kept = lines.filter((l) => !dropped.has(l.split(' ')[2] ?? '') || l.startsWith('add table'));
  if (!dropped.has('ip')) for (const vip of [...snatVips].sort()) kept.push(...refreshSnat(vip, before, after));
  kept.push(...deleteTables);
  return kept.length > 0 ? `${kept.join('\n')}\n` : '';
}

