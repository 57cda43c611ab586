// `lab mode` on the VMs: the real servers' side of the mode as ip/sysctl
// steps run over ssh (the same steps as the netns lab's configureRealServers,
// with the VMs' device and their route to the client network instead of a
// default route, which belongs to Vagrant's management NIC), then the
// balancer's config applied by slbctl itself inside the lb VM.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Mode } from '../model/types';
import { CertificateFiles, selfSignedCertificate } from '../util/certificate';
import { LabError } from '../lab/errors';
import { LabModeOptions, labServiceConfig } from '../lab/lb-config';
import { BALANCERS, REAL_SERVERS, REFERENCE_TOPOLOGY } from '../lab/topology';
import { checkHaOptions } from '../lab/mode';
import { VM_PAIR, startVmController, startVmRouterBird, stopVmController, stopVmRouterBird, waitForVmNextHops } from './ha';
import { RealServerPlace, Step, describeRealServer, realServerSteps } from '../lab/rs-steps';
import { VM_LAB_DEVICE, VmName } from './plan';
import { VagrantLabRecord, writeVagrantRecord } from './lab';
import { shellCommand, vmRun, vmScript } from './ssh';

/** How a real server VM sits: eth1 on the server segment, its default route being Vagrant's management NIC. */
export const VM_PLACE: RealServerPlace = { device: VM_LAB_DEVICE, clientRoute: 'client-net', canLoadModules: true };

/** The steps as one shell script (quoted argument by argument); a step that may fail reports whether it did. */
export function stepsScript(steps: readonly Step[]): string {
  return steps.map((s, i) => (s.mayFail ? `if ${shellCommand(s.argv)} 2>/dev/null; then echo @@ok=${i}; fi` : `${shellCommand(s.argv)} || exit 1`)).join('\n');
}

/** The L7 types need HAProxy in the lb VM: a box built before they existed has none. */
async function requireHaproxy(record: VagrantLabRecord, mode: Mode, options: LabModeOptions): Promise<void> {
  const r = await vmScript(record, 'lb', 'command -v haproxy >/dev/null && command -v openssl >/dev/null');
  if (r.code !== 0)
    throw new LabError(
      `lab mode ${mode} --protocol ${options.protocol}: the lb VM has no haproxy (or openssl): its box predates the L7 types; rebuild it with scripts/vagrant-box --force and run lab up again`,
    );
}

/** https: the lab's self-signed certificate for the VIP, made on this host once per lab and put into the lb VM (the key 0600). */
async function vmCertificate(record: VagrantLabRecord, out: (line: string) => void): Promise<CertificateFiles> {
  const local = { certificate: path.join(record.dataDir, 'lb.crt'), key: path.join(record.dataDir, 'lb.key') };
  if (!fs.existsSync(local.certificate) || !fs.existsSync(local.key)) {
    await selfSignedCertificate(record.dataDir, 'lb', REFERENCE_TOPOLOGY.vip);
    out(`  lb: a self-signed certificate for ${REFERENCE_TOPOLOGY.vip} (${local.certificate})`);
  }
  const remote = { certificate: '/etc/slbctl/lab-lb.crt', key: '/etc/slbctl/lab-lb.key' };
  for (const [what, mode] of [
    ['certificate', '0644'],
    ['key', '0600'],
  ] as const) {
    const put = await vmRun(record, 'lb', ['install', '-m', mode, '/dev/stdin', remote[what]], { input: fs.readFileSync(local[what], 'utf8') });
    if (put.code !== 0) throw new LabError(`lab mode: copying the ${what} into the lb VM failed: ${put.stderr.trim()}`);
  }
  out(`  lb: its certificate and key in ${path.dirname(remote.certificate)} (in the lb VM)`);
  return remote;
}

/** Two balancer VMs: whatever ran before ends first (their controllers, the router's BIRD after ecmp; lb2's service when one balancer serves). */
async function resetPair(record: VagrantLabRecord, options: LabModeOptions, out: (line: string) => void): Promise<void> {
  if (record.balancers !== 2) return;
  for (const b of BALANCERS) if (await stopVmController(record, b)) out(`  ${b}: slbctl run stopped`);
  if (record.ha === 'ecmp' && options.ha !== 'ecmp') {
    await stopVmRouterBird(record);
    out('  router: BIRD stopped');
  }
  if (!options.ha) {
    const r = await vmRun(record, 'lb2', ['slbctl', 'destroy'], { timeoutMs: 180_000 });
    if (r.code !== 0) throw new LabError(`lab mode: slbctl destroy on the lb2 VM failed (exit ${r.code}): ${(r.stderr || r.stdout).trim()}`);
    out('  lb2: slbctl destroy (one balancer serves)');
  }
}

