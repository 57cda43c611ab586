// The balancer's config for each mode of the lab, derived from the topology
// (one source of truth for addresses).
import { stringify } from 'yaml';
import { BackendChoice, Encapsulation, Mode } from '../model/types';
import { BALANCERS, BalancerName, LabTopology, REAL_SERVERS, addressOf } from './topology';
import type { HaKind } from './ha';
import { LAB_BALANCER_ASN, LAB_ROUTER_ASN } from './ha';

export const MODE_TITLES: Record<Mode, string> = {
  fullnat: 'reverse proxy / full NAT',
  transparent: 'transparent / pass-through',
  dsr: 'triangle / direct server return',
};

/** The lab's service types: tcp (L4, in the kernel) or http/https (L7, HAProxy). */
export const LAB_PROTOCOLS = ['tcp', 'http', 'https'] as const;
export type LabProtocol = (typeof LAB_PROTOCOLS)[number];

export interface LabModeOptions {
  backend: BackendChoice;
  encapsulation: Encapsulation;
  protocol: LabProtocol;
  /** L7 reverse proxy: a static cache on the balancer. */
  cache: boolean;
  /** https: the balancer's certificate and key (PEM files the lab made). */
  tls?: { certificate: string; key: string };
  /**
   * Two balancers: ecmp, each announces the VIP to the router over BGP (active/active); vrrp, keepalived
   * gives the VIP and the floating address to one of them (active/standby).
   */
  ha?: HaKind;
  /** vrrp: copy connection state to the standby (default); false: the negative case, no copy. */
  sync?: boolean;
  /**
   * vrrp: what copies it: conntrackd (nftables, the default) or the kernel's IPVS sync daemons (the IPVS backend,
   * whose connections live in IPVS's own table); `lab mode` picks it from the backend the balancers will use.
   */
  syncEngine?: LabSyncEngine;
  /** vrrp: keepalived's advert interval in ms (default 100). */
  advertIntervalMs?: number;
  /**
   * More L4 tcp services on the VIP, one per port, each to the same port of
   * every RS, in the same mode (the data-path bench's iperf3). Source hash:
   * a client keeps its RS, as iperf3's control and data connections must.
   */
  extraTcpPorts?: readonly number[];
}

export type LabSyncEngine = 'conntrackd' | 'ipvs';

export const DEFAULT_LAB_OPTIONS: LabModeOptions = { backend: 'auto', encapsulation: 'none', protocol: 'tcp', cache: false };

/** What the lab's mode is called in its output: "reverse proxy / full NAT", "L7 reverse proxy (http, cache)". */
export function labModeTitle(mode: Mode, o: Pick<LabModeOptions, 'protocol' | 'cache'>): string {
  if (o.protocol === 'tcp') return MODE_TITLES[mode];
  return `L7 ${mode === 'fullnat' ? 'reverse proxy' : 'transparent'} (${o.protocol}${o.cache ? ', cache' : ''})`;
}

/** The lab's VRRP group of the pair (any 1-255 not used on the segment). */
export const LAB_VRRP_ROUTER_ID = 51;

/** vrrp: keepalived (lb the first master by priority, nopreempt) and, unless sync is off, conntrackd to the peer or the IPVS sync daemons. */
function vrrpConfig(self: BalancerName, topology: LabTopology, sync: boolean, engine: LabSyncEngine, advertInterval: number) {
  const peer = addressOf(topology, BALANCERS.find((b) => b !== self) ?? 'lb');
  // IPVS: a master and a backup daemon on each balancer, multicast on the pair's segment; the VRRP group's id as sync id.
  const syncSettings = engine === 'ipvs' ? { engine, interface: 'eth0', syncId: LAB_VRRP_ROUTER_ID } : { engine, interface: 'eth0', peer };
  return {
    vrrp: {
      interface: 'eth0',
      virtualRouterId: LAB_VRRP_ROUTER_ID,
      priority: self === 'lb' ? 150 : 100,
      peers: [peer],
      advertInterval,
      addresses: [topology.floatingAddress],
    },
    ...(sync ? { sync: syncSettings } : {}),
  };
}

