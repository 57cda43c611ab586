// Records are tied to the namespace they describe, for real: slbctl leaves an
// ownership record and a drain record in namespace A; A is deleted; new
// namespaces are made until one gets A's inode (the kernel hands out the
// lowest free one, so usually the first). In that namespace the records are
// A's, not its own: they are reported once by the command that meets them,
// set aside as *.stale-COOKIE and never acted on: status shows no drain, the
// controller keeps the "drained" real server in, destroy leaves the address
// the stale record listed.
import { after, describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { run, runChecked } from '../../src/util/exec';
import { createBalancerNetns, deleteNetns, setUpBalancerNetns } from '../helpers/balancer-netns';
import { addressesOn, nftTables } from '../helpers/kernel-state';
import { slbctlIn } from '../helpers/writers';
import { sleep } from '../helpers/processes';
import { RunningController, startController } from '../../src/lab/harness';

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
const tag = `${process.pid % 100000}${Math.floor(Math.random() * 1000)}`;
const nsA = `slbt-reca-${tag}`;
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'slbctl-records-'));
const runtime = path.join(dir, 'run');
process.env.RUNTIME_DIRECTORY = runtime;
const STALE = /was left by another network namespace that had the same inode/;

const config = `backend: nft
services:
  - name: web
    vip: 172.16.75.84
    port: 80
    mode: fullnat
    realServers:
      - { address: 172.16.75.82, port: 80 }
      - { address: 172.16.75.85, port: 80 }
`;

const inodeOf = (ns: string) => fs.statSync(`/run/netns/${ns}`).ino;
const record = (kind: string, inode: number) => path.join(runtime, kind, `net-${inode}.json`);
const cookieIn = (file: string) => (JSON.parse(fs.readFileSync(file, 'utf8')) as { netns: { cookie?: string } }).netns.cookie;
const count = (text: string, kind: string) => text.split('\n').filter((l) => STALE.test(l) && l.includes(`the ${kind} record`)).length;

interface StatusJson {
  drains: unknown[];
  services: { name: string; realServers: { address: string; weight: number }[]; removed: unknown[] }[];
}

/**
 * Namespaces are made (and kept, so each next one gets a higher free number)
 * until one has inode `want`; the others are returned for deletion.
 */
async function namespaceWithInode(want: number, tries: number): Promise<{ found?: string; made: string[] }> {
  const made: string[] = [];
  const got: number[] = [];
  for (let i = 0; i < tries; i++) {
    const ns = `slbt-recb-${tag}-${i}`;
    await runChecked('netns', ['ip', 'netns', 'add', ns]);
    made.push(ns);
    const inode = inodeOf(ns);
    if (inode === want) return { found: ns, made };
    got.push(inode);
    // A deleted namespace is freed by a kernel worker a moment later; its inode is free only then.
    await sleep(200);
  }
  throw Object.assign(
    new Error(
      `no new network namespace got inode ${want} in ${tries} tries (they got ${got.join(', ')}); ` +
        'the kernel reuses the lowest free inode, but other processes making namespaces at the same time can take it first: run the test again',
    ),
    { made },
  );
}

