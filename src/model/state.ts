// Kernel-facing state: a service with everything resolved that the data path
// needs (devices, SNAT address, MACs). The planner compares the desired form
// (config + observed host) with the programmed form (read back from the kernel).
import { Encapsulation, Mode, Persistence, Protocol, Scheduler } from './types';

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
  /** fullnat: the balancer's address used as source towards the real servers. */
  snatAddress?: string;
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
  /** The slbctl tables present in the kernel. */
  tables: Family[];
  /** netdev ingress chains slbctl has, by device. */
  ingressDevices: string[];
}

export const EMPTY_STATE: KernelState = { services: [], ownedAddresses: [], tables: [], ingressDevices: [] };
