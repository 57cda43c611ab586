// Config + facts about this host -> desired kernel state. Pure: the facts
// (interfaces, neighbour MACs) are gathered by the caller.
import { holderOf, interfaceForAddress } from './interfaces';
import { BackendName } from '../backends/names';
import { backendOf } from '../backends/registry';
import { ConfigError } from '../util/errors';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import {
  CONNTRACK_SYSCTLS,
  Config,
  ConntrackTimeouts,
  L7Scheduler,
  MAGLEV_DEFAULTS,
  Protocol,
  Service,
  isL7,
  serviceKey,
} from '../model/types';
import { L7ServiceState, OwnedAddress, ServiceState } from '../model/state';
import { NetInterface } from '../kernel/rtnl/rtnl';
import { DesiredState } from '../plan/types';

/** The config cannot be served by this host as it is (an interface, a subnet, a MAC is missing): exit 2. */
export class ResolveError extends ConfigError {
  constructor(
    readonly where: string,
    message: string,
  ) {
    super(`${where}: ${message}`);
  }
}

export interface HostFacts {
  interfaces: NetInterface[];
  /** MAC of a neighbour (dsr real servers), undefined when it did not answer ARP. */
  macOf: (address: string) => string | undefined;
}

export { interfaceForAddress };

function vipDevice(s: Service, where: string, facts: HostFacts): string {
  if (s.interface) {
    if (!facts.interfaces.some((i) => i.name === s.interface)) {
      throw new ResolveError(
        where,
        `interface "${s.interface}" does not exist on this host (it has ${facts.interfaces.map((i) => i.name).join(', ')})`,
      );
    }
    return s.interface;
  }
  const holder = holderOf(facts.interfaces, s.vip);
  if (holder && holder.name !== 'lo') return holder.name;
  const found = interfaceForAddress(facts.interfaces, s.vip);
  if (!found) {
    throw new ResolveError(
      where,
      `VIP ${s.vip} is on no interface: no address here is in a subnet that contains it; add the subnet to an interface or set "interface:" to the interface that should carry the VIP`,
    );
  }
  return found.iface.name;
}

export type { BackendName };

/** fullnat: the source address towards the real servers (configured, or this host's own on the first one's subnet). */
function sourceAddress(s: Service, where: string, facts: HostFacts): string {
  if (s.snatAddress) return s.snatAddress;
  const first = s.realServers[0];
  const towards = first ? interfaceForAddress(facts.interfaces, first.address) : undefined;
  // The address in the real server's own subnet, not merely the first one of that interface.
  const own = towards?.local;
  if (!own)
    throw new ResolveError(
      where,
      `no address of this host faces real server ${first?.address}; set "snatAddress:" to the balancer address the real servers should see`,
    );
  return own;
}

/**
 * An L4 fullnat service's configured source addresses, each on the interface
 * that carries it, so that the real servers' replies to it reach this host
 * (ARP): one this host already has stays where it is; another is added as a
 * /32 to the interface whose subnet holds it, and removed with the service,
 * like a VIP. L7 (HAProxy) binds to its one source address as it is.
 */
function configuredSources(s: Service, index: number, facts: HostFacts): OwnedAddress[] {
  if (s.mode !== 'fullnat' || isL7(s.protocol) || !s.snatAddress) return [];
  return (s.snatPool ?? [s.snatAddress]).map((address, i) => {
    const holder = holderOf(facts.interfaces, address);
    if (holder) return { address, device: holder.name };
    const found = interfaceForAddress(facts.interfaces, address);
    if (!found)
      throw new ResolveError(
        `services[${index}].${s.snatPool ? `snatAddresses[${i}]` : 'snatAddress'} (${serviceKey(s)})`,
        `${address} is on no subnet of this host, so the real servers' replies to it could not find this host; use addresses of the subnet that faces the real servers`,
      );
    return { address, device: found.iface.name };
  });
}

