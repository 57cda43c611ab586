// The one path to the kernel: observe -> plan -> execute (with rollback).
// apply, destroy and (later) the controller all go through here, whichever
// backend holds the services.
import { BackendChoice, CONNTRACK_SYSCTLS, Config } from '../model/types';
import { OwnedAddress } from '../model/state';
import { NetInterface, Rtnl, RtnlError } from '../kernel/rtnl/rtnl';
import { PROTOCOL_SLBCTL } from '../kernel/rtnl/routes';
import { readSysctl, writeSysctl } from '../kernel/rtnl/sysctl';
import { PreflightError } from '../util/errors';
import { CAP_NET_ADMIN, hasCapability } from '../util/caps';
import { plan as makePlan } from '../plan/planner';
import { DesiredState, ObservedState, Op, Plan } from '../plan/types';
import { ServiceState } from '../model/state';
import { BackendName, ResolveError, resolveConfig } from './resolve';
import { AUTO_ORDER, backendOf } from '../backends/registry';
import { Backend as BackendImpl, BackendDriver, ObserveOptions } from '../backends/types';
import { Ownership, hasIntent, readOwnership, sweepOwnershipLeftovers, writeOwnership } from '../records/ownership';
import { ownedAddressesOf, ownedRoutesOf, ownershipAfter, ownershipIntent, sameOwnership } from './ownership';
import { heldWriteLock } from '../records/lock';
import { checkVips } from './vip-checks';
import { L7Engine } from '../backends/haproxy/engine';
import { L7ServiceState } from '../model/state';
import { PlanInputs, memoFor, narrowPlan, readInputs, unchangedPlan } from './narrow';
import { HostInputs, digestInterfaces, forgetMemo, ownershipStamp, readMemo, sameConfig, writeMemo } from './plan-memo';

export type Backend = BackendName;

/** An open connection to the kernel for one command: rtnetlink, and the backend's driver. */
export interface KernelSession {
  backend: Backend;
  impl: BackendImpl;
  driver: BackendDriver;
  rtnl: Rtnl;
  /** The L7 engine (HAProxy) of this namespace, for the http and https services. */
  l7: L7Engine;
}

function requireRoot(): void {
  if (!hasCapability(CAP_NET_ADMIN)) {
    throw new PreflightError(
      'slbctl needs CAP_NET_ADMIN to read and program the kernel; run it as root, with sudo, or as the systemd unit (systemd/slbctl.service) that grants CAP_NET_ADMIN and CAP_NET_RAW',
    );
  }
}

const session = (impl: BackendImpl, driver: BackendDriver): KernelSession => {
  const rtnl = Rtnl.open();
  return { backend: impl.name, impl, driver, rtnl, l7: new L7Engine(rtnl) };
};

/**
 * Checks before slbctl touches the kernel, and the backend to use. auto is
 * the first backend of AUTO_ORDER this host has (IPVS when the kernel has it;
 * its genetlink lookup loads ip_vs if it can), else the last one, whose own
 * refusal says what is missing.
 */
export async function openSession(choice: BackendChoice): Promise<KernelSession> {
  requireRoot();
  if (choice !== 'auto') {
    const impl = backendOf(choice);
    return session(impl, await impl.open());
  }
  const found = await firstAvailable();
  if (found) return session(found.impl, found.driver);
  const last = backendOf(AUTO_ORDER[AUTO_ORDER.length - 1]);
  return session(last, await last.open());
}

/** auto: the first backend of AUTO_ORDER but the last that this host has, opened; undefined when none is. */
async function firstAvailable(): Promise<{ impl: BackendImpl; driver: BackendDriver } | undefined> {
  for (const name of AUTO_ORDER.slice(0, -1)) {
    const impl = backendOf(name);
    const driver = await impl.tryOpen();
    if (driver) return { impl, driver };
  }
  return undefined;
}

/** The backend openSession would pick for this choice on this host, without keeping a session open. */
export async function resolvedBackend(choice: BackendChoice): Promise<BackendName> {
  if (choice !== 'auto') return choice;
  const found = await firstAvailable();
  if (!found) return AUTO_ORDER[AUTO_ORDER.length - 1];
  found.driver.close();
  return found.impl.name;
}

