// The L7 engine's part of a plan. Pure: what the L7 services should be
// against what the running HAProxy serves. A weight is changed through the
// runtime API, with no reload (connections and the process stay); any other
// difference is a new configuration, loaded by a seamless reload.
import { L7Observed, L7ServiceState } from '../../model/state';
import { serviceKey } from '../../model/types';
import { L7Change } from '../../plan/types';

const byKey = (a: L7ServiceState, b: L7ServiceState) => serviceKey(a).localeCompare(serviceKey(b), 'en');
const serverKey = (r: { address: string; port: number }) => `${r.address}:${r.port}`;

/** A service without its real servers' weights: two services equal in this form differ only in weights. */
function shape(s: L7ServiceState): string {
  return JSON.stringify({ ...s, realServers: s.realServers.map(serverKey).sort() });
}

/** The differences that need a new configuration, in words (the plan prints them). */
function structuralChanges(desired: readonly L7ServiceState[], running: readonly L7ServiceState[]): string[] {
  const was = new Map(running.map((s) => [serviceKey(s), s]));
  const wanted = new Map(desired.map((s) => [serviceKey(s), s]));
  const changes: string[] = [];
  for (const s of [...desired].sort(byKey)) {
    const before = was.get(serviceKey(s));
    if (!before) {
      changes.push(`+ ${serviceKey(s)}`);
      continue;
    }
    if (shape(before) === shape(s)) continue;
    const fields = ['name', 'mode', 'scheduler', 'device', 'snatAddress'] as const;
    const parts = fields.filter((f) => before[f] !== s[f]).map((f) => `${f} ${before[f] ?? '-'} -> ${s[f] ?? '-'}`);
    if (JSON.stringify(before.tls) !== JSON.stringify(s.tls)) parts.push('tls');
    if (JSON.stringify(before.cache) !== JSON.stringify(s.cache)) parts.push('cache');
    const had = new Set(before.realServers.map(serverKey));
    const has = new Set(s.realServers.map(serverKey));
    for (const r of has) if (!had.has(r)) parts.push(`+ real server ${r}`);
    for (const r of had) if (!has.has(r)) parts.push(`- real server ${r}`);
    changes.push(`~ ${serviceKey(s)}: ${parts.join(', ')}`);
  }
  for (const s of [...running].sort(byKey)) if (!wanted.has(serviceKey(s))) changes.push(`- ${serviceKey(s)}`);
  return changes;
}

/**
 * The L7 engine's changes; none when `desired` is undefined (the caller
 * leaves the engine alone). A transparent service needs the return path
 * before HAProxy serves it; it goes once no transparent service is left.
 */
export function planL7(desired: readonly L7ServiceState[] | undefined, observed: L7Observed | undefined): L7Change[] {
  if (desired === undefined) return [];
  const wantPath = desired.some((s) => s.mode === 'transparent');
  const hasPath = observed?.returnPath;
  const engine = planEngine(desired, observed);
  if (wantPath && hasPath !== 'complete') return [{ what: 'return-path', add: true }, ...engine];
  if (!wantPath && hasPath !== undefined) return [...engine, { what: 'return-path', add: false }];
  return engine;
}

function planEngine(desired: readonly L7ServiceState[], observed: L7Observed | undefined): L7Change[] {
  const running = observed?.running ? observed.services : [];
  const sorted = [...desired].sort(byKey);
  if (sorted.length === 0) return observed?.running ? [{ what: 'stop', services: running }] : [];
  if (!observed?.running) return [{ what: 'start', services: sorted }];
  const changes = structuralChanges(sorted, running);
  if (changes.length > 0) return [{ what: 'reload', services: sorted, changes }];
  const was = new Map(running.map((s) => [serviceKey(s), s]));
  const weights: L7Change[] = [];
  for (const s of sorted) {
    const before = new Map((was.get(serviceKey(s))?.realServers ?? []).map((r) => [serverKey(r), r.weight]));
    for (const r of s.realServers) {
      const from = before.get(serverKey(r));
      if (from !== undefined && from !== r.weight)
        weights.push({ what: 'set-weight', service: s, address: r.address, port: r.port, from, to: r.weight });
    }
  }
  return weights;
}

function describeService(s: L7ServiceState): string {
  const parts = [
    serviceKey(s),
    `"${s.name}"`,
    `L7 ${s.mode === 'fullnat' ? 'reverse proxy' : 'transparent'}`,
    s.scheduler,
    `dev ${s.device}`,
  ];
  if (s.snatAddress) parts.push(`from ${s.snatAddress}`);
  if (s.tls) parts.push(`tls ${s.tls.certificate}`);
  if (s.cache) parts.push(`cache ${Math.ceil(s.cache.totalSize / 1048576)}m max-age ${s.cache.maxAge}s`);
  return parts.join(' ');
}

/** The plan's lines for one L7 change. */
export function describeL7(c: L7Change): string[] {
  const services = (ss: readonly L7ServiceState[]) =>
    ss.flatMap((s) => [
      `    ${describeService(s)}`,
      ...s.realServers.map((r) => `      real server ${r.address}:${r.port} weight ${r.weight}`),
    ]);
  switch (c.what) {
    case 'start':
      return ['+ haproxy: start (master-worker) serving', ...services(c.services)];
    case 'reload':
      return ['~ haproxy: seamless reload with a new configuration', ...c.changes.map((x) => `    ${x}`)];
    case 'set-weight':
      return [`~ haproxy: ${serviceKey(c.service)} real server ${c.address}:${c.port} weight ${c.from} -> ${c.to} (runtime API)`];
    case 'stop':
      return [`- haproxy: stop (served ${c.services.map(serviceKey).join(', ') || 'nothing'})`];
    case 'return-path':
      return [
        `${c.add ? '+' : '-'} transparent proxy return path: nft table ip slbctl_l7 (socket transparent -> mark), rule fwmark -> table 7437, local 0.0.0.0/0 dev lo in table 7437`,
      ];
  }
}
