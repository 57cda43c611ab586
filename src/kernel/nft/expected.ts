// What slbctl's nftables tables must hold for a set of services: every chain
// (hook and rules), set and map (type and elements). Pure. Render writes
// these objects; the drift check compares them with what the kernel lists.
import { Family, RealServerState, ServiceState } from '../../model/state';
import { PROTOCOLS } from '../../model/types';
import {
  FULLNAT_VIPS_MAP,
  MEMBERS_SET,
  SERVICES_MAP,
  backendsMap,
  ingressChain,
  memberComment,
  serviceChain,
  serviceId,
  snatChain,
} from './names';
import { Rule, dispatchRule, pickChainOf, pickRule, ruleFingerprint, serviceRule, snatDispatchRule, snatRule } from './rules';
import { ChainInfo, TableInventory } from './inventory';
import { backendKey, backendSlots, slotTotal } from './slots';

/** The map from a full-NAT VIP to its source-NAT chain. */
export const FULLNAT_VIPS = FULLNAT_VIPS_MAP;

export const familyOf = (s: Pick<ServiceState, 'mode'>): Family => (s.mode === 'dsr' ? 'netdev' : 'ip');

export interface ExpectedChain {
  /** The hook as the listing shows it (inventory.ts), for base chains. */
  hook?: string;
  /** The declaration after `add chain FAMILY TABLE NAME `, for base chains. */
  declaration?: string;
  rules: Rule[];
}

export interface ExpectedSet {
  /** As inventory.ts prints a listed set's type. */
  type: string;
  /** The declaration after `add set|map FAMILY TABLE NAME `. */
  declaration: string;
  kind: 'set' | 'map';
}

/** The pick chains (names.ts) these services jump to, each with its one rule. */
export function pickChains(services: readonly ServiceState[]): Map<string, ExpectedChain> {
  const chains = new Map<string, ExpectedChain>();
  for (const s of services) {
    const total = slotTotal(s);
    const name = pickChainOf(s, total);
    if (name !== undefined && !chains.has(name)) chains.set(name, { rules: [pickRule(s, total)] });
  }
  return chains;
}

/**
 * The base chains and sets of each table, created with the table, and the
 * pick chains that `services` (of this family) jump to: the table's objects
 * that are not one service's.
 */
export function tablePlumbing(
  family: Family,
  dsrDevices: readonly string[],
  services: readonly ServiceState[] = [],
): { sets: Map<string, ExpectedSet>; chains: Map<string, ExpectedChain> } {
  const sets = new Map<string, ExpectedSet>([
    [
      SERVICES_MAP,
      {
        kind: 'map',
        type: 'map inet_proto . ipv4_addr . inet_service : verdict',
        declaration: '{ type inet_proto . ipv4_addr . inet_service : verdict; }',
      },
    ],
    [
      MEMBERS_SET,
      {
        kind: 'set',
        type: 'set inet_proto . ipv4_addr . inet_service . ipv4_addr . inet_service',
        declaration: '{ type inet_proto . ipv4_addr . inet_service . ipv4_addr . inet_service; }',
      },
    ],
  ]);
  for (const p of PROTOCOLS) {
    const target =
      family === 'netdev'
        ? { type: 'ether_addr', typeof: 'ether daddr' }
        : { type: 'ipv4_addr . inet_service', typeof: `ip daddr . ${p} dport` };
    sets.set(backendsMap(p), {
      kind: 'map',
      type: `map ipv4_addr . inet_service . integer : ${target.type}`,
      // typeof: the slot is the type of numgen's result (host byte order), which has no type name.
      declaration: `{ typeof ip daddr . ${p} dport . numgen inc mod 1 : ${target.typeof}; }`,
    });
  }
  const chains = new Map<string, ExpectedChain>();
  if (family === 'ip') {
    sets.set(FULLNAT_VIPS_MAP, { kind: 'map', type: 'map ipv4_addr : verdict', declaration: '{ type ipv4_addr : verdict; }' });
    const nat = (hook: string, priority: number, spelled: string): ExpectedChain => ({
      hook: `type nat hook ${hook} priority ${priority} policy accept`,
      declaration: `{ type nat hook ${hook} priority ${spelled}; policy accept; }`,
      rules: [hook === 'postrouting' ? snatDispatchRule() : dispatchRule('ip')],
    });
    chains.set('prerouting', nat('prerouting', -100, 'dstnat'));
    chains.set('output', nat('output', -100, '-100'));
    chains.set('postrouting', nat('postrouting', 100, 'srcnat'));
  } else {
    for (const device of dsrDevices) {
      chains.set(ingressChain(device), {
        hook: 'type filter hook ingress priority -500 policy accept',
        declaration: `{ type filter hook ingress device "${device}" priority -500; policy accept; }`,
        rules: [dispatchRule('netdev')],
      });
    }
  }
  for (const [name, c] of pickChains(services.filter((s) => familyOf(s) === family))) chains.set(name, c);
  return { sets, chains };
}

