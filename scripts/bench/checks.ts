// Health-check benchmark (issue 12): `slbctl run` with many TCP checks at a
// short interval, against real listeners, in two namespaces this bench makes
// (lb: the controller; rs: one node TCP server answering on a whole /16 routed
// to it as local, so every real server has its own address). For each
// scenario it runs this checkout's code and the anchor's (another commit,
// built into a temporary directory) one after the other in this run, and
// prints every figure with its ratio to the anchor's:
// - checks executed per second (connections the servers accepted), against
//   the configured rate;
// - the controller's CPU per check, from /proc/PID/stat;
// - /metrics latency (curl's time_total and time to first byte, median of 7);
// - the largest gap between two checks of one server while the config is
//   reloaded with a changed weight every second (an apply in flight), in
//   intervals.
// Usage: node dist/scripts/bench/checks.js. Environment: SLB_BENCH_SECONDS (window, 10),
// SLB_BENCH_ANCHOR (commit, or none), SLB_BENCH_SCENARIOS (indexes, e.g. 1),
// SLB_BENCH_NODE_ARGS and SLB_BENCH_RUN_ARGS (for the controller's node and
// `slbctl run`, e.g. "--cpu-prof --cpu-prof-dir=/tmp/p" and "--resync 1s"),
// SLB_BENCH_EVENTS=1 (the controller's log on stderr).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ChildProcess, spawn } from 'node:child_process';
import { run, runChecked } from '../../src/util/exec';
import { lines } from '../../src/lab/harness';
import { processTicks, processTreeTicks, secondsPerTick } from './cpu';
import { rsAddress } from './checks-addresses';

const SECONDS = Number(process.env.SLB_BENCH_SECONDS ?? 10);
const WARM_SECONDS = 4;
const APPLY_SECONDS = 5;
const ANCHOR = process.env.SLB_BENCH_ANCHOR ?? '6348c77';
const RS_PORT = 8080;
const METRICS_PORT = 9479;
const VIP = '198.18.0.10';
/** Extra node options for the controller, e.g. SLB_BENCH_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof". */
const NODE_ARGS = (process.env.SLB_BENCH_NODE_ARGS ?? '').split(' ').filter(Boolean);
/** Extra `slbctl run` options, e.g. SLB_BENCH_RUN_ARGS="--resync 1s". */
const RUN_ARGS = (process.env.SLB_BENCH_RUN_ARGS ?? '').split(' ').filter(Boolean);
const EVENTS = process.env.SLB_BENCH_EVENTS === '1';

interface Scenario {
  services: number;
  realServers: number;
  intervalMs: number;
}
const ALL_SCENARIOS: Scenario[] = [
  { services: 200, realServers: 2, intervalMs: 100 },
  { services: 500, realServers: 2, intervalMs: 250 },
];
/** SLB_BENCH_SCENARIOS=0,1 picks some of them (by index). */
const SCENARIOS = process.env.SLB_BENCH_SCENARIOS
  ? process.env.SLB_BENCH_SCENARIOS.split(',')
      .map((i) => ALL_SCENARIOS[Number(i)])
      .filter((x): x is Scenario => x !== undefined)
  : ALL_SCENARIOS;

interface Code {
  label: string;
  entry: string;
}

