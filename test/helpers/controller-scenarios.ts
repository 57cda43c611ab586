// The controller's lab scenarios, shared by the nftables run (host network
// namespaces) and the IPVS run (inside user-mode-linux): `slbctl run` in the
// LB namespace, a steady client loop, real servers killed and restarted.
import { after, before, describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { configureRealServers, labDown, labStateDir, labUp, nsName, removeVipFromRealServer } from '../../src/lab/netns';
import { startHttpServer, waitForHttp } from '../../src/lab/processes';
import { REFERENCE_TOPOLOGY, REAL_SERVERS, addressOf } from '../../src/lab/topology';
import { CLI_ENTRY } from '../../src/util/self';
import { run } from '../../src/util/exec';
import { Mode } from '../../src/model/types';
import { openLongLived } from './long-lived';
import { LogLine, RunningController, lines, startController, startRequestLoop } from '../../src/lab/harness';
import { spawn } from 'node:child_process';

export interface Timing {
  interval: number;
  timeout: number;
  rise: number;
  fall: number;
}

const VIP = REFERENCE_TOPOLOGY.vip;
const RS1 = addressOf(REFERENCE_TOPOLOGY, 'rs1');
const RS2 = addressOf(REFERENCE_TOPOLOGY, 'rs2');

export function controllerConfig(
  mode: Mode,
  backend: 'nft' | 'ipvs',
  t: Timing,
  check: Record<string, unknown> = { type: 'http' },
  extra: Record<string, unknown> = {},
): string {
  return `${JSON.stringify(
    {
      backend,
      services: [
        {
          name: 'web',
          vip: VIP,
          port: 80,
          protocol: 'tcp',
          mode,
          scheduler: 'rr',
          healthCheck: { interval: `${t.interval}ms`, timeout: `${t.timeout}ms`, rise: t.rise, fall: t.fall, ...check },
          realServers: REAL_SERVERS.map((h) => ({ address: addressOf(REFERENCE_TOPOLOGY, h), port: 80, weight: 1 })),
          ...extra,
        },
      ],
    },
    null,
    2,
  )}\n`;
}

const ms = (l: LogLine) => Date.parse(l.time);
const isTransition =
  (rs: string, to: string, after = 0) =>
  (l: LogLine) =>
    l.event === 'health' && l.realServer === `${rs}:80` && l.to === to && ms(l) >= after;

export function lbCli(lab: string, args: string[]) {
  return run([process.execPath, CLI_ENTRY, ...args], { netns: nsName(lab, 'lb') });
}

function killServer(lab: string, rs: 'rs1' | 'rs2'): void {
  const pid = Number(fs.readFileSync(path.join(labStateDir(lab), `${rs}-http.pid`), 'utf8'));
  process.kill(pid, 'SIGKILL');
}

/** Start the RS's HTTP server again; resolves with the moment it was listening (from its own log). */
async function restartServer(lab: string, rs: 'rs1' | 'rs2'): Promise<number> {
  const ns = nsName(lab, rs);
  const server = startHttpServer(lab, ns, rs, 80);
  await waitForHttp(ns, server, `http://${addressOf(REFERENCE_TOPOLOGY, rs)}:80/`, Date.now() + 10_000);
  const since = [...fs.readFileSync(server.logFile, 'utf8').matchAll(new RegExp(`pid ${server.pid}\\) since (\\S+)`, 'g'))].pop()?.[1];
  assert.ok(since, `the restarted server logged when it listened (${server.logFile})`);
  return Date.parse(since);
}

export interface ScenarioOptions {
  backend: 'nft' | 'ipvs';
  /** Lab name prefix, unique per run. */
  tag: string;
  skip?: string | false;
  /**
   * Slack on top of the configured detection times: scheduling on a shared
   * 2-core machine, and in user-mode-linux every process start and plan is
   * several times slower than on the host.
   */
  slackMs: number;
  timing: Timing;
}

/** Set up a lab in `mode` with a config file and the controller running; torn down after. */
function withControllerLab(
  o: ScenarioOptions,
  mode: Mode,
  check: Record<string, unknown>,
  body: (ctx: { lab: string; file: () => string; controller: () => RunningController }) => void,
): void {
  const lab = `${o.tag}${mode.slice(0, 1)}${(process.pid % 1000).toString(36)}${Math.floor(Math.random() * 1296).toString(36)}`.slice(
    0,
    12,
  );
  let controller: RunningController | undefined;
  let file = '';
  before(async () => {
    await labUp(lab, REFERENCE_TOPOLOGY);
    await configureRealServers(lab, mode, REFERENCE_TOPOLOGY);
    file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), `slbctl-run-${lab}-`)), 'slbctl.json');
    fs.writeFileSync(file, controllerConfig(mode, o.backend, o.timing, check));
    // Resync at the check interval (the default is at least 1 s): the drift case below counts in check intervals.
    controller = startController(nsName(lab, 'lb'), file, ['--metrics', '127.0.0.1:9469', '--resync', `${o.timing.interval}ms`]);
    await controller.waitFor((l) => l.event === 'start' && l.msg.startsWith('running'), 20_000, 'the controller running');
    await controller.waitFor(isTransition(RS1, 'up'), 10_000, 'rs1 up');
    await controller.waitFor(isTransition(RS2, 'up'), 10_000, 'rs2 up');
  });
  after(async () => {
    try {
      if (controller) {
        const code = await controller.stop();
        assert.equal(code, 0, 'slbctl run exits 0 on SIGTERM');
        assert.deepEqual(controller.other, [], 'every log line is one JSON object');
      }
    } finally {
      await labDown(lab);
    }
  });
  body({ lab, file: () => file, controller: () => controller as RunningController });
}

