// Data-path benchmark (issue 12, "performance at scale"): what each L4 mode
// on nftables costs against no balancer at all and against HAProxy in mode
// tcp, the L4 proxy a user would pick instead; the L7 types beside them.
// One netns lab, nginx on the RSs, wrk and iperf3 from the client namespace;
// every configuration measured in the same run, in interleaved rounds, the
// median reported. CPU is the whole machine's (/proc/stat) over each run:
// client, router, balancer and RSs share these cores.
// Usage: node dist/scripts/bench/dataplane.js
//   SLB_BENCH_SECONDS (per measurement, default 5), SLB_BENCH_ROUNDS (default 5),
//   SLB_BENCH_SVG (chart file, default docs/dataplane.svg; empty: none)
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { applyLabMode } from '../../src/lab/mode';
import { DEFAULT_LAB_OPTIONS, LabModeOptions } from '../../src/lab/lb-config';
import { labDown, labUp, nsName } from '../../src/lab/netns';
import { LAB_HOSTS, REFERENCE_TOPOLOGY, addressOf } from '../../src/lab/topology';
import { Mode } from '../../src/model/types';
import { run, runChecked } from '../../src/util/exec';
import { machineTicks, secondsPerTick } from './cpu';
import { Figure, METRICS, Metric, Role, Row, chartSvg, figuresTable, goalsTable } from './dataplane-report';
import { median } from './stats';
import { HAPROXY_TCP_ADDRESS, startHaproxyTcp, stopHaproxyTcp } from './haproxy-tcp';
import { IPERF_PORT, runIperf, startIperfServers, stopIperfServers } from './iperf';
import { startNginx, stopLabServers, stopNginx } from './l7-nginx';
import { KINDS, MANY_CONNECTIONS_TUNING, parseWrk, runWrk, toolVersion, tuneForManyConnections } from './wrk';

const SECONDS = Number(process.env.SLB_BENCH_SECONDS ?? 5);
const ROUNDS = Number(process.env.SLB_BENCH_ROUNDS ?? 5);
const SVG_FILE = process.env.SLB_BENCH_SVG ?? path.join(__dirname, '..', '..', '..', 'docs', 'dataplane.svg');
const CONNECTIONS = 32;

interface Case {
  label: string;
  role: Role;
  /** Where the client connects: RS1, the VIP, or HAProxy's address on the balancer. */
  host: string;
  /** Also one iperf3 stream (L4 paths only: an http service cannot carry it). */
  iperf: boolean;
}

/** One balancer config, applied once per round, and what is measured under it. */
interface Stage {
  mode: Mode;
  options: LabModeOptions;
  /** HAProxy in mode tcp runs in the balancer namespace during this stage. */
  haproxyTcp: boolean;
  cases: Case[];
}

