// Drain: weight 0 so a real server gets no new connections, wait for its
// connections to finish (or a deadline), then take it out of the service.
// The drain is recorded under /run/slbctl so a running controller keeps it;
// without a controller, the change goes through planEdit -> executePlan.
import { KernelSession, closeSession, executePlan, observe, planEdit, sessionIfAvailable } from '../engine/engine';
import { AUTO_ORDER } from '../backends/registry';
import { Progress } from '../backends/types';
import { L7ServiceState, RealServerState, ServiceState } from '../model/state';
import { backendName, serverName } from '../backends/haproxy/render';
import { realServerKey, serviceKey } from '../model/types';
import { Drain } from './effective';
import { readDrains, runningController } from './records';
import { Lock } from '../records/lock';
import { ConfigError } from '../util/errors';

/** The drain names a service or real server slbctl does not have, or the controller did not follow (exit 2). */
export class DrainError extends ConfigError {}

export interface Target {
  k: KernelSession;
  /** How long to wait for another writer of the namespace (--wait). */
  waitMs: number;
  /** An L4 service of the kernel backend, or an L7 service of HAProxy (`l7`). */
  service: ServiceState | L7ServiceState;
  l7: boolean;
  realServer: { address: string; port: number; weight: number } | undefined;
  rsKey: string;
}

function matchesService(s: ServiceState | L7ServiceState, want: string): boolean {
  return s.name === want || serviceKey(s) === want || `${s.vip}:${s.port}` === want;
}

/**
 * Find SERVICE (name, proto/vip:port or vip:port) and RS (address or
 * address:port) among the services slbctl owns, in whichever backend has it.
 * The caller closes target.k.
 */
export async function findTarget(service: string, rs: string, waitMs: number, drains: readonly Drain[] = readDrains()): Promise<Target> {
  const seen: string[] = [];
  let l7Looked = false;
  for (const backend of AUTO_ORDER) {
    const k = await sessionIfAvailable(backend);
    if (!k) continue;
    const { kernel, l7 } = await observe(k, []);
    // The L7 services (HAProxy's) are the namespace's, whichever kernel backend is open: looked at once.
    const l7Services = l7Looked || !l7?.running ? [] : l7.services;
    l7Looked = true;
    const all: (ServiceState | L7ServiceState)[] = [...kernel.services, ...l7Services];
    const s = all.find((x) => matchesService(x, service));
    seen.push(...all.map((x) => `${x.name} (${serviceKey(x)})`));
    if (!s) {
      closeSession(k);
      continue;
    }
    const candidates = s.realServers.filter((r) => r.address === rs || realServerKey(r) === rs);
    if (candidates.length > 1) {
      closeSession(k);
      throw new DrainError(
        `${rs} matches ${candidates.length} real servers of ${s.name}; name the port too (${candidates.map(realServerKey).join(', ')})`,
      );
    }
    const r = candidates[0];
    // A real server already taken out by a drain is found through the record.
    const recorded = drains.find((d) => d.service === serviceKey(s) && (d.realServer === rs || d.realServer.split(':')[0] === rs));
    if (!r && !recorded) {
      closeSession(k);
      throw new DrainError(
        `service ${s.name} (${serviceKey(s)}) has no real server ${rs}; it has ${s.realServers.map(realServerKey).join(', ') || 'none'}`,
      );
    }
    const isL7 = l7Services.includes(s as L7ServiceState);
    return { k, waitMs, service: s, l7: isL7, realServer: r, rsKey: r ? realServerKey(r) : (recorded as Drain).realServer };
  }
  throw new DrainError(`no service ${service} is programmed by slbctl${seen.length ? `; there are ${seen.join(', ')}` : ''}`);
}

export type { Progress };

export async function connectionsOf(t: Target): Promise<Progress> {
  if (t.l7) {
    // HAProxy's sessions to that server now (a proxy has no closed-but-remembered entries).
    const rows = (await t.k.l7.stats()) ?? [];
    const row = rows.find((x) => x.pxname === backendName(serviceKey(t.service)) && x.svname === serverName(rsOf(t)));
    return { active: row?.scur ?? 0, inactive: 0, visible: true };
  }
  const { kernel } = await observe(t.k, []);
  const s = kernel.services.find((x) => serviceKey(x) === serviceKey(t.service));
  const r = s?.realServers.find((x) => realServerKey(x) === t.rsKey);
  if (!s || !r) return { active: 0, inactive: 0, visible: true };
  return t.k.driver.connections(s, r);
}

/** Tell a running controller to re-read the drains now; true when one runs. */
function nudgeController(): boolean {
  const c = runningController();
  if (!c || c.pid <= 0) return false;
  process.kill(c.pid, 'SIGUSR1');
  return true;
}

async function waitFor(what: string, ms: number, test: () => Promise<boolean>): Promise<void> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if (await test()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new DrainError(`the running controller did not ${what} within ${ms / 1000} s; see its log`);
}

const rsOf = (t: Target) => {
  const [address, port] = t.rsKey.split(':') as [string, string];
  return { address, port: Number(port) };
};

async function rsInKernel(t: Target): Promise<{ weight: number } | undefined> {
  const { kernel, l7 } = await observe(t.k, []);
  const services: (ServiceState | L7ServiceState)[] = t.l7 ? (l7?.services ?? []) : kernel.services;
  return services.find((x) => serviceKey(x) === serviceKey(t.service))?.realServers.find((x) => realServerKey(x) === t.rsKey);
}

/** Put the real server at `weight` (undefined: remove it) through the controller when one runs, else through the planner. */
export async function setRealServer(t: Target, weight: number | undefined, log: (line: string) => void, mac?: string): Promise<void> {
  if (nudgeController()) {
    await waitFor(weight === undefined ? 'remove the real server' : 'set the weight', 10_000, async () => {
      const r = await rsInKernel(t);
      return weight === undefined ? !r : r !== undefined && (weight === 0 ? r.weight === 0 : true);
    });
    return;
  }
  const { address, port } = rsOf(t);
  // No controller: this command is the namespace's writer for the change.
  const lock = await Lock.acquire('write', t.waitMs);
  try {
    const change = <S extends { realServers: RealServerState[] } & Parameters<typeof serviceKey>[0]>(s: S): S => {
      if (serviceKey(s) !== serviceKey(t.service)) return s;
      if (weight === undefined) return { ...s, realServers: s.realServers.filter((r) => realServerKey(r) !== t.rsKey) };
      if (s.realServers.some((r) => realServerKey(r) === t.rsKey))
        return { ...s, realServers: s.realServers.map((r) => (realServerKey(r) === t.rsKey ? { ...r, weight } : r)) };
      return { ...s, realServers: [...s.realServers, { address, port, weight, ...(mac ? { mac } : {}) }] };
    };
    const plan = t.l7
      ? await planEdit(
          t.k,
          (services) => services,
          (l7) => l7.map(change),
        )
      : await planEdit(t.k, (services) => services.map(change));
    await executePlan(t.k, plan, log);
  } finally {
    lock.release();
  }
}