/** A session on exactly this backend, or undefined when this host does not have it (root is still required). */
export async function sessionIfAvailable(backend: Backend): Promise<KernelSession | undefined> {
  requireRoot();
  const impl = backendOf(backend);
  const driver = await impl.tryOpen();
  return driver ? session(impl, driver) : undefined;
}

export function closeSession(k: KernelSession): void {
  k.rtnl.close();
  k.driver.close();
}

/** The addresses and local routes the interfaces hold, flattened once per array (Rtnl.interfaces() repeats an unchanged one). */
const held = new WeakMap<readonly NetInterface[], { addresses: OwnedAddress[]; routes: (OwnedAddress & { slbctl: boolean })[] }>();

function heldBy(interfaces: readonly NetInterface[]): { addresses: OwnedAddress[]; routes: (OwnedAddress & { slbctl: boolean })[] } {
  let h = held.get(interfaces);
  if (!h) {
    h = {
      addresses: interfaces.flatMap((i) => i.addresses.map((a) => ({ address: a.address, device: i.name }))),
      routes: interfaces.flatMap((i) =>
        (i.localRoutes ?? []).map((r) => ({ address: r.address, device: i.name, slbctl: r.protocol === PROTOCOL_SLBCTL })),
      ),
    };
    if (Object.isFrozen(interfaces)) {
      Object.freeze(h.addresses);
      Object.freeze(h.routes);
      held.set(interfaces, h);
    }
  }
  return h;
}

/** ownedAddressesOf of the last (record, backend, interfaces) asked: a resync with neither changed asks it again. */
let lastOwned: { record: Ownership; backend: Backend; interfaces: readonly NetInterface[]; owned: OwnedAddress[] } | undefined;

function ownedOnce(record: Ownership, backend: Backend, interfaces: readonly NetInterface[], addresses: OwnedAddress[]): OwnedAddress[] {
  if (lastOwned?.record === record && lastOwned.backend === backend && lastOwned.interfaces === interfaces) return [...lastOwned.owned];
  const owned = ownedAddressesOf(record, backend, addresses);
  if (Object.isFrozen(record) && Object.isFrozen(interfaces)) lastOwned = { record, backend, interfaces, owned };
  return [...owned];
}

export async function observe(
  k: KernelSession,
  sysctlKeys: string[],
  o: ObserveOptions = {},
  /** The interfaces as the caller just read them (a plan reads them once: 10,000 VIPs are 10,000 addresses to parse). */
  known?: NetInterface[],
  /** The ownership record as the caller just read it (a full plan reads it once). */
  ownership: Ownership = readOwnership(),
): Promise<ObservedState & { foreign: string[] }> {
  const { kernel, foreign, legacyOwnedAddresses } = await k.driver.observe(ownership, o);
  const interfaces = known ?? (await k.rtnl.interfaces());
  const { addresses, routes } = heldBy(interfaces);
  kernel.ownedAddresses =
    legacyOwnedAddresses.length > 0
      ? ownedAddressesOf(ownership, k.backend, addresses, legacyOwnedAddresses)
      : ownedOnce(ownership, k.backend, interfaces, addresses);
  const ownedRoutes = ownedRoutesOf(
    ownership,
    k.backend,
    routes.filter((r) => r.slbctl),
  );
  if (ownedRoutes.length > 0) kernel.ownedRoutes = ownedRoutes;
  const sysctls: Record<string, string> = {};
  for (const key of sysctlKeys) sysctls[key] = readSysctl(key);
  const l7 = await k.l7.observe();
  return { kernel, addresses, ...(routes.length > 0 ? { routes } : {}), sysctls, foreign, ownership, ...(l7 ? { l7 } : {}) };
}

export interface PlanOptions {
  /** MACs learned earlier (the controller's), used when a neighbour no longer answers ARP. */
  knownMacs?: Map<string, string>;
  /** How long to wait for a DSR real server to answer ARP (default 2 s; the controller does not wait). */
  arpWaitMs?: number;
  /** Leave DSR real servers with no known MAC out of the plan (listed in `unresolved`) instead of failing. */
  dropUnresolved?: boolean;
  /** Start from the backend's record of its last apply when the kernel shows no change since (plan, apply and the controller; a record holds no traffic counters). */
  fromRecord?: boolean;
  /** false: plan every service even when the memo of the last plan could skip or narrow it (the benchmark's anchor, the tests' reference). */
  memo?: boolean;
}