export function controllerScenarios(o: ScenarioOptions): void {
  describe(`slbctl run on ${o.backend}: failover under load, drift, drain`, { skip: o.skip ?? false }, () => {
    withControllerLab(o, 'fullnat', { type: 'http' }, ({ lab, controller }) => {
      it('kill RS1 under a steady request loop: down within fall x interval, no failed request after, back after rise x interval', async () => {
        const c = controller();
        const loop = startRequestLoop(nsName(lab, 'client'), `http://${VIP}/`, 10, 1000);
        await new Promise((r) => setTimeout(r, 800));
        const killedAt = Date.now();
        killServer(lab, 'rs1');
        const down = await c.waitFor(isTransition(RS1, 'down', killedAt), 5000, 'rs1 down');
        const applied = await c.waitFor((l) => l.event === 'apply' && ms(l) >= ms(down), 5000, 'the apply after rs1 went down');
        await new Promise((r) => setTimeout(r, 1000));
        // Rise counts from the moment the restarted server listens (its own log), not from its slow start-up.
        const restartAt = Date.now();
        const readyAt = await restartServer(lab, 'rs1');
        const up = await c.waitFor(isTransition(RS1, 'up', restartAt), 10_000, 'rs1 up again');
        await c.waitFor((l) => l.event === 'apply' && ms(l) >= ms(up), 5000, 'the apply after rs1 came back');
        await new Promise((r) => setTimeout(r, 800));
        const records = await loop.stop();

        if (process.env.SLBCTL_DEBUG_RECORDS)
          fs.writeFileSync(
            process.env.SLBCTL_DEBUG_RECORDS,
            JSON.stringify({ killedAt, down: ms(down), applied: ms(applied), readyAt, up: ms(up), records, logs: c.logs }, null, 1),
          );
        const detect = ms(down) - killedAt;
        const rise = ms(up) - readyAt;
        const failed = records.filter((r) => !r.ok);
        const failedAfter = failed.filter((r) => r.start >= ms(applied));
        const lastToRs1 = Math.max(...records.filter((r) => r.rs === 'rs1' && r.start < ms(up)).map((r) => r.start));
        const note = `detected in ${detect} ms, rise in ${rise} ms, ${records.length} requests, ${failed.length} failed (${failedAfter.length} after the apply), last to rs1 ${lastToRs1 - killedAt} ms after the kill`;
        process.stdout.write(`# ${o.backend} fullnat: ${note}\n`);
        assert.ok(
          detect <= o.timing.fall * o.timing.interval + o.slackMs,
          `down within fall x interval (${o.timing.fall * o.timing.interval} ms): ${note}`,
        );
        assert.deepEqual(failedAfter, [], `no request fails once rs1 is out: ${note}`);
        assert.ok(
          rise <= o.timing.rise * o.timing.interval + o.slackMs,
          `up within rise x interval (${o.timing.rise * o.timing.interval} ms): ${note}`,
        );
        assert.ok(
          records.some((r) => r.rs === 'rs1' && r.start > ms(up) + 100),
          `rs1 serves again after it came back: ${note}`,
        );
        assert.ok(
          records.filter((r) => r.start > ms(applied) && r.start < ms(up)).every((r) => r.rs === 'rs2'),
          'while rs1 is down, rs2 answers everything',
        );
      });

      it("a service deleted behind slbctl's back is restored within one check interval and logged", async () => {
        const c = controller();
        const deletedAt = Date.now();
        const del =
          o.backend === 'nft'
            ? await run(['nft', 'delete', 'table', 'ip', 'slbctl'], { netns: nsName(lab, 'lb') })
            : await run(['ipvsadm', '-D', '-t', `${VIP}:80`], { netns: nsName(lab, 'lb') });
        assert.equal(del.code, 0, del.stderr);
        const drift = await c.waitFor((l) => l.event === 'drift' && ms(l) >= deletedAt, 5000, 'a drift repair');
        const took = ms(drift) - deletedAt;
        process.stdout.write(`# ${o.backend}: drift repaired in ${took} ms\n`);
        assert.ok(took <= o.timing.interval + o.slackMs, `restored within one interval (${o.timing.interval} ms), took ${took} ms`);
        const curl = await run(['curl', '-s', '--max-time', '2', `http://${VIP}/`], { netns: nsName(lab, 'client') });
        assert.equal(curl.code, 0, 'the VIP answers again');
        const metrics = await run(['curl', '-s', 'http://127.0.0.1:9469/metrics'], { netns: nsName(lab, 'lb') });
        assert.match(metrics.stdout, /^slbctl_drift_repairs_total [1-9]/m);
        assert.match(
          metrics.stdout,
          /^slbctl_real_server_health\{service="web",vip="tcp\/172\.16\.75\.84:80",real_server="172\.16\.75\.82:80",state="up"\} 1$/m,
        );
        assert.match(metrics.stdout, /^slbctl_health_transitions_total\{.*real_server="172\.16\.75\.82:80",to="down"\} 1$/m);
      });

      it('drain waits for a long-lived connection, then removes the RS; undrain brings it back; the controller keeps the drain', async () => {
        const c = controller();
        const conn = openLongLived(nsName(lab, 'client'), VIP, 80);
        try {
          assert.ok(await conn.connected(), 'long-lived connection open');
          let target: string | undefined;
          for (let i = 0; i < 20 && !target; i++) {
            const st = await lbCli(lab, ['status', '--json']);
            const svc = (JSON.parse(st.stdout) as { services: { realServers: { address: string; connections?: { active: number } }[] }[] })
              .services[0];
            target = svc?.realServers.find((r) => (r.connections?.active ?? 0) > 0)?.address;
            if (!target) await new Promise((r) => setTimeout(r, 100));
          }
          assert.ok(target, 'status shows the long-lived connection as active on one RS');
          const drain = spawn(
            'ip',
            ['netns', 'exec', nsName(lab, 'lb'), process.execPath, CLI_ENTRY, 'drain', 'web', target, '--deadline', '90s'],
            { stdio: ['ignore', 'pipe', 'pipe'] },
          );
          let out = '';
          drain.stdout.on('data', (d: Buffer) => {
            out += d.toString();
          });
          drain.stderr.on('data', (d: Buffer) => {
            out += d.toString();
          });
          const exited = new Promise<number>((resolve) => drain.on('close', (code) => resolve(code ?? -1)));
          // Generous: on a loaded machine (and in user-mode-linux) the drain takes seconds to get going; this is no timing claim.
          for (let i = 0; i < 600 && !/1 active/.test(out); i++) await new Promise((r) => setTimeout(r, 100));
          await new Promise((r) => setTimeout(r, 1000));
          assert.match(out, /1 active, \d+ inactive connections/, `drain shows the live connection: ${out}`);
          assert.doesNotMatch(out, /removed/, `drain still waits: ${out}`);
          const st = await lbCli(lab, ['status']);
          assert.match(st.stdout, new RegExp(`${target.replace(/\./g, '\\.')}:80 +0 +draining`), st.stdout);
          const finished = await conn.finish();
          assert.equal(finished.code, 0, 'the long-lived connection completed its request after the drain began');
          assert.match(finished.output, /HTTP\/1\.1 200/);
          const code = await Promise.race([exited, new Promise<number>((r) => setTimeout(() => r(-2), 60_000))]);
          assert.equal(code, 0, `drain finished: ${out}`);
          assert.match(out, /removed from web after [\d.]+ s: no connections left/);
          await new Promise((r) => setTimeout(r, 2 * o.timing.interval + 200));
          const gone = await lbCli(lab, ['status', '--json']);
          const list = (JSON.parse(gone.stdout) as { services: { realServers: { address: string }[] }[] }).services[0]?.realServers ?? [];
          assert.ok(!list.some((r) => r.address === target), 'the drained RS stays out of the kernel under the controller');
          assert.ok(
            !c.logs.some((l) => l.event === 'drift' && ms(l) > Date.now() - 3000),
            'the controller did not treat the drain as drift',
          );
          const undrain = await lbCli(lab, ['undrain', 'web', target]);
          assert.equal(undrain.code, 0, undrain.stderr);
          const back = await lbCli(lab, ['status', '--json']);
          const again =
            (JSON.parse(back.stdout) as { services: { realServers: { address: string; weight: number }[] }[] }).services[0]?.realServers ??
            [];
          assert.equal(again.find((r) => r.address === target)?.weight, 1, 'undrain restored the RS with its weight');
        } finally {
          conn.kill();
        }
      });

      it('an invalid config saved over the file is refused and the running config stays', async () => {
        const c = controller();
        const file = c.logs.find((l) => l.event === 'start')?.msg.match(/from (\S+)$/)?.[1];
        assert.ok(file);
        const good = fs.readFileSync(file, 'utf8');
        const savedAt = Date.now();
        fs.writeFileSync(file, good.replace(`"timeout": "${o.timing.timeout}ms"`, `"timeout": "${o.timing.interval + 700}ms"`));
        const refused = await c.waitFor((l) => l.event === 'reload' && l.level === 'error' && ms(l) >= savedAt, 5000, 'the refused reload');
        assert.match(
          refused.msg,
          new RegExp(`healthCheck\\.timeout: ${o.timing.interval + 700}ms is longer than the interval \\(${o.timing.interval}ms\\)`),
        );
        fs.writeFileSync(file, good);
        const curl = await run(['curl', '-s', '--max-time', '2', `http://${VIP}/`], { netns: nsName(lab, 'client') });
        assert.equal(curl.code, 0, 'the service still answers');
      });
    });
  });
}

