// Crash safety of `slbctl apply` on a real kernel: in a namespace of the
// test's own, with two configs of 1,000 services on 250 VIPs each (100 VIPs
// only in one, 100 only in the other), apply is SIGKILLed at random points of
// chosen phases (before it changes anything, while it writes its ownership
// record, while it adds VIPs, the moment its nft starts, while the nft
// transaction runs, while it removes VIPs),
// alone or with its nft child (its own process group, as a cgroup stop would
// kill it). After each kill: the nft table is one config or the other, never
// a mix; an nft that outlived slbctl commits the whole transaction and holds
// the namespace's write lock while it runs; a re-apply succeeds and
// leaves exactly the config's VIPs, one rule per hook chain, nothing left to
// plan, and an ownership record that lists exactly those VIPs. At the end,
// destroy leaves the namespace as it was, also after slbctl's table was
// deleted by hand.
import { after, before, describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { run, runChecked, RunResult } from '../../src/util/exec';
import { CLI_ENTRY } from '../../src/util/self';
import { native } from '../../src/util/netns';
import { createBalancerNetns, deleteNetns } from '../helpers/balancer-netns';
import { addressesOn, listSlbctl, nftTables, slbctlRuleProblems, sysctl } from '../helpers/kernel-state';
import { BigConfig, bigConfig } from '../helpers/many-services';
import { whichConfig } from '../helpers/big-table';
import { ApplyTracker, Phase } from '../helpers/apply-tracker';
import { Started, groupMembers, killGroup, startSlbctl, waitGroupGone, waitUntil } from '../helpers/processes';
import { RunningController, startController } from '../../src/lab/harness';

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
const ns = `slbt-crash-${process.pid}-${Math.floor(Math.random() * 1e6)}`;
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'slbctl-crash-'));
// slbctl's records and locks for this test only: nothing under /run/slbctl is read or written.
const runtime = path.join(dir, 'run');
process.env.RUNTIME_DIRECTORY = runtime;

const OWN = '172.16.75.83/24';
const A = bigConfig(0, 250, 1);
const B = bigConfig(100, 350, 2);
const file = (c: BigConfig) => path.join(dir, c === A ? 'a.json' : 'b.json');
const name = (c: BigConfig) => (c === A ? 'A' : 'B');

/** Kills: at least MIN, then more while the time budget lasts (SLBCTL_CRASH_KILLS: exactly that many). */
// Its phases follow the transaction's nft child (ApplyTracker), so the applies here use the nft program; a
// slbctl killed during an in-process (libnftables) transaction is test/integration/nft-exec.test.ts's.
process.env.SLBCTL_NFT_EXEC = 'process';
const FIXED = Number(process.env.SLBCTL_CRASH_KILLS) || undefined;
const MIN_KILLS = 8;
const MAX_KILLS = 60;
const BUDGET_MS = Number(process.env.SLBCTL_CRASH_BUDGET_S ?? 110) * 1000;

function slbctl(args: string[], timeoutMs = 120_000): Promise<RunResult> {
  return run([process.execPath, CLI_ENTRY, ...args], { netns: ns, timeoutMs });
}

/** A small seeded generator, so that a failing sequence of kill points can be run again (SLBCTL_CRASH_SEED). */
function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface OwnershipFile {
  addresses?: { address: string; state: string }[];
}

