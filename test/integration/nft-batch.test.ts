// slbctl's own nfnetlink batches (src/kernel/nft/batch.ts) against the real
// kernel, in namespaces this test makes: the same plans applied with the
// batch (namespace A) and through libnftables (B, SLBCTL_NFT_DIRECT=0) leave
// the same listing, step by step, while A's weight changes went as one batch;
// a batch planned at a generation someone moved is refused whole by the
// kernel and the script is applied instead; a refused command changes nothing
// and names the command.
import { after, before, describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { run, runChecked } from '../../src/util/exec';
import { inNetns } from '../../src/util/netns';
import { identityOf, removeRecordsOf } from '../../src/records/netns';
import { closeBatchSockets, encodeBatch, sendBatch } from '../../src/kernel/nft/batch';
import { readGeneration, closeGenerationSocket } from '../../src/kernel/nft/generation';
import { Config, Service } from '../../src/model/types';

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
const tag = `${process.pid.toString(36)}${Math.floor(Math.random() * 1296).toString(36)}`;
const nsA = `tnba${tag}`;
const nsB = `tnbb${tag}`;
const HELPER = path.join(__dirname, '..', 'helpers', 'nft-plan.js');

function service(i: number, weights: number[], over: Partial<Service> = {}): Service {
  return {
    name: `svc${i}`,
    vip: `198.18.0.${Math.floor(i / 2) + 2}`,
    port: 80 + (i % 2),
    protocol: i === 3 ? 'udp' : 'tcp',
    mode: i === 2 ? 'transparent' : 'fullnat',
    scheduler: 'wrr',
    vipAlreadyPresent: 'allow',
    realServers: weights.map((weight, j) => ({ address: `198.19.${i}.${j + 2}`, port: 8080, weight })),
    ...over,
  };
}

/** Five services on three VIPs (two ports of one full-NAT VIP, a transparent one, UDP); svc4's 5,1,1,1 keeps the 8-slot pick chain. */
function config(weights: Record<number, number[]> = {}, drop: number[] = []): Config {
  const services = [0, 1, 2, 3, 4]
    .filter((i) => !drop.includes(i))
    .map((i) => service(i, weights[i] ?? (i === 4 ? [5, 1, 1, 1] : [1, 1, 1, 1])));
  return { backend: 'nft', services };
}

interface Outcome {
  ops: number;
  log: string[];
}

describe('nftables changes as slbctl nfnetlink batches (netns)', { skip: isRoot ? false : 'needs root' }, () => {
  let dir = '';
  let step = 0;

  const applyIn = async (ns: string, c: Config, how: 'apply' | 'apply-after-commit' = 'apply', direct = true): Promise<Outcome> => {
    const file = path.join(dir, `step-${step++}.json`);
    fs.writeFileSync(file, JSON.stringify(c));
    const env = { ...process.env, ...(direct ? {} : { SLBCTL_NFT_DIRECT: '0' }) };
    const r = await run([process.execPath, HELPER, how, file], { netns: ns, env });
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout) as Outcome;
  };

  /** slbctl's tables as nft lists them, without the handles (they count every object ever added). */
  const listing = async (ns: string) => {
    const out: string[] = [];
    for (const family of ['ip', 'netdev']) {
      const r = await run(['nft', '-j', 'list', 'table', family, 'slbctl'], { netns: ns });
      out.push(r.code === 0 ? r.stdout.replace(/"handle": \d+,?/g, '') : `(no ${family} table)`);
    }
    return out.join('\n');
  };

  /** Apply to both namespaces, A by batch where it can, B by libnftables; the listings must agree. */
  const both = async (c: Config): Promise<Outcome> => {
    const a = await applyIn(nsA, c);
    const b = await applyIn(nsB, c, 'apply', false);
    assert.equal(a.ops, b.ops);
    assert.ok(!b.log.some((l) => l.includes('nfnetlink')), b.log.join('\n'));
    assert.equal(await listing(nsA), await listing(nsB));
    return a;
  };

  const viaBatch = (o: Outcome) => o.log.some((l) => l.includes('as one nfnetlink batch'));

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'slbctl-nft-batch-'));
    for (const ns of [nsA, nsB]) {
      await runChecked('netns', ['ip', 'netns', 'add', ns]);
      await runChecked('veth', ['ip', '-n', ns, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'eth0p']);
      await runChecked('addr', ['ip', '-n', ns, 'addr', 'add', '198.18.0.1/15', 'dev', 'eth0']);
      await runChecked('up', ['ip', '-n', ns, 'link', 'set', 'eth0', 'up']);
    }
  });
  after(async () => {
    closeBatchSockets();
    closeGenerationSocket();
    try {
      for (const ns of [nsA, nsB]) removeRecordsOf(identityOf(ns));
    } finally {
      for (const ns of [nsA, nsB]) await run(['ip', 'netns', 'del', ns]);
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('weight changes, a server out, a service with no weight left and back: the same tables as libnftables makes, weights as one batch', async () => {
    const first = await both(config());
    assert.ok(!viaBatch(first), 'a new table is libnftables work');
    // One weight: 1,1,1,1 -> 5,1,1,1 (the 8-slot pick chain exists): elements and the service's rule.
    const weight = await both(config({ 0: [5, 1, 1, 1] }));
    assert.ok(viaBatch(weight), weight.log.join('\n'));
    // UDP (its 4 slots kept: one server at weight 0) and transparent services.
    const more = await both(config({ 0: [5, 1, 1, 1], 3: [2, 1, 1, 0], 2: [1, 5, 1, 1] }));
    assert.ok(viaBatch(more), more.log.join('\n'));
    // Every weight 0: the service's rule drops, and the pick chain no service uses any more goes.
    const zero = await both(config({ 2: [0, 0, 0, 0], 4: [0, 0, 0, 0] }));
    assert.ok(viaBatch(zero), zero.log.join('\n'));
    // A server taken out: 3 slots, so a new pick chain and its rule, in the batch too.
    const three = await both(config({ 1: [1, 1, 1] }));
    assert.ok(viaBatch(three), three.log.join('\n'));
    // A service removed (its VIP's source NAT is libnftables work), and all back.
    await both(config({}, [2]));
    await both(config());
  });

  it('a batch planned at a generation that moved is refused by the kernel, and the script is applied instead', async () => {
    const c = config({ 0: [1, 5, 1, 1] });
    const a = await applyIn(nsA, c, 'apply-after-commit');
    assert.ok(!viaBatch(a), a.log.join('\n'));
    assert.match(a.log.join('\n'), /nftables transaction applied/);
    await applyIn(nsB, c, 'apply', false);
    assert.equal(await listing(nsA), await listing(nsB));
  });

  it('a refused command leaves everything as it was and is named', async () => {
    const before = await listing(nsA);
    const generation = await inNetns(nsA, () => readGeneration());
    closeGenerationSocket();
    const batch = encodeBatch([
      {
        verb: 'add',
        object: 'element',
        family: 'ip',
        set: 'members',
        elements: [{ key: 'tcp . 198.18.0.9 . 80 . 198.19.9.2 . 8080', comment: 'w=1' }],
      },
      { verb: 'delete', object: 'element', family: 'ip', set: 'members', keys: ['tcp . 198.18.0.9 . 80 . 198.19.9.3 . 8080'] },
    ]);
    assert.ok(batch);
    const r = inNetns(nsA, () => sendBatch(batch));
    assert.deepEqual(r, { ok: false, restart: false, command: 1, errno: os.constants.errno.ENOENT });
    assert.equal(await inNetns(nsA, () => readGeneration()), generation);
    closeGenerationSocket();
    assert.equal(await listing(nsA), before);
  });
});
