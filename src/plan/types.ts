// A plan is plain data: the list of operations apply will perform, in order.
import { KernelState, L7Observed, L7ServiceState, OwnedAddress, RealServerState, ServiceState } from '../model/state';
import type { BackendName } from '../backends/names';
import type { Ownership } from '../records/ownership';

/** The operations every backend shares: sysctls, VIP addresses, services and their real servers. */
export type GenericOp =
  | { op: 'set-sysctl'; key: string; from: string; to: string }
  | { op: 'add-address'; address: string; device: string }
  | { op: 'add-service'; service: ServiceState }
  | { op: 'update-service'; before: ServiceState; after: ServiceState; changes: string[] }
  | { op: 'delete-service'; service: ServiceState }
  | { op: 'add-real-server'; service: ServiceState; realServer: RealServerState }
  | { op: 'update-real-server'; service: ServiceState; before: RealServerState; after: RealServerState }
  | { op: 'delete-real-server'; service: ServiceState; realServer: RealServerState }
  | { op: 'delete-address'; address: string; device: string }
  /** An address slbctl added is already gone: drop only the record of it (so a later, foreign address is never removed). */
  | { op: 'forget-address'; address: string; device: string }
  /** vipAs route: `local VIP/32 dev DEVICE table local proto 245`. */
  | { op: 'add-route'; address: string; device: string }
  | { op: 'delete-route'; address: string; device: string }
  /** A VIP route slbctl added is already gone: drop only the record of it, as forget-address. */
  | { op: 'forget-route'; address: string; device: string }
  /** A change to the L7 engine (HAProxy) that serves the http and https services. */
  | { op: 'l7'; change: L7Change };

/**
 * What the L7 engine is asked to do: weights through its runtime API (no
 * reload), anything else by a seamless reload with a new configuration.
 */
export type L7Change =
  | { what: 'start'; services: L7ServiceState[] }
  | { what: 'reload'; services: L7ServiceState[]; changes: string[] }
  | { what: 'set-weight'; service: L7ServiceState; address: string; port: number; from: number; to: number }
  | { what: 'stop'; services: L7ServiceState[] }
  /** The transparent proxy's return path to the local socket (src/backends/haproxy/return-path.ts). */
  | { what: 'return-path'; add: boolean };

/**
 * The changes of each backend that the others do not have (nftables tables
 * and repairs, the source-NAT chain beside IPVS). Each backend's folder adds
 * its own entry by declaration merging (src/backends/NAME/index.ts), so a new
 * backend needs no edit here.
 */
// eslint-disable-next-line @typescript-eslint/no-empty-object-type
export interface BackendChanges {}

export type BackendOp = { [B in keyof BackendChanges]: { op: 'backend'; backend: B; change: BackendChanges[B] } }[keyof BackendChanges];

export type Op = GenericOp | BackendOp;

/** An operation's kind: the op, or for a backend's own change, what it does ("create-table", "set-snat" …). */
export function opKind(op: Op): string {
  return op.op === 'backend' ? (op.change as { what: string }).what : op.op;
}

/** The changes of one backend in a plan, in order. */
export function changesOf<B extends keyof BackendChanges>(ops: readonly Op[], backend: B): BackendChanges[B][] {
  return ops.flatMap((o) => (o.op === 'backend' && o.backend === backend ? [o.change as BackendChanges[B]] : []));
}

/** What slbctl wants the kernel to hold. */
export interface DesiredState {
  /** Which backend holds the services (nft: slbctl's tables; ipvs: kernel IPVS). */
  backend: BackendName;
  services: ServiceState[];
  /** VIPs that must be on an interface. */
  addresses: OwnedAddress[];
  /** vipAs route: VIPs that must be local routes of an interface (absent: none). */
  routes?: OwnedAddress[];
  /** sysctl key (dotted) -> value the data path needs. */
  sysctls: Record<string, string>;
  /** The http/https services, for the L7 engine; undefined leaves it as it is (a drain of L4 services), [] stops it. */
  l7?: L7ServiceState[];
  /** destroy: `sysctls` puts back what slbctl changed, and the record of them ends. */
  restoreSysctls?: boolean;
  /** Recorded sysctls the config no longer sets: `sysctls` puts them back, and the record of them ends. */
  releaseSysctls?: string[];
}

/** What the kernel holds now. */
export interface ObservedState {
  kernel: KernelState;
  /** Every IPv4 address on every interface (owned by slbctl or not). */
  addresses: OwnedAddress[];
  /** Every local /32 route of table local that no address made, by interface; slbctl: of slbctl's protocol (absent: none). */
  routes?: (OwnedAddress & { slbctl: boolean })[];
  /** Current values of the sysctls named in DesiredState. */
  sysctls: Record<string, string>;
  /** The L7 engine in this namespace (undefined: not looked at, e.g. HAProxy is not installed and nothing runs). */
  l7?: L7Observed;
  /** The ownership record as read before planning (undefined in pure tests: nothing recorded). */
  ownership?: Ownership;
}

export interface Plan {
  ops: Op[];
  /** The full desired state, which executors render from. */
  desired: DesiredState;
  observed: ObservedState;
}
