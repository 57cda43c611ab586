// A plan is plain data: the list of operations apply will perform, in order.
import { Family, KernelState, OwnedAddress, RealServerState, ServiceState } from '../model/state';

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
  | { op: 'delete-table'; family: Family };

/** What slbctl wants the kernel to hold. */
export interface DesiredState {
  /** Which backend holds the services (nft: slbctl's tables; ipvs: kernel IPVS). */
  backend: 'nft' | 'ipvs';
  services: ServiceState[];
  /** VIPs that must be on an interface. */
  addresses: OwnedAddress[];
  /** sysctl key (dotted) -> value the data path needs. */
  sysctls: Record<string, string>;
}

/** What the kernel holds now. */
export interface ObservedState {
  kernel: KernelState;
  /** Every IPv4 address on every interface (owned by slbctl or not). */
  addresses: OwnedAddress[];
  /** Current values of the sysctls named in DesiredState. */
  sysctls: Record<string, string>;
}

export interface Plan {
  ops: Op[];
  /** The full desired state, which executors render from. */
  desired: DesiredState;
  observed: ObservedState;
}
