// `lab mode`: the real servers' side of a mode, then the balancer's config
// applied by slbctl itself inside the LB namespace (the same path an
// operator uses on a real balancer).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Mode } from '../model/types';
import { run } from '../util/exec';
import { CertificateFiles, selfSignedCertificate } from '../util/certificate';
import { configureRealServers, labExists, labStateDir, nsName, readLabState, writeLabState } from './netns';
import {
  balancerConfigFile,
  routerNextHops,
  startLabController,
  startRouterBgp,
  stopLabController,
  stopRouterBgp,
  vipHolders,
  waitForNextHops,
  waitForVrrp,
} from './ha';
import { BALANCERS } from './topology';
import { DEFAULT_LAB_OPTIONS, LabModeOptions, LabSyncEngine, labServiceConfig } from './lb-config';
import { resolvedBackend } from '../engine/engine';
import { LabError } from './errors';
import { REFERENCE_TOPOLOGY } from './topology';
import { CLI_ENTRY } from '../util/self';

export async function requireLabUp(lab: string): Promise<void> {
  const { missing } = await labExists(lab);
  if (missing.length > 0)
    throw new LabError(
      `lab "${lab}" is not up (missing ${missing.map((h) => nsName(lab, h)).join(', ')}); run \`slbctl lab up --name ${lab}\``,
    );
}

/** https: a self-signed certificate for the VIP, made once per lab. */
async function labCertificate(lab: string, out: (line: string) => void): Promise<CertificateFiles> {
  const dir = labStateDir(lab);
  const existing = { certificate: path.join(dir, 'lb.crt'), key: path.join(dir, 'lb.key') };
  if (fs.existsSync(existing.certificate) && fs.existsSync(existing.key)) return existing;
  const made = await selfSignedCertificate(dir, 'lb', REFERENCE_TOPOLOGY.vip);
  out(`  lb: a self-signed certificate for ${REFERENCE_TOPOLOGY.vip} (${made.certificate})`);
  return made;
}

/** Whether --ha fits the lab and the mode (both providers of two balancers ask this first); throws the reason when not. */
export function checkHaOptions(lab: string, balancers: number, mode: Mode, options: LabModeOptions): void {
  if (options.ha) {
    if (balancers !== 2)
      throw new LabError(`--ha ${options.ha} needs two balancers; make the lab with \`slbctl lab up --balancers 2 --name ${lab}\``);
    if (options.ha === 'ecmp' && (mode !== 'dsr' || options.protocol !== 'tcp' || options.encapsulation !== 'none'))
      throw new LabError(
        `--ha ecmp is built for dsr (L4, direct routing): the hash agrees on both balancers, so a flow keeps its server when the router moves it; the NAT modes keep each connection's state on one balancer: use --ha vrrp (active/standby with state sync)`,
      );
    if (options.ha === 'vrrp' && (mode === 'dsr' || options.protocol !== 'tcp'))
      throw new LabError(
        `--ha vrrp is built for the L4 NAT modes (fullnat, transparent), whose connection state conntrackd copies to the standby; ${mode === 'dsr' ? 'dsr keeps no state a standby needs: use --ha ecmp' : 'an L7 proxy ends TCP on the balancer, and no kernel state can carry its connections over'}`,
      );
  }
}