/** A plan of a config, with what it read when it may leave a memo (plan-memo.ts). */
export type ConfigPlan = Plan & {
  unresolved: string[];
  inputs?: PlanInputs;
  /** How the memo served the plan: nothing planned (unchanged), or only the changed services (narrowed). */
  memo?: 'unchanged' | 'narrowed';
};

/**
 * Resolve the config against this host and plan against what the kernel
 * holds. From the record (plan, apply, the controller), a plan first asks the
 * memo of the last plan with nothing to do (src/engine/plan-memo.ts): the
 * same inputs are "no change" at once, a few changed services are resolved
 * and diffed alone.
 */
export async function planConfig(k: KernelSession, config: Config, o: PlanOptions & { bytes?: string } = {}): Promise<ConfigPlan> {
  const interfaces = await k.rtnl.interfaces();
  const inputs = o.fromRecord && o.memo !== false ? await readInputs(k, config, interfaces, o).catch(() => undefined) : undefined;
  const memo = inputs && memoFor(k, inputs.host);
  if (inputs && memo) {
    const same = sameConfig(memo, inputs.config) ? unchangedPlan(k, memo) : undefined;
    if (same) {
      // The file's digest is kept for `slbctl plan`, which then does not parse it.
      if (inputs.bytes && inputs.bytes !== memo.bytes) writeMemo({ ...memo, bytes: inputs.bytes });
      return { ...same, memo: 'unchanged' };
    }
    const narrow = await narrowPlan(k, config, interfaces, memo, inputs, observe);
    if (narrow) {
      const p: ConfigPlan = { ...narrow, unresolved: [], inputs, memo: 'narrowed' };
      settleMemo(k, p);
      return p;
    }
  }
  const full = await planFully(k, config, interfaces, o);
  if (!inputs) return full;
  const p: ConfigPlan = { ...full, inputs };
  settleMemo(k, p);
  return p;
}

/**
 * The memo, after a plan from a config that found nothing to change: its
 * inputs, when the backend's record stands for the stamp they were read at
 * and no apply was cut short. After an apply, see executePlan.
 */
function settleMemo(k: KernelSession, plan: ConfigPlan, host?: HostInputs): void {
  const inputs = plan.inputs;
  if (!inputs || (plan.ops.length > 0 && !host)) return;
  const at = host ?? inputs.host;
  if (!k.driver.recordAt?.(at.stamp)) return;
  if (!host && (!plan.observed.ownership || hasIntent(plan.observed.ownership))) return;
  try {
    writeMemo({
      backend: k.backend,
      choice: inputs.choice,
      host: at,
      sysctls: plan.desired.sysctls,
      rest: inputs.config.rest,
      services: inputs.config.services,
      ...(inputs.bytes ? { bytes: inputs.bytes } : {}),
    });
  } catch {
    // No memo: the next plan is a full one, as it would have been.
  }
}

/** An unchanged file (the digest of its bytes) on an unchanged host: the plan with nothing to do, without parsing the file. */
export async function planUnchangedFile(k: KernelSession, bytes: string): Promise<ConfigPlan | undefined> {
  const memo = readMemo();
  if (!memo || memo.bytes !== bytes || !k.driver.stamp) return undefined;
  const stamp = await k.driver.stamp().catch(() => undefined);
  if (stamp === undefined) return undefined;
  const ownership = ownershipStamp();
  const host = { stamp, ownership, interfaces: digestInterfaces(await k.rtnl.interfaces()) };
  const plan = memoFor(k, host) && unchangedPlan(k, memo);
  return plan && { ...plan, memo: 'unchanged' };
}

