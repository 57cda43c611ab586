// Kernel-facing state: a service with everything resolved that the data path
// needs (devices, SNAT address, MACs). The planner compares the desired form
// (config + observed host) with the programmed form (read back from the kernel).
import {
  CacheSettings,
  Encapsulation,
  MaglevSettings,
  L7Mode,
  L7Protocol,
  L7Scheduler,
  Mode,
  Persistence,
  Protocol,
  Scheduler,
  TlsFiles,
} from './types';
import type { TableInventory } from '../kernel/nft/inventory';
import type { SnatObserved } from '../kernel/iptables/snat';

export interface RealServerState {
  address: string;
  port: number;
  weight: number;
  /** dsr: the real server's MAC, from the neighbour table. */
  mac?: string;
  /** Read back from IPVS only: its connection counters for this real server. */
  connections?: { active: number; inactive: number };
  /** Read back from IPVS only: traffic through this real server. */
  counters?: { packets: number; bytes: number };
}

export interface ServiceState {
  name: string;
  vip: string;
  port: number;
  protocol: Protocol;
  mode: Mode;
  scheduler: Scheduler;
  /** Interface that carries the VIP (and, for dsr, receives the client's packets). */
  device: string;
  /** fullnat: the balancer's address used as source towards the real servers (a pool's first). */
  snatAddress?: string;
  /** fullnat with a pool of two or more source addresses: all of them, in config order (a flow hash picks one). */
  snatPool?: string[];
  /** fullnat: the source-port range of the source NAT, "low-high"; the kernel's own when absent. */
  snatPorts?: string;
  /** mh on nftables: the Maglev table size and seed, only when not the defaults (maglev.ts). */
  maglev?: MaglevSettings;
  /** IPVS: client affinity for a timeout. */
  persistence?: Persistence;
  /** dsr over IPVS: ipip sends the packet in an IP-in-IP tunnel to the RS. */
  encapsulation?: Encapsulation;
  /** dsr: interface towards the real servers and its MAC (the new source MAC). */
  forwardDevice?: string;
  forwardMac?: string;
  realServers: RealServerState[];
  /** Read back from the kernel only: traffic counters of the service's rule. */
  counters?: { packets: number; bytes: number };
  /** Read back from the kernel only: the backend map keys the service holds (to delete exactly those). */
  backendKeys?: string[];
  /** Read back from nftables only: the service's other pieces, so a change or repair touches exactly what is there. */
  nft?: NftServicePieces;
}

export interface NftServicePieces {
  /** The table the pieces were read from. */
  family: Family;
  /** The services-map element's verdict ("jump svc_…"), undefined when the element is missing. */
  map?: string;
  /** Whether the service's chain exists. */
  chain: boolean;
  /** Fingerprints of the chain's rules (rules.ts). */
  rules: string[];
  /** Backend map slots: "vip . port . slot" -> real server ("address . port", or a MAC for dsr). */
  backends: Record<string, string>;
}

export interface OwnedAddress {
  address: string;
  device: string;
}

export type Family = 'ip' | 'netdev';

export interface KernelState {
  services: ServiceState[];
  /** Addresses slbctl added (and will remove when no service uses them). */
  ownedAddresses: OwnedAddress[];
  /** VIP routes slbctl added (vipAs route; absent: none). */
  ownedRoutes?: OwnedAddress[];
  /** The slbctl tables present in the kernel. */
  tables: Family[];
  /** netdev ingress chains slbctl has, by device. */
  ingressDevices: string[];
  /** nftables only: every object of slbctl's tables, for the drift check of what is not a service. */
  nftTables?: Partial<Record<Family, TableInventory>>;
  /** IPVS only: the iptables source-NAT chain beside IPVS, as it is. */
  snat?: SnatObserved;
  /** nftables only: the ruleset generation the tables were observed at (undefined: unknown, or it moved while they were listed). */
  nftGeneration?: number;
  /** nftables only: taken from slbctl's record of its last apply at this same generation (kernel/nft/applied.ts), not listed. */
  nftRecorded?: boolean;
  /** Observed for a plan of a few services (ObserveOptions.touching): those of `services`, so the plan need not look for them. */
  touched?: ServiceState[];
}

export const EMPTY_STATE: KernelState = { services: [], ownedAddresses: [], tables: [], ingressDevices: [] };

/**
 * An L7 service (http, https) as the L7 engine (HAProxy) runs it: resolved
 * like an L4 service (the VIP's device, the source address towards the real
 * servers), plus what only a proxy has (TLS, a cache).
 */
export interface L7ServiceState {
  name: string;
  vip: string;
  port: number;
  protocol: L7Protocol;
  mode: L7Mode;
  scheduler: L7Scheduler;
  device: string;
  /** fullnat: the balancer's address the real servers see. */
  snatAddress?: string;
  tls?: TlsFiles;
  cache?: CacheSettings;
  realServers: { address: string; port: number; weight: number }[];
}

/** The L7 engine as it runs in this namespace. */
export interface L7Observed {
  /** Its master process runs (and is HAProxy). */
  running: boolean;
  /** The services it serves (its last applied model), weights as its runtime API reports them now. */
  services: L7ServiceState[];
  /** The transparent proxy's return path (TPROXY mark, rule, local route): every piece there, or only some; absent when none is. */
  returnPath?: 'complete' | 'partial';
}
