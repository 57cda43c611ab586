// The desired state: what the operator asks for, validated and normalised.
// Pure data; the kernel backends translate it.
import type { HealthCheck } from './health';
import { BACKEND_NAMES } from '../backends/names';

export const MODES = ['fullnat', 'transparent', 'dsr'] as const;
export type Mode = (typeof MODES)[number];

/** The L4 protocols: the kernel (nftables, IPVS) forwards their packets. */
export const PROTOCOLS = ['tcp', 'udp'] as const;
export type Protocol = (typeof PROTOCOLS)[number];
/**
 * The L7 service types: the balancer (HAProxy) ends the client's TCP
 * connection itself and opens its own to a real server once the HTTP request
 * has arrived; https ends TLS at the balancer and speaks HTTP to the RS.
 */
export const L7_PROTOCOLS = ['http', 'https'] as const;
export type L7Protocol = (typeof L7_PROTOCOLS)[number];
/** What a service's `protocol:` may be: an L4 protocol or an L7 service type. */
export const SERVICE_PROTOCOLS = [...PROTOCOLS, ...L7_PROTOCOLS] as const;
export type ServiceProtocol = (typeof SERVICE_PROTOCOLS)[number];
export const isL7 = (p: ServiceProtocol): p is L7Protocol => (L7_PROTOCOLS as readonly string[]).includes(p);
/** The L7 modes: dsr is L4 only (the balancer never sees the reply, so it cannot proxy it). */
export const L7_MODES = ['fullnat', 'transparent'] as const satisfies readonly Mode[];
export type L7Mode = (typeof L7_MODES)[number];

/**
 * rr: round robin; wrr/weighted: weighted round robin; sh: source hash
 * (one client address always lands on one real server). The others are
 * IPVS's own schedulers, available with the IPVS backend only.
 */
export const SCHEDULERS = ['rr', 'wrr', 'sh', 'lc', 'wlc', 'lblc', 'lblcr', 'dh', 'sed', 'nq', 'fo', 'ovf', 'mh'] as const;
/** The schedulers the nftables backend implements. */
export const NFT_SCHEDULERS = ['rr', 'wrr', 'sh', 'mh'] as const satisfies readonly Scheduler[];
export const ENCAPSULATIONS = ['none', 'ipip'] as const;
export type Encapsulation = (typeof ENCAPSULATIONS)[number];
export type Scheduler = (typeof SCHEDULERS)[number];
export const SCHEDULER_ALIASES: Record<string, Scheduler> = { weighted: 'wrr' };
/** The schedulers of the L7 engine (HAProxy's roundrobin, source and leastconn). */
export const L7_SCHEDULERS = ['rr', 'wrr', 'sh', 'lc'] as const satisfies readonly Scheduler[];
export type L7Scheduler = (typeof L7_SCHEDULERS)[number];

/** https: the certificate (PEM, chain allowed) and its private key (PEM) the balancer presents. */
export interface TlsFiles {
  certificate: string;
  key: string;
}

/** An L7 service's static cache: responses cacheable by their headers are kept and answered by the balancer. */
export interface CacheSettings {
  /** The longest an object is kept, in seconds (its own Cache-Control may say less). */
  maxAge: number;
  /** The largest object kept, in bytes. */
  maxObjectSize: number;
  /** The whole cache's size, in bytes (HAProxy counts it in whole MiB). */
  totalSize: number;
}

/**
 * A VIP that another host on the segment already answers for: refuse (the
 * default) stops apply before two hosts claim one address; allow adds it
 * anyway (an address moved here on purpose, e.g. by a failover tool).
 */
export const VIP_PRESENCE = ['refuse', 'allow'] as const;
export type VipPresence = (typeof VIP_PRESENCE)[number];
/** How slbctl holds its VIPs: interface addresses (ip addr), or local routes in table local (AnyIP). */
export const VIP_FORMS = ['address', 'route'] as const;
export type VipForm = (typeof VIP_FORMS)[number];

export const BACKENDS = ['auto', ...BACKEND_NAMES] as const;
export type BackendChoice = (typeof BACKENDS)[number];

export interface RealServer {
  address: string;
  port: number;
  weight: number;
}

/** The Maglev table size and flow-hash seed a service has without `maglev:` (src/kernel/nft/maglev.ts says why 1021). */
export const MAGLEV_DEFAULTS: Readonly<MaglevSettings> = { size: 1021, seed: 0x51b };

/**
 * mh on nftables: the Maglev table's size (a prime) and the seed of the flow
 * hash that indexes it. Every balancer of a VIP must use the same pair, or
 * they send one flow to different real servers.
 */
export interface MaglevSettings {
  size: number;
  seed: number;
}