/** dsr --ha ecmp: each balancer VM's controller applies its config and announces the VIP; the router's BIRD spreads flows over both. */
async function startEcmpPair(record: VagrantLabRecord, mode: Mode, options: LabModeOptions, file: string, out: (line: string) => void): Promise<void> {
  const topology = REFERENCE_TOPOLOGY;
  for (const b of BALANCERS) {
    const put = await vmRun(record, b, ['install', '-D', '-m', '0644', '/dev/stdin', file], { input: labServiceConfig(mode, topology, options, b, VM_PAIR) });
    if (put.code !== 0) throw new LabError(`lab mode ${mode}: writing ${file} on the ${b} VM failed: ${put.stderr.trim()}`);
    await startVmController(record, b, file);
    out(`  ${b}: slbctl run -f ${file} (in the ${b} VM; BIRD announces ${topology.vip}/32)`);
  }
  await startVmRouterBird(record, topology);
  const hops = await waitForVmNextHops(record, BALANCERS, topology);
  out(`  router: BGP from both balancers; ${topology.vip} via ${hops.join(' and ')} (ECMP, L4 hash; BIRD in the client VM)`);
}

export async function applyVagrantMode(record: VagrantLabRecord, mode: Mode, options: LabModeOptions, out: (line: string) => void): Promise<void> {
  const topology = REFERENCE_TOPOLOGY;
  const { encapsulation } = options;
  if (options.ha === 'vrrp')
    throw new LabError(
      '--ha vrrp runs in the netns lab (nftables and conntrackd); on the VMs the pair would need the IPVS sync daemons under keepalived, not built into the Vagrant lab yet',
    );
  if (options.ha && record.balancers !== 2)
    throw new LabError(`--ha ${options.ha} needs two balancers; make the lab with \`slbctl lab up --provider vagrant --balancers 2 --name ${record.lab}\``);
  checkHaOptions(record.lab, record.balancers ?? 1, mode, options);
  if (options.sync === false) throw new LabError('--no-sync is for --ha vrrp (it leaves conntrackd out of the pair)');
  if (options.protocol !== 'tcp') await requireHaproxy(record, mode, options);
  await resetPair(record, options, out);
  for (const h of REAL_SERVERS) {
    const steps = realServerSteps(mode, topology, encapsulation, VM_PLACE);
    const r = await vmScript(record, h as VmName, `${stepsScript(steps.reset)}\necho @@reset-done\n${stepsScript(steps.own)}`);
    if (r.code !== 0) throw new LabError(`lab mode ${mode}: setting up ${h} failed: ${(r.stderr || r.stdout).trim()}`);
    const reset = r.stdout.split('@@reset-done')[0] ?? '';
    const resetDone = steps.reset.map((_s, i) => reset.includes(`@@ok=${i}\n`));
    for (const line of describeRealServer(h, topology, steps, resetDone, VM_PLACE)) out(`  ${line}`);
  }
  const file = `/etc/slbctl/lab-${mode}.yaml`;
  if (options.ha === 'ecmp') {
    await startEcmpPair(record, mode, options, file, out);
    writeVagrantRecord({ ...record, mode, encapsulation, protocol: options.protocol, cache: options.cache, ha: 'ecmp', failed: [] });
    return;
  }
  const write = await vmScript(record, 'lb', shellCommand(['mkdir', '-p', '/etc/slbctl']));
  if (write.code !== 0) throw new LabError(`lab mode ${mode}: lb: ${write.stderr.trim()}`);
  const tls = options.protocol === 'https' ? await vmCertificate(record, out) : undefined;
  const config = labServiceConfig(mode, topology, { ...options, ...(tls ? { tls } : {}) });
  const put = await vmRun(record, 'lb', ['tee', file], { input: config });
  if (put.code !== 0) throw new LabError(`lab mode ${mode}: writing ${file} on lb failed: ${put.stderr.trim()}`);
  out(`  lb: slbctl apply -f ${file} (in the lb VM)`);
  const r = await vmRun(record, 'lb', ['slbctl', 'apply', '-f', file], { timeoutMs: 180_000 });
  for (const line of `${r.stdout}${r.stderr}`.trimEnd().split('\n')) if (line) out(`    ${line}`);
  if (r.code !== 0) throw new LabError(`lab mode ${mode}: slbctl apply on the lb VM failed (exit ${r.code})`);
  const { ha: _ha, failed: _failed, ...rest } = record;
  writeVagrantRecord({ ...rest, mode, encapsulation, protocol: options.protocol, cache: options.cache });
}
