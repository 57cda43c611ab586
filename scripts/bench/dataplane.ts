// Data-path benchmark (issue 12, "performance at scale"): what each L4 mode
// on nftables costs against no balancer at all and against HAProxy in mode
// tcp, the L4 proxy a user would pick instead; the L7 types beside them.
// One netns lab, nginx on the RSs, wrk and iperf3 from the client namespace;
// every configuration measured in the same run, in interleaved rounds, the
// median reported. CPU is the whole machine's (/proc/stat) over each run:
// client, router, balancer and RSs share these cores.
// With --provider vagrant the same measurements run on the Vagrant lab's VMs
// (IPVS in the lb VM's own kernel; dataplane-vagrant.ts says what differs).
// Usage: node dist/scripts/bench/dataplane.js [--provider vagrant]
//   SLB_BENCH_SECONDS (per measurement, default 5; vagrant 8), SLB_BENCH_ROUNDS (default 5; vagrant 3),
//   SLB_BENCH_SVG (chart file, default docs/dataplane.svg, vagrant none; empty: none)
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { applyLabMode } from '../../src/lab/mode';
import { DEFAULT_LAB_OPTIONS, LabModeOptions } from '../../src/lab/lb-config';
import { labDown, labUp, nsName } from '../../src/lab/netns';
import { LAB_HOSTS, REFERENCE_TOPOLOGY } from '../../src/lab/topology';
import { RunResult, run } from '../../src/util/exec';
import { machineTicks, secondsPerTick } from './cpu';
import { Figure, METRICS, Metric, Row, chartSvg, figuresTable, goalsTable } from './dataplane-report';
import { Bed, CONNECTIONS, Case, DIRECT, HAPROXY_LISTENERS, HAPROXY_TCP, Stage } from './dataplane-bed';
import { vagrantBed } from './dataplane-vagrant';
import { median } from './stats';
import { startHaproxyTcp, stopHaproxyTcp } from './haproxy-tcp';
import { IPERF_PORT, iperfArgv, parseIperf, startIperfServers, stopIperfServers } from './iperf';
import { startNginx, stopLabServers, stopNginx } from './l7-nginx';
import { KINDS, MANY_CONNECTIONS_TUNING, parseWrk, toolVersion, tuneForManyConnections, wrkArgv } from './wrk';

const VAGRANT = process.argv.includes('--provider') && process.argv[process.argv.indexOf('--provider') + 1] === 'vagrant';
const SECONDS = Number(process.env.SLB_BENCH_SECONDS ?? (VAGRANT ? 8 : 5));
const ROUNDS = Number(process.env.SLB_BENCH_ROUNDS ?? (VAGRANT ? 3 : 5));
const SVG_FILE = process.env.SLB_BENCH_SVG ?? (VAGRANT ? '' : path.join(__dirname, '..', '..', '..', 'docs', 'dataplane.svg'));
const VIP = REFERENCE_TOPOLOGY.vip;
// L4 on nftables explicitly (auto would take IPVS where the kernel has it), with iperf3's port as a second service.
const l4: LabModeOptions = { ...DEFAULT_LAB_OPTIONS, backend: 'nft', extraTcpPorts: [IPERF_PORT] };
const http: LabModeOptions = { ...DEFAULT_LAB_OPTIONS, protocol: 'http' };
const NETNS_STAGES: Stage[] = [
  {
    // Direct and HAProxy sit here: with fullnat the RSs route the client network via the router, as without a balancer,
    // and answer HAProxy's connections from the balancer's own address on their segment.
    mode: 'fullnat',
    options: l4,
    haproxyTcp: true,
    cases: [DIRECT, { label: 'L4 fullnat (nftables)', role: 'l4-nat', host: VIP, iperf: true }, HAPROXY_TCP],
  },
  {
    mode: 'transparent',
    options: l4,
    haproxyTcp: false,
    cases: [{ label: 'L4 transparent (nftables)', role: 'l4-nat', host: VIP, iperf: true }],
  },
  { mode: 'dsr', options: l4, haproxyTcp: false, cases: [{ label: 'L4 dsr (nftables)', role: 'l4-dsr', host: VIP, iperf: true }] },
  { mode: 'fullnat', options: http, haproxyTcp: false, cases: [{ label: 'L7 reverse proxy (http)', role: 'l7', host: VIP, iperf: false }] },
  {
    mode: 'transparent',
    options: http,
    haproxyTcp: false,
    cases: [{ label: 'L7 transparent (http)', role: 'l7', host: VIP, iperf: false }],
  },
];

