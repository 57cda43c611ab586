// ha.sync with engine ipvs: the kernel's IPVS sync daemons, started over
// generic netlink. Each balancer runs BOTH a master (multicasts every
// connection IPVS schedules here) and a backup (creates the connections the
// other balancer multicasts): the kernel allows both at once, so nothing has
// to follow VRRP transitions, and whichever balancer holds the VIPs has the
// other's connections already.
//
// The daemons are kernel threads: they outlive a controller killed with
// SIGKILL. So what slbctl started is written down (daemons.json under
// /run/slbctl/ipvs-sync/net-INODE/, with the namespace's cookie) before it is
// started; the next `slbctl run` takes those back, and leaves alone (or
// refuses to replace) daemons that someone else started.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { IpvsSyncSettings } from '../model/types';
import { IpvsClient, IpvsError } from '../kernel/ipvs/client';
import { IpvsSyncDaemon, SyncDaemonState, describeDaemon, sameDaemon } from '../kernel/ipvs/daemon';
import { runDir } from '../util/rundir';
import { currentNetns } from '../records/netns';
import { readJson, writeJsonAtomic } from '../records/files';
import { HaEngineError } from './child';

export type SyncLog = (level: 'info' | 'warn' | 'error', message: string) => void;

/** The two daemons ha.sync asks for. */
export function wantedDaemons(sync: IpvsSyncSettings): IpvsSyncDaemon[] {
  const { interface: iface, syncId, group, port } = sync;
  return (['master', 'backup'] as const).map((state) => ({ state, interface: iface, syncId, group, port }));
}

export interface SyncSteps {
  /** Running daemons of slbctl's with another config: stopped before `start`. */
  stop: SyncDaemonState[];
  start: IpvsSyncDaemon[];
  /** What slbctl owns afterwards (stops when it stops). */
  own: IpvsSyncDaemon[];
  /** Running already as wanted, started by someone else: used, never stopped. */
  borrowed: IpvsSyncDaemon[];
}

/**
 * What to do to get `want` from `running`, owning only what slbctl started
 * (`recorded`: left by an earlier controller of this namespace). Throws one
 * sentence, before anything changes, when a daemon slbctl did not start is in
 * the way.
 */
export function syncSteps(want: IpvsSyncDaemon[], running: IpvsSyncDaemon[], recorded: IpvsSyncDaemon[]): SyncSteps {
  const steps: SyncSteps = { stop: [], start: [], own: [], borrowed: [] };
  const refusals: string[] = [];
  for (const d of want) {
    const r = running.find((x) => x.state === d.state);
    const ours = r !== undefined && recorded.some((x) => sameDaemon(x, r));
    if (!r) {
      steps.start.push(d);
      steps.own.push(d);
    } else if (sameDaemon(r, d)) (ours ? steps.own : steps.borrowed).push(d);
    else if (ours) {
      steps.stop.push(d.state);
      steps.start.push(d);
      steps.own.push(d);
    } else
      refusals.push(
        `a ${describeDaemon(r)} already runs in this namespace and slbctl did not start it; stop it (ipvsadm --stop-daemon ${r.state}) or set ha.sync to match it`,
      );
  }
  if (refusals.length) throw new HaEngineError(`ha.sync: ${refusals.join('; ')}`);
  return steps;
}

export function ipvsSyncDir(): string {
  return runDir('ipvs-sync', `net-${currentNetns().inode}`);
}

/** The daemons a controller of this namespace started and did not stop (a cookie of another namespace: none). */
function readRecord(file: string): IpvsSyncDaemon[] {
  const r = readJson(file);
  if (r.kind !== 'ok') return [];
  const data = r.data as { cookie?: string; daemons?: IpvsSyncDaemon[] } | null;
  return data && (data.cookie ?? '') === (currentNetns().cookie ?? '') ? (data.daemons ?? []) : [];
}

/** The IPVS sync daemons of this namespace as `slbctl run` drives them. */
export class IpvsSyncDaemons {
  private constructor(
    private readonly client: IpvsClient,
    private readonly file: string,
    /** Started (or taken back) by slbctl: stopped by stop(). */
    readonly owned: IpvsSyncDaemon[],
    private readonly log: SyncLog,
  ) {}

  static async start(sync: IpvsSyncSettings, log: SyncLog, dir = ipvsSyncDir()): Promise<IpvsSyncDaemons> {
    const file = path.join(dir, 'daemons.json');
    const client = await IpvsClient.open();
    try {
      const steps = syncSteps(wantedDaemons(sync), await client.daemons(), readRecord(file));
      fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
      // Written before the kernel has them, so a controller killed in between still knows they are its own.
      const record = (daemons: IpvsSyncDaemon[]) => writeJsonAtomic(file, { cookie: currentNetns().cookie ?? '', daemons });
      record([...readRecord(file), ...steps.own]);
      const s = new IpvsSyncDaemons(client, file, [], log);
      try {
        for (const state of steps.stop) await client.stopDaemon(state);
        for (const d of steps.start) {
          await client.startDaemon(d);
          s.owned.push(d);
        }
      } catch (e) {
        // Nothing half-configured: what was started, and what was taken back, stops.
        s.owned.splice(0, s.owned.length, ...steps.own);
        await s.stopOwned();
        throw new HaEngineError(`ha.sync: ${(e as Error).message}`);
      }
      s.owned.splice(0, s.owned.length, ...steps.own);
      record(steps.own);
      for (const d of steps.own) log('info', `ipvs: ${describeDaemon(d)} running`);
      for (const d of steps.borrowed)
        log('info', `ipvs: ${describeDaemon(d)} was already running (not started by slbctl: left running at stop)`);
      return s;
    } catch (e) {
      client.close();
      throw e;
    }
  }

  /** The daemons the kernel runs in this namespace now. */
  daemons(): Promise<IpvsSyncDaemon[]> {
    return this.client.daemons();
  }

  /** Stop the daemons slbctl owns (one already gone is fine), forget them, and close the socket. */
  async stop(): Promise<void> {
    await this.stopOwned();
    this.client.close();
  }

  private async stopOwned(): Promise<void> {
    for (const d of this.owned) {
      try {
        await this.client.stopDaemon(d.state);
      } catch (e) {
        if (!(e instanceof IpvsError && e.errno === 3))
          this.log('warn', `ipvs: cannot stop the ${d.state} sync daemon: ${(e as Error).message}`);
      }
    }
    this.owned.length = 0;
    fs.rmSync(this.file, { force: true });
  }
}
