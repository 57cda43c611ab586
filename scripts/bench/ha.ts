// Failover of two balancers (issue 13): a lab of two balancers, a steady
// request loop from the client and eight live connections that trickle one
// header byte every 10 ms; then one balancer fails (`lab fail`: link down,
// controller killed). Two set-ups:
//  - default: BGP ECMP + BFD, DSR with Maglev on nftables; the balancers fail
//    in turn;
//  - `--ha vrrp [--mode fullnat|transparent] [--no-sync]`: a VRRP pair,
//    keepalived + conntrackd; the master fails each round.
// Measured per round, from the real servers' captures and the loop's records:
//  - route: `lab fail` until the router's multipath route no longer names it
//    (ecmp), or until the standby holds the VIP (vrrp);
//  - first packet through the survivor: for each live connection the failed
//    balancer carried, the failure until its first packet reaches its RS from
//    the survivor's MAC (client TCP retransmission included);
//  - live connections lost, and new-connection requests failed.
// Usage: node dist/scripts/bench/ha.js [--ha vrrp [--mode M] [--no-sync]]   (SLB_BENCH_ROUNDS, default 3)
import { spawn, ChildProcess } from 'node:child_process';
import { applyLabMode } from '../../src/lab/mode';
import { DEFAULT_LAB_OPTIONS } from '../../src/lab/lb-config';
import { labDown, labUp, nsName } from '../../src/lab/netns';
import { BALANCERS, BalancerName, REAL_SERVERS, REFERENCE_TOPOLOGY, addressOf } from '../../src/lab/topology';
import { failBalancer, recoverBalancer, routerNextHops, vipHolders } from '../../src/lab/ha';
import { Mode } from '../../src/model/types';
import { startRequestLoop } from '../../src/lab/harness';
import { startCapture } from '../../src/capture/capture';
import { interfaceMac } from '../../src/util/netns';
import * as os from 'node:os';

const ROUNDS = Number(process.env.SLB_BENCH_ROUNDS ?? 3);
const LIVE = 8;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const lab = `bha${process.pid % 1000}`;
const vip = REFERENCE_TOPOLOGY.vip;
const argv = process.argv.slice(2);
const arg = (name: string) => {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : undefined;
};
const HA = arg('--ha') === 'vrrp' ? 'vrrp' : 'ecmp';
const MODE: Mode = HA === 'vrrp' ? (arg('--mode') === 'transparent' ? 'transparent' : 'fullnat') : 'dsr';
const SYNC = !argv.includes('--no-sync');
/** The source the real servers see for a client connection: the VIP path keeps it (dsr, transparent), full NAT makes it the pair's address. */
const rsSource = MODE === 'fullnat' ? REFERENCE_TOPOLOGY.floatingAddress : addressOf(REFERENCE_TOPOLOGY, 'client');

/** A connection that sends one byte of a header every 10 ms until told to end the request. */
function trickle(): { child: ChildProcess; port: () => number | undefined; end: () => Promise<boolean> } {
  const script = [
    "const net = require('net');",
    "const s = net.connect(80, process.argv[1], () => { s.write('GET / HTTP/1.1\\r\\nHost: vip\\r\\nX-Trickle: '); process.stdout.write('port ' + s.localPort + '\\n');",
    "  const t = setInterval(() => s.write('a'), 10); process.stdin.on('data', () => { clearInterval(t); s.write('\\r\\n\\r\\n'); }); });",
    "let buf = ''; s.on('data', (d) => { buf += d; }); s.on('close', () => { process.stdout.write(/200 OK/.test(buf) ? 'ok\\n' : 'lost\\n'); process.exit(0); });",
    "s.on('error', () => { process.stdout.write('lost\\n'); process.exit(0); });",
  ].join('\n');
  const child = spawn('ip', ['netns', 'exec', nsName(lab, 'client'), process.execPath, '-e', script, vip], {
    stdio: ['pipe', 'pipe', 'ignore'],
  });
  let out = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  const closed = new Promise<void>((r) => child.on('close', () => r()));
  return {
    child,
    port: () => {
      const m = /port (\d+)/.exec(out);
      return m ? Number(m[1]) : undefined;
    },
    async end() {
      child.stdin?.write('x');
      await Promise.race([closed, sleep(10_000)]);
      child.kill();
      return /ok/.test(out);
    },
  };
}

