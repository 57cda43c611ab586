// `nft -j list table …` output -> the services slbctl programmed. Pure.
// Everything is read from slbctl's own tables: the services map says which
// services exist, the rule comment carries the service's settings, the
// member set carries the real servers and their weights.
import { MODES, Mode, PROTOCOLS, Protocol, SCHEDULERS, Scheduler } from '../../model/types';
import { Family, KernelState, OwnedAddress, RealServerState, ServiceState } from '../../model/state';
import { MEMBERS_SET, OWNED_ADDRESSES_SET, SERVICES_MAP, TABLE, backendsMap, parseComment } from './names';

type Json = unknown;

function obj(v: Json): Record<string, Json> | undefined {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, Json>) : undefined;
}

function arr(v: Json): Json[] {
  return Array.isArray(v) ? v : [];
}

/** An element of a set/map in nft's JSON: plain value, or {elem: {val, comment}}. */
function elementValue(e: Json): { val: Json; comment?: string } {
  const wrapped = obj(obj(e)?.elem);
  if (wrapped) {
    const comment = typeof wrapped.comment === 'string' ? wrapped.comment : undefined;
    return comment !== undefined ? { val: wrapped.val, comment } : { val: wrapped.val };
  }
  return { val: e };
}

function concat(v: Json): Json[] {
  return arr(obj(v)?.concat);
}

function oneOf<T extends string>(v: string | undefined, allowed: readonly T[]): T | undefined {
  return v !== undefined && (allowed as readonly string[]).includes(v) ? (v as T) : undefined;
}

interface TableObjects {
  family: Family;
  sets: Map<string, Record<string, Json>>;
  chains: string[];
  /** chain name -> the chain's rule that carries an slbctl comment */
  commentedRules: Map<string, Record<string, Json>>;
}

function collect(family: Family, listing: Json): TableObjects {
  const t: TableObjects = { family, sets: new Map(), chains: [], commentedRules: new Map() };
  for (const item of arr(obj(listing)?.nftables)) {
    const o = obj(item) ?? {};
    const set = obj(o.set) ?? obj(o.map);
    if (set && set.table === TABLE && typeof set.name === 'string') t.sets.set(set.name, set);
    const chain = obj(o.chain);
    if (chain && chain.table === TABLE && typeof chain.name === 'string') t.chains.push(chain.name);
    const rule = obj(o.rule);
    if (rule && rule.table === TABLE && typeof rule.chain === 'string' && typeof rule.comment === 'string' && parseComment(rule.comment)) {
      t.commentedRules.set(rule.chain, rule);
    }
  }
  return t;
}

/** Real servers of every service, keyed "protocol/vip:port". */
function readMembers(set: Record<string, Json> | undefined): Map<string, RealServerState[]> {
  const members = new Map<string, RealServerState[]>();
  for (const e of arr(set?.elem)) {
    const { val, comment } = elementValue(e);
    const [proto, vip, port, address, rsPort] = concat(val);
    if (typeof address !== 'string' || typeof rsPort !== 'number') continue;
    const fields = Object.fromEntries((comment ?? '').split(' ').map((w) => w.split('=') as [string, string]));
    const r: RealServerState = { address, port: rsPort, weight: Number(fields.w ?? 1) };
    if (fields.mac) r.mac = fields.mac;
    const key = `${String(proto)}/${String(vip)}:${String(port)}`;
    const list = members.get(key) ?? [];
    list.push(r);
    members.set(key, list);
  }
  return members;
}

/** Backend map keys of every service ("vip . port . slot"), keyed "vip:port". */
function readBackendKeys(map: Record<string, Json> | undefined): Map<string, string[]> {
  const keys = new Map<string, string[]>();
  for (const e of arr(map?.elem)) {
    const [vip, port, slot] = concat(arr(e)[0]);
    const slotText = String(slot);
    const key = `${String(vip)}:${String(port)}`;
    const list = keys.get(key) ?? [];
    list.push(`${String(vip)} . ${String(port)} . ${slotText}`);
    keys.set(key, list);
  }
  return keys;
}

function readServices(t: TableObjects): ServiceState[] {
  const services: ServiceState[] = [];
  const members = readMembers(t.sets.get(MEMBERS_SET));
  const backends = new Map(PROTOCOLS.map((p) => [p, readBackendKeys(t.sets.get(backendsMap(p)))]));
  for (const e of arr(t.sets.get(SERVICES_MAP)?.elem)) {
    const pair = arr(e);
    const [proto, vip, port] = concat(pair[0]);
    const chainName = obj(obj(pair[1])?.jump)?.target;
    const protocol = oneOf<Protocol>(typeof proto === 'string' ? proto : undefined, PROTOCOLS);
    if (!protocol || typeof vip !== 'string' || typeof port !== 'number' || typeof chainName !== 'string') continue;
    const rule = t.commentedRules.get(chainName);
    const fields = rule ? parseComment(String(rule.comment)) ?? {} : {};
    const mode = oneOf<Mode>(fields.m, MODES);
    const scheduler = oneOf<Scheduler>(fields.s, SCHEDULERS);
    // A service whose rule is gone (edited by hand) reads back as broken, so
    // the planner replaces it rather than trusting half of it.
    const s: ServiceState = {
      name: fields.n ?? '(damaged)',
      vip, port, protocol,
      mode: mode ?? (t.family === 'netdev' ? 'dsr' : 'fullnat'),
      scheduler: scheduler ?? 'rr',
      device: fields.d ?? '',
      realServers: members.get(`${protocol}/${vip}:${port}`) ?? [],
      backendKeys: backends.get(protocol)?.get(`${vip}:${port}`) ?? [],
    };
    if (fields.sn) s.snatAddress = fields.sn;
    if (fields.f) s.forwardDevice = fields.f;
    if (fields.fm) s.forwardMac = fields.fm;
    const counter = rule ? arr(rule.expr).map((x) => obj(obj(x)?.counter)).find(Boolean) : undefined;
    if (counter) s.counters = { packets: Number(counter.packets ?? 0), bytes: Number(counter.bytes ?? 0) };
    services.push(s);
  }
  return services;
}

function readOwnedAddresses(t: TableObjects): OwnedAddress[] {
  return arr(t.sets.get(OWNED_ADDRESSES_SET)?.elem).flatMap((e) => {
    const { val, comment } = elementValue(e);
    return typeof val === 'string' ? [{ address: val, device: comment ?? '' }] : [];
  });
}

/** Build the kernel state from the JSON listings of slbctl's tables (absent table = undefined). */
export function observeFromListings(listings: { ip?: Json; netdev?: Json }): KernelState {
  const state: KernelState = { services: [], ownedAddresses: [], tables: [], ingressDevices: [] };
  for (const family of ['ip', 'netdev'] as const) {
    const listing = listings[family];
    if (listing === undefined) continue;
    const t = collect(family, listing);
    state.tables.push(family);
    state.services.push(...readServices(t));
    if (family === 'ip') state.ownedAddresses = readOwnedAddresses(t);
    else state.ingressDevices = t.chains.filter((c) => c.startsWith('ingress_')).map((c) => c.slice('ingress_'.length)).sort();
  }
  return state;
}
