// diff(desired, observed) -> ordered operations. Pure and deterministic.
// Plans against what the kernel holds, not against the previous config, so
// drift (a service deleted by hand) is repaired by the next apply.
import { realServerKey, serviceKey } from '../model/types';
import { RealServerState, ServiceState } from '../model/state';
import { backendOf } from '../backends/registry';
import { DesiredState, ObservedState, Op, Plan } from './types';
import { planL7 } from '../backends/haproxy/plan';

/** The settings that are plain text; persistence is compared on its own. */
const SERVICE_FIELDS = [
  'name',
  'mode',
  'scheduler',
  'device',
  'snatAddress',
  'snatPorts',
  'encapsulation',
  'forwardDevice',
  'forwardMac',
] as const satisfies readonly (keyof ServiceState)[];

function serviceChanges(before: ServiceState, after: ServiceState): string[] {
  const changes: string[] = [];
  for (const f of SERVICE_FIELDS) {
    if (before[f] !== after[f]) changes.push(`${f} ${before[f] ?? '-'} -> ${after[f] ?? '-'}`);
  }
  const pool = (s: ServiceState) => s.snatPool?.join(',') ?? '-';
  if (pool(before) !== pool(after)) changes.push(`snatPool ${pool(before)} -> ${pool(after)}`);
  const maglev = (s: ServiceState) => (s.maglev ? `size ${s.maglev.size} seed ${s.maglev.seed}` : '-');
  if (maglev(before) !== maglev(after)) changes.push(`maglev ${maglev(before)} -> ${maglev(after)}`);
  const persistence = (s: ServiceState) => (s.persistence ? `${s.persistence.timeout}s/${s.persistence.netmask}` : '-');
  if ((before.persistence || after.persistence) && persistence(before) !== persistence(after))
    changes.push(`persistence ${persistence(before)} -> ${persistence(after)}`);
  return changes;
}

/** The same real servers in the same order with the same weights and MACs: the common case, told without building maps. */
const sameRealServers = (before: RealServerState[], after: RealServerState[]) =>
  before.length === after.length &&
  before.every((r, i) => {
    const a = after[i];
    return a !== undefined && r.address === a.address && r.port === a.port && r.weight === a.weight && r.mac === a.mac;
  });

function realServerDiff(service: ServiceState, before: RealServerState[], after: RealServerState[]): Op[] {
  if (sameRealServers(before, after)) return [];
  const ops: Op[] = [];
  const old = new Map(before.map((r) => [realServerKey(r), r]));
  const wanted = new Map(after.map((r) => [realServerKey(r), r]));
  for (const [key, r] of wanted) {
    const was = old.get(key);
    if (!was) ops.push({ op: 'add-real-server', service, realServer: r });
    else if (was.weight !== r.weight || was.mac !== r.mac) ops.push({ op: 'update-real-server', service, before: was, after: r });
  }
  for (const [key, r] of old) if (!wanted.has(key)) ops.push({ op: 'delete-real-server', service, realServer: r });
  return ops;
}

/** One collator for every comparison: localeCompare with a locale looks one up per call (10,000 services sort in 0.2 s). */
const collate = new Intl.Collator('en').compare;
/** Services in key order, each key made once. */
const sortedByKey = (services: readonly ServiceState[]): ServiceState[] =>
  services
    .map((s) => [serviceKey(s), s] as const)
    .sort((a, b) => collate(a[0], b[0]))
    .map(([, s]) => s);

/**
 * What a plan may restrict its diff to when everything else is known to be as
 * the desired state wants it (src/engine/plan-memo.ts: the kernel, the host
 * and every other service are as at the last plan). The backend's hooks still
 * see the whole desired state (which tables, hooks and pick chains it needs).
 */
export interface PlanScope {
  /** Keys of the services to diff (changed, added or removed). */
  services: ReadonlySet<string>;
  /** Addresses (without device) whose presence and ownership to diff: those of the services above, before and after. */
  addresses: ReadonlySet<string>;
  /** The desired services of these keys, when the caller has them (it resolved them): not looked for among all. */
  desired?: readonly ServiceState[];
}

/**
 * diff(desired, observed). The shared part (sysctls, VIP addresses, services
 * and real servers) is here; what only one backend has (nftables tables and
 * repairs, the source-NAT chain beside IPVS) comes from its plan hooks.
 * `scope`: diff only these services and addresses (the others are known to
 * match); the operations are those the whole diff would give.
 */
