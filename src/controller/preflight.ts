// What `slbctl run` can be refused for, checked before it changes anything
// in the kernel: a controller that cannot run should leave the kernel as it
// found it, not program it and then fail.
import * as fs from 'node:fs';
import { Config, serviceKey } from '../model/types';
import { CAP_NET_RAW, hasCapability } from '../util/caps';
import { runDir } from '../util/rundir';
import { PreflightError } from '../util/errors';
import { findCommand } from '../util/exec';

/** Services whose checks need raw or packet sockets: ICMP echo, and DSR's probe to the VIP through each real server. */
export function servicesNeedingNetRaw(config: Config): string[] {
  return config.services
    .filter((s) => s.healthCheck && (s.healthCheck.type === 'icmp' || (s.mode === 'dsr' && s.encapsulation !== 'ipip')))
    .map((s) => `${s.name} (${serviceKey(s)})`);
}

/** Every reason this process cannot run `config` as a controller, one sentence each; none when it can. */
export function runRefusals(config: Config, canUseRawSockets = hasCapability(CAP_NET_RAW)): string[] {
  const refusals: string[] = [];
  const dir = runDir();
  try {
    fs.mkdirSync(dir, { recursive: true });
    fs.accessSync(dir, fs.constants.W_OK);
  } catch (e) {
    refusals.push(
      `cannot write its records (status, drains, IPVS ownership) under ${dir}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}; run it as root or as the systemd unit, which makes that its RuntimeDirectory`,
    );
  }
  const raw = servicesNeedingNetRaw(config);
  if (raw.length && !canUseRawSockets) {
    // Every such probe would fail and take every real server out: refuse instead.
    refusals.push(
      `the health checks of ${raw.join(', ')} need CAP_NET_RAW (ICMP echo, or DSR's probe through each real server), which this process lacks; grant it as the systemd unit does`,
    );
  }
  if (config.ha?.bgp && (!findCommand('bird') || !findCommand('birdc')))
    refusals.push(
      'ha.bgp needs BIRD 2 (bird and birdc, Debian package bird2), which is not installed; run scripts/setup.sh or apt-get install bird2',
    );
  if (config.ha?.vrrp && !findCommand('keepalived'))
    refusals.push('ha.vrrp needs keepalived, which is not installed; run scripts/setup.sh or apt-get install keepalived');
  if (config.ha?.sync?.engine === 'conntrackd' && !findCommand('conntrackd'))
    refusals.push('ha.sync needs conntrackd, which is not installed; run scripts/setup.sh or apt-get install conntrackd');
  return refusals;
}

/** Throw every refusal as one sentence: this host cannot run the controller as it is (exit 3), nothing was changed. */
export function refuseWhatCannotRun(config: Config): void {
  const refusals = runRefusals(config);
  if (refusals.length) throw new PreflightError(`slbctl run: ${refusals.join('; ')}`);
}
