// L7 benchmark (issue 11): what HAProxy on the balancer costs against the
// kernel's L4 path and against no balancer at all. One lab, nginx on the RSs,
// wrk from the client namespace; every configuration measured in the same run,
// in interleaved rounds (median reported), with keep-alive and with a new
// connection per request. CPU is the whole machine's, from /proc/stat, over
// each wrk run: client, router, balancer and RSs share these cores.
// Usage: node dist/scripts/bench/l7.js   (SLB_BENCH_SECONDS, SLB_BENCH_ROUNDS)
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { applyLabMode } from '../../src/lab/mode';
import { DEFAULT_LAB_OPTIONS, LabModeOptions } from '../../src/lab/lb-config';
import { labDown, labUp, nsName } from '../../src/lab/netns';
import { REAL_SERVERS, REFERENCE_TOPOLOGY, addressOf } from '../../src/lab/topology';
import { Mode } from '../../src/model/types';
import { machineTicks, pidsIn, processTicks, reapedChildrenTicks, secondsPerTick } from './cpu';
import { STATIC_PATH, servedByRealServers, startNginx, stopLabServers, stopNginx } from './l7-nginx';
import { median } from './stats';
import { KINDS, Kind, parseWrk, runWrk, toolVersion, tuneForManyConnections } from './wrk';

const SECONDS = Number(process.env.SLB_BENCH_SECONDS ?? 5);
const ROUNDS = Number(process.env.SLB_BENCH_ROUNDS ?? 3);
const CONNECTIONS = 32;

interface Case {
  label: string;
  /** Straight to RS1, or through the VIP. */
  target: 'rs1' | 'vip';
  path: string;
}

/** One balancer config, applied once per round, and what is measured under it. */
interface Stage {
  mode: Mode;
  options: LabModeOptions;
  cases: Case[];
}

/** The figure every other is divided by: no balancer on the path. */
const DIRECT: Case = { label: 'direct client -> RS1', target: 'rs1', path: '/' };
const http: LabModeOptions = { ...DEFAULT_LAB_OPTIONS, protocol: 'http' };
const STAGES: Stage[] = [
  {
    // The direct runs sit here: with fullnat the RSs route the client network via the router, as without a balancer.
    mode: 'fullnat',
    options: DEFAULT_LAB_OPTIONS,
    cases: [DIRECT, { label: 'L4 fullnat (nftables)', target: 'vip', path: '/' }],
  },
  {
    mode: 'fullnat',
    options: http,
    cases: [
      { label: 'L7 reverse proxy', target: 'vip', path: '/' },
      { label: `L7 reverse proxy, ${STATIC_PATH}, no cache`, target: 'vip', path: STATIC_PATH },
    ],
  },
  { mode: 'transparent', options: http, cases: [{ label: 'L7 transparent', target: 'vip', path: '/' }] },
  {
    mode: 'fullnat',
    options: { ...http, cache: true },
    cases: [{ label: `L7 reverse proxy, ${STATIC_PATH}, cache`, target: 'vip', path: STATIC_PATH }],
  },
];
const CASES = STAGES.flatMap((s) => s.cases);

interface Sample {
  requestsPerSecond: number;
  /** CPU µs per request: the whole machine's busy time, and the part of it spent by wrk, the balancer's and the RSs' processes. */
  cpu: { all: number; client: number; balancer: number; realServers: number };
  /** Busy share of all cores over the run. */
  busy: number;
  /** Requests the RSs served per request wrk completed. */
  reachedRs: number;
  /** Connections the RSs accepted per request wrk completed. */
  rsConnections: number;
  errors: number;
}

function urlOf(c: Case): string {
  const host = c.target === 'rs1' ? addressOf(REFERENCE_TOPOLOGY, 'rs1') : REFERENCE_TOPOLOGY.vip;
  return `http://${host}:${REFERENCE_TOPOLOGY.servicePort}${c.path}`;
}

function wrk(lab: string, url: string, kind: Kind, seconds: number) {
  return runWrk(lab, url, kind, seconds, CONNECTIONS);
}

async function measure(lab: string, c: Case, kind: Kind, tick: number): Promise<Sample> {
  const served0 = await servedByRealServers(lab);
  const balancerPids = await pidsIn(nsName(lab, 'lb'));
  const rsPids = (await Promise.all(REAL_SERVERS.map((h) => pidsIn(nsName(lab, h))))).flat();
  const before = { machine: machineTicks(), client: reapedChildrenTicks(), lb: processTicks(balancerPids), rs: processTicks(rsPids) };
  const r = await wrk(lab, urlOf(c), kind, SECONDS);
  const after = { machine: machineTicks(), client: reapedChildrenTicks(), lb: processTicks(balancerPids), rs: processTicks(rsPids) };
  const served1 = await servedByRealServers(lab);
  // Less the one status request (and its connection) each RS served for the reading itself.
  const rsRequests = served1.requests - served0.requests - 2;
  const rsConnections = served1.connections - served0.connections - 2;
  const w = parseWrk(r.stdout);
  const perRequest = (ticks: number) => (ticks * tick * 1e6) / Math.max(1, w.requests);
  const busy = after.machine.busy - before.machine.busy;
  return {
    requestsPerSecond: w.requestsPerSecond,
    cpu: {
      all: perRequest(busy),
      client: perRequest(after.client - before.client),
      balancer: perRequest(after.lb - before.lb),
      realServers: perRequest(after.rs - before.rs),
    },
    busy: busy / Math.max(1, after.machine.total - before.machine.total),
    reachedRs: rsRequests / Math.max(1, w.requests),
    rsConnections: rsConnections / Math.max(1, w.requests),
    errors: w.errors,
  };
}