/** The plan of the whole config: every service resolved and diffed. */
async function planFully(
  k: KernelSession,
  config: Config,
  interfaces: NetInterface[],
  o: PlanOptions,
): Promise<Plan & { unresolved: string[] }> {
  const macs = new Map<string, string>();
  const unresolved: string[] = [];
  if (k.impl.capabilities.dsrNeedsMacs) {
    for (const s of config.services) {
      if (s.mode !== 'dsr') continue;
      for (const r of s.realServers) {
        if (macs.has(r.address)) continue;
        const n = await k.rtnl.resolveNeighbour(r.address, o.arpWaitMs ?? 2000);
        const mac = n?.mac ?? o.knownMacs?.get(r.address);
        if (mac) macs.set(r.address, mac);
        else if (!unresolved.includes(r.address)) unresolved.push(r.address);
      }
    }
    if (o.dropUnresolved && unresolved.length > 0) {
      config = {
        ...config,
        services: config.services.map((s) =>
          s.mode === 'dsr' ? { ...s, realServers: s.realServers.filter((r) => !unresolved.includes(r.address)) } : s,
        ),
      };
    }
  }
  const desired = resolveConfig(config, { interfaces, macOf: (a) => macs.get(a) }, k.backend);
  // A conntrack key the config no longer sets goes back to what slbctl found, where it still holds slbctl's value.
  const ownership = readOwnership();
  const dropped = ownership.sysctls.filter((x) => TUNABLE_SYSCTLS.has(x.key) && !(x.key in desired.sysctls));
  const keys = [...Object.keys(desired.sysctls), ...dropped.map((x) => x.key)];
  const observed = await observe(k, keys, { fromRecord: o.fromRecord === true }, interfaces, ownership);
  const released = dropped.filter((x) => observed.sysctls[x.key] === x.value && x.original !== '');
  for (const x of released) desired.sysctls[x.key] = x.original;
  if (released.length > 0) desired.releaseSysctls = released.map((x) => x.key);
  const taken = desired.services.filter((s) => observed.foreign.includes(`${s.protocol}/${s.vip}:${s.port}`));
  if (taken.length > 0) {
    throw new ResolveError(
      `service ${taken.map((s) => `${s.protocol}/${s.vip}:${s.port}`).join(', ')}`,
      'is already served by an IPVS service slbctl did not create; remove it (ipvsadm -D) or choose another VIP/port',
    );
  }
  const plan = makePlan(desired, observed);
  // Host-dependent refusals (subnet edges, a VIP another host holds) before anything changes.
  await checkVips(k.rtnl, config, interfaces, plan.ops);
  // Only callers that plan from the record keep it: a caller that lists for the counters (status) says nothing of the record.
  if (o.fromRecord) k.driver.planned?.(plan);
  return { ...plan, unresolved };
}

/** Sysctls only a config key asks for (conntrack:), so a config without that key gives them back. */
const TUNABLE_SYSCTLS: ReadonlySet<string> = new Set(Object.values(CONNTRACK_SYSCTLS));

/**
 * Plan a change to what the kernel holds now, without a config (drain and
 * undrain without a running controller): the services read back from the
 * kernel, edited, are the desired state.
 */
export async function planEdit(
  k: KernelSession,
  edit: (services: ServiceState[]) => ServiceState[],
  /** The L7 services as HAProxy runs them, edited; absent: HAProxy is left as it is. */
  editL7?: (services: L7ServiceState[]) => L7ServiceState[],
): Promise<Plan> {
  const observed = await observe(k, []);
  const current = observed.kernel.services.map(({ counters: _c, backendKeys: _b, nft: _n, ...s }) => ({
    ...s,
    realServers: s.realServers.map(({ connections: _n, counters: _r, ...r }) => r),
  }));
  const desired: DesiredState = {
    backend: k.backend,
    services: edit(current),
    addresses: observed.kernel.ownedAddresses,
    ...(observed.kernel.ownedRoutes ? { routes: observed.kernel.ownedRoutes } : {}),
    sysctls: {},
  };
  // The L7 VIPs are needed as long as HAProxy serves them (they are among the addresses slbctl owns).
  if (editL7 && observed.l7?.running) desired.l7 = editL7(observed.l7.services);
  return makePlan(desired, observed);
}

/** Plan the removal of everything slbctl owns in this backend. */
export async function planDestroy(k: KernelSession): Promise<Plan> {
  const desired: DesiredState = { backend: k.backend, services: [], addresses: [], sysctls: {}, l7: [] };
  return makePlan(desired, await observe(k, []));
}

/**
 * Once nothing of slbctl's is left in this namespace: put back the sysctls
 * slbctl changed, where they still hold the value slbctl set (someone who
 * changed one since is not overruled), and end the record of them.
 */
