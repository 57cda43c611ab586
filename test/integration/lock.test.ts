// One writer per network namespace, on the real kernel: apply, destroy,
// drain and run against each other (and against a process holding a lock as
// slbctl does). A writer that cannot get the namespace within --wait refuses
// with exit 6 and one sentence naming the holder; apply and destroy refuse
// while `slbctl run` manages the namespace unless --force; a holder killed
// with SIGKILL never leaves the namespace locked.
import { after, before, describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createBalancerNetns, deleteNetns } from '../helpers/balancer-netns';
import { addressesOn, slbctlRuleProblems } from '../helpers/kernel-state';
import { holdLock, slbctlIn, smallConfig } from '../helpers/writers';
import { Started, sleep, startSlbctl } from '../helpers/processes';
import { RunningController, startController } from '../../src/lab/harness';

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
const ns = `slbt-lock-${process.pid}-${Math.floor(Math.random() * 1e6)}`;
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'slbctl-lock-'));
// Records and locks of this test only.
process.env.RUNTIME_DIRECTORY = path.join(dir, 'run');

const OWN = '172.16.75.83/24';
const A = smallConfig(100, 3);
const B = smallConfig(110, 3, 2);
const fileA = path.join(dir, 'a.yaml');
const fileB = path.join(dir, 'b.yaml');
const slbctl = (args: string[]) => slbctlIn(ns, args);
const vipsNow = async () => (await addressesOn(ns)).filter((a) => a !== OWN).map((a) => a.replace(/\/32$/, ''));

/** Exit 6 and one line naming `pid` (and, when given, the holder's command). */
function assertBusy(r: { code: number; stderr: string }, pid: number, command?: RegExp): void {
  assert.equal(r.code, 6, `exit 6 (busy): ${r.stderr}`);
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, `one sentence: ${r.stderr}`);
  assert.match(r.stderr, new RegExp(`pid ${pid}\\b`), `names the holder's pid ${pid}: ${r.stderr}`);
  if (command) assert.match(r.stderr, command, `names the holder's command: ${r.stderr}`);
}

function stop(p: Started | undefined): void {
  if (p && !p.done()) p.child.kill('SIGKILL');
}