/** The conntrack timeouts the config sets, as sysctls of this namespace. */
function conntrackSysctls(timeouts: ConntrackTimeouts | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, sysctl] of Object.entries(CONNTRACK_SYSCTLS) as [keyof ConntrackTimeouts, string][]) {
    const v = timeouts?.[key];
    if (v !== undefined) out[sysctl] = typeof v === 'boolean' ? (v ? '1' : '0') : String(v);
  }
  return out;
}

/** https: both PEM files readable, and the key the certificate's own (HAProxy would refuse to start otherwise). */
function checkTlsFiles(s: Service, where: string): void {
  if (!s.tls) return;
  const read = (file: string, what: string) => {
    try {
      return fs.readFileSync(file);
    } catch (e) {
      throw new ResolveError(
        `${where} tls.${what}`,
        `${file} cannot be read: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
      );
    }
  };
  const certText = read(s.tls.certificate, 'certificate');
  const keyText = read(s.tls.key, 'key');
  let cert: crypto.X509Certificate;
  let key: crypto.KeyObject;
  try {
    cert = new crypto.X509Certificate(certText);
  } catch {
    throw new ResolveError(`${where} tls.certificate`, `${s.tls.certificate} is not a PEM certificate`);
  }
  try {
    key = crypto.createPrivateKey(keyText);
  } catch {
    throw new ResolveError(`${where} tls.key`, `${s.tls.key} is not a PEM private key (or it is encrypted)`);
  }
  if (!cert.checkPrivateKey(key))
    throw new ResolveError(`${where} tls.key`, `${s.tls.key} is not the private key of the certificate ${s.tls.certificate}`);
}

/** An http or https service, for the L7 engine. */
export function resolveL7Service(s: Service, index: number, facts: HostFacts): L7ServiceState {
  const where = `services[${index}] (${serviceKey(s)})`;
  if (!isL7(s.protocol) || s.mode === 'dsr') throw new Error(`internal: ${where} is not an L7 service`);
  checkTlsFiles(s, where);
  if (s.cache && s.cache.totalSize > os.totalmem() / 2)
    throw new ResolveError(
      `${where} cache.totalSize`,
      `${s.cache.totalSize} bytes is over half of this host's memory (${os.totalmem()} bytes); choose a smaller cache`,
    );
  const state: L7ServiceState = {
    name: s.name,
    vip: s.vip,
    port: s.port,
    protocol: s.protocol,
    mode: s.mode,
    // Validation allows only the L7 engine's schedulers for http and https.
    scheduler: s.scheduler as L7Scheduler,
    device: vipDevice(s, where, facts),
    realServers: s.realServers.map((r) => ({ address: r.address, port: r.port, weight: r.weight })),
  };
  if (s.mode === 'fullnat') state.snatAddress = sourceAddress(s, where, facts);
  if (s.tls) state.tls = { ...s.tls };
  if (s.cache) state.cache = { ...s.cache };
  return state;
}

export function resolveService(s: Service, index: number, facts: HostFacts, backend: BackendName = 'nft'): ServiceState {
  const where = `services[${index}] (${serviceKey(s)})`;
  if (isL7(s.protocol)) throw new Error(`internal: ${where} is an L7 service`);
  const protocol: Protocol = s.protocol;
  const can = backendOf(backend).capabilities;
  if (!can.schedulers.includes(s.scheduler)) {
    throw new ResolveError(where, `scheduler ${s.scheduler} needs the IPVS backend; ${can.title} has ${can.schedulers.join(', ')}`);
  }
  if (s.persistence && !can.persistence)
    throw new ResolveError(where, `persistence needs the IPVS backend; with ${can.title}, scheduler sh keeps a client on one real server`);
  if (s.encapsulation && !can.encapsulations.includes(s.encapsulation))
    throw new ResolveError(
      where,
      `encapsulation ${s.encapsulation} (IPVS tunnel mode) needs the IPVS backend; ${can.title} does direct routing (MAC rewrite)`,
    );
  if (s.maglev && backend !== 'nft')
    throw new ResolveError(
      where,
      `maglev size and seed need the nftables backend; ${can.title}'s mh has a table size fixed when the kernel is built and a hash of its own`,
    );
  const device = vipDevice(s, where, facts);
  const state: ServiceState = {
    name: s.name,
    vip: s.vip,
    port: s.port,
    protocol,
    mode: s.mode,
    scheduler: s.scheduler,
    device,
    realServers: s.realServers.map((r) => ({ address: r.address, port: r.port, weight: r.weight })),
  };
  if (s.mode === 'fullnat') {
    if ((s.snatPool || s.snatPorts) && !can.snatPool)
      throw new ResolveError(
        where,
        `snatAddresses with more than one address and snatPorts need the nftables backend; ${can.title} source-NATs with one iptables rule to one address`,
      );
    state.snatAddress = sourceAddress(s, where, facts);
    if (s.snatPool) state.snatPool = [...s.snatPool];
    if (s.snatPorts) state.snatPorts = s.snatPorts;
  }
  if (s.encapsulation === 'ipip') state.encapsulation = 'ipip';
  if (s.persistence) state.persistence = { ...s.persistence };
  // Only what differs from the defaults: a service without it reads back from the kernel the same way.
  if (s.maglev && (s.maglev.size !== MAGLEV_DEFAULTS.size || s.maglev.seed !== MAGLEV_DEFAULTS.seed)) state.maglev = { ...s.maglev };
  // IPVS forwards DSR itself (direct routing or tunnel): no MACs to resolve; nftables rewrites them.
  if (s.mode === 'dsr' && can.dsrNeedsMacs) {
    let forward: NetInterface | undefined;
    for (const r of state.realServers) {
      const found = interfaceForAddress(facts.interfaces, r.address);
      if (!found)
        throw new ResolveError(
          `${where} real server ${r.address}`,
          'is not on a subnet of this host: direct server return only rewrites the MAC, so real servers must share an L2 segment with the balancer',
        );
      if (forward && forward.name !== found.iface.name)
        throw new ResolveError(
          where,
          `real servers are on different interfaces (${forward.name}, ${found.iface.name}); one DSR service forwards out of one interface`,
        );
      forward = found.iface;
      const mac = facts.macOf(r.address);
      if (!mac)
        throw new ResolveError(
          `${where} real server ${r.address}`,
          `did not answer ARP on ${found.iface.name}; check that it is up and on that segment`,
        );
      r.mac = mac;
    }
    if (forward) {
      state.forwardDevice = forward.name;
      if (!forward.mac) throw new ResolveError(where, `interface ${forward.name} has no MAC address`);
      state.forwardMac = forward.mac;
    }
  }
  return state;
}

/** The config as this host serves it: L4 services for the kernel backend, http and https for the L7 engine. */
export function resolveConfig(config: Config, facts: HostFacts, backend: BackendName = 'nft'): DesiredState {
  const services: ServiceState[] = [];
  const l7: L7ServiceState[] = [];
  config.services.forEach((s, i) => {
    if (isL7(s.protocol)) l7.push(resolveL7Service(s, i, facts));
    else services.push(resolveService(s, i, facts, backend));
  });
  return desiredOf(config, services, l7, facts, backend);
}

/**
 * The desired state of resolved services: their VIP and source addresses and
 * the sysctls. Shared by resolveConfig and the plan that resolves only the
 * services a config change touched (src/engine/plan-memo.ts).
 */
export function desiredOf(
  config: Config,
  services: ServiceState[],
  l7: L7ServiceState[],
  facts: HostFacts,
  backend: BackendName,
): DesiredState {
  const sysctls = { ...backendOf(backend).sysctls(services, config, facts.interfaces), ...conntrackSysctls(config.conntrack) };
  const held = l7.length === 0 ? heldAsBefore(config, services, facts) : undefined;
  const { addresses, routes } = held ?? heldAddresses(config, services, l7, facts);
  if (l7.length === 0) lastHeld = { config, services, interfaces: facts.interfaces, addresses, ...(routes ? { routes } : {}) };
  return { backend, services, addresses: [...addresses], ...(routes ? { routes: [...routes] } : {}), sysctls, l7 };
}

/** The addresses and routes the services need (VIPs and source addresses, each once). */
function heldAddresses(
  config: Config,
  services: readonly ServiceState[],
  l7: readonly L7ServiceState[],
  facts: HostFacts,
): { addresses: OwnedAddress[]; routes?: OwnedAddress[] } {
  // ha.vrrp: keepalived adds the VIPs and ha.vrrp.addresses on the master and removes them on the standby.
  // Were slbctl to plan them too, it would put them back on the standby at every resync and both balancers
  // would answer ARP. A source address not listed there is this balancer's own, planned as without ha.
  const floating = new Set((config.ha?.vrrp?.addresses ?? []).map((a) => a.split('/')[0]));
  const vips = config.ha?.vrrp ? [] : [...services, ...l7].map((s): OwnedAddress => ({ address: s.vip, device: s.device }));
  const sources = config.services.flatMap((s, i) => configuredSources(s, i, facts)).filter((a) => !floating.has(a.address));
  const byKey = (list: OwnedAddress[]) => [...new Map(list.map((a): [string, OwnedAddress] => [`${a.address}@${a.device}`, a])).values()];
  if (config.vipAs !== 'route') return { addresses: byKey([...vips, ...sources]) };
  // vipAs route: the VIPs are local routes; a source address stays an address (source selection and the
  // real servers' replies need one), and a VIP that is also a source address is held as that address.
  const sourceKeys = new Set(sources.map((a) => `${a.address}@${a.device}`));
  return { addresses: byKey(sources), routes: byKey(vips.filter((a) => !sourceKeys.has(`${a.address}@${a.device}`))) };
}

/** The last desired addresses worked out, and what they were worked out from. */
let lastHeld:
  | {
      config: Config;
      services: readonly ServiceState[];
      interfaces: HostFacts['interfaces'];
      addresses: OwnedAddress[];
      routes?: OwnedAddress[];
    }
  | undefined;

/**
 * The last addresses again, when a config differs from the last one only in
 * services whose VIP, interface and source addresses are as they were (a
 * weight change: 10,000 VIPs are not listed and made unique again); undefined
 * when anything they depend on may differ.
 */
function heldAsBefore(
  config: Config,
  services: readonly ServiceState[],
  facts: HostFacts,
): { addresses: OwnedAddress[]; routes?: OwnedAddress[] } | undefined {
  const last = lastHeld;
  if (!last || last.interfaces !== facts.interfaces || !Object.isFrozen(facts.interfaces)) return undefined;
  if (config.vipAs !== last.config.vipAs || JSON.stringify(config.ha) !== JSON.stringify(last.config.ha)) return undefined;
  if (config.services.length !== last.config.services.length || services.length !== last.services.length) return undefined;
  let differ = 0;
  for (let i = 0; i < services.length; i++) {
    const a = services[i];
    const b = last.services[i];
    if (a === b) continue;
    if (++differ > 64 || a.vip !== b.vip || a.device !== b.device) return undefined;
  }
  for (let i = 0; i < config.services.length; i++) {
    const a = config.services[i];
    const b = last.config.services[i];
    if (a === b) continue;
    if (++differ > 128) return undefined;
    const sources = (s: Service) => JSON.stringify(configuredSources(s, i, facts));
    if (sources(a) !== sources(b)) return undefined;
  }
  return { addresses: last.addresses, ...(last.routes ? { routes: last.routes } : {}) };
}
