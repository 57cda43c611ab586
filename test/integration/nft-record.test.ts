// slbctl's record of its nftables tables (src/kernel/nft/applied.ts) in a
// namespace this test makes: a plan with nothing to change starts from the
// record and lists no table; any nftables commit in the namespace (a hand
// edit of slbctl's table, or anyone's other table) moves the ruleset
// generation, so the next plan lists the tables again and repairs what the
// edit broke; a weight change starts from the record and is one transaction
// that leaves the tables exactly as a listing expects them.
import { after, before, describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { run, runChecked } from '../../src/util/exec';
import { identityOf, recordFile, removeRecordsOf } from '../../src/records/netns';
import { startController } from '../../src/lab/harness';

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
const ns = `tnr${process.pid.toString(36)}${Math.floor(Math.random() * 1296).toString(36)}`;
const HELPER = path.join(__dirname, '..', 'helpers', 'nft-plan.js');

interface Seen {
  ops: number;
  plan: string;
  listings: number;
  recorded: boolean;
}

function config(weight: number): unknown {
  const services = [0, 1, 2].map((i) => ({
    name: `svc${i}`,
    vip: `198.18.0.${i + 2}`,
    port: 80,
    protocol: 'tcp',
    mode: 'fullnat',
    scheduler: 'wrr',
    vipAlreadyPresent: 'allow',
    realServers: [0, 1].map((j) => ({ address: `198.19.0.${i * 2 + j + 2}`, port: 8080, weight: i === 0 && j === 0 ? weight : 1 })),
  }));
  return { backend: 'nft', services };
}

describe('the record of slbctl nftables tables (netns)', { skip: isRoot ? false : 'needs root' }, () => {
  let dir = '';
  const file = (weight: number) => {
    const f = path.join(dir, `w${weight}.json`);
    fs.writeFileSync(f, JSON.stringify(config(weight)));
    return f;
  };
  const helper = async (what: 'plan' | 'apply' | 'plan-listed', weight = 1): Promise<Seen> => {
    const r = await run([process.execPath, HELPER, what, file(weight)], { netns: ns });
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout) as Seen;
  };
  const nft = (...args: string[]) => runChecked(`nft ${args.join(' ')}`, ['nft', ...args], { netns: ns });

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'slbctl-nft-record-'));
    await runChecked('netns', ['ip', 'netns', 'add', ns]);
    await runChecked('veth', ['ip', '-n', ns, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'eth0p']);
    await runChecked('addr', ['ip', '-n', ns, 'addr', 'add', '198.18.0.1/15', 'dev', 'eth0']);
    await runChecked('up', ['ip', '-n', ns, 'link', 'set', 'eth0', 'up']);
  });
  after(async () => {
    try {
      removeRecordsOf(identityOf(ns));
    } finally {
      await run(['ip', 'netns', 'del', ns]);
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a plan after an apply starts from the record and lists nothing', async () => {
    const first = await helper('apply');
    assert.ok(first.ops > 0);
    const again = await helper('plan');
    assert.deepEqual({ ops: again.ops, listings: again.listings, recorded: again.recorded }, { ops: 0, listings: 0, recorded: true });
  });

  it('a hand edit of slbctl table moves the generation: the tables are listed, the edit is repaired and recorded', async () => {
    await nft('delete', 'element', 'ip', 'slbctl', 'backends_tcp', '{ 198.18.0.3 . 80 . 1 }');
    const seen = await helper('plan');
    assert.equal(seen.recorded, false);
    assert.equal(seen.listings, 2);
    assert.match(seen.plan, /~ repair service tcp\/198\.18\.0\.3:80: backend slot 1 missing/);
    const repaired = await helper('apply');
    assert.match(repaired.plan, /repair service/);
    const after = await helper('plan');
    assert.deepEqual({ ops: after.ops, listings: after.listings, recorded: after.recorded }, { ops: 0, listings: 0, recorded: true });
    assert.equal((await helper('plan-listed')).ops, 0, 'the listed tables must match the config once repaired');
    assert.match((await nft('list', 'map', 'ip', 'slbctl', 'backends_tcp')).stdout, /198\.18\.0\.3 \. 80 \. 1 :/);
  });

  it("a record of another layout of the tables (an older slbctl's) is no record: the tables are listed", async () => {
    await helper('plan'); // recorded
    const file = recordFile('nft-applied', identityOf(ns));
    const { layout: _layout, ...older } = JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;
    fs.writeFileSync(file, JSON.stringify(older));
    const listed = await helper('plan');
    assert.deepEqual({ ops: listed.ops, listings: listed.listings, recorded: listed.recorded }, { ops: 0, listings: 2, recorded: false });
    assert.equal((await helper('plan')).listings, 0, 'the listing found nothing to change and recorded the tables again');
  });

  it('a commit to another table also moves the generation: listed once, then recorded again', async () => {
    await nft('add', 'table', 'ip', `other${ns}`);
    try {
      const listed = await helper('plan');
      assert.deepEqual({ ops: listed.ops, listings: listed.listings, recorded: listed.recorded }, { ops: 0, listings: 2, recorded: false });
      const recorded = await helper('plan');
      assert.deepEqual(
        { ops: recorded.ops, listings: recorded.listings, recorded: recorded.recorded },
        { ops: 0, listings: 0, recorded: true },
      );
    } finally {
      await nft('delete', 'table', 'ip', `other${ns}`);
    }
  });

  it('a weight change starts from the record, is one operation, and leaves the tables as a listing expects', async () => {
    await helper('plan'); // the delete above moved the generation: recorded again here
    const changed = await helper('apply', 5);
    assert.deepEqual({ ops: changed.ops, listings: changed.listings, recorded: changed.recorded }, { ops: 1, listings: 0, recorded: true });
    assert.match(changed.plan, /weight 1 -> 5/);
    assert.equal((await helper('plan-listed', 5)).ops, 0, 'the listed tables must hold the new weight and nothing else');
    const back = await helper('plan', 5);
    assert.deepEqual({ ops: back.ops, listings: back.listings }, { ops: 0, listings: 0 });
  });

  it('small applies append to a journal beside the record, which a new process reads; a torn line ends it', async () => {
    await helper('plan'); // recorded at the current generation
    const journal = `${recordFile('nft-applied', identityOf(ns))}.journal`;
    const linesOf = () => (fs.existsSync(journal) ? fs.readFileSync(journal, 'utf8').split('\n').filter(Boolean) : []);
    const had = linesOf().length;
    for (const weight of [2, 3, 4]) {
      const applied = await helper('apply', weight);
      assert.deepEqual({ ops: applied.ops, listings: applied.listings }, { ops: 1, listings: 0 });
    }
    const lines = linesOf();
    assert.equal(lines.length, had + 3, 'one journal line per apply');
    const last = JSON.parse(lines[lines.length - 1]) as { from: number; to: number; set: [number, { name: string }][]; del: string[] };
    assert.equal(last.to, last.from + 1);
    assert.deepEqual(
      last.set.map(([i, s]) => [i, s.name]),
      [[0, 'svc0']],
    );
    assert.deepEqual(last.del, ['tcp/198.18.0.2:80']);
    // A new process: the record and its journal, not a listing, with the weight of the last line.
    const seen = await helper('plan', 4);
    assert.deepEqual({ ops: seen.ops, listings: seen.listings, recorded: seen.recorded }, { ops: 0, listings: 0, recorded: true });
    assert.equal((await helper('plan-listed', 4)).ops, 0, 'the journal stood for the tables as they are');
    // The last line torn (a writer killed in its write): the record stops a generation short, so the tables are listed.
    fs.writeFileSync(journal, `${[...linesOf().slice(0, -1), lines[lines.length - 1].slice(0, 40)].join('\n')}\n`);
    const torn = await helper('plan', 4);
    assert.deepEqual({ ops: torn.ops, listings: torn.listings, recorded: torn.recorded }, { ops: 0, listings: 2, recorded: false });
    // That plan recorded the listed tables whole: the journal is gone and the next plan reads the record alone.
    assert.deepEqual(linesOf(), []);
    assert.deepEqual((await helper('plan', 4)).listings, 0);
    await helper('apply', 1);
  });

  it('slbctl run skips resyncs while the generation holds, and repairs a hand edit at the next one', { timeout: 120_000 }, async () => {
    await runChecked('lo up', ['ip', '-n', ns, 'link', 'set', 'lo', 'up']);
    const listen = `127.0.0.1:${20000 + (process.pid % 20000)}`;
    const resyncs = async (): Promise<{ planned: number; skipped: number }> => {
      const r = await run(['curl', '-sS', '--max-time', '10', `http://${listen}/metrics`], { netns: ns });
      assert.equal(r.code, 0, r.stderr);
      const count = (result: string) =>
        Number(new RegExp(`^slbctl_resyncs_total\\{result="${result}"\\} (\\d+)$`, 'm').exec(r.stdout)?.[1]);
      return { planned: count('planned'), skipped: count('skipped') };
    };
    const until = async (what: string, test: () => Promise<boolean>) => {
      const end = Date.now() + 30_000;
      while (!(await test())) {
        if (Date.now() > end) throw new Error(`no ${what} within 30 s`);
        await new Promise((r) => setTimeout(r, 200));
      }
    };
    const controller = startController(ns, file(1), ['--metrics', listen, '--resync', '200ms']);
    try {
      await controller.waitFor((l) => l.event === 'start' && /running/.test(l.msg), 30_000, 'the controller to start');
      // Settled: resyncs are skipped (one GETGEN each), not planned.
      await until('skipped resyncs', async () => (await resyncs()).skipped >= 5);
      const before = await resyncs();
      await nft('delete', 'element', 'ip', 'slbctl', 'backends_tcp', '{ 198.18.0.3 . 80 . 1 }');
      const drift = await controller.waitFor((l) => l.event === 'drift', 30_000, 'the repair of the deleted backend slot');
      assert.match(JSON.stringify(drift), /repair service tcp\/198\.18\.0\.3:80: backend slot 1 missing/);
      assert.match((await nft('list', 'map', 'ip', 'slbctl', 'backends_tcp')).stdout, /198\.18\.0\.3 \. 80 \. 1 :/);
      const repaired = await resyncs();
      assert.ok(repaired.planned > before.planned, 'the moved generation made a resync plan');
      // Settled again on the record of its own repair: skipping, with the tables as a listing expects them.
      await until('skipped resyncs after the repair', async () => (await resyncs()).skipped >= repaired.skipped + 5);
      assert.equal((await helper('plan-listed')).ops, 0);
    } finally {
      await controller.stop();
    }
  });
});
