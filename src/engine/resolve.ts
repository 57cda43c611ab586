// Config + facts about this host -> desired kernel state. Pure: the facts
// (interfaces, neighbour MACs) are gathered by the caller.
import { inSubnet } from '../model/ip';
import { ConfigError } from '../util/errors';
import { Config, NFT_SCHEDULERS, Service, serviceKey } from '../model/types';
import { OwnedAddress, ServiceState } from '../model/state';
import { NetInterface } from '../kernel/rtnl/rtnl';
import { DesiredState } from '../plan/types';
import { interfaceSysctl } from '../kernel/rtnl/sysctl';

/** The config cannot be served by this host as it is (an interface, a subnet, a MAC is missing): exit 2. */
export class ResolveError extends ConfigError {
  constructor(readonly where: string, message: string) {
    super(`${where}: ${message}`);
  }
}

export interface HostFacts {
  interfaces: NetInterface[];
  /** MAC of a neighbour (dsr real servers), undefined when it did not answer ARP. */
  macOf: (address: string) => string | undefined;
}

/** The interface whose connected subnet holds `address` (not counting /32 host addresses). */
export function interfaceForAddress(interfaces: NetInterface[], address: string): { iface: NetInterface; local: string } | undefined {
  for (const iface of interfaces) {
    for (const a of iface.addresses) {
      if (a.prefixLength < 32 && inSubnet(address, a.address, a.prefixLength)) return { iface, local: a.address };
    }
  }
  return undefined;
}

function vipDevice(s: Service, where: string, facts: HostFacts): string {
  if (s.interface) {
    if (!facts.interfaces.some((i) => i.name === s.interface)) {
      throw new ResolveError(where, `interface "${s.interface}" does not exist on this host (it has ${facts.interfaces.map((i) => i.name).join(', ')})`);
    }
    return s.interface;
  }
  const holder = facts.interfaces.find((i) => i.addresses.some((a) => a.address === s.vip));
  if (holder && holder.name !== 'lo') return holder.name;
  const found = interfaceForAddress(facts.interfaces, s.vip);
  if (!found) {
    throw new ResolveError(where, `VIP ${s.vip} is on no interface: no address here is in a subnet that contains it; add the subnet to an interface or set "interface:" to the interface that should carry the VIP`);
  }
  return found.iface.name;
}

export type BackendName = 'nft' | 'ipvs';

export function resolveService(s: Service, index: number, facts: HostFacts, backend: BackendName = 'nft'): ServiceState {
  const where = `services[${index}] (${serviceKey(s)})`;
  if (backend === 'nft' && !NFT_SCHEDULERS.includes(s.scheduler)) {
    throw new ResolveError(where, `scheduler ${s.scheduler} needs the IPVS backend; the nftables backend has ${NFT_SCHEDULERS.join(', ')}`);
  }
  if (backend === 'nft' && s.persistence) throw new ResolveError(where, 'persistence needs the IPVS backend; with nftables, scheduler sh keeps a client on one real server');
  if (backend === 'nft' && s.encapsulation === 'ipip') throw new ResolveError(where, 'encapsulation ipip (IPVS tunnel mode) needs the IPVS backend; the nftables backend does direct routing (MAC rewrite)');
  const device = vipDevice(s, where, facts);
  const state: ServiceState = {
    name: s.name, vip: s.vip, port: s.port, protocol: s.protocol, mode: s.mode, scheduler: s.scheduler, device,
    realServers: s.realServers.map((r) => ({ address: r.address, port: r.port, weight: r.weight })),
  };
  if (s.mode === 'fullnat') {
    if (s.snatAddress) state.snatAddress = s.snatAddress;
    else {
      const first = s.realServers[0];
      const towards = first ? interfaceForAddress(facts.interfaces, first.address) : undefined;
      // The address in the real server's own subnet, not merely the first one of that interface.
      const own = towards?.local;
      if (!own) throw new ResolveError(where, `no address of this host faces real server ${first?.address}; set "snatAddress:" to the balancer address the real servers should see`);
      state.snatAddress = own;
    }
  }
  if (s.encapsulation === 'ipip') state.encapsulation = 'ipip';
  if (s.persistence) state.persistence = { ...s.persistence };
  // IPVS forwards DSR itself (direct routing or tunnel): no MACs to resolve.
  if (s.mode === 'dsr' && backend === 'nft') {
    let forward: NetInterface | undefined;
    for (const r of state.realServers) {
      const found = interfaceForAddress(facts.interfaces, r.address);
      if (!found) throw new ResolveError(`${where} real server ${r.address}`, 'is not on a subnet of this host: direct server return only rewrites the MAC, so real servers must share an L2 segment with the balancer');
      if (forward && forward.name !== found.iface.name) throw new ResolveError(where, `real servers are on different interfaces (${forward.name}, ${found.iface.name}); one DSR service forwards out of one interface`);
      forward = found.iface;
      const mac = facts.macOf(r.address);
      if (!mac) throw new ResolveError(`${where} real server ${r.address}`, `did not answer ARP on ${found.iface.name}; check that it is up and on that segment`);
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
  const addresses = [...new Map(services.map((s): [string, OwnedAddress] => [`${s.vip}@${s.device}`, { address: s.vip, device: s.device }])).values()];
  const sysctls: Record<string, string> = {};
  if (services.some((s) => s.mode !== 'dsr')) sysctls['net.ipv4.ip_forward'] = '1';
  // IPVS keeps conntrack entries only with this on; fullnat's source NAT needs them.
  if (backend === 'ipvs' && services.some((s) => s.mode === 'fullnat')) sysctls['net.ipv4.vs.conntrack'] = '1';
  // transparent on IPVS: the real servers' replies reach the balancer on the interface they leave by (towards the
  // router), and IPVS rewrites them only after the forwarding code has sent the real server an ICMP redirect
  // ("the router is closer"). A real server that takes it sends its next replies to the client directly, from its
  // own address, and those connections fail. So no redirects from the interfaces facing the real servers.
  if (backend === 'ipvs') {
    const devices = new Set<string>();
    for (const s of services.filter((x) => x.mode === 'transparent')) {
      devices.add(s.device);
      for (const r of s.realServers) {
        const facing = interfaceForAddress(facts.interfaces, r.address);
        if (facing) devices.add(facing.iface.name);
      }
    }
    if (devices.size > 0) sysctls['net.ipv4.conf.all.send_redirects'] = '0';
    for (const d of [...devices].sort()) sysctls[interfaceSysctl(d, 'send_redirects')] = '0';
  }
  // A UDP real server that fails its checks leaves the service; with this on, IPVS drops its stale entries at the next datagram and schedules it anew.
  if (backend === 'ipvs' && config.services.some((s) => s.protocol === 'udp' && s.healthCheck)) sysctls['net.ipv4.vs.expire_nodest_conn'] = '1';
  return { backend, services, addresses, sysctls };
}
