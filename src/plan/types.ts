// A plan is plain data: the list of operations apply will perform, in order.
import { Family, KernelState, OwnedAddress, RealServerState, ServiceState } from '../model/state';
import type { SnatObserved, SnatRule } from '../kernel/iptables/snat';
import type { Ownership } from '../records/ownership';

export type Op =
  | { op: 'set-sysctl'; key: string; from: string; to: string }
  | { op: 'create-table'; family: Family }
  | { op: 'add-ingress'; device: string }
  | { op: 'add-address'; address: string; device: string }
  | { op: 'add-service'; service: ServiceState }
  | { op: 'update-service'; before: ServiceState; after: ServiceState; changes: string[] }
  | { op: 'delete-service'; service: ServiceState }
  | { op: 'add-real-server'; service: ServiceState; realServer: RealServerState }
  | { op: 'update-real-server'; service: ServiceState; before: RealServerState; after: RealServerState }
  | { op: 'delete-real-server'; service: ServiceState; realServer: RealServerState }
  | { op: 'delete-ingress'; device: string }
  | { op: 'delete-address'; address: string; device: string }
  /** An address slbctl added is already gone: drop only the record of it (so a later, foreign address is never removed). */
  | { op: 'forget-address'; address: string; device: string }
  | { op: 'delete-table'; family: Family }
  // Drift repairs: what a hand edit broke in objects slbctl owns.
  /** nftables: a set or map of the table is missing or of the wrong type: the table is built anew (one transaction). */
  | { op: 'rebuild-table'; family: Family; reasons: string[] }
  /** nftables: a hook chain is missing, hooked wrongly, or its rules differ. */
  | { op: 'repair-chain'; family: Family; chain: string; reasons: string[] }
  /** nftables: a service's pieces (map element, chain, rule, backend slots) differ from its settings. */
  | { op: 'repair-service'; before: ServiceState; after: ServiceState; reasons: string[] }
  /** nftables: the source-NAT chain of a VIP or its fullnat_vips element differs. */
  | { op: 'repair-snat'; vip: string; reasons: string[] }
  /** nftables: an object in slbctl's table that slbctl does not make (added by hand, or left by an older version). */
  | { op: 'delete-object'; family: Family; kind: 'chain' | 'set' | 'map'; name: string }
  /** IPVS: the iptables source-NAT chain beside IPVS (SLBCTL-SNAT) and its jump, made to hold exactly these rules. */
  | { op: 'set-snat'; before: SnatObserved; after: SnatRule[] };

/** What slbctl wants the kernel to hold. */
export interface DesiredState {
  /** Which backend holds the services (nft: slbctl's tables; ipvs: kernel IPVS). */
  backend: 'nft' | 'ipvs';
  services: ServiceState[];
  /** VIPs that must be on an interface. */
  addresses: OwnedAddress[];
  /** sysctl key (dotted) -> value the data path needs. */
  sysctls: Record<string, string>;
  /** destroy: `sysctls` puts back what slbctl changed, and the record of them ends. */
  restoreSysctls?: boolean;
}

/** What the kernel holds now. */
export interface ObservedState {
  kernel: KernelState;
  /** Every IPv4 address on every interface (owned by slbctl or not). */
  addresses: OwnedAddress[];
  /** Current values of the sysctls named in DesiredState. */
  sysctls: Record<string, string>;
  /** The ownership record as read before planning (undefined in pure tests: nothing recorded). */
  ownership?: Ownership;
}

export interface Plan {
  ops: Op[];
  /** The full desired state, which executors render from. */
  desired: DesiredState;
  observed: ObservedState;
}