/** DSR: an RS without the VIP on its loopback is down even though its own address answers. */
export function dsrBlackholeScenario(o: ScenarioOptions): void {
  describe(`slbctl run on ${o.backend}: the DSR check follows the data path`, { skip: o.skip ?? false }, () => {
    withControllerLab(o, 'dsr', { type: 'tcp' }, ({ lab, controller }) => {
      it("removing the VIP from RS2's loopback marks RS2 down; putting it back brings it up", async () => {
        const c = controller();
        const removedAt = Date.now();
        assert.ok(await removeVipFromRealServer(lab, 'rs2'), "the VIP was on rs2's lo");
        const down = await c.waitFor(isTransition(RS2, 'down', removedAt), 5000, 'rs2 down');
        const own = await run(['curl', '-s', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', '1', `http://${RS2}/`], {
          netns: nsName(lab, 'lb'),
        });
        assert.equal(own.stdout, '200', "rs2's own address still answers: only a data-path probe sees the fault");
        process.stdout.write(`# ${o.backend} dsr: blackhole detected in ${ms(down) - removedAt} ms\n`);
        await run(['ip', 'addr', 'add', `${VIP}/32`, 'dev', 'lo'], { netns: nsName(lab, 'rs2') });
        await c.waitFor(isTransition(RS2, 'up', ms(down)), 5000, 'rs2 up again');
      });
    });
  });
}