export const memberKey = (s: Pick<ServiceState, 'protocol' | 'vip' | 'port'>, r: Pick<RealServerState, 'address' | 'port'>) =>
  `${s.protocol} . ${s.vip} . ${s.port} . ${r.address} . ${r.port}`;
export const serviceMapKey = (s: Pick<ServiceState, 'protocol' | 'vip' | 'port'>) => `${s.protocol} . ${s.vip} . ${s.port}`;

/** Everything one service puts into its table. */
export interface ServicePieces {
  chain: string;
  rule: Rule;
  /** The pick chain its rule jumps to, and that chain's rule; none when it has no slot. */
  pick?: { chain: string; rule: Rule };
  map: { key: string; value: string };
  members: { key: string; comment: string }[];
  backends: { key: string; value: string }[];
}

export function servicePieces(s: ServiceState): ServicePieces {
  const chain = serviceChain(serviceId(s));
  const { total, slots } = backendSlots(s);
  const pick = pickChainOf(s, total);
  return {
    chain,
    rule: serviceRule(s, total),
    ...(pick !== undefined ? { pick: { chain: pick, rule: pickRule(s, total) } } : {}),
    map: { key: serviceMapKey(s), value: `jump ${chain}` },
    members: s.realServers.map((r) => ({ key: memberKey(s, r), comment: memberComment(r) })),
    backends: slots.map((x) => ({ key: backendKey(s, x), value: x.value })),
  };
}

/** Full-NAT services by VIP, so that each VIP's source-NAT chain is found without a pass over every service. */
const byVipCache = new WeakMap<readonly ServiceState[], Map<string, ServiceState[]>>();
function fullnatByVip(services: readonly ServiceState[]): Map<string, ServiceState[]> {
  let m = byVipCache.get(services);
  if (!m) {
    m = new Map();
    for (const s of services) {
      if (s.mode !== 'fullnat') continue;
      const list = m.get(s.vip);
      if (list) list.push(s);
      else m.set(s.vip, [s]);
    }
    byVipCache.set(services, m);
  }
  return m;
}

/** The source-NAT chain of one VIP: a rule per fullnat service on it, in a stable order. */
export function snatPieces(vip: string, services: readonly ServiceState[]): { chain: string; rules: Rule[]; element: string } | undefined {
  const on = [...(fullnatByVip(services).get(vip) ?? [])].sort((a, b) => a.port - b.port || a.protocol.localeCompare(b.protocol));
  if (on.length === 0) return undefined;
  const chain = snatChain(vip);
  return { chain, rules: on.map(snatRule), element: `jump ${chain}` };
}

/**
 * The tables as `nft -j list` would show them once `services` are applied
 * (inventory.ts's shape): what a test compares with the kernel, and what a
 * pure test observes in place of a kernel.
 */
export function expectedInventory(services: readonly ServiceState[]): Partial<Record<Family, TableInventory>> {
  const out: Partial<Record<Family, TableInventory>> = {};
  const dsrDevices = [...new Set(services.filter((s) => s.mode === 'dsr').map((s) => s.device))];
  for (const family of ['ip', 'netdev'] as const) {
    const mine = services.filter((s) => familyOf(s) === family);
    if (mine.length === 0) continue;
    const plumbing = tablePlumbing(family, dsrDevices, mine);
    const inv: TableInventory = { family, chains: new Map(), sets: new Map() };
    for (const [name, set] of plumbing.sets) inv.sets.set(name, { type: set.type, elements: new Map() });
    const chain = (name: string, c: { hook?: string; rules: Rule[] }) => {
      const info: ChainInfo = {
        rules: c.rules.map((r) => ({
          fingerprint: ruleFingerprint(r.expr, r.comment),
          expr: r.expr,
          ...(r.comment !== undefined ? { comment: r.comment } : {}),
        })),
      };
      if (c.hook) info.hook = c.hook;
      inv.chains.set(name, info);
    };
    for (const [name, c] of plumbing.chains) chain(name, c);
    const elements = (set: string) => inv.sets.get(set)?.elements as Map<string, { value?: string; comment?: string }>;
    for (const s of mine) {
      const p = servicePieces(s);
      chain(p.chain, { rules: [p.rule] });
      elements(SERVICES_MAP).set(p.map.key, { value: p.map.value });
      for (const m of p.members) elements(MEMBERS_SET).set(m.key, { comment: m.comment });
      for (const b of p.backends) elements(backendsMap(s.protocol)).set(b.key, { value: b.value });
    }
    if (family === 'ip') {
      for (const vip of [...new Set(mine.map((s) => s.vip))]) {
        const snat = snatPieces(vip, mine);
        if (!snat) continue;
        chain(snat.chain, { rules: snat.rules });
        elements(FULLNAT_VIPS_MAP).set(vip, { value: snat.element });
      }
    }
    out[family] = inv;
  }
  return out;
}