export async function planRestoreSysctls(k: KernelSession): Promise<Plan | undefined> {
  const record = readOwnership();
  if (record.sysctls.length === 0 || record.addresses.length > 0 || record.routes?.length || record.ipvsServices.length > 0)
    return undefined;
  const keys = record.sysctls.map((x) => x.key);
  const observed = await observe(k, keys, {}, undefined, record);
  if (observed.kernel.services.length > 0 || observed.kernel.tables.length > 0 || observed.l7?.running) return undefined;
  const sysctls: Record<string, string> = {};
  for (const x of record.sysctls)
    sysctls[x.key] = observed.sysctls[x.key] === x.value && x.original !== '' ? x.original : (observed.sysctls[x.key] ?? '');
  return makePlan({ backend: k.backend, services: [], addresses: [], sysctls, restoreSysctls: true }, observed);
}

const opsOfKind = <K extends Op['op']>(ops: readonly Op[], kind: K) => ops.filter((o): o is Extract<Op, { op: K }> => o.op === kind);

/** Operations that change the interfaces a plan read (VIP addresses and routes; L7 binds to them). */
const ADDRESS_OPS: ReadonlySet<string> = new Set([
  'add-address',
  'delete-address',
  'forget-address',
  'add-route',
  'delete-route',
  'forget-route',
  'l7',
]);

/** Operations the ownership record follows: the addresses and routes above, and sysctls. */
const OWNERSHIP_OPS: ReadonlySet<string> = new Set([...ADDRESS_OPS, 'set-sysctl']);

/**
 * Whether a plan can change the ownership record. One that adds, removes and
 * sets no address, sysctl or L7 change, on a backend with nothing of its own
 * in the record, whose observed addresses are all recorded as owned (none
 * from an older version's nft set), leaves it as it is: a weight change of
 * 10,000 services writes no 10,000-address record twice.
 */
function touchesOwnership(plan: Plan, impl: BackendImpl, record: Ownership): boolean {
  if (impl.ownership || plan.desired.restoreSysctls || hasIntent(record) || plan.ops.some((o) => OWNERSHIP_OPS.has(o.op))) return true;
  const owned = record.addresses.filter((a) => a.backend === impl.name && a.state === 'owned').length;
  const ownedRoutes = (record.routes ?? []).filter((a) => a.backend === impl.name && a.state === 'owned').length;
  return plan.observed.kernel.ownedAddresses.length !== owned || (plan.observed.kernel.ownedRoutes?.length ?? 0) !== ownedRoutes;
}

/**
 * Execute a plan (also one with no operations: callers that hold the write
 * lock call this every time, so the ownership record is settled). nftables changes are one transaction; IPVS changes undo
 * themselves on failure; sysctls and addresses go first and are undone if
 * what follows fails: the kernel is left as it was. The ownership record
 * lists what the plan adds before it is added, so a crash at any point
 * leaks nothing; it is written again once the plan is done.
 */
