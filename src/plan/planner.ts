// diff(desired, observed) -> ordered operations. Pure and deterministic.
// Plans against what the kernel holds, not against the previous config, so
// drift (a service deleted by hand) is repaired by the next apply.
import { realServerKey, serviceKey } from '../model/types';
import { Family, KernelState, RealServerState, ServiceState } from '../model/state';
import { familyOf } from '../kernel/nft/expected';
import { objectRepairs, tablesToRebuild } from '../kernel/nft/integrity';
import { SnatObserved, SnatRule, snatRulesOf, snatMatches } from '../kernel/iptables/snat';
import { DesiredState, ObservedState, Op, Plan } from './types';

export { familyOf };

function serviceChanges(before: ServiceState, after: ServiceState): string[] {
  const changes: string[] = [];
  const fields: (keyof ServiceState)[] = ['name', 'mode', 'scheduler', 'device', 'snatAddress', 'encapsulation', 'forwardDevice', 'forwardMac'];
  for (const f of fields) {
    if (before[f] !== after[f]) changes.push(`${f} ${String(before[f] ?? '-')} -> ${String(after[f] ?? '-')}`);
  }
  const persistence = (s: ServiceState) => (s.persistence ? `${s.persistence.timeout}s/${s.persistence.netmask}` : '-');
  if (persistence(before) !== persistence(after)) changes.push(`persistence ${persistence(before)} -> ${persistence(after)}`);
  return changes;
}

function realServerDiff(service: ServiceState, before: RealServerState[], after: RealServerState[]): Op[] {
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

const byKey = (a: ServiceState, b: ServiceState) => serviceKey(a).localeCompare(serviceKey(b), 'en');

/** The kernel as it will be once the tables being rebuilt are empty again. */
function withoutTables(kernel: KernelState, rebuilt: ReadonlySet<Family>): KernelState {
  if (rebuilt.size === 0) return kernel;
  return {
    ...kernel,
    services: kernel.services.filter((s) => !rebuilt.has(s.nft?.family ?? familyOf(s))),
    ingressDevices: rebuilt.has('netdev') ? [] : kernel.ingressDevices,
    nftTables: Object.fromEntries(Object.entries(kernel.nftTables ?? {}).filter(([f]) => !rebuilt.has(f as Family))),
  };
}

export function plan(desired: DesiredState, observed: ObservedState): Plan {
  const ops: Op[] = [];
  const nft = desired.backend === 'nft';
  const rebuild = nft ? tablesToRebuild(desired.services, observed.kernel) : new Map<Family, string[]>();
  const kernel = withoutTables(observed.kernel, new Set(rebuild.keys()));

  for (const key of Object.keys(desired.sysctls).sort()) {
    const to = desired.sysctls[key] as string;
    const from = observed.sysctls[key] ?? '';
    if (from !== to) ops.push({ op: 'set-sysctl', key, from, to });
  }

  // Tables and ingress hooks are the nftables backend's; IPVS needs neither.
  const wantTables = new Set<Family>(nft ? desired.services.map(familyOf) : []);
  for (const f of ['ip', 'netdev'] as const) {
    if (wantTables.has(f) && !kernel.tables.includes(f)) ops.push({ op: 'create-table', family: f });
  }
  for (const [family, reasons] of rebuild) ops.push({ op: 'rebuild-table', family, reasons });

  const wantIngress = nft ? [...new Set(desired.services.filter((s) => s.mode === 'dsr').map((s) => s.device))].sort() : [];
  for (const d of wantIngress) if (!kernel.ingressDevices.includes(d)) ops.push({ op: 'add-ingress', device: d });

  const present = new Set(observed.addresses.map((a) => `${a.address}@${a.device}`));
  for (const a of desired.addresses) {
    if (!present.has(`${a.address}@${a.device}`)) ops.push({ op: 'add-address', address: a.address, device: a.device });
  }

  // One service per key; a second copy (the same VIP:port in both nftables tables) is removed.
  const actual = new Map<string, ServiceState>();
  const strays: ServiceState[] = [];
  const wanted = new Map(desired.services.map((s) => [serviceKey(s), s]));
  for (const s of kernel.services) {
    const key = serviceKey(s);
    const other = actual.get(key);
    const fits = (x: ServiceState) => { const w = wanted.get(key); return w !== undefined && familyOf(w) === (x.nft?.family ?? familyOf(x)); };
    if (!other) actual.set(key, s);
    else if (fits(s) && !fits(other)) { actual.set(key, s); strays.push(other); }
    else strays.push(s);
  }
  const touched = new Set<string>();
  for (const s of [...desired.services].sort(byKey)) {
    const key = serviceKey(s);
    const was = actual.get(key);
    if (!was) {
      ops.push({ op: 'add-service', service: s });
      touched.add(key);
      continue;
    }
    const changes = serviceChanges(was, s);
    const family = (x: ServiceState) => x.nft?.family ?? familyOf(x);
    if (nft && family(was) !== familyOf(s) && !changes.some((c) => c.startsWith('mode '))) changes.push(`table ${family(was)} -> ${familyOf(s)}`);
    if (changes.length > 0) {
      ops.push({ op: 'update-service', before: was, after: s, changes });
      touched.add(key);
    } else {
      const rsOps = realServerDiff(s, was.realServers, s.realServers);
      if (rsOps.length > 0) touched.add(key);
      ops.push(...rsOps);
    }
  }
  for (const s of [...kernel.services.filter((x) => !wanted.has(serviceKey(x))), ...strays].sort(byKey)) {
    ops.push({ op: 'delete-service', service: s });
    touched.add(serviceKey(s));
  }

  if (nft) {
    const repairs = objectRepairs(desired.services, { ...kernel, services: [...actual.values()] }, touched, new Set(rebuild.keys()));
    // Objects that are not slbctl's go last, before ingress hooks and tables.
    ops.push(...repairs.filter((o) => o.op !== 'delete-object'), ...repairs.filter((o) => o.op === 'delete-object'));
  } else {
    const want: SnatRule[] = snatRulesOf(desired.services);
    const have: SnatObserved = kernel.snat ?? { chain: false, jumps: 0, rules: [], foreign: 0 };
    if (!snatMatches(have, want)) ops.push({ op: 'set-snat', before: have, after: want });
  }

  for (const d of kernel.ingressDevices) if (!wantIngress.includes(d)) ops.push({ op: 'delete-ingress', device: d });

  const neededVips = new Set(desired.addresses.map((a) => `${a.address}@${a.device}`));
  for (const a of kernel.ownedAddresses) {
    const key = `${a.address}@${a.device}`;
    if (neededVips.has(key)) continue;
    ops.push({ op: present.has(key) ? 'delete-address' : 'forget-address', address: a.address, device: a.device });
  }

  for (const f of ['netdev', 'ip'] as const) {
    if (!wantTables.has(f) && kernel.tables.includes(f)) ops.push({ op: 'delete-table', family: f });
  }
  return { ops, desired, observed };
}
