// The data-path bench on the Vagrant lab (`dataplane.js --provider vagrant`):
// the same cases and measurements as in the netns lab, but each lab host is
// its VM (the client the namespace of the client VM, the router that VM's
// root namespace), the L4 modes run on IPVS in the lb VM's own kernel, and
// CPU is the sum of the four VMs' busy time (each VM's /proc/stat, read over
// ssh before and after a run, so those readings' own ssh, sudo and cat count
// too, the same in every case). The VMs run on QEMU's software emulation,
// one vCPU each: nginx gets one worker. The L7 types are left out (their
// HAProxy runs on the lb VM too, and every stage costs minutes there).
// nginx, wrk, iperf3 and conntrack are not in the box and the VMs have no
// network: vm-packages.ts copies this host's .deb files in.
import * as os from 'node:os';
import { DEFAULT_LAB_OPTIONS, LabModeOptions } from '../../src/lab/lb-config';
import { LabHostName, REAL_SERVERS, REFERENCE_TOPOLOGY, addressOf } from '../../src/lab/topology';
import { RunResult } from '../../src/util/exec';
import { defaultVagrantBox } from '../../src/vagrant/box';
import { VagrantLabRecord, stopVagrantLab, vagrantLab } from '../../src/vagrant/lab';
import { applyVagrantMode } from '../../src/vagrant/mode';
import { CLIENT_NETNS, VM_MEMORY_MB, VmName } from '../../src/vagrant/plan';
import { vagrantProvider } from '../../src/vagrant/provider';
import { vmRun } from '../../src/vagrant/ssh';
import { sleep } from '../../src/lab/processes';
import { statTicks } from './cpu';
import { Bed, CONNECTIONS, DIRECT, HAPROXY_TCP, Stage } from './dataplane-bed';
import { haproxyTcpConfig } from './haproxy-tcp';
import { IPERF_PORT, iperfServerArgv } from './iperf';
import { nginxConfig } from './l7-nginx';
import { installOnVms } from './vm-packages';
import { MANY_CONNECTIONS_SETTINGS } from './wrk';

const VMS: readonly VmName[] = ['client', 'lb', 'rs1', 'rs2'];
/** The bench's files inside the VMs (configs, pid files, logs). */
const REMOTE = '/var/tmp/slbctl-bench';
const HAPROXY = { config: `${REMOTE}/haproxy-tcp.cfg`, pid: `${REMOTE}/haproxy-tcp.pid` };
const IPERF_PID = `${REMOTE}/iperf3.pid`;
const VIP = REFERENCE_TOPOLOGY.vip;
const ipvs: LabModeOptions = { ...DEFAULT_LAB_OPTIONS, backend: 'ipvs', extraTcpPorts: [IPERF_PORT] };
/** What each VM needs: wrk and iperf3 on the client, nginx and iperf3 servers on the RSs, conntrack -F on the balancer. */
const TOOLS = new Map<VmName, readonly string[]>([
  ['client', ['wrk', 'iperf3']],
  ['lb', ['conntrack']],
  ['rs1', ['nginx', 'iperf3']],
  ['rs2', ['nginx', 'iperf3']],
]);

const STAGES: Stage[] = [
  {
    mode: 'fullnat',
    options: ipvs,
    haproxyTcp: true,
    cases: [DIRECT, { label: 'L4 fullnat (IPVS)', role: 'l4-nat', host: VIP, iperf: true }, HAPROXY_TCP],
  },
  {
    mode: 'transparent',
    options: ipvs,
    haproxyTcp: false,
    cases: [{ label: 'L4 transparent (IPVS)', role: 'l4-nat', host: VIP, iperf: true }],
  },
  { mode: 'dsr', options: ipvs, haproxyTcp: false, cases: [{ label: 'L4 dsr (IPVS)', role: 'l4-dsr', host: VIP, iperf: true }] },
];

export interface VagrantBedOptions {
  /** This host's temp dir of the bench (the .deb files). */
  dir: string;
  seconds: number;
  rounds: number;
  say: (line: string) => void;
}

const vmOf = (host: LabHostName): VmName => (host === 'router' || host === 'client' ? 'client' : host);

async function checkedVm(record: VagrantLabRecord, vm: VmName, what: string, argv: string[], input?: string): Promise<RunResult> {
  const r = await vmRun(record, vm, argv, { timeoutMs: 180_000, ...(input !== undefined ? { input } : {}) });
  if (r.code !== 0)
    throw new Error(`${what} on the ${vm} VM failed (exit ${r.code}): ${(r.stderr || r.stdout).trim().split('\n').slice(-3).join(' / ')}`);
  return r;
}