interface Sample extends Figure {
  /** wrk's socket errors and bad answers, or iperf3's retransmits. */
  trouble: number;
  /** SYNs the client sent again (TcpExt TCPSynRetrans in its namespace): connections that waited 1 s or more. */
  synRetransmits: number;
  /** Requests wrk completed (0 for iperf3). */
  requests: number;
}

const say = (line: string) => process.stdout.write(`${line}\n`);
const keyOf = (c: Case, m: Metric) => `${c.label} (${m})`;

async function checked(what: string, p: Promise<RunResult>): Promise<RunResult> {
  const r = await p;
  if (r.code !== 0)
    throw new Error(`${what} failed (exit ${r.signal ?? r.code}): ${(r.stderr || r.stdout).trim().split('\n').slice(-3).join(' / ')}`);
  return r;
}

/**
 * Each measurement starts from a clean slate, so no case inherits the one
 * before's state: the balancer's connection-tracking table is emptied (with a
 * connection per request, full NAT to one source address holds ~64k ports per
 * RS, and closed flows stay in the table), and the TIME_WAIT sockets of every
 * lab host are dropped (`ss -K`): the RSs keep one for 60 s per closed
 * connection, and a later case's SYN on the same 4-tuple with an older
 * timestamp or sequence number is refused (PAWS) and retried after 1 s; L4
 * transparent, whose RSs see the client's own address and ports, inherited
 * direct's. Only the lab's own hosts. Returns what there was.
 */
async function cleanSlate(bed: Bed): Promise<{ conntrack: number; timeWait: number }> {
  const count = await bed.run('lb', ['conntrack', '-C']);
  await checked('conntrack -F on the lab balancer', bed.run('lb', ['conntrack', '-F']));
  // In parallel: on the VMs each is an ssh round trip.
  const dropped = await Promise.all(
    LAB_HOSTS.map((h) => checked(`ss -K time-wait on ${h}`, bed.run(h, ['ss', '-K', '-H', '-tn', 'state', 'time-wait']))),
  );
  const timeWait = dropped.reduce((a, r) => a + r.stdout.split('\n').filter((l) => l.trim()).length, 0);
  return { conntrack: Number(count.stdout.trim()) || 0, timeWait };
}

/** The client's count of retransmitted SYNs (/proc/net/netstat is per namespace). */
async function clientSynRetransmits(bed: Bed): Promise<number> {
  const r = await checked('netstat counters of the client', bed.run('client', ['cat', '/proc/net/netstat']));
  const [names, values] = r.stdout.split('\n').filter((l) => l.startsWith('TcpExt:'));
  const i = (names ?? '').split(/\s+/).indexOf('TCPSynRetrans');
  return i < 0 ? 0 : Number((values ?? '').split(/\s+/)[i] ?? 0);
}

async function measureHttp(bed: Bed, c: Case, kind: (typeof KINDS)[number], tick: number): Promise<Sample> {
  const syn = await clientSynRetransmits(bed);
  const before = await bed.busyTicks();
  const url = `http://${c.host}:${REFERENCE_TOPOLOGY.servicePort}/`;
  const r = await checked(`wrk ${url}`, bed.run('client', wrkArgv(url, kind, SECONDS, CONNECTIONS), (SECONDS + 60) * 1000));
  const after = await bed.busyTicks();
  const w = parseWrk(r.stdout);
  return {
    value: w.requestsPerSecond,
    cpu: ((after - before) * tick * 1e6) / Math.max(1, w.requests),
    trouble: w.errors,
    synRetransmits: (await clientSynRetransmits(bed)) - syn,
    requests: w.requests,
  };
}