function readOwnershipRecord(recordFile: string): OwnershipFile | undefined {
  try {
    return JSON.parse(fs.readFileSync(recordFile, 'utf8')) as OwnershipFile;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
}

const vipsOf = (addresses: string[]) => addresses.filter((a) => a !== OWN).map((a) => a.replace(/\/32$/, ''));

/** What the kernel showed right after a kill: which step the apply had reached. */
function reached(table: string, x: BigConfig, y: BigConfig, vips: Set<string>): string {
  const yOnly = y.vips.filter((v) => !x.vips.includes(v));
  const xOnly = x.vips.filter((v) => !y.vips.includes(v));
  const added = yOnly.filter((v) => vips.has(v)).length;
  const kept = xOnly.filter((v) => vips.has(v)).length;
  if (table.startsWith('mixed')) return 'a mixed table';
  if (table === 'x')
    return added === 0 ? 'nothing changed' : added < yOnly.length ? 'adding VIPs' : 'VIPs added, transaction not committed';
  if (added < yOnly.length) return 'transaction committed with VIPs missing';
  return kept === xOnly.length ? 'transaction committed, removal not begun' : kept > 0 ? 'removing VIPs' : 'VIPs removed';
}

interface Tally {
  kills: number;
  alone: number;
  withChildren: number;
  missedKills: number;
  targeted: Record<string, number>;
  reached: Record<string, number>;
  nftOutlived: number;
  /** Kills that left a temporary record file (removed by the next write: leftoverFiles counts those that stay). */
  tmpLeftByKill: number;
  lockHeldWhileNftLived: number;
  mixedTables: string[];
  transactionsLost: string[];
  failedReapplies: string[];
  leaked: string[];
  missing: string[];
  duplicated: string[];
  notConverged: string[];
  recordWrong: string[];
  leftoverFiles: string[];
}

describe('slbctl apply killed at random points', { skip: isRoot ? false : 'needs root' }, () => {
  let recordFile = '';
  let lockFile = '';
  before(async () => {
    await createBalancerNetns(ns);
    fs.writeFileSync(file(A), A.json);
    fs.writeFileSync(file(B), B.json);
    const inode = fs.statSync(`/run/netns/${ns}`).ino;
    recordFile = path.join(runtime, 'ownership', `net-${inode}.json`);
    lockFile = path.join(runtime, 'locks', `net-${inode}.write.lock`);
  });
  after(async () => {
    await deleteNetns(ns);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('leaves no leaked, missing or duplicated object, and a re-apply always converges', async () => {
    const started = Date.now();
    const seed = Number(process.env.SLBCTL_CRASH_SEED) || Math.floor(Math.random() * 2 ** 31);
    const random = prng(seed);
    const first = await slbctl(['apply', '-q', '-f', file(A)]);
    assert.equal(first.code, 0, first.stderr);

    // One apply followed from start to end: how long each phase takes here, now.
    const calibration = startSlbctl(ns, ['apply', '-q', '-f', file(B)], true);
    const tracker = new ApplyTracker(calibration, recordFile);
    assert.equal(await calibration.exited, 0, calibration.err());
    await tracker.stop();
    const cal = tracker.t;
    assert.ok(
      cal.intent && cal.nftStart && cal.nftEnd && cal.exit,
      `the calibration apply went through every phase: ${JSON.stringify(cal)}`,
    );
    const length: Record<Phase, number> = {
      start: cal.intent - cal.start,
      adding: cal.nftStart - cal.intent,
      'nft-start': 0,
      'record-write': 0,
      nft: cal.nftEnd - cal.nftStart,
      removing: (cal.final ?? cal.exit) - cal.nftEnd,
    };
    process.stdout.write(
      `# crash: seed ${seed}; apply B after A: ${cal.exit - cal.start} ms (planning ${length.start}, adding VIPs ${length.adding}, nft ${length.nft}, removing VIPs ${length.removing})\n`,
    );

    const tally: Tally = {
      kills: 0,
      alone: 0,
      withChildren: 0,
      missedKills: 0,
      targeted: {},
      reached: {},
      nftOutlived: 0,
      lockHeldWhileNftLived: 0,
      tmpLeftByKill: 0,
      mixedTables: [],
      transactionsLost: [],
      failedReapplies: [],
      leaked: [],
      missing: [],
      duplicated: [],
      notConverged: [],
      recordWrong: [],
      leftoverFiles: [],
    };
    const phases: Phase[] = ['adding', 'nft', 'removing', 'nft-start', 'record-write', 'start'];
    let state = B;
    let i = 0;
    const more = () =>
      FIXED ? tally.kills < FIXED : tally.kills < MIN_KILLS || (tally.kills < MAX_KILLS && Date.now() - started < BUDGET_MS);
    while (more()) {
      const x = state;
      const y = state === A ? B : A;
      const group = i % 2 === 1;
      const phase = phases[Math.floor(i / 2) % phases.length];
      // Mostly the killed config again; every third time back to the one before (its VIPs half added must go).
      const z = i % 3 === 0 ? x : y;
      i++;
      const label = `kill ${tally.kills + 1} (${group ? 'with children' : 'alone'}, ${phase}, ${name(x)} -> ${name(y)}, re-apply ${name(z)})`;

      const apply: Started = startSlbctl(ns, ['apply', '-q', '-f', file(y), '--wait', '60s'], true);
      const t = new ApplyTracker(apply, recordFile);
      let killed = false;
      try {
        if (await t.waitInto(phase, random() * 0.9 * length[phase])) {
          if (group) process.kill(-apply.pid, 'SIGKILL');
          else process.kill(apply.pid, 'SIGKILL');
          killed = true;
        }
        await apply.exited;
        await t.stop();
        if (killed) {
          // Alone: an nft child that outlived slbctl still holds the write lock (it was passed on to it).
          const nftLeft = () => groupMembers(apply.pid).some((m) => m.comm === 'nft');
          if (!group && nftLeft()) {
            tally.nftOutlived++;
            const held = lockIsHeld(lockFile);
            if (held || !nftLeft()) tally.lockHeldWhileNftLived++;
          }
        }
        await waitGroupGone(apply.pid, 60_000);
      } finally {
        killGroup(apply.pid);
      }
      if (!killed) {
        // It finished before the chosen moment: not a kill; the kernel holds y now.
        tally.missedKills++;
        assert.equal(await apply.exited, 0, apply.err());
        state = y;
        continue;
      }
      tally.kills++;
      if (group) tally.withChildren++;
      else tally.alone++;
      tally.targeted[phase] = (tally.targeted[phase] ?? 0) + 1;

      if (fs.readdirSync(path.dirname(recordFile)).some((n) => n.endsWith('.tmp'))) tally.tmpLeftByKill++;
      const table = whichConfig(await listSlbctl(ns, 'ip'), x, y);
      const seen = reached(table, x, y, new Set(vipsOf(await addressesOn(ns))));
      tally.reached[seen] = (tally.reached[seen] ?? 0) + 1;
      if (table.startsWith('mixed')) tally.mixedTables.push(`${label}: ${table}`);
      // Killed alone once its nft runs: nft has the whole script and commits all of it.
      if (!group && phase === 'nft-start' && table !== 'y')
        tally.transactionsLost.push(`${label}: the table holds ${table === 'x' ? 'the old config' : table}`);

      const again = await slbctl(['apply', '-q', '-f', file(z), '--wait', '60s']);
      if (again.code !== 0) tally.failedReapplies.push(`${label}: exit ${again.code}: ${again.stderr.trim()}`);
      await checkConverged(z, label, tally, recordFile);
      state = z;
    }

    const destroyed = await slbctl(['destroy', '--wait', '60s']);
    assert.equal(destroyed.code, 0, destroyed.stderr);
    assert.deepEqual(await addressesOn(ns), [OWN], "destroy leaves only the namespace's own address");
    assert.deepEqual(await nftTables(ns), [], 'destroy leaves no slbctl table');
    assert.equal(fs.existsSync(recordFile), false, 'destroy ends the ownership record');
    assert.equal(await sysctl(ns, 'net.ipv4.ip_forward'), '0', 'destroy puts ip_forward back as slbctl found it');

    const summary =
      `${tally.kills} kills (${tally.alone} alone, ${tally.withChildren} with children; ${tally.missedKills} applies finished before their kill), ` +
      `${tally.mixedTables.length} mixed tables, ${tally.transactionsLost.length} transactions lost, ${tally.leaked.length} leaked, ${tally.missing.length} missing, ${tally.duplicated.length} duplicated, ` +
      `${tally.failedReapplies.length} failed re-applies, ${tally.notConverged.length} not converged, ${tally.recordWrong.length} wrong records; ` +
      `nft outlived slbctl ${tally.nftOutlived} times, the write lock held each time: ${tally.lockHeldWhileNftLived === tally.nftOutlived}; ` +
      `${tally.tmpLeftByKill} kills left a temporary record file, ${tally.leftoverFiles.length} still there after the re-apply; ` +
      `targeted ${JSON.stringify(tally.targeted)}; reached ${JSON.stringify(tally.reached)}; ${((Date.now() - started) / 1000).toFixed(0)} s`;
    process.stdout.write(`# crash: ${summary}\n`);
    assert.ok(tally.kills >= MIN_KILLS || FIXED !== undefined, summary);
    for (const k of [
      'mixedTables',
      'transactionsLost',
      'failedReapplies',
      'leaked',
      'missing',
      'duplicated',
      'notConverged',
      'recordWrong',
      'leftoverFiles',
    ] as const) {
      assert.deepEqual(tally[k], [], `${k}: ${summary}`);
    }
    assert.equal(tally.lockHeldWhileNftLived, tally.nftOutlived, `an nft child that outlived slbctl held the write lock: ${summary}`);
  });

  it("destroy removes the VIPs also after slbctl's table was deleted by hand", async () => {
    const applied = await slbctl(['apply', '-q', '-f', file(A)]);
    assert.equal(applied.code, 0, applied.stderr);
    assert.equal((await addressesOn(ns)).length, A.vips.length + 1);
    const del = await run(['nft', 'delete', 'table', 'ip', 'slbctl'], { netns: ns });
    assert.equal(del.code, 0, del.stderr);
    const destroyed = await slbctl(['destroy']);
    assert.equal(destroyed.code, 0, destroyed.stderr);
    assert.deepEqual(await addressesOn(ns), [OWN]);
    assert.deepEqual(await nftTables(ns), []);
    assert.equal(fs.existsSync(recordFile), false, 'no ownership record is left');
  });
});

/** Whether another process holds the flock on `file` (a probe lock is taken and dropped at once when free). */
function lockIsHeld(file: string): boolean {
  const fd = native().tryLock(file);
  if (fd < 0) return true;
  native().unlock(fd);
  return false;
}

/** After a successful re-apply of `z`: exactly its VIPs, one rule per hook chain, nothing left to plan, a record of exactly its VIPs. */
async function checkConverged(z: BigConfig, label: string, tally: Tally, recordFile: string): Promise<void> {
  const vips = vipsOf(await addressesOn(ns));
  const want = new Set(z.vips);
  const leaked = vips.filter((v) => !want.has(v));
  const missing = z.vips.filter((v) => !vips.includes(v));
  if (leaked.length) tally.leaked.push(`${label}: ${leaked.length} VIPs not in the config left: ${leaked.slice(0, 5).join(', ')}`);
  if (missing.length) tally.missing.push(`${label}: ${missing.length} VIPs missing: ${missing.slice(0, 5).join(', ')}`);
  const problems = await slbctlRuleProblems(ns);
  if (problems.length) tally.duplicated.push(`${label}: ${problems.join('; ')}`);
  const plan = await slbctl(['plan', '-f', file(z), '--detailed-exitcode']);
  if (plan.code !== 0)
    tally.notConverged.push(`${label}: plan exits ${plan.code}: ${plan.stdout.split('\n').slice(0, 6).join(' | ')} ${plan.stderr}`);
  const record = readOwnershipRecord(recordFile);
  const listed = (record?.addresses ?? []).map((a) => `${a.address}:${a.state}`).sort();
  const expected = z.vips.map((v) => `${v}:owned`).sort();
  if (listed.join() !== expected.join()) {
    const extra = listed.filter((l) => !expected.includes(l));
    const absent = expected.filter((l) => !listed.includes(l));
    tally.recordWrong.push(
      `${label}: the ownership record lists ${extra.length} entries too many (${extra.slice(0, 4).join(', ')}) and lacks ${absent.length} (${absent.slice(0, 4).join(', ')})`,
    );
  }
  const strays = fs.existsSync(path.dirname(recordFile)) ? fs.readdirSync(path.dirname(recordFile)).filter((f) => f.endsWith('.tmp')) : [];
  if (strays.length) tally.leftoverFiles.push(`${label}: ${strays.join(', ')}`);
}

describe('an apply killed after its intent, before adding a VIP', { skip: isRoot ? false : 'needs root' }, () => {
  const ns2 = `${ns}-b`;
  const small = path.join(dir, 'small.yaml');
  const runtime2 = path.join(dir, 'run');
  let controller: RunningController | undefined;
  before(async () => {
    await createBalancerNetns(ns2);
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(
      small,
      'backend: nft\nservices:\n  - { name: web, vip: 172.16.75.100, port: 80, mode: fullnat, realServers: [{ address: 172.16.75.82, port: 80 }] }\n',
    );
  });
  after(async () => {
    await controller?.stop();
    await deleteNetns(ns2);
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const inNs2 = (args: string[]) => run([process.execPath, CLI_ENTRY, ...args], { netns: ns2, timeoutMs: 60_000 });
  const recordOf = () => readOwnershipRecord(path.join(runtime2, 'ownership', `net-${fs.statSync(`/run/netns/${ns2}`).ino}.json`));
  /** The record as such an apply leaves it: 172.16.75.120 listed as "adding", not on the interface. */
  const plantIntent = async () => {
    const script = `const o = require(${JSON.stringify(path.join(__dirname, '..', '..', 'src', 'records', 'ownership.js'))});
const r = o.readOwnership(); o.writeOwnership({ ...r, addresses: [...r.addresses, { address: '172.16.75.120', device: 'eth0', backend: 'nft', state: 'adding' }] });`;
    const r = await run([process.execPath, '-e', script], { netns: ns2 });
    assert.equal(r.code, 0, r.stderr);
    assert.ok(recordOf()?.addresses?.some((a) => a.address === '172.16.75.120' && a.state === 'adding'));
  };
  const settled = () => (recordOf()?.addresses ?? []).map((a) => `${a.address}:${a.state}`).join() === '172.16.75.100:owned';

  it('is settled by the next apply with nothing to do, and by slbctl run; the address added later by someone else survives destroy', async () => {
    assert.equal((await inNs2(['apply', '-f', small])).code, 0);
    await plantIntent();
    const noop = await inNs2(['apply', '-f', small]);
    assert.equal(noop.stdout, 'no changes\n', noop.stderr);
    assert.ok(settled(), `apply settled the record: ${JSON.stringify(recordOf())}`);

    await plantIntent();
    controller = startController(ns2, small, ['--metrics', 'off', '--resync', '200ms']);
    await controller.waitFor((l) => l.event === 'start' && l.msg.startsWith('running'), 30_000, 'the controller running');
    await waitUntil('slbctl run settling the record', 20_000, settled, 100);
    assert.equal(await controller.stop(), 0);

    await runChecked('addr', ['ip', '-n', ns2, 'addr', 'add', '172.16.75.120/32', 'dev', 'eth0']);
    const destroyed = await inNs2(['destroy']);
    assert.equal(destroyed.code, 0, destroyed.stderr);
    assert.deepEqual(await addressesOn(ns2), ['172.16.75.120/32', OWN], "destroy removed slbctl's VIP only");
  });
});