async function firstLine(record: VagrantLabRecord, vm: VmName, argv: string[]): Promise<string> {
  const r = await vmRun(record, vm, argv);
  return `${r.stdout}${r.stderr}`.trim().split('\n')[0] ?? '?';
}

export function vagrantBed(o: VagrantBedOptions): Bed {
  const given = process.env.SLB_BENCH_VAGRANT_LAB;
  let record: VagrantLabRecord | undefined;
  let ours = false;
  const need = (): VagrantLabRecord => {
    if (!record) throw new Error('the Vagrant lab is not up');
    return record;
  };
  const seconds = (since: number) => `${((Date.now() - since) / 1000).toFixed(0)} s`;

  async function startServers(r: VagrantLabRecord): Promise<void> {
    await checkedVm(r, 'lb', 'the conntrack module', ['modprobe', 'nf_conntrack']);
    for (const setting of MANY_CONNECTIONS_SETTINGS.client)
      await checkedVm(r, 'client', `sysctl ${setting}`, ['ip', 'netns', 'exec', CLIENT_NETNS, 'sysctl', '-qw', setting]);
    for (const setting of MANY_CONNECTIONS_SETTINGS.lb) await checkedVm(r, 'lb', `sysctl ${setting}`, ['sysctl', '-qw', setting]);
    if ((await vmRun(r, 'lb', ['sh', '-c', 'command -v haproxy'])).code !== 0)
      throw new Error('the lb VM has no haproxy: its box predates it; rebuild it with scripts/vagrant-box --force');
    for (const h of REAL_SERVERS) {
      const vm = h as VmName;
      // The lab's own Node.js HTTP server holds port 80 (and would be the bottleneck).
      await checkedVm(r, vm, 'systemctl stop slbctl-rs-http', ['systemctl', 'stop', 'slbctl-rs-http.service']);
      await checkedVm(r, vm, `install -d ${REMOTE}`, ['install', '-d', REMOTE]);
      // One worker: each VM has one vCPU.
      await checkedVm(
        r,
        vm,
        'the nginx config',
        ['install', '-m', '0644', '/dev/stdin', `${REMOTE}/nginx.conf`],
        nginxConfig(h, REMOTE, 1),
      );
      await checkedVm(r, vm, 'nginx', ['nginx', '-e', `${REMOTE}/${h}-error.log`, '-c', `${REMOTE}/nginx.conf`]);
      const url = `http://${addressOf(REFERENCE_TOPOLOGY, h)}:${REFERENCE_TOPOLOGY.servicePort}/`;
      const deadline = Date.now() + 30_000;
      while ((await vmRun(r, vm, ['curl', '-s', '-o', '/dev/null', '--max-time', '2', url])).code !== 0) {
        if (Date.now() > deadline) throw new Error(`nginx on the ${vm} VM does not answer at ${url}`);
        await sleep(500);
      }
      await checkedVm(r, vm, 'iperf3 -s', iperfServerArgv(IPERF_PID, `${REMOTE}/iperf3.log`));
    }
    await checkedVm(r, 'lb', `install -d ${REMOTE}`, ['install', '-d', REMOTE]);
  }

  async function stopServers(r: VagrantLabRecord): Promise<void> {
    await vmRun(r, 'lb', ['pkill', '-F', HAPROXY.pid]);
    for (const h of REAL_SERVERS) {
      const vm = h as VmName;
      await vmRun(r, vm, ['nginx', '-e', `${REMOTE}/${h}-error.log`, '-c', `${REMOTE}/nginx.conf`, '-s', 'stop']);
      await vmRun(r, vm, ['pkill', '-F', IPERF_PID]);
      await vmRun(r, vm, ['systemctl', 'start', 'slbctl-rs-http.service']);
    }
    for (const vm of VMS) await vmRun(r, vm, ['rm', '-rf', REMOTE]);
  }

  return {
    stages: STAGES,
    async facts() {
      const r = need();
      return [
        `${new Date().toISOString()}, host ${os.cpus().length} cores, kernel ${os.release()}, load average ${os
          .loadavg()
          .map((l) => l.toFixed(2))
          .join(
            ' ',
          )}; Vagrant lab "${r.lab}" (box ${r.box}): 4 VMs of 1 vCPU and ${VM_MEMORY_MB} MiB each on QEMU's software emulation (TCG), lb VM kernel ${await firstLine(r, 'lb', ['uname', '-r'])}`,
        [
          await firstLine(r, 'lb', ['haproxy', '-v']),
          await firstLine(r, 'rs1', ['nginx', '-v']),
          await firstLine(r, 'client', ['wrk', '--version']),
          await firstLine(r, 'client', ['iperf3', '--version']),
          await firstLine(r, 'lb', ['ipvsadm', '--version']),
        ].join('; '),
        `wrk -t1 -c${CONNECTIONS} -d${o.seconds}s and iperf3 -t ${o.seconds} (one stream) from the client namespace of the client VM; ${o.rounds} rounds interleaved, medians; ` +
          `nginx (1 worker) on each RS VM; L4 on IPVS (slbctl apply in the lb VM); before each measurement conntrack -F in the lb VM and ss -K of TIME_WAIT sockets on every lab host; ` +
          `client and lb: ${MANY_CONNECTIONS_SETTINGS.lb.join(', ')} (the last on lb only)`,
      ];
    },
    run(host, argv, timeoutMs) {
      const r = need();
      const full = host === 'client' ? ['ip', 'netns', 'exec', CLIENT_NETNS, ...argv] : argv;
      return vmRun(r, vmOf(host), full, { timeoutMs: timeoutMs ?? 120_000 });
    },
    async busyTicks() {
      const r = need();
      const stats = await Promise.all(VMS.map((vm) => checkedVm(r, vm, 'cat /proc/stat', ['cat', '/proc/stat'])));
      return stats.reduce((a, s) => a + statTicks(s.stdout).busy, 0);
    },
    cpuCovers: "busy CPU of the four VMs (client+router, lb, rs1, rs2; the sum of each VM's /proc/stat, as the guests count it)",
    async setUp() {
      let started = Date.now();
      if (given) {
        record = vagrantLab(given);
        if (!record)
          throw new Error(`SLB_BENCH_VAGRANT_LAB=${given}: no such Vagrant lab (slbctl lab up --provider vagrant --name ${given})`);
        o.say(`Vagrant lab "${given}" (up already; left up)`);
      } else {
        const name = `dpv${process.pid % 10000}`;
        const box = process.env.SLB_BENCH_VAGRANT_BOX ?? (await defaultVagrantBox());
        ours = true;
        try {
          o.say(await vagrantProvider.up(name, { box }, o.say));
        } finally {
          record = vagrantLab(name);
        }
        o.say(`lab up: ${seconds(started)}`);
      }
      started = Date.now();
      for (const line of await installOnVms(need(), TOOLS, o.dir)) o.say(`  ${line}`);
      o.say(`packages: ${seconds(started)}`);
      started = Date.now();
      await startServers(need());
      o.say(`nginx and iperf3 servers on the RS VMs, tuning: ${seconds(started)}`);
    },
    async tearDown() {
      if (!record) return;
      if (ours) await stopVagrantLab(record, (line) => o.say(`lab down: ${line}`));
      else await stopServers(record);
    },
    async apply(stage) {
      await applyVagrantMode(need(), stage.mode, stage.options, () => undefined);
    },
    async startHaproxyTcp(listeners) {
      const r = need();
      await checkedVm(
        r,
        'lb',
        'the HAProxy config',
        ['install', '-m', '0644', '/dev/stdin', HAPROXY.config],
        haproxyTcpConfig(listeners, HAPROXY.pid),
      );
      await checkedVm(r, 'lb', 'haproxy -c (mode tcp)', ['haproxy', '-c', '-q', '-f', HAPROXY.config]);
      await checkedVm(r, 'lb', 'haproxy (mode tcp)', ['haproxy', '-f', HAPROXY.config]);
      const deadline = Date.now() + 10_000;
      while ((await vmRun(r, 'lb', ['test', '-s', HAPROXY.pid])).code !== 0) {
        if (Date.now() > deadline) throw new Error(`haproxy (mode tcp) did not start on the lb VM: no ${HAPROXY.pid}`);
        await sleep(200);
      }
    },
    async stopHaproxyTcp() {
      const r = need();
      await vmRun(r, 'lb', ['pkill', '-F', HAPROXY.pid]);
      await vmRun(r, 'lb', ['rm', '-f', HAPROXY.pid]);
    },
  };
}
