// Failover benchmark: for each mode, a lab with `slbctl run` checking the
// real servers, a client sending one request after another to the VIP, and
// RS1's HTTP server killed. Measured in one run, side by side: the time from
// the kill to RS1 marked down, to the last request sent to RS1, the failed
// requests, at the fastest documented check setting and at the defaults.
// Usage: node dist/scripts/bench/failover.js [--ipvs]   (--ipvs: inside user-mode-linux)
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { configureRealServers, labDown, labStateDir, labUp, nsName } from '../../src/lab/netns';
import { REFERENCE_TOPOLOGY, REAL_SERVERS, addressOf } from '../../src/lab/topology';
import { LogLine, startController, startRequestLoop } from '../../src/lab/harness';
import { runInUml } from '../../src/uml/run';
import { Mode, MODES } from '../../src/model/types';
import { DEFAULT_TIMING, FASTEST_INTERVAL_MS } from '../../src/health/types';

interface Timing {
  label: string;
  intervalMs: number;
  timeoutMs: number;
  rise: number;
  fall: number;
}

const TIMINGS: Timing[] = [
  {
    label: 'fastest',
    intervalMs: FASTEST_INTERVAL_MS,
    timeoutMs: FASTEST_INTERVAL_MS,
    rise: DEFAULT_TIMING.rise,
    fall: DEFAULT_TIMING.fall,
  },
  { label: 'default', ...DEFAULT_TIMING },
];

interface Result {
  mode: Mode;
  timing: Timing;
  detectMs: number;
  applyMs: number;
  lastToRs1Ms: number;
  failed: number;
  requests: number;
}

const ms = (l: LogLine) => Date.parse(l.time);

async function once(backend: 'nft' | 'ipvs', mode: Mode, t: Timing, n: number): Promise<Result> {
  const lab = `fb${mode.slice(0, 1)}${n}${process.pid % 100}`;
  await labUp(lab, REFERENCE_TOPOLOGY);
  const controllerFile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'slbctl-failover-')), 'slbctl.json');
  try {
    await configureRealServers(lab, mode, REFERENCE_TOPOLOGY);
    fs.writeFileSync(
      controllerFile,
      JSON.stringify({
        backend,
        services: [
          {
            name: 'web',
            vip: REFERENCE_TOPOLOGY.vip,
            port: 80,
            mode,
            scheduler: 'rr',
            healthCheck: { type: 'tcp', interval: `${t.intervalMs}ms`, timeout: `${t.timeoutMs}ms`, rise: t.rise, fall: t.fall },
            realServers: REAL_SERVERS.map((h) => ({ address: addressOf(REFERENCE_TOPOLOGY, h), port: 80, weight: 1 })),
          },
        ],
      }),
    );
    const c = startController(nsName(lab, 'lb'), controllerFile, ['--metrics', 'off']);
    try {
      await c.waitFor((l) => l.event === 'start' && l.msg.startsWith('running'), 30_000, 'the controller running');
      await c.waitFor(
        (l) => l.event === 'health' && l.to === 'up' && l.realServer === `${addressOf(REFERENCE_TOPOLOGY, 'rs1')}:80`,
        30_000,
        'rs1 up',
      );
      const loop = startRequestLoop(nsName(lab, 'client'), `http://${REFERENCE_TOPOLOGY.vip}/`, 5, 1000);
      await new Promise((r) => setTimeout(r, 1000));
      const pid = Number(fs.readFileSync(path.join(labStateDir(lab), 'rs1-http.pid'), 'utf8'));
      const killedAt = Date.now();
      process.kill(pid, 'SIGKILL');
      const down = await c.waitFor((l) => l.event === 'health' && l.to === 'down' && ms(l) >= killedAt, 30_000, 'rs1 down');
      const applied = await c.waitFor((l) => l.event === 'apply' && ms(l) >= ms(down), 30_000, 'the apply');
      await new Promise((r) => setTimeout(r, 1000));
      const records = await loop.stop();
      // With RS2 alive, a failed request is one that went to RS1 (refused by its kernel or unanswered).
      const failed = records.filter((r) => !r.ok && r.start >= killedAt - 5);
      const toRs1 = [...failed.map((r) => r.start), ...records.filter((r) => r.rs === 'rs1').map((r) => r.start)];
      return {
        mode,
        timing: t,
        detectMs: ms(down) - killedAt,
        applyMs: ms(applied) - killedAt,
        lastToRs1Ms: Math.max(...toRs1) - killedAt,
        failed: failed.length,
        requests: records.filter((r) => r.start >= killedAt).length,
      };
    } finally {
      await c.stop();
    }
  } finally {
    await labDown(lab);
    fs.rmSync(path.dirname(controllerFile), { recursive: true, force: true });
  }
}

async function inner(backend: 'nft' | 'ipvs'): Promise<void> {
  const results: Result[] = [];
  let n = 0;
  for (const mode of MODES) for (const t of TIMINGS) results.push(await once(backend, mode, t, n++));
  const rows = results.map((r) => {
    const bound = r.timing.fall * r.timing.intervalMs;
    return `${r.mode.padEnd(12)} ${r.timing.label.padEnd(8)} ${`${r.timing.intervalMs}ms x${r.timing.fall}`.padEnd(11)} ${String(r.detectMs).padStart(7)} ${(r.detectMs / bound).toFixed(2).padStart(6)} ${String(r.applyMs).padStart(8)} ${String(r.lastToRs1Ms).padStart(9)} ${String(r.failed).padStart(7)} ${String(r.requests).padStart(9)}`;
  });
  process.stdout.write(`failover on ${backend}: kill RS1's HTTP server under a request loop (one request at a time, 5 ms apart)\n`);
  process.stdout.write(
    `${'mode'.padEnd(12)} ${'checks'.padEnd(8)} ${'interval'.padEnd(11)} ${'down ms'.padStart(7)} ${'/bound'.padStart(6)} ${'apply ms'.padStart(8)} ${'last->RS1'.padStart(9)} ${'failed'.padStart(7)} ${'requests'.padStart(9)}\n${rows.join('\n')}\n`,
  );
  for (const mode of MODES) {
    const [fast, slow] = TIMINGS.map((t) => results.find((r) => r.mode === mode && r.timing === t) as Result);
    if (fast && slow)
      process.stdout.write(
        `${mode}: fastest/default: time to last request to RS1 ${(fast.lastToRs1Ms / slow.lastToRs1Ms).toFixed(2)}, failed requests ${slow.failed ? (fast.failed / slow.failed).toFixed(2) : '-'}\n`,
      );
  }
  process.stdout.write(
    'down ms: kill -> marked down; /bound: that over fall x interval; apply ms: kill -> kernel changed; last->RS1: kill -> last request sent to RS1\n',
  );
}

async function main(): Promise<void> {
  if (process.argv.includes('--inner-ipvs')) return inner('ipvs');
  if (process.argv.includes('--ipvs')) {
    const r = await runInUml([process.execPath, __filename, '--inner-ipvs'], { timeoutMs: 20 * 60 * 1000 });
    process.stdout.write(r.output);
    process.exitCode = r.code;
    return;
  }
  return inner('nft');
}

void main().catch((e: unknown) => {
  process.stderr.write(`failover bench: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exitCode = 1;
});
