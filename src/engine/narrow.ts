// Plans that use the memo of the last plan (plan-memo.ts): "no change" when
// every input digests as it did, and a plan of only the services a config
// change touched when the host is as it was. Either returns undefined when it
// cannot be sure, and the caller plans in full.
import { Config, ServiceKeys, serviceKey } from '../model/types';
import { ServiceState } from '../model/state';
import { NetInterface } from '../kernel/rtnl/rtnl';
import { PlanScope, plan as makePlan } from '../plan/planner';
import { ObservedState, Plan } from '../plan/types';
import { hasIntent } from '../records/ownership';
import { ObserveOptions } from '../backends/types';
import { HostFacts, desiredOf, resolveService } from './resolve';
import { checkVips } from './vip-checks';
import type { KernelSession } from './engine';
import {
  ConfigDigest,
  HostInputs,
  PlanMemo,
  digestConfig,
  digestInterfaces,
  memoFits,
  ownershipStamp,
  readMemo,
  sameHost,
  sysctlsHold,
} from './plan-memo';

/** What a plan read, kept with it so that the memo can be written once the plan is settled (planned or applied). */
export interface PlanInputs {
  host: HostInputs;
  config: ConfigDigest;
  /** The backend the config names, and the digest of the file it came from (`slbctl plan -f`). */
  choice: string;
  bytes?: string;
}

type Observe = (
  k: KernelSession,
  sysctlKeys: string[],
  o: ObserveOptions,
  known: NetInterface[],
) => Promise<ObservedState & { foreign: string[] }>;

/**
 * What a narrowed plan diffs: the services of these keys, and every address
 * they had or will have (VIPs and source addresses; an address another
 * service shares stays, as the whole desired state still lists it).
 */
export function narrowScope(
  keys: ReadonlySet<string>,
  before: ReadonlyMap<string, ServiceState>,
  after: readonly ServiceState[],
): PlanScope {
  const addresses = new Set<string>();
  const note = (s: ServiceState | undefined) => {
    if (!s) return;
    addresses.add(s.vip);
    if (s.snatAddress) addresses.add(s.snatAddress);
    for (const a of s.snatPool ?? []) addresses.add(a);
  };
  for (const key of keys) note(before.get(key));
  for (const s of after) note(s);
  return { services: keys, addresses };
}

/** Above this many changed services the whole plan is as cheap, and it checks everything. */
const narrowLimit = (services: number) => Math.max(64, Math.floor(services / 10));

/** The inputs of a plan of this config on this host, read before anything else the plan reads (so a change during it shows at the next plan). */
export async function readInputs(
  k: KernelSession,
  config: Config,
  interfaces: readonly NetInterface[],
  source: { bytes?: string } = {},
): Promise<PlanInputs | undefined> {
  if (!k.driver.stamp || !k.driver.recordAt || !memoFits(config, k.impl.capabilities.dsrNeedsMacs)) return undefined;
  const stamp = await k.driver.stamp().catch(() => undefined);
  if (stamp === undefined) return undefined;
  const ownership = ownershipStamp();
  return {
    host: { stamp, ownership, interfaces: digestInterfaces(interfaces) },
    config: digestConfig(config),
    choice: config.backend,
    ...(source.bytes ? { bytes: source.bytes } : {}),
  };
}

/** The memo when it was made on this host as it is now (stamp, interfaces, ownership record, sysctls), by this backend. */
export function memoFor(k: KernelSession, host: HostInputs): PlanMemo | undefined {
  const memo = readMemo();
  if (!memo || memo.backend !== k.backend || !sameHost(memo.host, host) || !sysctlsHold(memo.sysctls)) return undefined;
  return memo;
}

/** The plan with nothing to do, from the backend's record (no resolving, no diff). */
export function unchangedPlan(k: KernelSession, memo: PlanMemo): (Plan & { unresolved: string[] }) | undefined {
  const services = k.driver.recordAt?.(memo.host.stamp);
  if (!services) return undefined;
  const list = [...services];
  return {
    ops: [],
    desired: { backend: k.backend, services: list, addresses: [], sysctls: { ...memo.sysctls }, l7: [] },
    observed: {
      kernel: { services: list, ownedAddresses: [], tables: [], ingressDevices: [], nftRecorded: true },
      addresses: [],
      sysctls: { ...memo.sysctls },
    },
    unresolved: [],
  };
}

/**
 * Which services of `now` differ from the memo's (indexes) and which keys it
 * no longer has; undefined for a key listed twice (refused by validation: the
 * full plan says so). A config whose services are where they were is compared
 * place by place, without maps of 10,000 keys.
 */