describe('one writer per network namespace', { skip: isRoot ? false : 'needs root' }, () => {
  before(async () => {
    await createBalancerNetns(ns);
    fs.writeFileSync(fileA, A.yaml);
    fs.writeFileSync(fileB, B.yaml);
  });
  after(async () => {
    await deleteNetns(ns);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('apply vs a writer: --wait 1s refuses naming its pid and command; a longer wait proceeds once it exits', async () => {
    const holder = await holdLock(ns, 'write');
    let waiting: Started | undefined;
    try {
      assert.equal(holder.out().trim(), `held ${holder.pid}`);
      const refused = await slbctl(['apply', '-f', fileA, '--wait', '1s']);
      assertBusy(refused, holder.pid, /lock-holder\.js write/);
      assert.match(refused.stderr, /another slbctl is changing this network namespace.*waited 1 s/);
      assert.deepEqual(await vipsNow(), [], 'the refused apply changed nothing');

      waiting = startSlbctl(ns, ['apply', '-f', fileA, '--wait', '60s']);
      await sleep(1500);
      assert.equal(waiting.done(), false, `apply waits while the lock is held: ${waiting.err()}`);
      holder.child.kill('SIGTERM');
      assert.equal(await waiting.exited, 0, waiting.err());
      assert.deepEqual(await vipsNow(), A.vips);
    } finally {
      stop(holder);
      stop(waiting);
    }
  });

  it('a holder killed with SIGKILL never leaves the namespace locked', async () => {
    const writer = await holdLock(ns, 'write');
    const controller = await holdLock(ns, 'controller');
    writer.child.kill('SIGKILL');
    controller.child.kill('SIGKILL');
    await Promise.all([writer.exited, controller.exited]);
    // No wait, no --force: neither lock is held any more.
    const r = await slbctl(['apply', '-f', fileB, '--wait', '0']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(await vipsNow(), B.vips);
  });

  it("a killed writer's child that inherited the lock (as nft does) keeps the namespace until it exits, and the refusal says so", async () => {
    const holder = await holdLock(ns, 'write', true);
    const child = Number(/child (\d+)/.exec(holder.out())?.[1]);
    try {
      assert.ok(child > 0, holder.out());
      holder.child.kill('SIGKILL');
      await holder.exited;
      const refused = await slbctl(['apply', '-f', fileA, '--wait', '1s']);
      assertBusy(
        refused,
        holder.pid,
        /lock-holder\.js write --child`.*which has exited; a program it started \(nft, iptables\) still holds the lock/,
      );
    } finally {
      if (child > 0) process.kill(child, 'SIGKILL');
    }
    // Its exit releases the lock (a zombie holds no descriptors); a short wait covers the moment until then.
    const r = await slbctl(['apply', '-f', fileA, '--wait', '10s']);
    assert.equal(r.code, 0, r.stderr);
  });

  it('two applies of different configs started at the same moment: the kernel ends with exactly one of them', async () => {
    const wins = { A: 0, B: 0 };
    for (let round = 0; round < 6; round++) {
      // Started back to back, in turn A first and B first.
      const start = (file: string) => startSlbctl(ns, ['apply', '-q', '-f', file, '--wait', '60s']);
      const [a, b] = round % 2 === 0 ? [start(fileA), start(fileB)] : ([start(fileB), start(fileA)].reverse() as [Started, Started]);
      const [ca, cb] = await Promise.all([a.exited, b.exited]);
      assert.equal(ca, 0, a.err());
      assert.equal(cb, 0, b.err());
      const [pa, pb] = await Promise.all([
        slbctl(['plan', '-f', fileA, '--detailed-exitcode']),
        slbctl(['plan', '-f', fileB, '--detailed-exitcode']),
      ]);
      const winner = pa.code === 0 ? 'A' : 'B';
      assert.deepEqual([pa.code, pb.code].sort(), [0, 2], `exactly one config is in the kernel (plan A ${pa.code}, plan B ${pb.code})`);
      wins[winner]++;
      assert.deepEqual(await vipsNow(), winner === 'A' ? A.vips : B.vips, "only the winner's VIPs");
      assert.deepEqual(await slbctlRuleProblems(ns), []);
    }
    // Each writer removes its lock file as it lets go, so none piles up under locks/.
    const locks = path.join(dir, 'run', 'locks');
    assert.deepEqual(fs.existsSync(locks) ? fs.readdirSync(locks) : [], [], 'no lock file left once every writer is done');
    process.stdout.write(`# lock: 6 simultaneous apply pairs, the kernel held A ${wins.A} times and B ${wins.B} times, never a mix\n`);
  });

  it('drain vs a writer and vs apply: refused after --wait naming the holder; started together with apply, both go through', async () => {
    const applied = await slbctl(['apply', '-f', fileA]);
    assert.equal(applied.code, 0, applied.stderr);
    const holder = await holdLock(ns, 'write');
    try {
      const refused = await slbctl(['drain', 'web100', '172.16.75.82', '--deadline', '1s', '--wait', '1s']);
      assertBusy(refused, holder.pid, /lock-holder\.js write/);
    } finally {
      stop(holder);
      await holder.exited;
    }
    for (let round = 0; round < 3; round++) {
      const drain = startSlbctl(ns, ['drain', 'web100', '172.16.75.82', '--deadline', '1s', '--wait', '60s']);
      const apply = startSlbctl(ns, ['apply', '-q', '-f', fileA, '--wait', '60s']);
      const [cd, ca] = await Promise.all([drain.exited, apply.exited]);
      assert.equal(cd, 0, `drain: ${drain.err()}`);
      assert.equal(ca, 0, `apply: ${ca} ${apply.err()}`);
      // Either order is a whole serialisation: .82 is out (drain last) or back at its weight (apply last), never left at 0.
      const st = JSON.parse((await slbctl(['status', '--json'])).stdout) as {
        services: { name: string; realServers: { address: string; weight: number }[] }[];
      };
      const rs = st.services.find((s) => s.name === 'web100')?.realServers.find((r) => r.address === '172.16.75.82');
      assert.ok(rs === undefined || rs.weight === 1, `172.16.75.82 is out or at weight 1: ${JSON.stringify(rs)}`);
      assert.deepEqual(await slbctlRuleProblems(ns), []);
      const undrain = await slbctl(['undrain', 'web100', '172.16.75.82']);
      assert.equal(undrain.code, 0, undrain.stderr);
    }
  });

  describe('while slbctl run manages the namespace', () => {
    let controller: RunningController | undefined;
    before(async () => {
      const destroyed = await slbctl(['destroy']);
      assert.equal(destroyed.code, 0, destroyed.stderr);
      controller = startController(ns, fileA, ['--metrics', 'off', '--resync', '300ms']);
      await controller.waitFor((l) => l.event === 'start' && l.msg.startsWith('running'), 30_000, 'the controller running');
    });
    after(async () => {
      if (controller) assert.equal(await controller.stop(), 0, 'slbctl run exits 0 on SIGTERM');
    });
    const c = () => controller as RunningController;

    it('apply is refused (exit 6) naming the controller and saying to reload it, or --force', async () => {
      const r = await slbctl(['apply', '-f', fileB, '--wait', '1s']);
      assertBusy(r, c().pid, /slbctl run -f/);
      assert.match(r.stderr, /slbctl run manages this network namespace/);
      assert.match(r.stderr, /reload it \(kill -HUP \d+/);
      assert.match(r.stderr, /--force/);
      assert.deepEqual(await vipsNow(), A.vips, 'nothing was applied');
    });

    it('destroy is refused the same way', async () => {
      const r = await slbctl(['destroy', '--wait', '1s']);
      assertBusy(r, c().pid, /slbctl run -f/);
      assert.match(r.stderr, /plain `slbctl destroy` would be undone.*--force/);
      assert.deepEqual(await vipsNow(), A.vips, 'nothing was destroyed');
    });

    it('a second run is refused after --wait, naming the first', async () => {
      const r = await slbctl(['run', '-f', fileA, '--metrics', 'off', '--wait', '1s']);
      assertBusy(r, c().pid, /slbctl run -f/);
      assert.match(r.stderr, /slbctl run is already running in this network namespace/);
    });

    it('drain works through the controller, and the controller keeps the drain', async () => {
      const since = Date.now();
      const r = await slbctl(['drain', 'web100', '172.16.75.82', '--deadline', '2s']);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /172\.16\.75\.82:80 removed from web100/);
      await c().waitFor((l) => l.event === 'apply' && Date.parse(l.time) >= since, 10_000, 'the controller applying the drain');
      await sleep(1000);
      const st = JSON.parse((await slbctl(['status', '--json'])).stdout) as {
        services: { name: string; realServers: { address: string }[] }[];
      };
      const rss = st.services.find((s) => s.name === 'web100')?.realServers.map((x) => x.address);
      assert.deepEqual(rss, ['172.16.75.85'], 'the drained real server stays out under the controller');
      const back = await slbctl(['undrain', 'web100', '172.16.75.82']);
      assert.equal(back.code, 0, back.stderr);
    });

    it('apply --force goes through (and the controller puts its config back)', async () => {
      const since = Date.now();
      const r = await slbctl(['apply', '-q', '-f', fileB, '--force']);
      assert.equal(r.code, 0, r.stderr);
      await c().waitFor((l) => l.event === 'drift' && Date.parse(l.time) >= since, 10_000, 'the controller restoring its config');
      for (let i = 0; i < 100 && (await vipsNow()).join() !== A.vips.join(); i++) await sleep(100);
      assert.deepEqual(await vipsNow(), A.vips, "B's VIPs, added by the forced apply, removed by the controller");
    });
  });

  it('a controller killed with SIGKILL leaves the namespace free for apply without --force', async () => {
    const controller = startController(ns, fileA, ['--metrics', 'off']);
    await controller.waitFor((l) => l.event === 'start' && l.msg.startsWith('running'), 30_000, 'the controller running');
    process.kill(controller.pid, 'SIGKILL');
    assert.notEqual(await controller.stop(), 0);
    const r = await slbctl(['apply', '-f', fileB, '--wait', '0']);
    assert.equal(r.code, 0, r.stderr);
    const destroyed = await slbctl(['destroy', '--wait', '0']);
    assert.equal(destroyed.code, 0, destroyed.stderr);
    assert.deepEqual(await vipsNow(), []);
  });
});