function spawnIn(netns: string, argv: string[]): { lines: string[]; stop: () => void } {
  const child = spawn('ip', ['netns', 'exec', netns, ...argv], { stdio: ['ignore', 'pipe', 'inherit'] });
  const out: string[] = [];
  lines(child, 'stdout', (l) => out.push(l));
  return { lines: out, stop: () => child.kill('SIGTERM') };
}

/** A UDP service whose real server fails: its flows move to the other RS at once, though its UDP server still answers. */
export function udpExpiryScenario(o: ScenarioOptions): void {
  describe(`slbctl run on ${o.backend}: UDP flows to a dead real server expire`, { skip: o.skip ?? false }, () => {
    const lab = `${o.tag}u${(process.pid % 1000).toString(36)}${Math.floor(Math.random() * 1296).toString(36)}`.slice(0, 12);
    const echo = path.join(__dirname, '..', '..', 'src', 'lab', 'udp-echo.js');
    const procs: { stop: () => void }[] = [];
    let c: RunningController | undefined;
    before(async () => {
      await labUp(lab, REFERENCE_TOPOLOGY);
      await configureRealServers(lab, 'fullnat', REFERENCE_TOPOLOGY);
      for (const h of REAL_SERVERS) procs.push(spawnIn(nsName(lab, h), [process.execPath, echo, 'server', h, '5353']));
      const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), `slbctl-udp-${lab}-`)), 'slbctl.json');
      fs.writeFileSync(
        file,
        `${JSON.stringify({
          backend: o.backend,
          services: [
            {
              name: 'dns',
              vip: VIP,
              port: 5353,
              protocol: 'udp',
              mode: 'fullnat',
              scheduler: 'rr',
              // The RS's HTTP server stands for its health: killing it fails the RS while its UDP server keeps answering.
              healthCheck: {
                type: 'tcp',
                port: 80,
                interval: `${o.timing.interval}ms`,
                timeout: `${o.timing.timeout}ms`,
                rise: o.timing.rise,
                fall: o.timing.fall,
              },
              realServers: REAL_SERVERS.map((h) => ({ address: addressOf(REFERENCE_TOPOLOGY, h), port: 5353, weight: 1 })),
            },
          ],
        })}\n`,
      );
      c = startController(nsName(lab, 'lb'), file, ['--metrics', 'off']);
      await c.waitFor((l) => l.event === 'start' && l.msg.startsWith('running'), 20_000, 'the controller running');
    });
    after(async () => {
      for (const p of procs) p.stop();
      try {
        await c?.stop();
      } finally {
        await labDown(lab);
      }
    });

    it('a flow pinned to RS1 moves to RS2 as soon as RS1 is down, though RS1 still answers UDP', async () => {
      const client = spawnIn(nsName(lab, 'client'), [process.execPath, echo, 'client', VIP, '5353', '2', '20']);
      procs.push(client);
      const answers = () => client.lines.map((l) => JSON.parse(l) as { at: number; socket: number; rs: string });
      for (let i = 0; i < 100 && new Set(answers().map((a) => a.rs)).size < 2; i++) await new Promise((r) => setTimeout(r, 50));
      const before = answers();
      const pinned = before.filter((a) => a.rs === 'rs1').map((a) => a.socket)[0];
      assert.ok(pinned !== undefined, `one flow is on rs1: ${JSON.stringify(before.slice(-4))}`);
      assert.ok(
        before
          .filter((a) => a.socket === pinned)
          .slice(-5)
          .every((a) => a.rs === 'rs1'),
        'the flow stays on rs1 (connection tracking)',
      );
      const killedAt = Date.now();
      killServer(lab, 'rs1');
      const applied = await c?.waitFor((l) => l.event === 'apply' && ms(l) >= killedAt, 10_000, 'rs1 removed');
      const at = applied ? ms(applied) : killedAt;
      await new Promise((r) => setTimeout(r, 1000));
      const after = answers().filter((a) => a.socket === pinned && a.at > at + 100);
      client.stop();
      assert.ok(after.length > 5, `answers after the change: ${after.length}`);
      assert.deepEqual([...new Set(after.map((a) => a.rs))], ['rs2'], 'the pinned flow now gets rs2');
      if (o.backend === 'nft')
        assert.ok(
          c?.logs.some((l) => l.event === 'expire' && /\b[1-9]\d* UDP flow/.test(l.msg)),
          'the stale conntrack entry was deleted',
        );
    });
  });
}