interface Figures {
  checksPerSecond: number;
  cpuPerCheckUs: number;
  cpuShare: number;
  /** The part of the CPU its child processes (nft) took. */
  childShare: number;
  metricsMs: number;
  metricsMaxMs: number;
  /** The controller's event-loop delay over the steady window, 99th percentile (its own /metrics; NaN where it has none). */
  loopDelayP99Ms: number;
  /** Median time to the first byte of the answer. */
  metricsFirstByteMs: number;
  steadyGapP99Intervals: number;
  /** Largest gap between two checks of one server, in intervals, while applies ran. */
  gapMaxIntervals: number;
  gapP99Intervals: number;
  applies: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const repo = path.resolve(__dirname, '..', '..', '..');

function config(s: Scenario, weight: number): string {
  const services = Array.from({ length: s.services }, (_, i) => ({
    name: `s${i}`,
    vip: VIP,
    port: 1000 + i,
    protocol: 'tcp',
    mode: 'fullnat',
    scheduler: 'rr',
    snatAddress: '198.18.0.1',
    healthCheck: { type: 'tcp', interval: `${s.intervalMs}ms`, timeout: `${Math.floor(s.intervalMs * 0.8)}ms` },
    realServers: Array.from({ length: s.realServers }, (_, j) => ({
      address: rsAddress(i * s.realServers + j),
      port: RS_PORT,
      weight: i === 0 && j === 0 ? weight : 1,
    })),
  }));
  return `${JSON.stringify({ backend: 'nft', services })}\n`;
}

/** The anchor's code, built once into a temporary directory (node_modules and the native addon are this checkout's). */
async function buildAnchor(commit: string): Promise<Code> {
  const hash = (await runChecked('anchor commit', ['git', '-C', repo, 'rev-parse', '--short', commit])).stdout.trim();
  const dir = path.join(os.tmpdir(), `slbctl-anchor-${hash}`);
  const entry = path.join(dir, 'dist', 'src', 'cli', 'main.js');
  if (!fs.existsSync(entry)) {
    fs.rmSync(dir, { recursive: true, force: true });
    fs.mkdirSync(dir, { recursive: true });
    const tar = `${dir}.tar`;
    await runChecked('git archive', ['git', '-C', repo, 'archive', '-o', tar, hash]);
    await runChecked('untar', ['tar', '-xf', tar, '-C', dir]);
    fs.rmSync(tar);
    fs.symlinkSync(fs.realpathSync(path.join(repo, 'node_modules')), path.join(dir, 'node_modules'));
    fs.rmSync(path.join(dir, 'native'), { recursive: true, force: true });
    fs.symlinkSync(path.join(repo, 'native'), path.join(dir, 'native'));
    await runChecked('build the anchor', [
      process.execPath,
      path.join(dir, 'node_modules', 'typescript', 'bin', 'tsc'),
      '-p',
      path.join(dir, 'tsconfig.json'),
    ]);
  }
  return { label: `anchor ${hash}`, entry };
}

interface Server {
  child: ChildProcess;
  report(): Promise<{ accepted: number; gapMax: number; gapP99: number }>;
  reset(): void;
}

function startServer(ns: string): Promise<Server> {
  const child = spawn('ip', ['netns', 'exec', ns, process.execPath, path.join(__dirname, 'checks-server.js'), String(RS_PORT)], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const waiting: ((line: string) => void)[] = [];
  lines(child, 'stdout', (l) => waiting.shift()?.(l));
  const next = () => new Promise<string>((resolve) => waiting.push(resolve));
  return next().then(() => ({
    child,
    reset: () => child.stdin?.write('reset\n'),
    report: async () => {
      const answer = next();
      child.stdin?.write('report\n');
      return JSON.parse(await answer) as { accepted: number; gapMax: number; gapP99: number };
    },
  }));
}

async function metricsOnce(ns: string): Promise<{ ms: number; firstByteMs: number; checks: number; loopDelayP99Ms: number }> {
  const r = await runChecked(
    'curl /metrics',
    ['curl', '-sS', '--max-time', '30', '-w', '\n%{time_starttransfer} %{time_total}\n', `http://127.0.0.1:${METRICS_PORT}/metrics`],
    { netns: ns },
  );
  const text = r.stdout.trimEnd();
  const [firstByte, total] = text
    .slice(text.lastIndexOf('\n') + 1)
    .split(' ')
    .map((x) => Number(x) * 1000);
  const ms = total ?? 0;
  const firstByteMs = firstByte ?? 0;
  const delay = /^slbctl_event_loop_delay_seconds\{quantile="0.99"\} ([\d.e+-]+)$/m.exec(text);
  let checks = 0;
  for (const m of text.matchAll(/^slbctl_health_checks_total\{[^}]*\} (\d+)$/gm)) checks += Number(m[1]);
  return { ms, firstByteMs, checks, loopDelayP99Ms: delay ? Number(delay[1]) * 1000 : Number.NaN };
}

async function measure(code: Code, s: Scenario, ns: { lb: string }, server: Server, dir: string): Promise<Figures> {
  const file = path.join(dir, 'slbctl.json');
  fs.writeFileSync(file, config(s, 1));
  const child = spawn(
    'ip',
    [
      'netns',
      'exec',
      ns.lb,
      process.execPath,
      ...NODE_ARGS,
      code.entry,
      'run',
      '-f',
      file,
      '--log-format',
      'json',
      '--metrics',
      `127.0.0.1:${METRICS_PORT}`,
      ...RUN_ARGS,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let applies = 0;
  let running = false;
  const log: string[] = [];
  const take = (l: string) => {
    log.push(l);
    if (log.length > 50) log.shift();
    if (l.includes('"event":"apply"')) applies++;
    if (EVENTS) process.stderr.write(`${l}\n`);
    if (l.includes('"event":"start"') && l.includes('running')) running = true;
  };
  lines(child, 'stdout', take);
  lines(child, 'stderr', take);
  const exited = new Promise<void>((resolve) => child.on('close', () => resolve()));
  try {
    for (let i = 0; !running; i++) {
      if (i > 600 || child.exitCode !== null) throw new Error(`${code.label}: slbctl run did not start:\n${log.join('\n')}`);
      await sleep(100);
    }
    await sleep(WARM_SECONDS * 1000);
    const pid = child.pid ?? 0;
    const tick = await secondsPerTick();
    // Steady window: checks the servers accepted and the controller's CPU.
    const before = await metricsOnce(ns.lb);
    const ticks0 = processTreeTicks(pid);
    const ownTicks0 = processTicks([pid]);
    const t0 = process.hrtime.bigint();
    server.reset();
    await sleep(SECONDS * 1000);
    const steady = await server.report();
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    const cpu = (processTreeTicks(pid) - ticks0) * tick;
    const own = (processTicks([pid]) - ownTicks0) * tick;
    const after = await metricsOnce(ns.lb);
    const counted = after.checks - before.checks;
    if (Math.abs(counted - steady.accepted) > 0.1 * steady.accepted)
      process.stderr.write(`${code.label}: the controller counted ${counted} checks, the servers accepted ${steady.accepted}\n`);
    const latencies: number[] = [];
    const firstBytes: number[] = [];
    for (let i = 0; i < 7; i++) {
      const got = await metricsOnce(ns.lb);
      latencies.push(got.ms);
      firstBytes.push(got.firstByteMs);
    }
    latencies.sort((a, b) => a - b);
    firstBytes.sort((a, b) => a - b);
    // Apply window: the file saved with a changed weight every second (the controller reloads and applies).
    server.reset();
    const applies0 = applies;
    for (let i = 1; i <= APPLY_SECONDS; i++) {
      fs.writeFileSync(file, config(s, 2 + (i % 5)));
      await sleep(1000);
    }
    const applying = await server.report();
    return {
      checksPerSecond: steady.accepted / seconds,
      cpuPerCheckUs: (cpu / steady.accepted) * 1e6,
      cpuShare: cpu / seconds,
      childShare: (cpu - own) / cpu,
      metricsMs: latencies[Math.floor(latencies.length / 2)] ?? 0,
      metricsMaxMs: latencies[latencies.length - 1] ?? 0,
      metricsFirstByteMs: firstBytes[Math.floor(firstBytes.length / 2)] ?? 0,
      loopDelayP99Ms: after.loopDelayP99Ms,
      steadyGapP99Intervals: steady.gapP99 / s.intervalMs,
      gapMaxIntervals: applying.gapMax / s.intervalMs,
      gapP99Intervals: applying.gapP99 / s.intervalMs,
      applies: applies - applies0,
    };
  } finally {
    child.kill('SIGTERM');
    const t = setTimeout(() => child.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(t);
    await run(['ip', 'netns', 'exec', ns.lb, process.execPath, code.entry, 'destroy']);
  }
}

/** The bare connect loop at the same rate, with the same kernel state (the config applied, nothing running). */
async function floor(
  code: Code,
  s: Scenario,
  ns: { lb: string },
  server: Server,
  dir: string,
): Promise<{ checksPerSecond: number; cpuPerCheckUs: number }> {
  const file = path.join(dir, 'slbctl.json');
  fs.writeFileSync(file, config(s, 1));
  await runChecked('apply', [process.execPath, code.entry, 'apply', '-q', '-f', file], { netns: ns.lb });
  try {
    server.reset();
    const t0 = process.hrtime.bigint();
    const r = await runChecked(
      'bare connect loop',
      [
        process.execPath,
        path.join(__dirname, 'checks-client.js'),
        String(s.services * s.realServers),
        String(s.intervalMs),
        String(SECONDS),
        String(RS_PORT),
      ],
      { netns: ns.lb },
    );
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    const got = await server.report();
    const { cpuSeconds } = JSON.parse(r.stdout) as { cpuSeconds: number };
    return { checksPerSecond: got.accepted / seconds, cpuPerCheckUs: (cpuSeconds / got.accepted) * 1e6 };
  } finally {
    await run([process.execPath, code.entry, 'destroy'], { netns: ns.lb });
  }
}

async function setUp(ns: { lb: string; rs: string }): Promise<void> {
  for (const n of [ns.lb, ns.rs]) {
    await runChecked('netns', ['ip', 'netns', 'add', n]);
    await runChecked('lo', ['ip', '-n', n, 'link', 'set', 'lo', 'up']);
  }
  await runChecked('veth', ['ip', '-n', ns.lb, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'eth1', 'netns', ns.rs]);
  await runChecked('addr', ['ip', '-n', ns.lb, 'addr', 'add', '198.18.0.1/16', 'dev', 'eth0']);
  await runChecked('addr', ['ip', '-n', ns.rs, 'addr', 'add', '198.18.0.2/16', 'dev', 'eth1']);
  await runChecked('up', ['ip', '-n', ns.lb, 'link', 'set', 'eth0', 'up']);
  await runChecked('up', ['ip', '-n', ns.rs, 'link', 'set', 'eth1', 'up']);
  await runChecked('route', ['ip', '-n', ns.lb, 'route', 'add', '198.19.0.0/16', 'via', '198.18.0.2']);
  // Every address of 198.19.0.0/16 is local in rs (AnyIP): one listener on 0.0.0.0 answers for all the real servers.
  await runChecked('local route', ['ip', '-n', ns.rs, 'route', 'add', 'local', '198.19.0.0/16', 'dev', 'lo']);
  await runChecked('route back', ['ip', '-n', ns.rs, 'route', 'add', '198.18.0.0/16', 'dev', 'eth1']).catch(() => undefined);
  // Thousands of short connections a second: closed ones must not fill the conntrack table or the port range.
  for (const setting of [
    'net.ipv4.ip_local_port_range=1024 65535',
    'net.ipv4.tcp_tw_reuse=1',
    'net.netfilter.nf_conntrack_tcp_timeout_time_wait=1',
  ])
    await run(['sysctl', '-qw', setting], { netns: ns.lb });
}

function ratio(value: number, anchor: number | undefined): string {
  return anchor === undefined || anchor === 0 ? '' : ` (x${(value / anchor).toFixed(2)})`;
}

async function main(): Promise<void> {
  const codes: Code[] = [];
  if (ANCHOR !== 'none') codes.push(await buildAnchor(ANCHOR));
  codes.push({ label: 'this checkout', entry: path.join(repo, 'dist', 'src', 'cli', 'main.js') });
  const id = `${process.pid % 100000}`;
  const ns = { lb: `slbck${id}lb`, rs: `slbck${id}rs` };
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'slbctl-bench-checks-'));
  let server: Server | undefined;
  try {
    await setUp(ns);
    server = await startServer(ns.rs);
    const out: string[] = [
      `${os.cpus().length} CPUs; ${SECONDS} s windows after ${WARM_SECONDS} s warm-up; then ${APPLY_SECONDS} s with the file saved with a changed weight every second`,
    ];
    for (const s of SCENARIOS) {
      const configured = (s.services * s.realServers * 1000) / s.intervalMs;
      out.push(
        '',
        `${s.services} services x ${s.realServers} RS = ${s.services * s.realServers} tcp checks every ${s.intervalMs} ms (${configured}/s configured)`,
      );
      const bare = await floor(codes[codes.length - 1], s, ns, server, dir);
      out.push(
        `  bare connect loop (the floor: node, the kernel, the config applied):`,
        `    connects: ${bare.checksPerSecond.toFixed(0)}/s = ${(bare.checksPerSecond / configured).toFixed(3)} of configured, ${bare.cpuPerCheckUs.toFixed(0)} us CPU per connect`,
      );
      let anchor: Figures | undefined;
      for (const code of codes) {
        const f = await measure(code, s, ns, server, dir);
        const a = code.label === 'this checkout' ? anchor : undefined;
        out.push(
          `  ${code.label}:`,
          `    checks executed: ${f.checksPerSecond.toFixed(0)}/s = ${(f.checksPerSecond / configured).toFixed(3)} of configured${ratio(f.checksPerSecond, a?.checksPerSecond)}`,
          `    controller CPU (its nft runs included): ${(f.cpuShare * 100).toFixed(0)}% of a core, ${f.cpuPerCheckUs.toFixed(0)} us per check${ratio(f.cpuPerCheckUs, a?.cpuPerCheckUs)}, x${(f.cpuPerCheckUs / bare.cpuPerCheckUs).toFixed(2)} the floor's; ${(f.childShare * 100).toFixed(0)}% of it in child processes`,
          `    /metrics: median ${f.metricsMs.toFixed(1)} ms, max ${f.metricsMaxMs.toFixed(1)} ms of 7${ratio(f.metricsMs, a?.metricsMs)}; first byte: median ${f.metricsFirstByteMs.toFixed(1)} ms`,
          `    event-loop delay over the steady window (its own /metrics): p99 ${Number.isNaN(f.loopDelayP99Ms) ? 'not exported' : `${f.loopDelayP99Ms.toFixed(0)} ms`}`,
          `    gap between two checks of a server, steady: p99 ${f.steadyGapP99Intervals.toFixed(2)} intervals${ratio(f.steadyGapP99Intervals, a?.steadyGapP99Intervals)}`,
          `    gap between two checks of a server during ${f.applies} applies: p99 ${f.gapP99Intervals.toFixed(2)}, max ${f.gapMaxIntervals.toFixed(2)} intervals${ratio(f.gapMaxIntervals, a?.gapMaxIntervals)}`,
        );
        if (code.label !== 'this checkout') anchor = f;
        process.stdout.write(`${out.join('\n')}\n`);
        out.length = 0;
      }
    }
    process.stdout.write('ratios (xN): this checkout against the anchor, and CPU per check against the floor, all measured in this run\n');
  } finally {
    server?.child.stdin?.end();
    server?.child.kill('SIGTERM');
    for (const n of [ns.lb, ns.rs]) await run(['ip', 'netns', 'del', n]);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`bench: ${(e as Error).message}\n`);
  process.exitCode = 1;
});
