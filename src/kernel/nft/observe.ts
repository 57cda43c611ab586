// `nft -j list table …` output -> the services slbctl programmed. Pure.
// Everything is read from slbctl's own tables: the rule comment carries the
// service's settings, the member set its real servers and weights. A service
// is found from any of its pieces (services-map element, chain, members,
// backend slots), so one that lost a piece to a hand edit is still seen, and
// repaired or removed exactly, rather than half forgotten.
import { MODES, Mode, PROTOCOLS, Protocol, SCHEDULERS, Scheduler, serviceKey } from '../../model/types';
import { Family, KernelState, NftServicePieces, OwnedAddress, RealServerState, ServiceState } from '../../model/state';
import { MEMBERS_SET, OWNED_ADDRESSES_SET, SERVICES_MAP, backendsMap, parseComment, serviceId } from './names';
import { TableInventory, arr, inventoryFromListing, obj } from './inventory';

function oneOf<T extends string>(v: string | undefined, allowed: readonly T[]): T | undefined {
  return v !== undefined && (allowed as readonly string[]).includes(v) ? (v as T) : undefined;
}

interface Found {
  protocol: Protocol;
  vip: string;
  port: number;
  pieces: NftServicePieces;
  realServers: RealServerState[];
  backendKeys: string[];
  comment?: string;
  counters?: { packets: number; bytes: number };
}

const IPV4 = /^\d{1,3}(?:\.\d{1,3}){3}$/;

/** "tcp . 172.16.75.84 . 80" (and longer keys) -> its service part. */
function parseServiceKey(parts: string[]): { protocol: Protocol; vip: string; port: number } | undefined {
  const [proto, vip, port] = parts;
  const protocol = oneOf<Protocol>(proto, PROTOCOLS);
  if (!protocol || !vip || !IPV4.test(vip) || !/^\d+$/.test(port ?? '')) return undefined;
  return { protocol, vip, port: Number(port) };
}

/** svc_tcp_172_16_75_84_80 -> its service, when the name is one slbctl makes. */
export function parseChainName(name: string): { protocol: Protocol; vip: string; port: number } | undefined {
  const m = /^svc_(tcp|udp)_(\d+)_(\d+)_(\d+)_(\d+)_(\d+)$/.exec(name);
  if (!m) return undefined;
  const found = { protocol: m[1] as Protocol, vip: `${m[2]}.${m[3]}.${m[4]}.${m[5]}`, port: Number(m[6]) };
  return `svc_${serviceId(found)}` === name ? found : undefined;
}

/** What one rule of a VIP's source-NAT chain says (rules.ts snatRule): its service's protocol and port, its pool and ports. */
export function parseSnatRule(expr: readonly unknown[]): { protocol?: Protocol; port?: number; pool?: string[]; ports?: string } {
  const out: { protocol?: Protocol; port?: number; pool?: string[]; ports?: string } = {};
  for (const x of expr) {
    const m = obj(obj(x)?.match);
    const left = obj(m?.left);
    if (obj(left?.meta)?.key === 'l4proto') out.protocol = oneOf<Protocol>(String(m?.right), PROTOCOLS);
    if (obj(left?.ct)?.key === 'proto-dst' && typeof m?.right === 'number') out.port = m.right;
    const snat = obj(obj(x)?.snat);
    if (!snat) continue;
    const map = obj(obj(snat.addr)?.map);
    if (map) {
      const hashed = arr(obj(obj(obj(map.key)?.jhash)?.expr)?.concat);
      const sport = obj(obj(hashed[1])?.payload)?.protocol;
      if (typeof sport === 'string') out.protocol = oneOf<Protocol>(sport, PROTOCOLS);
      const pairs = arr(obj(map.data)?.set).map((e) => arr(e));
      out.pool = pairs.sort((a, b) => Number(a[0]) - Number(b[0])).map((e) => String(e[1]));
    }
    const range = arr(obj(snat.port)?.range);
    if (range.length === 2) out.ports = `${String(range[0])}-${String(range[1])}`;
  }
  return out;
}

/** Each fullnat service's pool and port range, from its VIP's source-NAT chain. */
function readSnatChains(t: TableInventory, services: readonly ServiceState[]): void {
  const byKey = new Map(services.filter((s) => s.mode === 'fullnat').map((s) => [serviceKey(s), s]));
  for (const [name, chain] of t.chains) {
    const m = /^snat_(\d+)_(\d+)_(\d+)_(\d+)$/.exec(name);
    if (!m) continue;
    const vip = `${m[1]}.${m[2]}.${m[3]}.${m[4]}`;
    for (const rule of chain.rules) {
      const r = parseSnatRule(rule.expr);
      if (!r.protocol || r.port === undefined) continue;
      const s = byKey.get(serviceKey({ protocol: r.protocol, vip, port: r.port }));
      if (!s) continue;
      if (r.pool && r.pool.length > 1) s.snatPool = r.pool;
      if (r.ports) s.snatPorts = r.ports;
    }
  }
}