export function plan(desired: DesiredState, observed: ObservedState, scope?: PlanScope): Plan {
  const ops: Op[] = [];
  const backend = backendOf(desired.backend);
  const wrap = (change: unknown): Op => ({ op: 'backend', backend: desired.backend, change }) as Op;
  const { kernel, first } = backend.plan.prepare(desired, observed.kernel);

  for (const key of Object.keys(desired.sysctls).sort()) {
    const to = desired.sysctls[key];
    const from = observed.sysctls[key] ?? '';
    if (from !== to) ops.push({ op: 'set-sysctl', key, from, to });
  }
  ops.push(...first.map(wrap));

  const inScope = (a: { address: string }) => !scope || scope.addresses.has(a.address);
  const present = new Set(observed.addresses.filter(inScope).map((a) => `${a.address}@${a.device}`));
  const wantedAddresses = desired.addresses.filter(inScope);
  for (const a of wantedAddresses) {
    if (!present.has(`${a.address}@${a.device}`)) ops.push({ op: 'add-address', address: a.address, device: a.device });
  }
  // VIP routes (vipAs route): any local route for the VIP on its device counts as there, as an address someone else
  // added does; only a route of slbctl's protocol can be slbctl's to delete.
  const routes = (observed.routes ?? []).filter(inScope);
  const routed = new Set(routes.map((r) => `${r.address}@${r.device}`));
  const ownRouted = new Set(routes.filter((r) => r.slbctl).map((r) => `${r.address}@${r.device}`));
  const wantedRoutes = (desired.routes ?? []).filter(inScope);
  for (const r of wantedRoutes) {
    if (!routed.has(`${r.address}@${r.device}`)) ops.push({ op: 'add-route', address: r.address, device: r.device });
  }

  // One service per key; a second copy (the same VIP:port held twice, e.g. in both nftables tables) is removed.
  const actual = new Map<string, ServiceState>();
  const strays: ServiceState[] = [];
  const serviceInScope = (s: ServiceState) => !scope || scope.services.has(serviceKey(s));
  const desiredServices = scope ? (scope.desired ?? desired.services).filter(serviceInScope) : desired.services;
  // The backend's prepare() may have dropped services (a table rebuilt): `touched` then no longer describes them.
  const touchedHere = kernel.services === observed.kernel.services ? kernel.touched : undefined;
  const kernelServices = scope ? (touchedHere ?? kernel.services).filter(serviceInScope) : kernel.services;
  const wanted = new Map(desiredServices.map((s) => [serviceKey(s), s]));
  const heldIn = (x: ServiceState) => x.nft?.family;
  for (const s of kernelServices) {
    const key = serviceKey(s);
    const other = actual.get(key);
    // Of two copies, the one whose mode matches the wanted service's stays.
    const fits = (x: ServiceState) =>
      heldIn(x) === undefined || heldIn(x) === heldIn({ ...x, ...wanted.get(key), nft: undefined }) || wanted.get(key)?.mode === x.mode;
    if (!other) actual.set(key, s);
    else if (fits(s) && !fits(other)) {
      actual.set(key, s);
      strays.push(other);
    } else strays.push(s);
  }
  const touched = new Set<string>();
  for (const s of sortedByKey(desiredServices)) {
    const key = serviceKey(s);
    const was = actual.get(key);
    if (!was) {
      ops.push({ op: 'add-service', service: s });
      touched.add(key);
      continue;
    }
    const changes = serviceChanges(was, s);
    if (changes.length > 0) {
      ops.push({ op: 'update-service', before: was, after: s, changes });
      touched.add(key);
    } else {
      const rsOps = realServerDiff(s, was.realServers, s.realServers);
      if (rsOps.length > 0) touched.add(key);
      ops.push(...rsOps);
    }
  }
  for (const s of sortedByKey([...kernelServices.filter((x) => !wanted.has(serviceKey(x))), ...strays])) {
    ops.push({ op: 'delete-service', service: s });
    touched.add(serviceKey(s));
  }

  const { repairs, last } = backend.plan.finish(desired, { ...kernel, services: [...actual.values()] }, touched);
  ops.push(...repairs.map(wrap));
  // The L7 engine binds to its VIPs: after they are added, before any is removed.
  ops.push(...planL7(desired.l7, observed.l7).map((change): Op => ({ op: 'l7', change })));

  const neededVips = new Set(wantedAddresses.map((a) => `${a.address}@${a.device}`));
  for (const a of kernel.ownedAddresses.filter(inScope)) {
    const key = `${a.address}@${a.device}`;
    if (neededVips.has(key)) continue;
    ops.push({ op: present.has(key) ? 'delete-address' : 'forget-address', address: a.address, device: a.device });
  }
  // After the addresses: a VIP that moves from a route to an address (or back) is held by both in between, never by neither.
  const neededRoutes = new Set(wantedRoutes.map((r) => `${r.address}@${r.device}`));
  for (const r of (kernel.ownedRoutes ?? []).filter(inScope)) {
    const key = `${r.address}@${r.device}`;
    if (neededRoutes.has(key)) continue;
    ops.push({ op: ownRouted.has(key) ? 'delete-route' : 'forget-route', address: r.address, device: r.device });
  }
  ops.push(...last.map(wrap));
  return { ops, desired, observed };
}