const VIP = REFERENCE_TOPOLOGY.vip;
// L4 on nftables explicitly (auto would take IPVS where the kernel has it), with iperf3's port as a second service.
const l4: LabModeOptions = { ...DEFAULT_LAB_OPTIONS, backend: 'nft', extraTcpPorts: [IPERF_PORT] };
const http: LabModeOptions = { ...DEFAULT_LAB_OPTIONS, protocol: 'http' };
const STAGES: Stage[] = [
  {
    // Direct and HAProxy sit here: with fullnat the RSs route the client network via the router, as without a balancer,
    // and answer HAProxy's connections from the balancer's own address on their segment.
    mode: 'fullnat',
    options: l4,
    haproxyTcp: true,
    cases: [
      { label: 'direct client -> RS1', role: 'direct', host: addressOf(REFERENCE_TOPOLOGY, 'rs1'), iperf: true },
      { label: 'L4 fullnat (nftables)', role: 'l4-nat', host: VIP, iperf: true },
      { label: 'HAProxy mode tcp (full proxy)', role: 'haproxy-tcp', host: HAPROXY_TCP_ADDRESS, iperf: true },
    ],
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
const CASES = STAGES.flatMap((s) => s.cases);

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

/**
 * Each measurement starts from a clean slate, so no case inherits the one
 * before's state: the balancer's connection-tracking table is emptied (with a
 * connection per request, full NAT to one source address holds ~64k ports per
 * RS, and closed flows stay in the table), and the TIME_WAIT sockets of every
 * lab host are dropped (`ss -K`): the RSs keep one for 60 s per closed
 * connection, and a later case's SYN on the same 4-tuple with an older
 * timestamp or sequence number is refused (PAWS) and retried after 1 s; L4
 * transparent, whose RSs see the client's own address and ports, inherited
 * direct's. Only the lab's own namespaces. Returns what there was.
 */
async function cleanSlate(lab: string): Promise<{ conntrack: number; timeWait: number }> {
  const count = await run(['conntrack', '-C'], { netns: nsName(lab, 'lb') });
  await runChecked('conntrack -F in the lab balancer', ['conntrack', '-F'], { netns: nsName(lab, 'lb') });
  let timeWait = 0;
  for (const h of LAB_HOSTS) {
    const r = await runChecked(`ss -K time-wait in ${nsName(lab, h)}`, ['ss', '-K', '-H', '-tn', 'state', 'time-wait'], {
      netns: nsName(lab, h),
    });
    timeWait += r.stdout.split('\n').filter((l) => l.trim()).length;
  }
  return { conntrack: Number(count.stdout.trim()) || 0, timeWait };
}

/** The client namespace's count of retransmitted SYNs (/proc/net/netstat is per namespace). */
async function clientSynRetransmits(lab: string): Promise<number> {
  const r = await runChecked('netstat counters of the client', ['cat', '/proc/net/netstat'], { netns: nsName(lab, 'client') });
  const [names, values] = r.stdout.split('\n').filter((l) => l.startsWith('TcpExt:'));
  const i = (names ?? '').split(/\s+/).indexOf('TCPSynRetrans');
  return i < 0 ? 0 : Number((values ?? '').split(/\s+/)[i] ?? 0);
}

async function measureHttp(lab: string, c: Case, kind: (typeof KINDS)[number], tick: number): Promise<Sample> {
  const syn = await clientSynRetransmits(lab);
  const before = machineTicks();
  const r = await runWrk(lab, `http://${c.host}:${REFERENCE_TOPOLOGY.servicePort}/`, kind, SECONDS, CONNECTIONS);
  const after = machineTicks();
  const w = parseWrk(r.stdout);
  return {
    value: w.requestsPerSecond,
    cpu: ((after.busy - before.busy) * tick * 1e6) / Math.max(1, w.requests),
    trouble: w.errors,
    synRetransmits: (await clientSynRetransmits(lab)) - syn,
    requests: w.requests,
  };
}

async function measureIperf(lab: string, c: Case, tick: number): Promise<Sample> {
  const syn = await clientSynRetransmits(lab);
  const before = machineTicks();
  const f = await runIperf(lab, c.host, IPERF_PORT, SECONDS);
  const after = machineTicks();
  return {
    value: f.bitsPerSecond,
    // ms of CPU per GB received.
    cpu: ((after.busy - before.busy) * tick * 1e3) / Math.max(1e-9, f.bytes / 1e9),
    trouble: f.retransmits,
    synRetransmits: (await clientSynRetransmits(lab)) - syn,
    requests: 0,
  };
}

async function facts(): Promise<string> {
  return [
    `${new Date().toISOString()}, ${os.cpus().length} cores, kernel ${os.release()}, load average ${os
      .loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}`,
    [
      await toolVersion(['haproxy', '-v']),
      await toolVersion(['nginx', '-v']),
      await toolVersion(['wrk', '--version']),
      await toolVersion(['iperf3', '--version']),
      await toolVersion(['nft', '--version']),
    ].join('; '),
    `wrk -t1 -c${CONNECTIONS} -d${SECONDS}s and iperf3 -t ${SECONDS} (one stream) from the client namespace; ${ROUNDS} rounds interleaved, medians; ` +
      `nginx (2 workers) on each RS; before each measurement conntrack -F in the LB namespace and ss -K of TIME_WAIT sockets in every lab namespace; ${MANY_CONNECTIONS_TUNING}`,
  ].join('\n');
}

async function runStage(lab: string, dir: string, stage: Stage, round: number, samples: Map<string, Sample[]>, tick: number) {
  await applyLabMode(lab, stage.mode, () => undefined, stage.options);
  if (stage.haproxyTcp)
    await startHaproxyTcp(lab, dir, [
      { port: REFERENCE_TOPOLOGY.servicePort, balance: 'roundrobin' },
      { port: IPERF_PORT, balance: 'source' },
    ]);
  try {
    for (const c of stage.cases) {
      // Connection pools and caches warm up outside the measurement.
      await runWrk(lab, `http://${c.host}:${REFERENCE_TOPOLOGY.servicePort}/`, 'keep-alive', 1, CONNECTIONS);
      const metrics: Metric[] = [...KINDS, ...(c.iperf ? (['iperf3'] as const) : [])];
      for (const m of metrics) {
        const flushed = await cleanSlate(lab);
        const s = m === 'iperf3' ? await measureIperf(lab, c, tick) : await measureHttp(lab, c, m, tick);
        samples.set(keyOf(c, m), [...(samples.get(keyOf(c, m)) ?? []), s]);
        const figure =
          m === 'iperf3'
            ? `${(s.value / 1e9).toFixed(2)} Gbit/s, ${s.cpu.toFixed(0)} CPU ms/GB, ${s.trouble} retransmits`
            : `${s.value.toFixed(0)} requests/s, ${s.cpu.toFixed(0)} CPU µs/request, ${s.trouble} errors, ${s.synRetransmits} SYN retransmits`;
        say(
          `round ${round}/${ROUNDS}: ${keyOf(c, m)}: ${figure} (dropped before: ${flushed.conntrack} conntrack entries, ${flushed.timeWait} TIME_WAIT sockets)`,
        );
      }
    }
  } finally {
    if (stage.haproxyTcp) await stopHaproxyTcp(dir);
  }
}

function rowsOf(samples: Map<string, Sample[]>): Row[] {
  return CASES.map((c) => {
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
    say('Usage: node dist/scripts/bench/dataplane.js   (env SLB_BENCH_SECONDS, SLB_BENCH_ROUNDS, SLB_BENCH_SVG)');
    return;
  }
  const lab = `dpb${process.pid % 100000}`;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'slbctl-dataplane-'));
  const tick = await secondsPerTick();
  const header = await facts();
  say(header);
  const samples = new Map<string, Sample[]>();
  try {
    await labUp(lab, REFERENCE_TOPOLOGY);
    await tuneForManyConnections(lab);
    await stopLabServers(lab);
    // Two workers on each RS: direct to RS1 must not be held to one core where the VIP spreads over two servers.
    await startNginx(lab, dir, 2);
    await startIperfServers(lab, dir);
    for (let round = 1; round <= ROUNDS; round++) for (const stage of STAGES) await runStage(lab, dir, stage, round, samples, tick);
  } finally {
    try {
      await stopHaproxyTcp(dir);
      await stopIperfServers(dir);
      await stopNginx(lab, dir);
    } finally {
      await labDown(lab);
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }
  const rows = rowsOf(samples);
  const trouble = CASES.flatMap((c) =>
    METRICS.map((m) => ({
      key: keyOf(c, m),
      sum: (samples.get(keyOf(c, m)) ?? []).reduce((a, s) => a + s.trouble, 0),
    })),
  ).filter((t) => t.sum > 0);
  const end = `load average at the end ${os
    .loadavg()
    .map((l) => l.toFixed(2))
    .join(' ')}`;
  say('');
  say(figuresTable(rows));
  say('');
  say(goalsTable(rows));
  say('');
  say(end);
  say(
    'CPU µs/req and ms/GB: busy CPU of the whole machine (client, router, balancer, RSs; /proc/stat) over the requests or GB; x direct: over ' +
      'direct client -> RS1 with the same connections; x HAProxy tcp: over HAProxy in mode tcp on the balancer.',
  );
  say(
    trouble.length === 0
      ? 'No wrk errors, no iperf3 retransmits.'
      : `wrk errors / iperf3 retransmits (sum over the rounds): ${trouble.map((t) => `${t.key} ${t.sum}`).join('; ')}`,
  );
  say(
    'client SYN retransmits per 1,000 requests, a connection per request (median): ' +
      CASES.map((c) => {
        const got = samples.get(keyOf(c, 'close')) ?? [];
        return `${c.label} ${median(got.map((s) => (s.synRetransmits * 1000) / Math.max(1, s.requests))).toFixed(2)}`;
      }).join('; '),
  );
  if (SVG_FILE) {
    const subtitle = `${header.split('\n')[0] ?? ''}; ${ROUNDS} rounds x ${SECONDS} s`;
    fs.writeFileSync(SVG_FILE, chartSvg(rows, subtitle));
    say(`chart: ${SVG_FILE}`);
  }
}

void main().catch((e: unknown) => {
  process.stderr.write(`dataplane bench: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exitCode = 1;
});