function readServices(t: TableInventory): ServiceState[] {
  const found = new Map<string, Found>();
  const entry = (k: { protocol: Protocol; vip: string; port: number }): Found => {
    const key = serviceKey(k);
    let p = found.get(key);
    if (!p) {
      p = { ...k, pieces: { family: t.family, chain: false, rules: [], backends: {} }, realServers: [], backendKeys: [] };
      found.set(key, p);
    }
    return p;
  };
  for (const [key, e] of t.sets.get(SERVICES_MAP)?.elements ?? []) {
    const k = parseServiceKey(key.split(' . '));
    if (k && e.value !== undefined) entry(k).pieces.map = e.value;
  }
  for (const [name, chain] of t.chains) {
    const k = parseChainName(name);
    if (!k) continue;
    const p = entry(k);
    p.pieces.chain = true;
    p.pieces.rules = chain.rules.map((r) => r.fingerprint);
    const rule = chain.rules.find((r) => r.comment !== undefined && parseComment(r.comment));
    if (rule?.comment) p.comment = rule.comment;
    const counter = rule?.expr.map((x) => obj(obj(x)?.counter)).find(Boolean);
    if (counter) p.counters = { packets: Number(counter.packets ?? 0), bytes: Number(counter.bytes ?? 0) };
  }
  for (const [key, e] of t.sets.get(MEMBERS_SET)?.elements ?? []) {
    const parts = key.split(' . ');
    const k = parseServiceKey(parts);
    const [, , , address, rsPort] = parts;
    if (!k || !address || !/^\d+$/.test(rsPort ?? '')) continue;
    const fields = Object.fromEntries((e.comment ?? '').split(' ').map((w) => w.split('=') as [string, string]));
    const r: RealServerState = { address, port: Number(rsPort), weight: Number(fields.w ?? 1) };
    if (fields.mac) r.mac = fields.mac;
    entry(k).realServers.push(r);
  }
  for (const protocol of PROTOCOLS) {
    for (const [key, e] of t.sets.get(backendsMap(protocol))?.elements ?? []) {
      const [vip, port, slot] = key.split(' . ');
      const k = parseServiceKey([protocol, vip ?? '', port ?? '']);
      if (!k || slot === undefined) continue;
      const p = entry(k);
      p.backendKeys.push(key);
      p.pieces.backends[key] = e.value ?? '';
    }
  }
  const services: ServiceState[] = [];
  for (const p of found.values()) {
    const fields = p.comment ? (parseComment(p.comment) ?? {}) : {};
    // A service whose rule is gone (edited by hand) reads back as damaged, so
    // the planner replaces it rather than trusting half of it.
    const s: ServiceState = {
      name: fields.n ?? '(damaged)',
      vip: p.vip,
      port: p.port,
      protocol: p.protocol,
      mode: oneOf<Mode>(fields.m, MODES) ?? (t.family === 'netdev' ? 'dsr' : 'fullnat'),
      scheduler: oneOf<Scheduler>(fields.s, SCHEDULERS) ?? 'rr',
      device: fields.d ?? '',
      realServers: p.realServers,
      backendKeys: p.backendKeys,
      nft: p.pieces,
    };
    if (fields.sn) s.snatAddress = fields.sn;
    if (fields.f) s.forwardDevice = fields.f;
    if (fields.fm) s.forwardMac = fields.fm;
    const mg = /^(\d+)\/(\d+)$/.exec(fields.mg ?? '');
    if (mg) s.maglev = { size: Number(mg[1]), seed: Number(mg[2]) };
    if (p.counters) s.counters = p.counters;
    services.push(s);
  }
  readSnatChains(t, services);
  const collate = new Intl.Collator('en').compare;
  return services
    .map((s) => [serviceKey(s), s] as const)
    .sort((a, b) => collate(a[0], b[0]))
    .map(([, s]) => s);
}

/**
 * VIPs recorded by slbctl versions that kept them in the ip table's
 * owned_addresses set (now in the ownership record): still owned, so an
 * upgrade neither leaks them nor loses track of them.
 */
function readLegacyOwnedAddresses(t: TableInventory): OwnedAddress[] {
  return [...(t.sets.get(OWNED_ADDRESSES_SET)?.elements ?? [])].map(([address, e]) => ({ address, device: e.comment ?? '' }));
}

/** Build the kernel state from the JSON listings of slbctl's tables (absent table = undefined). */
export function observeFromListings(listings: { ip?: unknown; netdev?: unknown }): KernelState & { legacyOwnedAddresses: OwnedAddress[] } {
  const inventories: Partial<Record<Family, TableInventory>> = {};
  for (const family of ['ip', 'netdev'] as const) {
    const listing = listings[family];
    if (listing !== undefined) inventories[family] = inventoryFromListing(family, listing);
  }
  return observeFromInventories(inventories);
}

/** The kernel state from slbctl's tables, each as an inventory. */
export function observeFromInventories(
  inventories: Partial<Record<Family, TableInventory>>,
): KernelState & { legacyOwnedAddresses: OwnedAddress[] } {
  const state: KernelState & { legacyOwnedAddresses: OwnedAddress[] } = {
    services: [],
    ownedAddresses: [],
    tables: [],
    ingressDevices: [],
    nftTables: {},
    legacyOwnedAddresses: [],
  };
  for (const family of ['ip', 'netdev'] as const satisfies readonly Family[]) {
    const t = inventories[family];
    if (t === undefined) continue;
    (state.nftTables as Partial<Record<Family, TableInventory>>)[family] = t;
    state.tables.push(family);
    state.services.push(...readServices(t));
    if (family === 'ip') state.legacyOwnedAddresses = readLegacyOwnedAddresses(t);
    else
      state.ingressDevices = [...t.chains.keys()]
        .filter((c) => c.startsWith('ingress_'))
        .map((c) => c.slice('ingress_'.length))
        .sort();
  }
  return state;
}
