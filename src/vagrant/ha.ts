// Two balancers on VMs (`lab up --provider vagrant --balancers 2`, then `lab
// mode dsr --ha ecmp`): the same pieces as the netns lab's ECMP pair
// (src/lab/ha.ts), placed on VMs and reached over ssh:
//  - each balancer VM runs `slbctl run` as a transient systemd unit (it
//    outlives the ssh session; `systemctl kill` ends it with its BIRD, as the
//    netns lab's SIGKILL does), with IPVS sloppy_tcp so the survivor takes
//    over a flow mid-connection;
//  - the client VM's root namespace, the lab's router, runs BIRD with the
//    netns lab's router config, BFD on its lab NIC, and the L4 multipath hash.
// `lab fail` takes the balancer's lab NIC down and kills its controller;
// `lab recover` brings both back and waits until the router uses it again.
import { LabError } from '../lab/errors';
import { renderRouterBird } from '../lab/ha';
import type { PairVariant } from '../lab/lb-config';
import { BALANCERS, BalancerName, LabTopology, REFERENCE_TOPOLOGY, addressOf, hostOf } from '../lab/topology';
import { VagrantLabRecord, vagrantLab, writeVagrantRecord } from './lab';
import { VM_LAB_DEVICE } from './plan';
import { shellCommand, vmRun, vmScript } from './ssh';

const CONTROLLER_UNIT = 'slbctl-lab-run';
const CONTROLLER_LOG = '/var/log/slbctl-lab-run.log';
const ROUTER_UNIT = 'slbctl-lab-router-bird';
export const ROUTER_BIRD = { conf: '/etc/slbctl/lab-router-bird.conf', socket: '/run/slbctl-lab-router-bird.ctl' };
/** How long a VM under software emulation may take to start a controller (node, the first apply, BIRD). */
const START_SECONDS = 120;

/** BFD off and no data-path health check on the VMs (lb-config.ts, PairVariant): BGP's 3 s hold time notices a failed balancer. */
export const VM_PAIR: PairVariant = { bfd: false, healthCheck: false };

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** `slbctl run -f FILE` on the balancer's VM; resolves once its first apply is done and its BIRD runs. */
export async function startVmController(record: VagrantLabRecord, b: BalancerName, file: string): Promise<void> {
  const unit = CONTROLLER_UNIT;
  const script = [
    // sysctl: ip_vs is loaded (provision.sh), so the knob exists.
    'sysctl -qw net.ipv4.vs.sloppy_tcp=1 || exit 1',
    `systemctl stop ${unit} 2>/dev/null; systemctl reset-failed ${unit} 2>/dev/null`,
    `${shellCommand([
      'systemd-run', '--quiet', `--unit=${unit}`, '--collect', '-p', `StandardOutput=truncate:${CONTROLLER_LOG}`, '-p', 'StandardError=inherit',
      '/usr/local/bin/slbctl', 'run', '-f', file, '--log-format', 'json', '--metrics', 'off',
    ])} || exit 1`,
    `i=0; until grep -q '"msg":"running: kernel compared' ${CONTROLLER_LOG} 2>/dev/null; do`,
    `  systemctl -q is-active ${unit} || { echo "it exited: $(tail -n 3 ${CONTROLLER_LOG} | tr '\\n' ' ')"; exit 1; }`,
    `  i=$((i+1)); [ $i -gt ${START_SECONDS * 5} ] && { echo "it did not start in ${START_SECONDS} s: $(tail -n 3 ${CONTROLLER_LOG} | tr '\\n' ' ')"; exit 1; }`,
    '  sleep 0.2',
    'done',
  ].join('\n');
  const r = await vmScript(record, b, script, { timeoutMs: (START_SECONDS + 60) * 1000 });
  if (r.code !== 0) throw new LabError(`slbctl run on the ${b} VM: ${(r.stdout + r.stderr).trim()} (log ${CONTROLLER_LOG} in the VM)`);
}

/** End the balancer's controller and its BIRD (SIGTERM: BIRD closes its sessions; SIGKILL: a crash). Whether it ran. */
export async function stopVmController(record: VagrantLabRecord, b: BalancerName, signal: 'SIGTERM' | 'SIGKILL' = 'SIGTERM'): Promise<boolean> {
  const unit = CONTROLLER_UNIT;
  const end = signal === 'SIGKILL' ? `systemctl kill -s KILL ${unit}` : `systemctl stop ${unit}`;
  const r = await vmScript(record, b, `systemctl -q is-active ${unit} || { systemctl reset-failed ${unit} 2>/dev/null; exit 3; }\n${end}`);
  return r.code === 0;
}

/** The router's BIRD in the client VM (started, or told to read its config again) and the L4 multipath hash. */
export async function startVmRouterBird(record: VagrantLabRecord, topology: LabTopology = REFERENCE_TOPOLOGY): Promise<void> {
  const put = await vmRun(record, 'client', ['install', '-D', '-m', '0644', '/dev/stdin', ROUTER_BIRD.conf], { input: renderRouterBird(topology, VM_LAB_DEVICE, VM_PAIR) });
  if (put.code !== 0) throw new LabError(`writing ${ROUTER_BIRD.conf} on the client VM failed: ${put.stderr.trim()}`);
  const script = [
    'sysctl -qw net.ipv4.fib_multipath_hash_policy=1 || exit 1',
    `${shellCommand(['birdc', '-s', ROUTER_BIRD.socket, 'configure'])} >/dev/null 2>&1 && exit 0`,
    `systemctl reset-failed ${ROUTER_UNIT} 2>/dev/null`,
    shellCommand(['systemd-run', '--quiet', `--unit=${ROUTER_UNIT}`, '--collect', 'bird', '-f', '-c', ROUTER_BIRD.conf, '-s', ROUTER_BIRD.socket]),
  ].join('\n');
  const r = await vmScript(record, 'client', script);
  if (r.code !== 0) throw new LabError(`the router's BIRD (client VM) did not start: ${(r.stderr || r.stdout).trim()}`);
}

