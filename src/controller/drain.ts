// Drain: weight 0 so a real server gets no new connections, wait for its
// connections to finish (or a deadline), then take it out of the service.
// The drain is recorded under /run/slbctl so a running controller keeps it;
// without a controller, the change goes through planEdit -> executePlan.
import { KernelSession, closeSession, executePlan, observe, planEdit, sessionIfAvailable } from '../engine/engine';
import { AUTO_ORDER } from '../backends/registry';
import { Progress } from '../backends/types';
import { RealServerState, ServiceState } from '../model/state';
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
  service: ServiceState;
  realServer: RealServerState | undefined;
  rsKey: string;
}

function matchesService(s: ServiceState, want: string): boolean {
  return s.name === want || serviceKey(s) === want || `${s.vip}:${s.port}` === want;
}

/**
 * Find SERVICE (name, proto/vip:port or vip:port) and RS (address or
 * address:port) among the services slbctl owns, in whichever backend has it.
 * The caller closes target.k.
 */
export async function findTarget(service: string, rs: string, waitMs: number, drains: readonly Drain[] = readDrains()): Promise<Target> {
  const seen: string[] = [];
  for (const backend of AUTO_ORDER) {
    const k = await sessionIfAvailable(backend);
    if (!k) continue;
    const { kernel } = await observe(k, []);
    const s = kernel.services.find((x) => matchesService(x, service));
    seen.push(...kernel.services.map((x) => `${x.name} (${serviceKey(x)})`));
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
    return { k, waitMs, service: s, realServer: r, rsKey: r ? realServerKey(r) : (recorded as Drain).realServer };
  }
  throw new DrainError(`no service ${service} is programmed by slbctl${seen.length ? `; there are ${seen.join(', ')}` : ''}`);
}

export type { Progress };

export async function connectionsOf(t: Target): Promise<Progress> {
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

async function rsInKernel(t: Target): Promise<RealServerState | undefined> {
  const { kernel } = await observe(t.k, []);
  return kernel.services.find((x) => serviceKey(x) === serviceKey(t.service))?.realServers.find((x) => realServerKey(x) === t.rsKey);
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
  const [address, port] = t.rsKey.split(':') as [string, string];
  // No controller: this command is the namespace's writer for the change.
  const lock = await Lock.acquire('write', t.waitMs);
  try {
    const plan = await planEdit(t.k, (services) =>
      services.map((s) => {
        if (serviceKey(s) !== serviceKey(t.service)) return s;
        if (weight === undefined) return { ...s, realServers: s.realServers.filter((r) => realServerKey(r) !== t.rsKey) };
        if (s.realServers.some((r) => realServerKey(r) === t.rsKey))
          return { ...s, realServers: s.realServers.map((r) => (realServerKey(r) === t.rsKey ? { ...r, weight } : r)) };
        return { ...s, realServers: [...s.realServers, { address, port: Number(port), weight, ...(mac ? { mac } : {}) }] };
      }),
    );
    await executePlan(t.k, plan, log);
  } finally {
    lock.release();
  }
}