export interface Service {
  /** Operator's name for the service (defaults to "<protocol>/<vip>:<port>"). */
  name: string;
  vip: string;
  port: number;
  protocol: ServiceProtocol;
  mode: Mode;
  scheduler: Scheduler;
  /** https only: what the balancer presents to clients. */
  tls?: TlsFiles;
  /** http/https only: a static cache in the balancer. */
  cache?: CacheSettings;
  /** Interface that carries the VIP; found from the routing table when absent. */
  interface?: string;
  /** Set only to allow: add the VIP even when another host on the segment answers for it. */
  vipAlreadyPresent?: 'allow';
  /** fullnat only: source address towards the real servers (the pool's first); the LB's own address on their subnet when absent. */
  snatAddress?: string;
  /** fullnat only, from `snatAddresses:` with two or more: every source address, connections spread over them by a flow hash. */
  snatPool?: string[];
  /** fullnat only: the source ports the source NAT may take, "low-high" (the kernel's 1024-65535 when absent). */
  snatPorts?: string;
  /** dsr only: ipip wraps the client's packet in IP-in-IP to the RS (IPVS tunnel mode) instead of rewriting the MAC. */
  encapsulation?: Encapsulation;
  /** mh on nftables only: the Maglev table size and flow-hash seed (slbctl's defaults when absent). */
  maglev?: MaglevSettings;
  /** IPVS only: a client (its address under the netmask) keeps its real server for `timeout` seconds. */
  persistence?: Persistence;
  /** How each real server's health is checked (used by `slbctl run`). */
  healthCheck?: HealthCheck;
  /** What `slbctl run` does with a real server that fails its checks (default quiesce: weight 0). */
  failurePolicy?: FailurePolicy;
  /** Serves when every real server is down or drained (slbctl run). */
  sorryServer?: { address: string; port: number };
  realServers: RealServer[];
}

/**
 * quiesce: weight 0, no new connections, existing ones finish; remove: the
 * real server leaves the service until it passes `rise` checks again.
 */
export const FAILURE_POLICIES = ['quiesce', 'remove'] as const;
export type FailurePolicy = (typeof FAILURE_POLICIES)[number];

export interface Persistence {
  timeout: number;
  netmask: string;
}

/** A BGP neighbour of the balancer: a router directly connected to one of its subnets. */
export interface BgpPeer {
  address: string;
  asn: number;
}

/**
 * Active/active: a BGP speaker (BIRD) on this balancer announces each VIP as a
 * /32 to the peers while its service has a real server to send to and
 * `slbctl run` runs; the router spreads flows over the balancers by ECMP.
 */
export interface BgpSettings {
  /** This balancer's AS number. */
  asn: number;
  peers: BgpPeer[];
  /** BGP router id; the address that faces the first peer when absent. */
  routerId?: string;
  /** BFD with each peer (100 ms x 3): a dead balancer is noticed in about 0.3 s, not a hold time. */
  bfd: boolean;
  /** Seconds without a keepalive before a peer is declared down (keepalives every third of it). */
  holdTime: number;
  /**
   * The balancers announcing the same VIPs (same AS, directly connected; each skips its own address, so
   * one list serves them all). BIRD holds an iBGP
   * session with each that only learns their VIP routes, never installed nor passed on, so that this
   * balancer sees their Maglev (size, seed) communities and says when they differ from its own.
   */
  balancers?: string[];
}

/**
 * Active/standby: keepalived (VRRP only, no LVS section) on this balancer and
 * its partner elect one master, which holds every VIP as a /32 on
 * `interface` (plus `addresses`); slbctl programs the services on both and
 * leaves the VIPs to keepalived.
 */
export interface VrrpSettings {
  /** The interface VRRP speaks on and the VIPs go to (a service's own `interface:` wins for its VIP). */
  interface: string;
  /** The VRRP group (1-255); both balancers of a pair use the same one, and no other pair on the segment does. */
  virtualRouterId: number;
  /** 1-254; the higher one is master when both start (no preemption afterwards). */
  priority: number;
  /** Unicast VRRP to these addresses (the other balancer), instead of multicast to 224.0.0.18. */
  peers: string[];
  /** Milliseconds between adverts (VRRPv3: a multiple of 10); the backup takes over after about 3 of them. */
  advertIntervalMs: number;
  /** Floating addresses besides the VIPs (e.g. the fullnat source address the real servers answer), as address/prefix. */
  addresses: string[];
}

/** Connection state for the standby: conntrackd (FTFW over UDP unicast) with the other balancer (nftables NAT). */
export interface ConntrackdSyncSettings {
  engine: 'conntrackd';
  /** The interface that faces the other balancer (a dedicated link, ideally). */
  interface: string;
  /** The other balancer's unicast address on that interface. */
  peer: string;
}

/**
 * Connection state for the standby on the IPVS backend: the kernel's IPVS
 * sync daemons, a master and a backup on each balancer, multicasting every
 * connection IPVS schedules to the group on `interface`.
 */
export interface IpvsSyncSettings {
  engine: 'ipvs';
  interface: string;
  /** 1-255, the same on both balancers of the pair: a backup takes only messages of its id. */
  syncId: number;
  /** IPv4 multicast group (default 224.0.0.81, the kernel's). */
  group: string;
  /** UDP port (default 8848, the kernel's). */
  port: number;
}