export async function stopVmRouterBird(record: VagrantLabRecord): Promise<void> {
  await vmScript(record, 'client', `systemctl stop ${ROUTER_UNIT} 2>/dev/null; systemctl reset-failed ${ROUTER_UNIT} 2>/dev/null; true`);
}

/** The router BIRD's `show route PREFIX all` (undefined: it did not answer). */
export async function vmRouterShowRoute(record: VagrantLabRecord, prefix: string): Promise<string | undefined> {
  const r = await vmRun(record, 'client', ['birdc', '-s', ROUTER_BIRD.socket, 'show', 'route', prefix, 'all']);
  return r.code === 0 ? r.stdout : undefined;
}

/** The next hops of the router's route to the VIP (none: no route learned). */
export async function vmRouterNextHops(record: VagrantLabRecord, vip: string): Promise<string[]> {
  const r = await vmRun(record, 'client', ['ip', 'route', 'show', `${vip}/32`]);
  return [...r.stdout.matchAll(/via (\d+\.\d+\.\d+\.\d+)/g)].map((m) => m[1] ?? '').sort();
}

/** Wait until the router sends the VIP to exactly these balancers. */
export async function waitForVmNextHops(record: VagrantLabRecord, want: readonly BalancerName[], topology: LabTopology = REFERENCE_TOPOLOGY, timeoutMs = 90_000): Promise<string[]> {
  const expected = want.map((b) => addressOf(topology, b)).sort();
  const deadline = Date.now() + timeoutMs;
  let seen: string[] = [];
  while (Date.now() < deadline) {
    seen = await vmRouterNextHops(record, topology.vip);
    if (seen.join(',') === expected.join(',')) return seen;
    await sleep(500);
  }
  throw new LabError(
    `the router's route to ${topology.vip} goes via ${seen.join(', ') || 'nothing'} after ${timeoutMs / 1000} s, not via ${expected.join(', ')}; see ${CONTROLLER_LOG} in the balancer VMs`,
  );
}

function requireEcmp(record: VagrantLabRecord): void {
  if (record.balancers !== 2) throw new LabError(`lab "${record.lab}" has one balancer VM; make one with \`slbctl lab up --provider vagrant --balancers 2 --name ${record.lab}\``);
  if (record.ha !== 'ecmp') throw new LabError(`lab "${record.lab}" runs no --ha mode; run \`slbctl lab mode dsr --ha ecmp --name ${record.lab}\` first`);
}

/** The script that takes b off the wire (its lab NIC down) and kills its controller; prints the VM's clock when the link went down. */
export const FAIL_SCRIPT = `ip link set ${VM_LAB_DEVICE} down || exit 1\ndate +%s%N\nsystemctl kill -s KILL ${CONTROLLER_UNIT} 2>/dev/null; true`;

/** Record b as failed (or recovered) in the lab's record. */
function markFailed(record: VagrantLabRecord, b: BalancerName, failed: boolean): void {
  const now = vagrantLab(record.lab) ?? record;
  const others = (now.failed ?? []).filter((x) => x !== b);
  writeVagrantRecord({ ...now, failed: failed ? [...others, b] : others });
}

/** `lab fail b` on the VMs. Returns the lb VM's output of FAIL_SCRIPT (its clock when the link went down). */
export async function failVmBalancer(record: VagrantLabRecord, b: BalancerName, say: (line: string) => void): Promise<string> {
  requireEcmp(record);
  const r = await vmScript(record, b, FAIL_SCRIPT);
  if (r.code !== 0) throw new LabError(`lab fail ${b}: taking ${VM_LAB_DEVICE} down in the ${b} VM failed: ${(r.stderr || r.stdout).trim()}`);
  markFailed(record, b, true);
  say(`  ${b} VM: ${VM_LAB_DEVICE} down; slbctl run killed (SIGKILL)`);
  return r.stdout;
}

/** `lab recover b` on the VMs: link up, its route to the client network back, controller started, router uses it again. */
export async function recoverVmBalancer(record: VagrantLabRecord, b: BalancerName, say: (line: string) => void, topology: LabTopology = REFERENCE_TOPOLOGY): Promise<void> {
  requireEcmp(record);
  const router = hostOf(topology, b).gateway ?? '';
  // A link going down takes its routes with it: the one to the client network (provision.sh) comes back here.
  const up = [
    shellCommand(['ip', 'link', 'set', VM_LAB_DEVICE, 'up']),
    shellCommand(['ip', 'route', 'replace', topology.clientNet, 'via', router, 'dev', VM_LAB_DEVICE]),
  ].join(' && ');
  const r = await vmScript(record, b, up);
  if (r.code !== 0) throw new LabError(`lab recover ${b}: bringing ${VM_LAB_DEVICE} up in the ${b} VM failed: ${(r.stderr || r.stdout).trim()}`);
  say(`  ${b} VM: ${VM_LAB_DEVICE} up, ${topology.clientNet} via ${router}`);
  const file = `/etc/slbctl/lab-${record.mode ?? 'dsr'}.yaml`;
  await startVmController(record, b, file);
  say(`  ${b} VM: slbctl run -f ${file} (BIRD announces the VIP again)`);
  markFailed(record, b, false);
  const failed = vagrantLab(record.lab)?.failed ?? [];
  const hops = await waitForVmNextHops(record, BALANCERS.filter((x) => !failed.includes(x)), topology);
  say(`  router: ${topology.vip} via ${hops.join(' and ')}`);
}
