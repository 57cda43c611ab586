// `lab verify` of the Vagrant lab's ECMP pair: the one ECMP verify
// (src/verify/failover.ts) through a driver that captures with tcpdump on the
// VMs, runs the client's requests and its long-lived connection in the client
// VM's namespace, and fails and recovers a balancer VM (ha.ts).
//
// Each VM keeps its own clock (no NTP: the VMs have no network but the lab's),
// and the failover facts compare capture times with the moment of the failure.
// So each VM's offset from this host is measured over one ssh session, the
// round trip with the least delay of a few (as NTP picks its samples), and
// instants are moved between clocks with it.
import { BalancerName, LabTopology, REFERENCE_TOPOLOGY, addressOf } from '../lab/topology';
import { LabError } from '../lab/errors';
import { EcmpHost, EcmpLabDriver, FailoverReport, verifyEcmpWith } from '../verify/failover';
import { HALF_REQUEST_SCRIPT, halfRequestOf, sleep } from '../verify/live';
import { CLIENT_NETNS, VmName } from './plan';
import { VagrantLabRecord } from './lab';
import { failVmBalancer, recoverVmBalancer, vmRouterShowRoute } from './ha';
import { shellCommand, vmRun, vmSpawn } from './ssh';
import { startVmCapture, stopAndLoadVmCaptures, VmWhere, vmRequests, whereIs } from './verify';

const nowNanos = () => BigInt(Date.now()) * 1_000_000n;

/** The VM's clock minus this host's, in ns: the sample with the shortest round trip over one ssh session. */
export async function vmClockOffset(record: VagrantLabRecord, vm: VmName, samples = 5): Promise<bigint> {
  const child = vmSpawn(record, vm, ['sh', '-c', 'while read -r x; do date +%s%N; done']);
  let buffer = '';
  const lines: string[] = [];
  child.stdout.on('data', (d: Buffer) => {
    buffer += d.toString();
    const parts = buffer.split('\n');
    buffer = parts.pop() ?? '';
    lines.push(...parts);
  });
  const ask = async (timeoutMs = 5000): Promise<{ rtt: bigint; offset: bigint } | undefined> => {
    const want = lines.length + 1;
    const sent = process.hrtime.bigint();
    const sentAt = nowNanos();
    child.stdin.write('x\n');
    const deadline = Date.now() + timeoutMs;
    while (lines.length < want && Date.now() < deadline) await sleep(5);
    const remote = lines[want - 1];
    if (remote === undefined || !/^\d+$/.test(remote)) return undefined;
    const rtt = process.hrtime.bigint() - sent;
    return { rtt, offset: BigInt(remote) - (sentAt + rtt / 2n) };
  };
  try {
    // The first answer pays for the ssh session; the later ones are the channel's round trip alone.
    // Under emulation on a loaded host an ssh session took more than 7 s to open.
    if (!(await ask(90_000))) throw new LabError(`reading the clock of the ${vm} VM failed: no answer over ssh within 90 s`);
    let best: { rtt: bigint; offset: bigint } | undefined;
    for (let i = 0; i < samples; i++) {
      const s = await ask();
      if (s && (!best || s.rtt < best.rtt)) best = s;
    }
    if (!best) throw new LabError(`reading the clock of the ${vm} VM failed`);
    return best.offset;
  } finally {
    child.stdin.end();
    child.kill();
  }
}

/** The client VM's router watching its route to the VIP: prints "watching", then the VM's clock once `address` is no next hop any more. */
function withdrawalWatch(vip: string, address: string): string {
  return [
    'echo watching',
    `i=0; while ${shellCommand(['ip', 'route', 'show', `${vip}/32`])} | grep -q ${shellCommand([`via ${address} `])}; do`,
    '  i=$((i+1)); [ $i -gt 400 ] && exit 1; sleep 0.02',
    'done',
    'date +%s%N',
  ].join('\n');
}

