// The balancer's config for each mode of the lab, derived from the topology
// (one source of truth for addresses).
import { stringify } from 'yaml';
import { BackendChoice, Encapsulation, Mode } from '../model/types';
import { LabTopology, REAL_SERVERS, addressOf } from './topology';
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
  /** Two balancers: ecmp, each announces the VIP to the router over BGP (active/active). */
  ha?: HaKind;
  /**
   * More L4 tcp services on the VIP, one per port, each to the same port of
   * every RS, in the same mode (the data-path bench's iperf3). Source hash:
   * a client keeps its RS, as iperf3's control and data connections must.
   */
  extraTcpPorts?: readonly number[];
}

export const DEFAULT_LAB_OPTIONS: LabModeOptions = { backend: 'auto', encapsulation: 'none', protocol: 'tcp', cache: false };

/** What the lab's mode is called in its output: "reverse proxy / full NAT", "L7 reverse proxy (http, cache)". */
export function labModeTitle(mode: Mode, o: Pick<LabModeOptions, 'protocol' | 'cache'>): string {
  if (o.protocol === 'tcp') return MODE_TITLES[mode];
  return `L7 ${mode === 'fullnat' ? 'reverse proxy' : 'transparent'} (${o.protocol}${o.cache ? ', cache' : ''})`;
}

/** The lab's one service ("web" on the VIP) in a mode. */
export function labServiceConfig(mode: Mode, topology: LabTopology, o: LabModeOptions = DEFAULT_LAB_OPTIONS): string {
  const router = topology.hosts.find((h) => h.name === 'router')?.interfaces.find((i) => i.segment === 'server-net');
  const config = {
    backend: o.backend,
    // Both balancers announce the VIP to the router, which spreads flows over them; mh (Maglev) makes them agree on each flow's server.
    ...(o.ha === 'ecmp' && router
      ? { ha: { bgp: { asn: LAB_BALANCER_ASN, peers: [{ address: router.cidr.split('/')[0], asn: LAB_ROUTER_ASN }] } } }
      : {}),
    services: [
      {
        name: 'web',
        vip: topology.vip,
        port: o.protocol === 'https' ? 443 : topology.servicePort,
        protocol: o.protocol,
        mode,
        scheduler: o.ha === 'ecmp' ? 'mh' : 'rr',
        ...(o.encapsulation === 'ipip' ? { encapsulation: o.encapsulation } : {}),
        ...(o.protocol === 'https' && o.tls ? { tls: o.tls } : {}),
        ...(o.cache ? { cache: { maxAge: 60, maxObjectSize: '1m', totalSize: '16m' } } : {}),
        // One of two balancers: a balancer whose real servers all fail its checks withdraws the VIP.
        ...(o.ha ? { healthCheck: { type: 'tcp' } } : {}),
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
  return `# slbctl lab: ${labModeTitle(mode, o)}${o.ha ? `, one of two balancers (--ha ${o.ha})` : ''}\n${stringify(config)}`;
}