/** Every real server down: the sorry server answers; one back: it serves again. */
export function sorryServerScenario(o: ScenarioOptions): void {
  describe(`slbctl run on ${o.backend}: the sorry server`, { skip: o.skip ?? false }, () => {
    const lab = `${o.tag}s${(process.pid % 1000).toString(36)}${Math.floor(Math.random() * 1296).toString(36)}`.slice(0, 12);
    let c: RunningController | undefined;
    before(async () => {
      await labUp(lab, REFERENCE_TOPOLOGY);
      await configureRealServers(lab, 'fullnat', REFERENCE_TOPOLOGY);
      // The sorry server: a second HTTP server on rs2, port 8080, that stays up.
      const sorry = startHttpServer(lab, nsName(lab, 'rs2'), 'sorry', 8080);
      await waitForHttp(nsName(lab, 'rs2'), sorry, `http://${RS2}:8080/`, Date.now() + 10_000);
      const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), `slbctl-sorry-${lab}-`)), 'slbctl.json');
      fs.writeFileSync(
        file,
        controllerConfig('fullnat', o.backend, o.timing, { type: 'http' }, { sorryServer: { address: RS2, port: 8080 } }),
      );
      c = startController(nsName(lab, 'lb'), file, ['--metrics', 'off']);
      await c.waitFor((l) => l.event === 'start' && l.msg.startsWith('running'), 20_000, 'the controller running');
    });
    after(async () => {
      try {
        await c?.stop();
      } finally {
        await labDown(lab);
      }
    });

    const answeredBy = async () => {
      const r = await run(['curl', '-s', '-D', '-', '-o', '/dev/null', '--max-time', '2', `http://${VIP}/`], {
        netns: nsName(lab, 'client'),
      });
      return /X-Real-Server: (\S+)/i.exec(r.stdout)?.[1];
    };

    it('answers from the sorry server while both real servers are down, and from RS1 once it is back', async () => {
      const ctl = c as RunningController;
      assert.equal(
        ctl.logs.some((l) => l.event === 'apply' && (l.ops as string[] | undefined)?.some((x) => x.includes('8080'))),
        false,
        'the sorry server is not in the service while the real servers are being checked',
      );
      const killedAt = Date.now();
      killServer(lab, 'rs1');
      killServer(lab, 'rs2');
      await ctl.waitFor(
        (l) => l.event === 'apply' && ms(l) >= killedAt && (l.ops as string[]).some((x) => x.includes(`${RS2}:8080`)),
        10_000,
        'the sorry server put in',
      );
      assert.equal(await answeredBy(), 'sorry');
      const backAt = Date.now();
      await restartServer(lab, 'rs1');
      await ctl.waitFor(
        (l) => l.event === 'apply' && ms(l) >= backAt && (l.ops as string[]).some((x) => x.includes(`${RS1}:80`)),
        10_000,
        'rs1 back in',
      );
      const seen = new Set<string | undefined>();
      for (let i = 0; i < 4; i++) seen.add(await answeredBy());
      assert.deepEqual([...seen], ['rs1'], 'only rs1 answers (rs2 is still down, the sorry server is out)');
    });
  });
}
