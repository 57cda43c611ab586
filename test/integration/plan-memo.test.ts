// The memo of the last plan (src/engine/plan-memo.ts) in a namespace this
// test makes, on the real kernel: for each kind of config change, the plan
// narrowed to the changed services shows exactly the operations (and the
// nftables script) of the full plan on the same kernel, and once applied the
// next plan is "unchanged" from the memo; a changed service that this host
// cannot serve is still refused in one sentence; a VIP deleted by hand, a
// sysctl changed by hand and slbctl's table edited by hand each make the
// plan whole again, and it repairs them.
import { after, before, describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import * as path from 'node:path';
import { run, runChecked } from '../../src/util/exec';
import { identityOf, removeRecordsOf } from '../../src/records/netns';

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
const ns = `tpm${process.pid.toString(36)}${Math.floor(Math.random() * 1296).toString(36)}`;
const HELPER = path.join(__dirname, '..', 'helpers', 'memo-plan.js');

type Step = Record<string, unknown> & { step: string };

describe('the memo of the last plan (netns)', { skip: isRoot ? false : 'needs root' }, () => {
  let steps: Step[] = [];
  const stepsOf = (name: string) => steps.filter((s) => s.step === name);

  before(async () => {
    await runChecked('netns', ['ip', 'netns', 'add', ns]);
    await runChecked('veth', ['ip', '-n', ns, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'eth0p']);
    await runChecked('addr', ['ip', '-n', ns, 'addr', 'add', '198.18.0.1/15', 'dev', 'eth0']);
    await runChecked('up', ['ip', '-n', ns, 'link', 'set', 'eth0', 'up']);
    const r = await run([process.execPath, HELPER], { netns: ns });
    assert.equal(r.code, 0, r.stderr);
    steps = r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Step);
  });
  after(async () => {
    try {
      removeRecordsOf(identityOf(ns));
    } finally {
      await run(['ip', 'netns', 'del', ns]);
    }
  });

  it('a plan with nothing to change, planned again, is answered from the memo', () => {
    assert.deepEqual(stepsOf('settled'), [{ step: 'settled', memo: 'unchanged' }]);
  });

  it('each kind of change: the narrowed plan is the full plan, and after it nothing is left to do', () => {
    const changes = stepsOf('change');
    assert.equal(changes.length, 9);
    for (const c of changes) {
      assert.equal(c.memo, 'narrowed', `${String(c.kind)}: not narrowed`);
      assert.ok((c.ops as number) > 0, `${String(c.kind)}: no operation`);
      assert.equal(c.narrow, c.full, `${String(c.kind)}: narrowed and full plans differ`);
      assert.equal(c.sameScript, true, `${String(c.kind)}: the nftables scripts differ`);
      // An apply that added or removed an address leaves no memo (the interfaces it read changed): the next plan is whole.
      const addresses = /address/.test(String(c.narrow));
      assert.deepEqual(c.again, addresses ? { ops: 0 } : { memo: 'unchanged', ops: 0 }, `${String(c.kind)}: the plan after the apply`);
    }
  });

  it('a changed service this host cannot serve is refused in one sentence', () => {
    const [bad] = stepsOf('bad');
    assert.match(
      String(bad?.error),
      /^services\[2\]\.vip \(tcp\/198\.18\.0\.0:80\): 198\.18\.0\.0 is the network address of 198\.18\.0\.0\/15/,
    );
    assert.doesNotMatch(String(bad?.error), /\n/);
  });

  it('a VIP deleted by hand: the plan is whole and puts it back', () => {
    const [vip] = stepsOf('vip deleted');
    assert.equal(vip?.memo, undefined);
    assert.match(String(vip?.plan), /\+ address 198\.18\.0\.3\/32 dev eth0/);
  });

  it('a sysctl changed by hand: the plan is whole and sets it again', () => {
    const [sysctl] = stepsOf('sysctl');
    assert.equal(sysctl?.memo, undefined);
    assert.match(String(sysctl?.plan), /net\.ipv4\.ip_forward/);
  });

  it("slbctl's table edited by hand: the plan is whole and repairs it, also beside a config change", () => {
    for (const name of ['nft edit', 'nft edit and weight']) {
      const [edit] = stepsOf(name);
      assert.equal(edit?.memo, undefined, name);
      assert.match(String(edit?.plan), /repair/, name);
    }
    assert.match(String(stepsOf('nft edit and weight')[0]?.plan), /weight 1 -> 5/);
  });
});