async function measureIperf(bed: Bed, c: Case, tick: number): Promise<Sample> {
  const syn = await clientSynRetransmits(bed);
  const before = await bed.busyTicks();
  const r = await checked(`iperf3 to ${c.host}`, bed.run('client', iperfArgv(c.host, IPERF_PORT, SECONDS), (SECONDS + 60) * 1000));
  const after = await bed.busyTicks();
  const f = parseIperf(r.stdout);
  return {
    value: f.bitsPerSecond,
    // ms of CPU per GB received.
    cpu: ((after - before) * tick * 1e3) / Math.max(1e-9, f.bytes / 1e9),
    trouble: f.retransmits,
    synRetransmits: (await clientSynRetransmits(bed)) - syn,
    requests: 0,
  };
}

function loadAverage(): string {
  return os
    .loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');
}

async function netnsFacts(): Promise<string[]> {
  return [
    `${new Date().toISOString()}, ${os.cpus().length} cores, kernel ${os.release()}, load average ${loadAverage()}`,
    [
      await toolVersion(['haproxy', '-v']),
      await toolVersion(['nginx', '-v']),
      await toolVersion(['wrk', '--version']),
      await toolVersion(['iperf3', '--version']),
      await toolVersion(['nft', '--version']),
    ].join('; '),
    `wrk -t1 -c${CONNECTIONS} -d${SECONDS}s and iperf3 -t ${SECONDS} (one stream) from the client namespace; ${ROUNDS} rounds interleaved, medians; ` +
      `nginx (2 workers) on each RS; before each measurement conntrack -F in the LB namespace and ss -K of TIME_WAIT sockets in every lab namespace; ${MANY_CONNECTIONS_TUNING}`,
  ];
}

/** The netns lab on this host: every lab host a namespace, CPU the whole machine's. */
function netnsBed(lab: string, dir: string): Bed {
  return {
    stages: NETNS_STAGES,
    facts: netnsFacts,
    run: (host, argv, timeoutMs) => run(argv, { netns: nsName(lab, host), ...(timeoutMs ? { timeoutMs } : {}) }),
    busyTicks: () => Promise.resolve(machineTicks().busy),
    cpuCovers: 'busy CPU of the whole machine (client, router, balancer, RSs; /proc/stat)',
    async setUp() {
      await labUp(lab, REFERENCE_TOPOLOGY);
      await tuneForManyConnections(lab);
      await stopLabServers(lab);
      // Two workers on each RS: direct to RS1 must not be held to one core where the VIP spreads over two servers.
      await startNginx(lab, dir, 2);
      await startIperfServers(lab, dir);
    },
    async tearDown() {
      try {
        await stopHaproxyTcp(dir);
        await stopIperfServers(dir);
        await stopNginx(lab, dir);
      } finally {
        await labDown(lab);
      }
    },
    apply: (stage) => applyLabMode(lab, stage.mode, () => undefined, stage.options),
    startHaproxyTcp: (listeners) => startHaproxyTcp(lab, dir, listeners),
    stopHaproxyTcp: () => stopHaproxyTcp(dir),
  };
}

async function runStage(bed: Bed, stage: Stage, round: number, samples: Map<string, Sample[]>, tick: number) {
  await bed.apply(stage);
  if (stage.haproxyTcp) await bed.startHaproxyTcp(HAPROXY_LISTENERS);
  try {
    for (const c of stage.cases) {
      // Connection pools and caches warm up outside the measurement.
      const url = `http://${c.host}:${REFERENCE_TOPOLOGY.servicePort}/`;
      await checked(`wrk ${url} (warm-up)`, bed.run('client', wrkArgv(url, 'keep-alive', 1, CONNECTIONS), 60_000));
      const metrics: Metric[] = [...KINDS, ...(c.iperf ? (['iperf3'] as const) : [])];
      for (const m of metrics) {
        const flushed = await cleanSlate(bed);
        const s = m === 'iperf3' ? await measureIperf(bed, c, tick) : await measureHttp(bed, c, m, tick);
        samples.set(keyOf(c, m), [...(samples.get(keyOf(c, m)) ?? []), s]);
        const figure =
          m === 'iperf3'
            ? `${(s.value / 1e9).toFixed(2)} Gbit/s, ${s.cpu.toFixed(0)} CPU ms/GB, ${s.trouble} retransmits`
            : `${s.value.toFixed(0)} requests/s, ${s.cpu.toFixed(0)} CPU µs/request, ${s.trouble} errors, ${s.synRetransmits} SYN retransmits`;
        say(
          `round ${round}/${ROUNDS}: ${keyOf(c, m)}: ${figure} (dropped before: ${flushed.conntrack} conntrack entries, ${flushed.timeWait} TIME_WAIT sockets; load average ${loadAverage()})`,
        );
      }
    }
  } finally {
    if (stage.haproxyTcp) await bed.stopHaproxyTcp();
  }
}

