// ha.vrrp as `slbctl run` drives it: the connection sync first (when ha.sync
// is set: conntrackd, so that keepalived's notify script finds it on the
// first transition, or the IPVS sync daemons), then keepalived; stopped in the
// other order, so the VIPs leave before the sync.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Config } from '../model/types';
import { NetInterface } from '../kernel/rtnl/rtnl';
import { HaEngineError } from './child';
import { Conntrackd, localSyncAddress, renderNotifyScript } from './conntrackd';
import { IpvsSyncDaemons } from './ipvs-sync';
import { Keepalived, VrrpState, floatingAddresses, keepalivedDir } from './keepalived';

export type HaLog = (level: 'info' | 'warn' | 'error', event: string, message: string, fields?: Record<string, string>) => void;

/** What of ha.vrrp and ha.sync this host cannot serve (an interface it lacks, a sync peer off its subnets, IPVS sync on another backend), thrown as one sentence; conntrackd's source address otherwise. */
export function resolveVrrp(config: Config, interfaces: NetInterface[], backend?: string): { syncFrom?: string } {
  const vrrp = config.ha?.vrrp;
  if (!vrrp) return {};
  if (!interfaces.some((i) => i.name === vrrp.interface))
    throw new HaEngineError(
      `ha.vrrp.interface: "${vrrp.interface}" does not exist on this host (it has ${interfaces.map((i) => i.name).join(', ')})`,
    );
  const sync = config.ha?.sync;
  if (sync?.engine !== 'ipvs') return sync ? { syncFrom: localSyncAddress(sync, interfaces) } : {};
  if (backend !== undefined && backend !== 'ipvs')
    throw new HaEngineError(
      `ha.sync: engine ipvs syncs IPVS connections, and this balancer's backend is ${backend}; set backend: ipvs, or use engine conntrackd`,
    );
  if (!interfaces.some((i) => i.name === sync.interface))
    throw new HaEngineError(
      `ha.sync.interface: "${sync.interface}" does not exist on this host (it has ${interfaces.map((i) => i.name).join(', ')})`,
    );
  return {};
}

export class VrrpPair {
  private constructor(
    readonly keepalived: Keepalived,
    readonly conntrackd: Conntrackd | undefined,
    readonly ipvsSync: IpvsSyncDaemons | undefined,
  ) {}

  /**
   * Start both engines for `config` (which has ha.vrrp); throws, leaving nothing running, when either cannot.
   * `serving`: whether a service has a real server with a weight now (else keepalived starts in FAULT).
   */
  static async start(config: Config, interfaces: NetInterface[], serving: boolean, log: HaLog, dir = keepalivedDir()): Promise<VrrpPair> {
    const vrrp = config.ha?.vrrp;
    if (!vrrp) throw new Error('internal: VrrpPair.start without ha.vrrp');
    const { syncFrom } = resolveVrrp(config, interfaces);
    const sync = config.ha?.sync;
    let conntrackd: Conntrackd | undefined;
    let ipvsSync: IpvsSyncDaemons | undefined;
    let notify: string | undefined;
    if (sync?.engine === 'ipvs') ipvsSync = await IpvsSyncDaemons.start(sync, (level, m) => log(level, 'sync', m));
    else if (sync && syncFrom) {
      conntrackd = await Conntrackd.start(sync, syncFrom, (level, m) => log(level, 'sync', m));
      fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
      notify = path.join(dir, 'notify.sh');
      fs.writeFileSync(notify, renderNotifyScript(conntrackd.bin, conntrackd.files, path.join(dir, 'notify.log')), { mode: 0o700 });
    }
    try {
      const keepalived = await Keepalived.start(
        vrrp,
        floatingAddresses(config),
        { dir, serving, ...(notify ? { notify } : {}) },
        (level, m, state?: VrrpState) => log(level, 'vrrp', m, state ? { state } : undefined),
      );
      return new VrrpPair(keepalived, conntrackd, ipvsSync);
    } catch (e) {
      await conntrackd?.stop();
      await ipvsSync?.stop();
      throw e;
    }
  }

  /** The same ha settings, other services: keepalived reloads with the new VIPs. */
  async update(config: Config): Promise<void> {
    if (config.ha?.vrrp) await this.keepalived.update(config.ha.vrrp, floatingAddresses(config));
  }

  async stop(): Promise<void> {
    await this.keepalived.stop();
    await this.conntrackd?.stop();
    await this.ipvsSync?.stop();
  }
}