const keyOf = (c: Case, kind: Kind) => `${c.label} (${kind})`;

/** The table's columns after configuration and connections: each the median over the rounds (errors: their sum). */
const COLUMNS: { head: string; cell: (got: Sample[], direct: number) => string }[] = [
  { head: 'requests/s', cell: (g) => median(g.map((s) => s.requestsPerSecond)).toFixed(0) },
  { head: 'ratio to direct', cell: (g, d) => (d ? (median(g.map((s) => s.requestsPerSecond)) / d).toFixed(2) : '-') },
  { head: 'CPU µs/request', cell: (g) => median(g.map((s) => s.cpu.all)).toFixed(0) },
  { head: 'wrk', cell: (g) => median(g.map((s) => s.cpu.client)).toFixed(0) },
  { head: 'LB procs', cell: (g) => median(g.map((s) => s.cpu.balancer)).toFixed(0) },
  { head: 'RS procs', cell: (g) => median(g.map((s) => s.cpu.realServers)).toFixed(0) },
  { head: 'other', cell: (g) => median(g.map((s) => s.cpu.all - s.cpu.client - s.cpu.balancer - s.cpu.realServers)).toFixed(0) },
  { head: 'CPU busy', cell: (g) => `${(median(g.map((s) => s.busy)) * 100).toFixed(0)}%` },
  { head: 'to RS', cell: (g) => `${(median(g.map((s) => s.reachedRs)) * 100).toFixed(0)}%` },
  { head: 'RS conn/req', cell: (g) => median(g.map((s) => s.rsConnections)).toFixed(3) },
  { head: 'errors', cell: (g) => String(g.reduce((a, s) => a + s.errors, 0)) },
];

function table(samples: Map<string, Sample[]>): string {
  const head = ['configuration', 'connections', ...COLUMNS.map((c) => c.head)];
  const rows: string[][] = [];
  for (const kind of KINDS) {
    const direct = median((samples.get(keyOf(DIRECT, kind)) ?? []).map((s) => s.requestsPerSecond));
    for (const c of CASES) {
      const got = samples.get(keyOf(c, kind)) ?? [];
      if (got.length > 0) rows.push([c.label, kind, ...COLUMNS.map((col) => col.cell(got, direct))]);
    }
  }
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    `| ${cells.map((c, i) => (i < 2 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join(' | ')} |`;
  return [line(head), `|${widths.map((w, i) => (i < 2 ? `-${'-'.repeat(w)}-` : `-${'-'.repeat(w)}:`)).join('|')}|`, ...rows.map(line)].join(
    '\n',
  );
}

async function facts(): Promise<string> {
  return [
    `${new Date().toISOString()}, ${os.cpus().length} cores, kernel ${os.release()}, load average ${os.loadavg()[0]?.toFixed(2)}`,
    `${await toolVersion(['haproxy', '-v'])}; ${await toolVersion(['nginx', '-v'])}; ${await toolVersion(['wrk', '--version'])}`,
    `wrk -t1 -c${CONNECTIONS} -d${SECONDS}s from the client namespace; ${ROUNDS} rounds interleaved, medians; nginx (1 worker) on each RS`,
  ].join('\n');
}

async function main(): Promise<void> {
  const lab = `l7b${process.pid % 100000}`;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'slbctl-l7bench-'));
  const tick = await secondsPerTick();
  const say = (line: string) => process.stdout.write(`${line}\n`);
  say(await facts());
  const samples = new Map<string, Sample[]>();
  try {
    await labUp(lab, REFERENCE_TOPOLOGY);
    await tuneForManyConnections(lab);
    await stopLabServers(lab);
    await startNginx(lab, dir);
    for (let round = 1; round <= ROUNDS; round++) {
      for (const stage of STAGES) {
        await applyLabMode(lab, stage.mode, () => undefined, stage.options);
        for (const c of stage.cases) {
          // Connection pools, the cache and the conntrack table warm up outside the measurement.
          await wrk(lab, urlOf(c), 'keep-alive', 1);
          for (const kind of KINDS) {
            const s = await measure(lab, c, kind, tick);
            samples.set(keyOf(c, kind), [...(samples.get(keyOf(c, kind)) ?? []), s]);
            say(
              `round ${round}/${ROUNDS}: ${keyOf(c, kind)}: ${s.requestsPerSecond.toFixed(0)} requests/s, ${s.cpu.all.toFixed(0)} CPU µs/request`,
            );
          }
        }
      }
    }
  } finally {
    try {
      await stopNginx(lab, dir);
    } finally {
      await labDown(lab);
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }
  say('');
  say(table(samples));
  say(
    'ratio to direct: requests/s over direct client -> RS1 with the same connections; CPU µs/request: busy CPU of the whole machine ' +
      "(client, router, balancer, RSs) over the requests, and of it: wrk, the balancer's processes (HAProxy), the RSs' (nginx), and the " +
      'other (time charged to none of them: softirq where the kernel accounts it apart, anything else running; the packet work of veth, forwarding and NAT usually lands in the sending process); CPU busy: of all cores; to RS: requests the RSs served per request completed (cache hits do not reach them); ' +
      'RS conn/req: connections the RSs accepted per request',
  );
}

void main().catch((e: unknown) => {
  process.stderr.write(`l7 bench: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exitCode = 1;
});