function rowsOf(cases: readonly Case[], samples: Map<string, Sample[]>): Row[] {
  return cases.map((c) => {
    const rounds: Partial<Record<Metric, Figure[]>> = {};
    for (const m of METRICS) {
      const got = samples.get(keyOf(c, m)) ?? [];
      if (got.length > 0) rounds[m] = got.map((s) => ({ value: s.value, cpu: s.cpu }));
    }
    return { label: c.label, role: c.role, rounds };
  });
}

async function main(): Promise<void> {
  if (process.argv.includes('--help')) {
    say('Usage: node dist/scripts/bench/dataplane.js [--provider vagrant]   (env SLB_BENCH_SECONDS, SLB_BENCH_ROUNDS, SLB_BENCH_SVG;');
    say('  vagrant: SLB_BENCH_VAGRANT_LAB runs on that lab, already up, and leaves it up; SLB_BENCH_VAGRANT_BOX the box of its own lab)');
    return;
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'slbctl-dataplane-'));
  const bed = VAGRANT ? vagrantBed({ dir, seconds: SECONDS, rounds: ROUNDS, say }) : netnsBed(`dpb${process.pid % 100000}`, dir);
  const cases = bed.stages.flatMap((s) => s.cases);
  const tick = await secondsPerTick();
  const samples = new Map<string, Sample[]>();
  let header: string[] = [];
  const phases: string[] = [];
  try {
    let started = Date.now();
    await bed.setUp();
    phases.push(`set-up ${((Date.now() - started) / 1000).toFixed(0)} s`);
    header = await bed.facts();
    for (const line of header) say(line);
    started = Date.now();
    for (let round = 1; round <= ROUNDS; round++) for (const stage of bed.stages) await runStage(bed, stage, round, samples, tick);
    phases.push(`measurements ${((Date.now() - started) / 1000).toFixed(0)} s`);
  } finally {
    try {
      const started = Date.now();
      await bed.tearDown();
      phases.push(`tear-down ${((Date.now() - started) / 1000).toFixed(0)} s`);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }
  const rows = rowsOf(cases, samples);
  const trouble = cases
    .flatMap((c) =>
      METRICS.map((m) => ({
        key: keyOf(c, m),
        sum: (samples.get(keyOf(c, m)) ?? []).reduce((a, s) => a + s.trouble, 0),
      })),
    )
    .filter((t) => t.sum > 0);
  say('');
  say(figuresTable(rows));
  say('');
  say(goalsTable(rows));
  say('');
  say(`load average at the end ${loadAverage()}; ${phases.join(', ')}`);
  say(
    `CPU µs/req and ms/GB: ${bed.cpuCovers} over the requests or GB; x direct: over ` +
      'direct client -> RS1 with the same connections; x HAProxy tcp: over HAProxy in mode tcp on the balancer.',
  );
  say(
    trouble.length === 0
      ? 'No wrk errors, no iperf3 retransmits.'
      : `wrk errors / iperf3 retransmits (sum over the rounds): ${trouble.map((t) => `${t.key} ${t.sum}`).join('; ')}`,
  );
  say(
    'client SYN retransmits per 1,000 requests, a connection per request (median): ' +
      cases
        .map((c) => {
          const got = samples.get(keyOf(c, 'close')) ?? [];
          return `${c.label} ${median(got.map((s) => (s.synRetransmits * 1000) / Math.max(1, s.requests))).toFixed(2)}`;
        })
        .join('; '),
  );
  if (SVG_FILE) {
    const subtitle = `${header[0] ?? ''}; ${ROUNDS} rounds x ${SECONDS} s`;
    fs.writeFileSync(SVG_FILE, chartSvg(rows, subtitle));
    say(`chart: ${SVG_FILE}`);
  }
}

void main().catch((e: unknown) => {
  process.stderr.write(`dataplane bench: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exitCode = 1;
});