export function vagrantEcmpDriver(record: VagrantLabRecord, topology: LabTopology = REFERENCE_TOPOLOGY): EcmpLabDriver {
  const offsets = new Map<VmName, bigint>();
  const offsetOf = async (vm: VmName) => {
    const known = offsets.get(vm);
    if (known !== undefined) return known;
    const measured = await vmClockOffset(record, vm);
    offsets.set(vm, measured);
    return measured;
  };
  const macOf = async (host: EcmpHost) => {
    const w = whereIs(host);
    const r = await vmRun(record, w.vm, ['cat', `/sys/class/net/${w.device}/address`]);
    if (r.code !== 0) throw new LabError(`reading the MAC of ${host} (${w.vm} VM, ${w.device}) failed: ${r.stderr.trim()}`);
    return r.stdout.trim();
  };
  return {
    async macs() {
      const [lb, lb2, router] = await Promise.all([macOf('lb'), macOf('lb2'), macOf('router')]);
      return { lb, lb2, router };
    },
    async capture(where, filter) {
      const started = await Promise.all(
        where.map(async (w) => {
          const vmWhere: VmWhere = whereIs(w.host);
          return { label: w.label, where: vmWhere, mac: await startVmCapture(record, w.label, vmWhere, filter) };
        }),
      );
      return {
        async stop() {
          await sleep(500); // the last FIN/ACKs reach every capture
          return stopAndLoadVmCaptures(record, started);
        },
      };
    },
    requests: (url, k) => vmRequests(record, k, url),
    openHalfRequest(vip, port) {
      const child = vmSpawn(record, 'client', ['ip', 'netns', 'exec', CLIENT_NETNS, 'node', '-e', HALF_REQUEST_SCRIPT, vip, String(port)]);
      return halfRequestOf(child, 60_000);
    },
    routerShowRoute: (prefix) => vmRouterShowRoute(record, prefix),
    async backendIsIpvs() {
      const r = await vmRun(record, 'lb', ['slbctl', 'status']);
      return /^backend: ipvs\b/m.test(r.stdout);
    },
    async fail(b: BalancerName, vip: string) {
      // The router's watch runs before the balancer goes, so the withdrawal is seen when it happens, not an ssh later.
      const watch = vmSpawn(record, 'client', ['sh', '-c', withdrawalWatch(vip, addressOf(topology, b))]);
      let output = '';
      watch.stdout.on('data', (d: Buffer) => (output += d.toString()));
      const done = new Promise<void>((resolve) => watch.once('close', () => resolve()));
      for (let i = 0; i < 1200 && !output.includes('watching'); i++) await sleep(25);
      try {
        const failed = await failVmBalancer(record, b, () => undefined);
        const failedVm = BigInt(/^(\d+)$/m.exec(failed)?.[1] ?? '0');
        const failedAt = failedVm > 0n ? failedVm - (await offsetOf(b)) : nowNanos();
        await Promise.race([done, sleep(15_000)]);
        const withdrawnVm = /^(\d{12,})$/m.exec(output)?.[1];
        return withdrawnVm ? { failedAt, withdrawnAt: BigInt(withdrawnVm) - (await offsetOf('client')) } : { failedAt };
      } finally {
        watch.kill();
      }
    },
    recover: (b) => recoverVmBalancer(record, b, () => undefined, topology),
    async captureClock() {
      const vms: VmName[] = ['client', 'lb', 'lb2', 'rs1', 'rs2'];
      await Promise.all(vms.map((vm) => offsetOf(vm)));
      return (host, here) => here + (offsets.get(whereIs(host).vm) ?? 0n);
    },
  };
}

/** The ECMP verify of the Vagrant lab's pair; pcaps into `out` (default ./slbctl-pcaps/LAB/ecmp). */
export function verifyVagrantEcmp(record: VagrantLabRecord, k: number, out: string | undefined): Promise<FailoverReport> {
  if ((record.failed ?? []).length > 0)
    throw new LabError(
      `lab "${record.lab}": ${record.failed?.join(', ')} failed; run \`slbctl lab recover ${record.failed?.[0]} --name ${record.lab}\` first (verify fails one itself)`,
    );
  return verifyEcmpWith(vagrantEcmpDriver(record), record.lab, REFERENCE_TOPOLOGY, k, out);
}