export async function applyLabMode(
  lab: string,
  mode: Mode,
  out: (line: string) => void,
  options: LabModeOptions = DEFAULT_LAB_OPTIONS,
): Promise<void> {
  await requireLabUp(lab);
  const state = await readLabState(lab);
  const { encapsulation } = options;
  checkHaOptions(lab, state?.balancers ?? 1, mode, options);
  if (options.sync === false && options.ha !== 'vrrp')
    throw new LabError('--no-sync is for --ha vrrp (it leaves the connection sync out of the pair)');
  // The pair's connections live where its backend keeps them: conntrack (nftables: conntrackd copies them) or
  // IPVS's own table (the kernel's IPVS sync daemons copy them).
  const syncEngine: LabSyncEngine | undefined =
    options.ha === 'vrrp' ? ((await resolvedBackend(options.backend)) === 'ipvs' ? 'ipvs' : 'conntrackd') : undefined;
  const copier = syncEngine === 'ipvs' ? 'the IPVS sync daemons copy' : 'conntrackd copies';
  // Whatever ran before: the balancers' controllers (and with them their BGP speakers) end first.
  for (const b of BALANCERS) if (await stopLabController(lab, b)) out(`  ${b}: slbctl run stopped`);
  if (state?.ha === 'ecmp' && options.ha !== 'ecmp') {
    await stopRouterBgp(lab);
    out('  router: BIRD stopped');
  }
  if (state?.ha === 'vrrp' && options.ha !== 'vrrp') {
    // Whichever balancer was master last holds the router's ARP entry for the VIP; lb alone adds it now and
    // sends no gratuitous ARP (keepalived did, for the pair), so the router must ask again.
    await run(['ip', 'neigh', 'flush', 'to', `${REFERENCE_TOPOLOGY.vip}/32`], { netns: nsName(lab, 'router') });
    out(`  router: ARP entry for ${REFERENCE_TOPOLOGY.vip} flushed (the pair's master held it)`);
  }
  if (state?.balancers === 2 && !options.ha) {
    // lb too after a VRRP pair: its conntrack settings (tcpLoose) go back only with a destroy.
    for (const b of state.ha === 'vrrp' ? BALANCERS : (['lb2'] as const)) {
      const r = await run([process.execPath, CLI_ENTRY, 'destroy'], { netns: nsName(lab, b) });
      if (r.code !== 0)
        throw new LabError(`lab mode ${mode}: slbctl destroy on ${b} failed (exit ${r.code}): ${(r.stderr || r.stdout).trim()}`);
      out(`  ${b}: slbctl destroy (${b === 'lb2' ? 'one balancer serves' : "the pair's settings go"})`);
    }
  }
  // Under VRRP the real servers answer the pair's floating address, which the master holds.
  const gateway = options.ha === 'vrrp' ? REFERENCE_TOPOLOGY.floatingAddress : undefined;
  for (const step of await configureRealServers(lab, mode, REFERENCE_TOPOLOGY, encapsulation, gateway)) out(`  rs: ${step}`);
  const file = balancerConfigFile(lab, 'lb', mode);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tls = options.protocol === 'https' ? await labCertificate(lab, out) : undefined;
  for (const b of options.ha ? BALANCERS : (['lb'] as const))
    fs.writeFileSync(
      balancerConfigFile(lab, b, mode),
      labServiceConfig(mode, REFERENCE_TOPOLOGY, { ...options, ...(tls ? { tls } : {}), ...(syncEngine ? { syncEngine } : {}) }, b),
    );
  const recordHa = { mode, encapsulation, protocol: options.protocol, cache: options.cache, ha: options.ha, failed: [] };
  if (options.ha === 'vrrp') {
    // lb first, so it wins the first election (priority 150, nopreempt); lb2 joins as the standby.
    const v = REFERENCE_TOPOLOGY;
    await startLabController(lab, 'lb', balancerConfigFile(lab, 'lb', mode), { sloppyTcp: false });
    await waitForVrrp(lab, v, 'lb', 'MASTER');
    out(`  lb: slbctl run -f ${balancerConfigFile(lab, 'lb', mode)} (keepalived: MASTER, holds ${v.vip} and ${v.floatingAddress})`);
    await startLabController(lab, 'lb2', balancerConfigFile(lab, 'lb2', mode), { sloppyTcp: false });
    await waitForVrrp(lab, v, 'lb2', 'BACKUP');
    const noSync = syncEngine === 'ipvs' ? 'no IPVS sync daemons' : 'no conntrackd';
    out(
      `  lb2: slbctl run -f ${balancerConfigFile(lab, 'lb2', mode)} (keepalived: BACKUP${options.sync === false ? `; ${noSync}: --no-sync` : `, ${copier} lb's connections`})`,
    );
    out(`  VIP ${v.vip} on ${(await vipHolders(lab, v)).join(', ')}; the real servers answer ${v.floatingAddress}`);
    await writeLabState(lab, { ...recordHa, sync: options.sync !== false, ...(syncEngine ? { syncEngine } : {}) });
    return;
  }
  if (options.ha) {
    // Each balancer's controller applies the config and announces the VIP while a real server is up.
    for (const b of BALANCERS) {
      await startLabController(lab, b, balancerConfigFile(lab, b, mode));
      out(
        `  ${b}: slbctl run -f ${balancerConfigFile(lab, b, mode)} (inside ${nsName(lab, b)}; BIRD announces ${REFERENCE_TOPOLOGY.vip}/32)`,
      );
    }
    await startRouterBgp(lab, REFERENCE_TOPOLOGY);
    await waitForNextHops(lab, REFERENCE_TOPOLOGY, BALANCERS);
    out(
      `  router: BGP from both balancers; ${REFERENCE_TOPOLOGY.vip} via ${(await routerNextHops(lab, REFERENCE_TOPOLOGY.vip)).join(' and ')} (ECMP, L4 hash)`,
    );
    await writeLabState(lab, recordHa);
    return;
  }
  out(`  lb: slbctl apply -f ${file} (inside ${nsName(lab, 'lb')})`);
  const r = await run([process.execPath, CLI_ENTRY, 'apply', '-f', file], { netns: nsName(lab, 'lb') });
  for (const line of `${r.stdout}${r.stderr}`.trimEnd().split('\n')) if (line) out(`    ${line}`);
  if (r.code !== 0) throw new LabError(`lab mode ${mode}: slbctl apply on the balancer failed (exit ${r.code})`);
  await writeLabState(lab, {
    mode,
    encapsulation,
    protocol: options.protocol,
    cache: options.cache,
    ha: undefined,
    failed: undefined,
    sync: undefined,
    syncEngine: undefined,
  });
}
