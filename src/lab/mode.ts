// `lab mode`: the real servers' side of a mode, then the balancer's config
// applied by slbctl itself inside the LB namespace (the same path an
// operator uses on a real balancer).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Mode } from '../model/types';
import { run } from '../util/exec';
import { CertificateFiles, selfSignedCertificate } from '../util/certificate';
import { configureRealServers, labExists, labStateDir, nsName, readLabState, writeLabState } from './netns';
import { routerNextHops, startLabController, startRouterBgp, stopLabController, stopRouterBgp, waitForNextHops } from './ha';
import { BALANCERS } from './topology';
import { DEFAULT_LAB_OPTIONS, LabModeOptions, labServiceConfig } from './lb-config';
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

export async function applyLabMode(
  lab: string,
  mode: Mode,
  out: (line: string) => void,
  options: LabModeOptions = DEFAULT_LAB_OPTIONS,
): Promise<void> {
  await requireLabUp(lab);
  const state = await readLabState(lab);
  const { encapsulation } = options;
  if (options.ha) {
    if (state?.balancers !== 2)
      throw new LabError(`--ha ${options.ha} needs two balancers; make the lab with \`slbctl lab up --balancers 2 --name ${lab}\``);
    if (mode !== 'dsr' || options.protocol !== 'tcp' || encapsulation !== 'none')
      throw new LabError(
        `--ha ecmp is built for dsr (L4, direct routing): the hash agrees on both balancers, so a flow keeps its server when the router moves it; the NAT modes keep each connection's state on one balancer (--ha vrrp with state sync, not built yet)`,
      );
  }
  // Whatever ran before: the balancers' controllers (and with them their BGP speakers) end first.
  for (const b of BALANCERS) if (await stopLabController(lab, b)) out(`  ${b}: slbctl run stopped`);
  if (state?.ha && !options.ha) {
    await stopRouterBgp(lab);
    out('  router: BIRD stopped');
  }
  if (state?.balancers === 2 && !options.ha) {
    const r = await run([process.execPath, CLI_ENTRY, 'destroy'], { netns: nsName(lab, 'lb2') });
    if (r.code !== 0)
      throw new LabError(`lab mode ${mode}: slbctl destroy on lb2 failed (exit ${r.code}): ${(r.stderr || r.stdout).trim()}`);
    out('  lb2: slbctl destroy (one balancer serves)');
  }
  for (const step of await configureRealServers(lab, mode, REFERENCE_TOPOLOGY, encapsulation)) out(`  rs: ${step}`);
  const file = path.join(labStateDir(lab), `lb-${mode}.yaml`);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tls = options.protocol === 'https' ? await labCertificate(lab, out) : undefined;
  fs.writeFileSync(file, labServiceConfig(mode, REFERENCE_TOPOLOGY, { ...options, ...(tls ? { tls } : {}) }));
  if (options.ha) {
    // Each balancer's controller applies the config and announces the VIP while a real server is up.
    for (const b of BALANCERS) {
      await startLabController(lab, b, file);
      out(`  ${b}: slbctl run -f ${file} (inside ${nsName(lab, b)}; BIRD announces ${REFERENCE_TOPOLOGY.vip}/32)`);
    }
    await startRouterBgp(lab, REFERENCE_TOPOLOGY);
    await waitForNextHops(lab, REFERENCE_TOPOLOGY, BALANCERS);
    out(
      `  router: BGP from both balancers; ${REFERENCE_TOPOLOGY.vip} via ${(await routerNextHops(lab, REFERENCE_TOPOLOGY.vip)).join(' and ')} (ECMP, L4 hash)`,
    );
    await writeLabState(lab, { mode, encapsulation, protocol: options.protocol, cache: options.cache, ha: options.ha, failed: [] });
    return;
  }
  out(`  lb: slbctl apply -f ${file} (inside ${nsName(lab, 'lb')})`);
  const r = await run([process.execPath, CLI_ENTRY, 'apply', '-f', file], { netns: nsName(lab, 'lb') });
  for (const line of `${r.stdout}${r.stderr}`.trimEnd().split('\n')) if (line) out(`    ${line}`);
  if (r.code !== 0) throw new LabError(`lab mode ${mode}: slbctl apply on the balancer failed (exit ${r.code})`);
  await writeLabState(lab, { mode, encapsulation, protocol: options.protocol, cache: options.cache, ha: undefined, failed: undefined });
}