describe('records of a namespace whose inode was reused', { skip: isRoot ? false : 'needs root' }, () => {
  const made: string[] = [];
  let controller: RunningController | undefined;
  after(async () => {
    await controller?.stop();
    for (const ns of [nsA, ...made]) await deleteNetns(ns);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('are reported once, set aside, and never acted on', async () => {
    await createBalancerNetns(nsA);
    const file = path.join(dir, 'slbctl.yaml');
    fs.writeFileSync(file, config);
    const inA = (args: string[]) => slbctlIn(nsA, args);
    const applied = await inA(['apply', '-f', file]);
    assert.equal(applied.code, 0, applied.stderr);
    const drained = await inA(['drain', 'web', '172.16.75.82', '--deadline', '1s']);
    assert.equal(drained.code, 0, drained.stderr);
    assert.match(drained.stdout, /172\.16\.75\.82:80 removed from web/);
    const inode = inodeOf(nsA);
    const cookieA = cookieIn(record('ownership', inode));
    assert.ok(cookieA, 'the record carries the namespace cookie (kernel 5.14 or later)');
    assert.equal(cookieIn(record('drains', inode)), cookieA);
    const staleDrains = fs.readFileSync(record('drains', inode), 'utf8');

    // A goes away without destroy: its records stay behind, as after a crash or a lab torn down by hand
    // (a plain `ip netns del`: the test helper's deleteNetns would take the records with it).
    await run(['ip', 'netns', 'del', nsA]);
    let b: string;
    try {
      const r = await namespaceWithInode(inode, 30);
      made.push(...r.made);
      b = r.found as string;
    } catch (e) {
      made.push(...((e as { made?: string[] }).made ?? []));
      throw e;
    }
    process.stdout.write(`# records: namespace ${b} got inode ${inode} of the deleted ${nsA} after ${made.length} namespace(s)\n`);
    await setUpBalancerNetns(b);
    // The address A's record lists as slbctl's, here added by someone else.
    await runChecked('addr', ['ip', '-n', b, 'addr', 'add', '172.16.75.84/32', 'dev', 'eth0']);
    const inB = (args: string[]) => slbctlIn(b, args);

    const apply = await inB(['apply', '-f', file]);
    assert.equal(apply.code, 0, apply.stderr);
    assert.equal(count(apply.stderr, 'ownership'), 1, `apply reports the stale ownership record once: ${apply.stderr}`);
    assert.match(apply.stderr, new RegExp(`cookie ${cookieA}, this one \\d+\\); ignored and moved to \\S+\\.stale-${cookieA}`));
    assert.doesNotMatch(apply.stdout, /address 172\.16\.75\.84/, "the address already there is not added, so not slbctl's");

    const status = await inB(['status', '--json']);
    assert.equal(status.code, 0, status.stderr);
    assert.equal(count(status.stderr, 'drains'), 1, `status reports the stale drain record once: ${status.stderr}`);
    const st = JSON.parse(status.stdout) as StatusJson;
    assert.deepEqual(st.drains, [], 'status shows no drain');
    const web = st.services.find((s) => s.name === 'web');
    assert.ok(web, status.stdout);
    assert.deepEqual(
      web.realServers.map((r) => `${r.address}:${r.weight}`),
      ['172.16.75.82:1', '172.16.75.85:1'],
    );
    assert.deepEqual(web.removed, []);
    const text = await inB(['status']);
    assert.doesNotMatch(text.stdout, /drain/, text.stdout);
    assert.equal(count(text.stderr, 'drains') + count(text.stderr, 'ownership'), 0, 'a record set aside is not reported again');

    // The controller meets the same stale drain record (put back as it was): it reports it in its log and keeps .82 in.
    fs.writeFileSync(record('drains', inode), staleDrains);
    controller = startController(b, file, ['--metrics', 'off', '--resync', '300ms']);
    await controller.waitFor((l) => l.event === 'start' && l.msg.startsWith('running'), 30_000, 'the controller running');
    await sleep(1000);
    const during = JSON.parse((await inB(['status', '--json'])).stdout) as StatusJson;
    assert.deepEqual(
      during.services.find((s) => s.name === 'web')?.realServers.map((r) => `${r.address}:${r.weight}`),
      ['172.16.75.82:1', '172.16.75.85:1'],
      'the controller keeps 172.16.75.82 in',
    );
    assert.equal(await controller.stop(), 0);
    const reports = controller.logs.filter((l) => l.event === 'record' && STALE.test(l.msg));
    assert.equal(reports.length, 1, `the controller logs the stale drain record once: ${JSON.stringify(controller.logs)}`);
    assert.deepEqual(controller.other, [], 'and only in its log');

    const destroy = await inB(['destroy']);
    assert.equal(destroy.code, 0, destroy.stderr);
    assert.doesNotMatch(destroy.stderr, STALE);
    assert.deepEqual(await addressesOn(b), ['172.16.75.83/24', '172.16.75.84/32'], 'destroy leaves the address the stale record listed');
    assert.deepEqual(await nftTables(b), []);
    for (const kind of ['ownership', 'drains']) {
      assert.ok(fs.existsSync(`${record(kind, inode)}.stale-${cookieA}`), `A's ${kind} record is kept aside for a human to read`);
    }
    const left = await run(['ip', 'netns', 'list']);
    assert.doesNotMatch(left.stdout, new RegExp(`^${nsA}\\b`, 'm'));
  });
});
