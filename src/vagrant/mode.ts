// `lab mode` on the VMs: the real servers' side of the mode as ip/sysctl
// steps run over ssh (the same steps as the netns lab's configureRealServers,
// with the VMs' device and their route to the client network instead of a
// default route, which belongs to Vagrant's management NIC), then the
// balancer's config applied by slbctl itself inside the lb VM.
import { BackendChoice, Encapsulation, Mode } from '../model/types';
import { LabError } from '../lab/errors';
import { labServiceConfig } from '../lab/lb-config';
import { REAL_SERVERS, REFERENCE_TOPOLOGY, addressOf, hostOf, LabTopology } from '../lab/topology';
import { VM_LAB_DEVICE, VmName } from './plan';
import { VagrantLabRecord, writeVagrantRecord } from './lab';
import { shellCommand, vmRun, vmScript } from './ssh';

type Step = { argv: string[]; mayFail?: boolean };

function sysctl(key: string, value: string): Step {
  return { argv: ['sysctl', '-qw', `${key}=${value}`] };
}

/** The steps that put one real server VM into a mode; first undoes any other mode. Pure. */
export function realServerSteps(mode: Mode, topology: LabTopology, encapsulation: Encapsulation, dev = VM_LAB_DEVICE): Step[] {
  const routerOnServerNet = hostOf(topology, 'router').interfaces.find((i) => i.segment === 'server-net')?.cidr.split('/')[0];
  if (!routerOnServerNet) throw new LabError('lab topology: the router has no server-net address');
  const steps: Step[] = [
    // The VIP goes first, before ARP is relaxed again, so the RS never answers ARP for it.
    { argv: ['ip', 'addr', 'del', `${topology.vip}/32`, 'dev', 'lo'], mayFail: true },
    ...['all', dev].flatMap((s) => [sysctl(`net.ipv4.conf.${s}.arp_ignore`, '0'), sysctl(`net.ipv4.conf.${s}.arp_announce`, '0')]),
    { argv: ['ip', 'link', 'set', 'tunl0', 'down'], mayFail: true },
    { argv: ['ip', 'route', 'replace', topology.clientNet, 'via', routerOnServerNet, 'dev', dev] },
  ];
  if (mode === 'transparent') {
    steps.push({ argv: ['ip', 'route', 'replace', topology.clientNet, 'via', addressOf(topology, 'lb'), 'dev', dev] });
  } else if (mode === 'dsr') {
    steps.push(...['all', dev].flatMap((s) => [sysctl(`net.ipv4.conf.${s}.arp_ignore`, '1'), sysctl(`net.ipv4.conf.${s}.arp_announce`, '2')]));
    steps.push({ argv: ['ip', 'addr', 'add', `${topology.vip}/32`, 'dev', 'lo'] });
    if (encapsulation === 'ipip') {
      steps.push({ argv: ['modprobe', 'ipip'] }, { argv: ['ip', 'link', 'set', 'tunl0', 'up'] });
      steps.push(...['all', 'tunl0', dev].map((s) => sysctl(`net.ipv4.conf.${s}.rp_filter`, '0')));
    }
  }
  return steps;
}

function script(steps: Step[]): string {
  return steps.map((s) => (s.mayFail ? `${shellCommand(s.argv)} 2>/dev/null || true` : `${shellCommand(s.argv)} || exit 1`)).join('\n');
}

export async function applyVagrantMode(record: VagrantLabRecord, mode: Mode, backend: BackendChoice, encapsulation: Encapsulation, out: (line: string) => void): Promise<void> {
  const topology = REFERENCE_TOPOLOGY;
  for (const h of REAL_SERVERS) {
    const steps = realServerSteps(mode, topology, encapsulation);
    const r = await vmScript(record, h as VmName, script(steps));
    if (r.code !== 0) throw new LabError(`lab mode ${mode}: setting up ${h} failed: ${(r.stderr || r.stdout).trim()}`);
    // fullnat adds nothing to the reset, so what follows it is the mode's own part.
    const own = steps.slice(realServerSteps('fullnat', topology, 'none').length).map((s) => s.argv.join(' '));
    out(`  ${h}: reset (VIP off lo, arp_ignore/arp_announce 0, ${topology.clientNet} via the router)${own.length ? `; ${own.join('; ')}` : ''}`);
  }
  const file = `/etc/slbctl/lab-${mode}.yaml`;
  const config = labServiceConfig(mode, topology, backend, encapsulation);
  const write = await vmScript(record, 'lb', shellCommand(['mkdir', '-p', '/etc/slbctl']));
  if (write.code !== 0) throw new LabError(`lab mode ${mode}: lb: ${write.stderr.trim()}`);
  const put = await vmRun(record, 'lb', ['tee', file], { input: config });
  if (put.code !== 0) throw new LabError(`lab mode ${mode}: writing ${file} on lb failed: ${put.stderr.trim()}`);
  out(`  lb: slbctl apply -f ${file} (in the lb VM)`);
  const r = await vmRun(record, 'lb', ['slbctl', 'apply', '-f', file], { timeoutMs: 180_000 });
  for (const line of `${r.stdout}${r.stderr}`.trimEnd().split('\n')) if (line) out(`    ${line}`);
  if (r.code !== 0) throw new LabError(`lab mode ${mode}: slbctl apply on the lb VM failed (exit ${r.code})`);
  writeVagrantRecord({ ...record, mode, encapsulation });
}
