// diff(desired, observed) -> ordered operations. Pure and deterministic.
// Plans against what the kernel holds, not against the previous config, so
// drift (a service deleted by hand) is repaired by the next apply.
import { realServerKey, serviceKey } from '../model/types';
import { Family, RealServerState, ServiceState } from '../model/state';
import { DesiredState, ObservedState, Op, Plan } from './types';

export function familyOf(s: Pick<ServiceState, 'mode'>): Family {
  return s.mode === 'dsr' ? 'netdev' : 'ip';
}

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

export function plan(desired: DesiredState, observed: ObservedState): Plan {
  const ops: Op[] = [];
  const kernel = observed.kernel;

  for (const key of Object.keys(desired.sysctls).sort()) {
    const to = desired.sysctls[key] as string;
    const from = observed.sysctls[key] ?? '';
    if (from !== to) ops.push({ op: 'set-sysctl', key, from, to });
  }

  // Tables and ingress hooks are the nftables backend's; IPVS needs neither.
  const nft = desired.backend === 'nft';
  const wantTables = new Set<Family>();
  if (nft && desired.services.length > 0) wantTables.add('ip'); // the ip table also records owned addresses
  if (nft) for (const s of desired.services) wantTables.add(familyOf(s));
  for (const f of ['ip', 'netdev'] as const) {
    if (wantTables.has(f) && !kernel.tables.includes(f)) ops.push({ op: 'create-table', family: f });
  }

  const wantIngress = nft ? [...new Set(desired.services.filter((s) => s.mode === 'dsr').map((s) => s.device))].sort() : [];
  for (const d of wantIngress) if (!kernel.ingressDevices.includes(d)) ops.push({ op: 'add-ingress', device: d });

  const present = new Set(observed.addresses.map((a) => `${a.address}@${a.device}`));
  for (const a of desired.addresses) {
    if (!present.has(`${a.address}@${a.device}`)) ops.push({ op: 'add-address', address: a.address, device: a.device });
  }

  const actual = new Map(kernel.services.map((s) => [serviceKey(s), s]));
  const wanted = new Map(desired.services.map((s) => [serviceKey(s), s]));
  for (const s of [...desired.services].sort(byKey)) {
    const was = actual.get(serviceKey(s));
    if (!was) {
      ops.push({ op: 'add-service', service: s });
      continue;
    }
    const changes = serviceChanges(was, s);
    if (changes.length > 0) ops.push({ op: 'update-service', before: was, after: s, changes });
    else ops.push(...realServerDiff(s, was.realServers, s.realServers));
  }
  for (const s of [...kernel.services].sort(byKey)) {
    if (!wanted.has(serviceKey(s))) ops.push({ op: 'delete-service', service: s });
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