export function changedServices(
  before: readonly (readonly [string, string])[],
  now: readonly (readonly [string, string])[],
): { changed: number[]; removed: string[] } | undefined {
  const changed: number[] = [];
  if (before.length === now.length) {
    let same = true;
    for (let i = 0; i < now.length && same; i++) {
      if (before[i][0] !== now[i][0]) same = false;
      else if (before[i][1] !== now[i][1]) changed.push(i);
    }
    if (same) return { changed, removed: [] };
    changed.length = 0;
  }
  const was = new Map(before);
  const keys = new Set<string>();
  for (let i = 0; i < now.length; i++) {
    const [key, d] = now[i];
    if (keys.has(key)) return undefined;
    keys.add(key);
    if (was.get(key) !== d) changed.push(i);
  }
  return { changed, removed: before.filter(([key]) => !keys.has(key)).map(([key]) => key) };
}

const recordKeys = new ServiceKeys();

/**
 * The desired services: the resolved ones where they changed, the record's
 * elsewhere (place by place when the record lists them as the config does);
 * undefined when the record lacks an unchanged one (it is not of this memo's plan).
 */
function servicesFrom(
  base: readonly ServiceState[],
  now: readonly (readonly [string, string])[],
  resolved: ReadonlyMap<number, ServiceState>,
): ServiceState[] | undefined {
  const services: ServiceState[] = new Array<ServiceState>(now.length);
  let placed = base.length === now.length;
  const keys = placed ? recordKeys.of(base) : [];
  for (let i = 0; i < now.length && placed; i++) {
    const s = resolved.get(i) ?? base[i];
    if (!resolved.has(i) && keys[i] !== now[i][0]) placed = false;
    else services[i] = s;
  }
  if (placed) return services;
  const byKey = new Map(base.map((s) => [serviceKey(s), s]));
  for (let i = 0; i < now.length; i++) {
    const s = resolved.get(i) ?? byKey.get(now[i][0]);
    if (!s) return undefined;
    services[i] = s;
  }
  return services;
}

/** The record's services of these keys (what narrowScope reads of the record), found in one pass that stops when all are. */
function keyed(base: readonly ServiceState[], keys: ReadonlySet<string>): Map<string, ServiceState> {
  const out = new Map<string, ServiceState>();
  const baseKeys = recordKeys.of(base);
  for (let i = 0; i < base.length && out.size < keys.size; i++) if (keys.has(baseKeys[i])) out.set(baseKeys[i], base[i]);
  return out;
}

/**
 * Resolve and diff only the services whose digest differs from the memo's
 * (added, changed, removed), against the backend's record; the rest of the
 * desired state (addresses, sysctls, tables) is made whole, so the plan's
 * operations are those of the full plan.
 */
export async function narrowPlan(
  k: KernelSession,
  config: Config,
  interfaces: NetInterface[],
  memo: PlanMemo,
  inputs: PlanInputs,
  observe: Observe,
): Promise<Plan | undefined> {
  if (inputs.config.rest !== memo.rest) return undefined;
  const base = k.driver.recordAt?.(memo.host.stamp);
  if (!base) return undefined;
  const now = inputs.config.services;
  const found = changedServices(memo.services, now);
  if (!found) return undefined;
  const { changed, removed } = found;
  if (changed.length + removed.length > narrowLimit(now.length)) return undefined;
  const facts: HostFacts = { interfaces, macOf: () => undefined };
  const resolved = new Map<number, ServiceState>();
  for (const i of changed) resolved.set(i, resolveService(config.services[i], i, facts, k.backend));
  const services = servicesFrom(base, now, resolved);
  if (!services) return undefined;
  const scoped = new Set([...changed.map((i) => now[i][0]), ...removed]);
  const desired = desiredOf(config, services, [], facts, k.backend);
  const scope: PlanScope = { ...narrowScope(scoped, keyed(base, scoped), [...resolved.values()]), desired: [...resolved.values()] };
  const observed = await observe(k, Object.keys(desired.sysctls), { fromRecord: true, touching: scope.services }, interfaces);
  // The record must be what the plan starts from, at the memo's stamp, with no apply cut short.
  if (!observed.kernel.nftRecorded || (observed.ownership && hasIntent(observed.ownership))) return undefined;
  if (observed.foreign.length > 0) return undefined;
  const plan = makePlan(desired, observed, scope);
  await checkVips(k.rtnl, config, interfaces, plan.ops, changed);
  return plan;
}