/** The lab's one service ("web" on the VIP) in a mode; `self`: which balancer of a pair the config is for (vrrp). */
/**
 * How a provider's pair differs from the netns lab's: the Vagrant VMs run without BFD (its 300 ms timers never
 * came up under QEMU's emulation) and without the data-path health check (its probe needs the host-built `cap`
 * addon, which the VMs' older Node cannot load).
 */
export interface PairVariant {
  bfd?: boolean;
  healthCheck?: boolean;
}

export function labServiceConfig(
  mode: Mode,
  topology: LabTopology,
  o: LabModeOptions = DEFAULT_LAB_OPTIONS,
  self: BalancerName = 'lb',
  variant: PairVariant = {},
): string {
  const router = topology.hosts.find((h) => h.name === 'router')?.interfaces.find((i) => i.segment === 'server-net');
  const config = {
    backend: o.backend,
    // Both balancers announce the VIP to the router, which spreads flows over them; mh (Maglev) makes them agree on each flow's server.
    ...(o.ha === 'ecmp' && router
      ? {
          ha: {
            bgp: {
              asn: LAB_BALANCER_ASN,
              peers: [{ address: router.cidr.split('/')[0], asn: LAB_ROUTER_ASN }],
              // Each learns the other's VIP routes, to say when their Maglev parameters differ (each skips its own address).
              balancers: BALANCERS.map((b) => addressOf(topology, b)),
              ...(variant.bfd === false ? { bfd: false } : {}),
            },
          },
        }
      : {}),
    ...(o.ha === 'vrrp'
      ? { ha: vrrpConfig(self, topology, o.sync !== false, o.syncEngine ?? 'conntrackd', o.advertIntervalMs ?? 100) }
      : {}),
    // A new master must not pick a connection up mid-stream: full NAT keeps the client's port, so a flow it NATs
    // anew to the same real server would go on, by luck of the scheduler. Off, only the synced state carries one.
    // On IPVS that guard is IPVS's own (net.ipv4.vs.sloppy_tcp off: no scheduling from a mid-stream packet), and
    // conntrack must pick the flow up: the source NAT beside IPVS needs a conntrack entry for the synced connection.
    ...(o.ha === 'vrrp' ? { conntrack: { tcpLoose: o.syncEngine === 'ipvs' } } : {}),
    services: [
      {
        name: 'web',
        vip: topology.vip,
        port: o.protocol === 'https' ? 443 : topology.servicePort,
        protocol: o.protocol,
        mode,
        scheduler: o.ha === 'ecmp' ? 'mh' : 'rr',
        ...(o.encapsulation === 'ipip' ? { encapsulation: o.encapsulation } : {}),
        // The pair's source address floats with the VIP: the real server answers whichever balancer holds the connection.
        ...(o.ha === 'vrrp' && mode === 'fullnat' ? { snatAddress: topology.floatingAddress } : {}),
        ...(o.protocol === 'https' && o.tls ? { tls: o.tls } : {}),
        ...(o.cache ? { cache: { maxAge: 60, maxObjectSize: '1m', totalSize: '16m' } } : {}),
        // One of two balancers: a balancer whose real servers all fail its checks withdraws the VIP.
        ...(o.ha && variant.healthCheck !== false ? { healthCheck: { type: 'tcp' } } : {}),
        realServers: REAL_SERVERS.map((h) => ({ address: addressOf(topology, h), port: topology.servicePort, weight: 1 })),
      },
      ...(o.extraTcpPorts ?? []).map((port) => ({
        name: `tcp-${port}`,
        vip: topology.vip,
        port,
        protocol: 'tcp',
        mode,
        scheduler: 'sh',
        ...(o.encapsulation === 'ipip' ? { encapsulation: o.encapsulation } : {}),
        realServers: REAL_SERVERS.map((h) => ({ address: addressOf(topology, h), port, weight: 1 })),
      })),
    ],
  };
  const pair =
    o.ha === 'vrrp'
      ? `, ${self} of a VRRP pair${o.sync === false ? ' without state sync' : o.syncEngine === 'ipvs' ? ', IPVS sync daemons' : ''}`
      : '';
  return `# slbctl lab: ${labModeTitle(mode, o)}${o.ha === 'ecmp' ? ', one of two balancers (--ha ecmp)' : pair}\n${stringify(config)}`;
}