interface Round {
  failed: BalancerName;
  routeMs: number;
  firstThroughSurvivorMs: number[];
  carried: number;
  lost: number;
  requests: number;
  requestsFailed: number;
  longestGapMs: number;
}

async function round(b: BalancerName): Promise<Round> {
  const survivor = BALANCERS.find((x) => x !== b) as BalancerName;
  const macs = { lb: interfaceMac(nsName(lab, 'lb'), 'eth0'), lb2: interfaceMac(nsName(lab, 'lb2'), 'eth0') };
  const captures = REAL_SERVERS.map((h) => startCapture({ host: h, netns: nsName(lab, h), device: 'eth0', filter: 'tcp dst port 80' }));
  await sleep(200);
  const loop = startRequestLoop(nsName(lab, 'client'), `http://${vip}/`, 5, 1000);
  const lives = Array.from({ length: LIVE }, () => trickle());
  await sleep(1500);
  if (process.env.SLB_BENCH_DEBUG) console.error(`before the failure: ${vip} via ${(await routerNextHops(lab, vip)).join(', ')}`);
  const failWall = BigInt(Date.now()) * 1_000_000n;
  const t0 = process.hrtime.bigint();
  await failBalancer(lab, b, () => undefined);
  let routeMs = NaN;
  for (let i = 0; i < 500; i++) {
    const moved =
      HA === 'vrrp'
        ? (await vipHolders(lab, REFERENCE_TOPOLOGY)).includes(survivor)
        : !(await routerNextHops(lab, vip)).includes(addressOf(REFERENCE_TOPOLOGY, b));
    if (moved) {
      routeMs = Number(process.hrtime.bigint() - t0) / 1e6;
      break;
    }
    await sleep(10);
  }
  await sleep(3000);
  const ends = await Promise.all(lives.map((l) => l.end()));
  const records = await loop.stop();
  await sleep(200);
  const packets = captures.flatMap((c) => c.stop().packets);
  const failMs = Number(failWall / 1_000_000n);
  const firstThroughSurvivorMs: number[] = [];
  let carried = 0;
  let lost = 0;
  if (MODE === 'dsr')
    lives.forEach((l, i) => {
      const port = l.port();
      const mine = packets.filter((p) => p.transport?.kind === 'tcp' && p.transport.srcPort === port && p.ip?.dst === vip);
      const viaFailed = mine.some((p) => p.tsNanos < failWall && p.srcMac === macs[b]);
      if (process.env.SLB_BENCH_DEBUG)
        console.error(
          `live ${i} port ${port}: ${mine.length} packets, before via ${[...new Set(mine.filter((p) => p.tsNanos < failWall).map((p) => p.srcMac))].join(',')}; lb ${macs.lb} lb2 ${macs.lb2}`,
        );
      if (!viaFailed) return;
      carried++;
      if (!ends[i]) lost++;
      const first = mine.find((p) => p.tsNanos >= failWall && p.srcMac === macs[survivor]);
      if (first) firstThroughSurvivorMs.push(Number(first.tsNanos - failWall) / 1e6);
    });
  else {
    // NAT: the RS sees the balancer's own source port (snat ... random), not the client's. The live connections
    // are the flows from the VIP path's source that were open for over half a second before the failure (the trickles started 1.5 s before it) (the loop's
    // requests last milliseconds); all of them went through the master, so every trickle that did not end well is lost.
    const flows = new Map<string, typeof packets>();
    for (const p of packets)
      if (p.transport?.kind === 'tcp' && p.ip?.src === rsSource) {
        const key = `${p.ip.dst}:${p.transport.srcPort}`;
        flows.set(key, [...(flows.get(key) ?? []), p]);
      }
    for (const ps of flows.values()) {
      const beforeFail = ps.filter((p) => p.tsNanos < failWall);
      const span = beforeFail.length ? Number((beforeFail.at(-1)?.tsNanos ?? 0n) - (beforeFail[0]?.tsNanos ?? 0n)) / 1e6 : 0;
      if (span < 500 || !beforeFail.some((p) => p.srcMac === macs[b])) continue;
      carried++;
      const first = ps.find((p) => p.tsNanos >= failWall && p.srcMac === macs[survivor]);
      if (first) firstThroughSurvivorMs.push(Number(first.tsNanos - failWall) / 1e6);
    }
    lost = ends.filter((ok) => !ok).length;
  }
  const around = records.filter((r) => r.start >= failMs - 1000 && r.start <= failMs + 3000);
  const oks = records.filter((r) => r.ok).map((r) => r.end);
  let longestGapMs = 0;
  for (let i = 1; i < oks.length; i++) longestGapMs = Math.max(longestGapMs, (oks[i] ?? 0) - (oks[i - 1] ?? 0));
  await recoverBalancer(lab, REFERENCE_TOPOLOGY, b, () => undefined);
  return {
    failed: b,
    routeMs,
    firstThroughSurvivorMs,
    carried,
    lost,
    requests: around.length,
    requestsFailed: around.filter((r) => !r.ok).length,
    longestGapMs,
  };
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? (s[Math.floor((s.length - 1) / 2)] ?? NaN) : NaN;
};