export type SyncSettings = ConntrackdSyncSettings | IpvsSyncSettings;

export interface HaSettings {
  bgp?: BgpSettings;
  vrrp?: VrrpSettings;
  sync?: SyncSettings;
}

/** keepalived's own default advert interval (1 s); see docs/ha.md for why slbctl keeps it. */
export const VRRP_DEFAULTS = { advertIntervalMs: 1000 } as const;
export const SYNC_ENGINES = ['conntrackd', 'ipvs'] as const;
export const IPVS_SYNC_DEFAULTS = { group: '224.0.0.81', port: 8848 } as const;

/** ASNs a balancer may use: 32-bit, without 0, AS_TRANS (23456) and the reserved last one. */
export const ASN_RANGE = { min: 1, max: 4294967294 } as const;
export const AS_TRANS = 23456;
export const BGP_DEFAULTS = { bfd: true, holdTime: 3 } as const;

export interface Config {
  backend: BackendChoice;
  services: Service[];
  /** One balancer of several (absent: a balancer on its own). */
  ha?: HaSettings;
  conntrack?: ConntrackTimeouts;
  /** route: the VIPs are `local VIP/32 dev IFACE table local` routes, not addresses (absent: addresses). */
  vipAs?: 'route';
}

/**
 * Connection-tracking timeouts of the balancer's namespace, in seconds (the
 * per-namespace sysctls net.netfilter.nf_conntrack_tcp_timeout_*). Full NAT
 * keeps a closed connection's entry, and with it its source port, for the
 * TIME_WAIT timeout (120 s by default): short ones let ports be reused sooner.
 */
export interface ConntrackTimeouts {
  tcpTimeWait?: number;
  tcpClose?: number;
  tcpFinWait?: number;
  tcpCloseWait?: number;
  /**
   * nf_conntrack_tcp_loose: whether conntrack picks up a TCP connection it
   * sees mid-stream (kernel default: yes). A standby that becomes master
   * without the connection's state then NATs it as a new flow, to whichever
   * real server its scheduler picks; false: such packets are invalid and the
   * connection ends, so only synced state (ha.sync) carries one over.
   */
  tcpLoose?: boolean;
}

/** Each conntrack timeout key and the sysctl that holds it. */
export const CONNTRACK_SYSCTLS: Record<keyof ConntrackTimeouts, string> = {
  tcpTimeWait: 'net.netfilter.nf_conntrack_tcp_timeout_time_wait',
  tcpClose: 'net.netfilter.nf_conntrack_tcp_timeout_close',
  tcpFinWait: 'net.netfilter.nf_conntrack_tcp_timeout_fin_wait',
  tcpCloseWait: 'net.netfilter.nf_conntrack_tcp_timeout_close_wait',
  tcpLoose: 'net.netfilter.nf_conntrack_tcp_loose',
};

/** The source ports the kernel's source NAT takes when a service sets none (ports under 1024 keep to themselves). */
export const DEFAULT_SNAT_PORTS = { low: 1024, high: 65535 };

/** "1024-65535" -> its bounds. */
export function snatPortRange(text: string | undefined): { low: number; high: number } {
  const m = text === undefined ? undefined : /^(\d+)-(\d+)$/.exec(text);
  return m ? { low: Number(m[1]), high: Number(m[2]) } : { ...DEFAULT_SNAT_PORTS };
}

/** The key that identifies a service in the kernel: protocol, VIP and port. */
export function serviceKey(s: { protocol: ServiceProtocol; vip: string; port: number }): string {
  return `${s.protocol}/${s.vip}:${s.port}`;
}

export function realServerKey(r: Pick<RealServer, 'address' | 'port'>): string {
  return `${r.address}:${r.port}`;
}

/** The transport port a service takes on its VIP: an http service and a tcp service cannot share VIP:port. */
export function transportKey(s: { protocol: ServiceProtocol; vip: string; port: number }): string {
  return `${s.protocol === 'udp' ? 'udp' : 'tcp'}/${s.vip}:${s.port}`;
}

/**
 * The keys of a list of services, each worked out once while the list's
 * objects stay where they were: each caller keeps one, and the next list it
 * is given (the next plan's record, the next config) is keyed from the last
 * by the places where the two differ.
 */
export class ServiceKeys {
  private last: { services: readonly { protocol: ServiceProtocol; vip: string; port: number }[]; keys: string[] } | undefined;

  of(services: readonly { protocol: ServiceProtocol; vip: string; port: number }[]): string[] {
    const last = this.last;
    if (last?.services === services) return last.keys;
    const same = last !== undefined && last.services.length === services.length;
    const keys = new Array<string>(services.length);
    for (let i = 0; i < services.length; i++) keys[i] = same && last.services[i] === services[i] ? last.keys[i] : serviceKey(services[i]);
    this.last = { services, keys };
    return keys;
  }
}
