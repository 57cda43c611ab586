// One interface for every kernel backend (nftables, IPVS, and the next ones):
// what it can do, the sysctls its data path needs, its part of a plan, how it
// describes its own changes, and a driver that reads and writes the kernel.
// The engine, the planner, the controller and the CLI know only this; each
// backend is one folder under src/backends plus its line in registry.ts.
import { Config, Encapsulation, Scheduler } from '../model/types';
import { KernelState, OwnedAddress, RealServerState, ServiceState } from '../model/state';
import { NetInterface } from '../kernel/rtnl/rtnl';
import { BackendChanges, DesiredState, Plan } from '../plan/types';
import { Ownership } from '../records/ownership';
import { BackendName } from './names';

export interface BackendCapabilities {
  schedulers: readonly Scheduler[];
  /** Client affinity with a timeout (IPVS persistence). */
  persistence: boolean;
  /** How dsr may reach the real servers besides rewriting the MAC ('none'). */
  encapsulations: readonly Encapsulation[];
  /** dsr rewrites MACs itself: every real server's MAC must be known (from ARP). */
  dsrNeedsMacs: boolean;
  /** fullnat's source NAT takes a pool of addresses (snatAddresses) and a port range (snatPorts). */
  snatPool: boolean;
  /** What the backend is called in messages ("the nftables backend"). */
  title: string;
}

/** What the planner asks a backend, before and after the diff of services every backend shares. */
export interface PlanHooks<C> {
  /**
   * Its changes that go first (tables, hooks, rebuilds), and the kernel as the
   * shared diff must see it (a table being rebuilt holds no services).
   */
  prepare(desired: DesiredState, kernel: KernelState): { kernel: KernelState; first: C[] };
  /**
   * Its changes after the services: repairs (`touched`: the services the plan
   * rewrites anyway), then those that go last (tables and hooks removed).
   */
  finish(desired: DesiredState, kernel: KernelState, touched: ReadonlySet<string>): { repairs: C[]; last: C[] };
}

/** How long drain must wait, as far as the balancer can see. */
export interface Progress {
  active: number;
  inactive: number;
  /** false: the balancer cannot see the connections (DSR on nftables is stateless). */
  visible: boolean;
}

/** An open connection to one backend in the kernel, for one command or one controller. */
export interface ObserveOptions {
  /**
   * A plan may start from the backend's own record of its last apply when the
   * kernel shows nothing changed since (nftables: the ruleset generation). Off
   * for whoever needs the kernel's traffic counters (status, drain, the
   * controller when /metrics asks): a record has none.
   */
  fromRecord?: boolean;
  /** The keys of the services the plan diffs, when it diffs only those (src/plan/planner.ts PlanScope). */
  touching?: ReadonlySet<string>;
}

export interface BackendDriver {
  /** slbctl's services as the kernel holds them; `foreign` names services of the same key slbctl did not create. */
  observe(
    ownership: Ownership,
    o?: ObserveOptions,
  ): Promise<{ kernel: KernelState; foreign: string[]; legacyOwnedAddresses: OwnedAddress[] }>;
  /**
   * A token that changes whenever anything in the backend's kernel state may
   * have changed, read in one cheap request (nftables: the ruleset
   * generation); undefined when the backend has none. The controller skips a
   * resync while it, the config and the host are as they were at its last
   * plan with nothing to do.
   */
  stamp?(): Promise<string | undefined>;
  /**
   * The services of the backend's record of its tables when that record
   * stands for the kernel at this stamp (nftables: src/kernel/nft/applied.ts),
   * else undefined. A plan that skips or narrows its diff (src/engine/plan-memo.ts) starts from it.
   */
  recordAt?(stamp: string): readonly ServiceState[] | undefined;
  /** Called with every plan made from a config (a backend may note what it learned, e.g. nftables' record of its tables). */
  planned?(plan: Plan): void;
  /** Refuse (PreflightError) what this host cannot do for the plan, before anything changes. */
  preflight(plan: Plan): void;
  /** Make the backend's part of the plan, all or nothing (a transaction, or undone step by step). `passFd`: the write lock, for the tools it starts. */
  execute(plan: Plan, log: (line: string) => void, passFd?: number): Promise<void>;
  /** What happens after the plan ran and is worth a log line (e.g. UDP flows of a removed real server expired). */
  afterApply(plan: Plan, log: (line: string) => void): Promise<void>;
  /** The connections a real server of a service has now. */
  connections(service: ServiceState, realServer: RealServerState): Promise<Progress>;
  /** Kernel requests sent since it opened, where the backend counts them (the IPVS benchmark and tests do). */
  requestsSent?(): number;
  close(): void;
}

export interface Backend<B extends BackendName & keyof BackendChanges = BackendName & keyof BackendChanges> {
  readonly name: B;
  readonly capabilities: BackendCapabilities;
  /** A driver on this host; throws a PreflightError saying why not. */
  open(): Promise<BackendDriver>;
  /** A driver, or undefined when this host does not have the backend (auto, destroy, status). */
  tryOpen(): Promise<BackendDriver | undefined>;
  /** The sysctls its data path needs for these services. */
  sysctls(services: readonly ServiceState[], config: Config, interfaces: readonly NetInterface[]): Record<string, string>;
  readonly plan: PlanHooks<BackendChanges[B]>;
  /** Its changes as `slbctl plan` prints them, one line or more each. */
  describe(change: BackendChanges[B]): string[];
  /** The backend's own transaction as text (`slbctl plan` shows it; nftables), or '' when it has none. */
  script(plan: Plan): string;
  /**
   * What only this backend adds outside its own tables, in the ownership
   * record (src/records/ownership.ts): `intent` writes what the plan will add
   * as "adding" before it runs, `after` what the backend owns once it ran.
   * Both change `record` in place.
   */
  readonly ownership?: {
    intent(record: Ownership, plan: Plan): void;
    after(record: Ownership, plan: Plan): void;
  };
}
