// Config + facts about this host -> desired kernel state. Pure: the facts
// (interfaces, neighbour MACs) are gathered by the caller.
import { interfaceForAddress } from './interfaces';
import { BackendName } from '../backends/names';
import { backendOf } from '../backends/registry';
import { ConfigError } from '../util/errors';
import { Config, Service, serviceKey } from '../model/types';
import { OwnedAddress, ServiceState } from '../model/state';
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
  const holder = facts.interfaces.find((i) => i.addresses.some((a) => a.address === s.vip));
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

export function resolveService(s: Service, index: number, facts: HostFacts, backend: BackendName = 'nft'): ServiceState {
  const where = `services[${index}] (${serviceKey(s)})`;
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
  const device = vipDevice(s, where, facts);
  const state: ServiceState = {
    name: s.name,
    vip: s.vip,
    port: s.port,
    protocol: s.protocol,
    mode: s.mode,
    scheduler: s.scheduler,
    device,
    realServers: s.realServers.map((r) => ({ address: r.address, port: r.port, weight: r.weight })),
  };
  if (s.mode === 'fullnat') {
    if (s.snatAddress) state.snatAddress = s.snatAddress;
    else {
      const first = s.realServers[0];
      const towards = first ? interfaceForAddress(facts.interfaces, first.address) : undefined;
      // The address in the real server's own subnet, not merely the first one of that interface.
      const own = towards?.local;
      if (!own)
        throw new ResolveError(
          where,
          `no address of this host faces real server ${first?.address}; set "snatAddress:" to the balancer address the real servers should see`,
        );
      state.snatAddress = own;
    }
  }
  if (s.encapsulation === 'ipip') state.encapsulation = 'ipip';
  if (s.persistence) state.persistence = { ...s.persistence };
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

export function resolveConfig(config: Config, facts: HostFacts, backend: BackendName = 'nft'): DesiredState {
  const services = config.services.map((s, i) => resolveService(s, i, facts, backend));
  const addresses = [
    ...new Map(services.map((s): [string, OwnedAddress] => [`${s.vip}@${s.device}`, { address: s.vip, device: s.device }])).values(),
  ];
  const sysctls = backendOf(backend).sysctls(services, config, facts.interfaces);
  return { backend, services, addresses, sysctls };
}