async function main(): Promise<void> {
  await labUp(lab, REFERENCE_TOPOLOGY, () => undefined, { balancers: 2 });
  try {
    await applyLabMode(lab, MODE, () => undefined, { ...DEFAULT_LAB_OPTIONS, ha: HA, ...(SYNC ? {} : { sync: false }) });
    console.log(
      HA === 'vrrp'
        ? `two balancers, VRRP (keepalived, adverts every 100 ms)${SYNC ? ' + conntrackd FTFW' : ', no state sync'}, ${MODE} on nftables; ${ROUNDS} rounds, load ${os.loadavg()[0]?.toFixed(1)}`
        : `two balancers, BGP ECMP + BFD (100 ms x 3), dsr with Maglev on nftables; ${ROUNDS} rounds, load ${os.loadavg()[0]?.toFixed(1)}`,
    );
    const moved = HA === 'vrrp' ? 'VIP on standby' : 'route withdrawn';
    console.log(`round  failed  ${moved.padEnd(17)}first packet via survivor (median/max)  live lost  requests failed (of)  longest gap`);
    const all: Round[] = [];
    for (let i = 0; i < ROUNDS; i++) {
      // VRRP: the master fails (nopreempt: the one that came back stays the standby); ECMP: each in turn.
      const master = HA === 'vrrp' ? (await vipHolders(lab, REFERENCE_TOPOLOGY))[0] : undefined;
      const r = await round(master ?? BALANCERS[i % 2]);
      all.push(r);
      console.log(
        `${String(i + 1).padEnd(7)}${r.failed.padEnd(8)}${`${r.routeMs.toFixed(0)} ms`.padEnd(17)}${`${median(r.firstThroughSurvivorMs).toFixed(0)} / ${(r.firstThroughSurvivorMs.length ? Math.max(...r.firstThroughSurvivorMs) : NaN).toFixed(0)} ms (${r.firstThroughSurvivorMs.length} of ${r.carried} carried)`.padEnd(40)}${`${r.lost}/${r.carried}`.padEnd(11)}${`${r.requestsFailed} (${r.requests})`.padEnd(22)}${r.longestGapMs} ms`,
      );
    }
    const firsts = all.flatMap((r) => r.firstThroughSurvivorMs);
    console.log(
      `all rounds: ${moved} median ${median(all.map((r) => r.routeMs)).toFixed(0)} ms; first packet via survivor median ${median(firsts).toFixed(0)} ms; live connections lost ${all.reduce((a, r) => a + r.lost, 0)} of ${all.reduce((a, r) => a + r.carried, 0)}; requests failed ${all.reduce((a, r) => a + r.requestsFailed, 0)} of ${all.reduce((a, r) => a + r.requests, 0)}`,
    );
  } finally {
    await labDown(lab);
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
