// Health checks keep their verdicts while the controller is busy: `slbctl
// run` with 100 services, each on both real servers of a lab of this test's
// own, with 100 ms HTTP checks (2000 probes a second, plus planning 100
// services at start and at every resync). Every server answers, so any
// transition to down is a false one: there must be none over the start-up
// and a few seconds after. No timing is asserted (2 shared cores).
import { after, before, describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { configureRealServers, labDown, labUp, nsName } from '../../src/lab/netns';
import { REAL_SERVERS, REFERENCE_TOPOLOGY, addressOf } from '../../src/lab/topology';
import { LogLine, RunningController, startController } from '../../src/lab/harness';
import { CLI_ENTRY } from '../../src/util/self';
import { run } from '../../src/util/exec';

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
const SERVICES = 100;
const METRICS = '127.0.0.1:9473';

function config(): string {
  const services = Array.from({ length: SERVICES }, (_, i) => ({
    name: `s${i}`,
    vip: REFERENCE_TOPOLOGY.vip,
    port: 1000 + i,
    protocol: 'tcp',
    mode: 'fullnat',
    scheduler: 'rr',
    healthCheck: { type: 'http', interval: '100ms' },
    realServers: REAL_SERVERS.map((h) => ({ address: addressOf(REFERENCE_TOPOLOGY, h), port: 80, weight: 1 })),
  }));
  return `${JSON.stringify({ backend: 'nft', services }, null, 1)}\n`;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe(
  'health checks under load',
  { skip: isRoot ? false : 'needs root: network namespaces and nftables', timeout: 5 * 60 * 1000 },
  () => {
    const lab = `hl${(process.pid % 1000).toString(36)}${Math.floor(Math.random() * 1296).toString(36)}`;
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'slbctl-load-'));
    const file = path.join(dir, 'slbctl.json');
    let controller: RunningController | undefined;

    before(async () => {
      fs.writeFileSync(file, config());
      await labUp(lab, REFERENCE_TOPOLOGY);
      await configureRealServers(lab, 'fullnat', REFERENCE_TOPOLOGY);
    });
    after(async () => {
      try {
        await controller?.stop();
        await run(['ip', 'netns', 'exec', nsName(lab, 'lb'), process.execPath, CLI_ENTRY, 'destroy']);
      } finally {
        await labDown(lab);
        fs.rmSync(dir, { recursive: true, force: true });
      }
    });

    it(`${SERVICES} services x ${REAL_SERVERS.length} servers, 100 ms HTTP checks: no healthy server is marked down`, async (t) => {
      controller = startController(nsName(lab, 'lb'), file, ['--metrics', METRICS]);
      const c = controller;
      await c.waitFor((l) => l.event === 'start' && l.msg.startsWith('running'), 60_000, 'the controller running');
      const monitors = SERVICES * REAL_SERVERS.length;
      const ups = () => c.logs.filter((l) => l.event === 'health' && l.to === 'up').length;
      // Generous: a liveness bound for a loaded machine, not a speed claim.
      for (let i = 0; i < 600 && ups() < monitors; i++) await sleep(100);
      await sleep(3000);

      const downs = c.logs.filter((l: LogLine) => l.event === 'health' && l.to === 'down');
      const metrics = await run(['curl', '-s', '--max-time', '10', `http://${METRICS}/metrics`], { netns: nsName(lab, 'lb') });
      const sum = (result: string) =>
        [...metrics.stdout.matchAll(new RegExp(`^slbctl_health_checks_total\\{.*result="${result}"\\} (\\d+)$`, 'gm'))].reduce(
          (n, m) => n + Number(m[1]),
          0,
        );
      t.diagnostic(
        `${ups()} of ${monitors} up, ${downs.length} false downs; checks ok ${sum('ok')}, failed ${sum('failed')}; applies: ${c.logs.filter((l) => l.event === 'apply').length}`,
      );
      assert.deepEqual(
        downs.map((l) => l.msg),
        [],
        'no healthy server was marked down',
      );
      assert.equal(ups(), monitors, 'every server came up');
      assert.ok(
        !c.logs.some((l) => l.level === 'error'),
        c.logs
          .filter((l) => l.level === 'error')
          .map((l) => l.msg)
          .join('; '),
      );
    });
  },
);