export async function executePlan(k: KernelSession, plan: Plan, log: (line: string) => void = () => undefined): Promise<void> {
  const lock = heldWriteLock();
  if (!lock) throw new Error("internal: a plan was executed without holding the namespace's write lock");
  const passFd = lock.descriptor;
  const record: Ownership = plan.observed.ownership ?? readOwnership();
  if (plan.ops.length === 0 && !plan.desired.restoreSysctls) {
    // Nothing to change, but an apply cut short may have left "adding" entries: settle them now (present:
    // owned, absent: dropped), or an address of that name that someone else adds later would pass for slbctl's.
    // A plan the memo answered carries no addresses; it cannot meet intent (no memo is written beside intent,
    // and the record's inode, size and mtime are part of the memo).
    if (hasIntent(record) && (plan as ConfigPlan).memo === 'unchanged') {
      forgetMemo();
      throw new Error('internal: the ownership record has unsettled entries that the memo of the last plan did not see; run apply again');
    }
    if (hasIntent(record)) writeOwnership(ownershipAfter(record, plan, k.backend));
    else sweepOwnershipLeftovers();
    return;
  }
  // What the plan needs from this host is checked before anything changes (exit 3, nothing touched).
  k.driver.preflight(plan);
  // A memo must not stand for the state this apply leaves, whatever happens next.
  forgetMemo();
  const l7Changes = opsOfKind(plan.ops, 'l7').map((o) => o.change);
  k.l7.preflight(l7Changes);
  const recorded = touchesOwnership(plan, k.impl, record);
  if (plan.ops.length > 0 && recorded) {
    const intent = ownershipIntent(record, plan, k.backend);
    if (!sameOwnership(intent, record)) writeOwnership(intent);
  }
  const undo: { what: string; run: () => Promise<void> | void }[] = [];
  let indexes: Map<string, number> | undefined;
  const ifindex = async (device: string) => {
    indexes ??= new Map((await k.rtnl.interfaces()).map((i) => [i.name, i.index]));
    const index = indexes.get(device);
    if (index === undefined) throw new RtnlError(`interface ${device}`, 'it disappeared');
    return index;
  };
  const opsOf = <K extends Op['op']>(kind: K) => opsOfKind(plan.ops, kind);
  try {
    for (const op of opsOf('set-sysctl')) {
      writeSysctl(op.key, op.to);
      undo.push({
        what: `sysctl ${op.key}=${op.from}`,
        run: () => {
          if (op.from) writeSysctl(op.key, op.from);
        },
      });
      log(`sysctl ${op.key}=${op.to}`);
    }
    const adds = opsOf('add-address');
    const items = [];
    for (const op of adds) items.push({ ifindex: await ifindex(op.device), address: op.address, prefixLength: 32, device: op.device });
    const { added, error } = await k.rtnl.addAddresses(items);
    for (const a of added) {
      undo.push({ what: `remove address ${a.address}`, run: () => k.rtnl.deleteAddress(a.ifindex, a.address, 32) });
      log(`address ${a.address}/32 added to ${a.device}`);
    }
    if (error) throw error;
    const routeItems = [];
    for (const op of opsOf('add-route')) routeItems.push({ ifindex: await ifindex(op.device), address: op.address, device: op.device });
    const routed = await k.rtnl.addLocalRoutes(routeItems);
    for (const r of routed.added) {
      undo.push({ what: `remove route local ${r.address}`, run: () => k.rtnl.deleteLocalRoute(r.ifindex, r.address) });
      log(`route local ${r.address}/32 dev ${r.device} table local added`);
    }
    if (routed.error) throw routed.error;
    // The L7 engine first (it binds to the VIPs just added); undone if the kernel backend then fails.
    if (l7Changes.length > 0) {
      const before: L7ServiceState[] = plan.observed.l7?.running ? plan.observed.l7.services : [];
      const undoL7 = await k.l7.execute(l7Changes, before, log);
      undo.push({ what: 'haproxy changes', run: undoL7 });
    }
    await k.driver.execute(plan, log, passFd);
  } catch (e) {
    let clean = true;
    for (const step of undo.reverse()) {
      try {
        await step.run();
      } catch (undoError) {
        clean = false;
        log(`rollback: ${step.what} failed: ${(undoError as Error).message}`);
      }
    }
    // Undone: the record as it was. Not all undone: the intent stays, and the next plan sees what is there.
    if (clean && plan.ops.length > 0) writeOwnership(record);
    throw e;
  }
  for (const op of opsOf('delete-address')) {
    await k.rtnl.deleteAddress(await ifindex(op.device), op.address, 32);
    log(`address ${op.address}/32 removed from ${op.device}`);
  }
  for (const op of opsOf('delete-route')) {
    await k.rtnl.deleteLocalRoute(await ifindex(op.device), op.address);
    log(`route local ${op.address}/32 dev ${op.device} table local removed`);
  }
  let intentLeft = hasIntent(record);
  if ((plan.ops.length > 0 || plan.desired.restoreSysctls) && recorded) {
    const after = ownershipAfter(record, plan, k.backend);
    if (!sameOwnership(after, record)) writeOwnership(after);
    intentLeft = hasIntent(after);
  }
  // The memo of this plan's result, when the interfaces it read are still as it left them (it changed no address)
  // and the backend recorded its tables at the stamp the apply left.
  const inputs = (plan as ConfigPlan).inputs;
  if (inputs && !intentLeft && !plan.ops.some((o) => ADDRESS_OPS.has(o.op))) {
    const stamp = await k.driver.stamp?.().catch(() => undefined);
    if (stamp !== undefined) settleMemo(k, plan as ConfigPlan, { ...inputs.host, stamp, ownership: ownershipStamp() });
  }
}
