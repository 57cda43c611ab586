// Rtnl.interfaces() answers from its last dump while the kernel reports no
// change of links, IPv4 addresses or IPv4 routes (src/kernel/rtnl/rtnl.ts
// InterfaceWatch), and dumps again after any: tested in a namespace this test
// makes, with changes made by `ip` (another process) just before each call.
import { after, before, describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import { run, runChecked } from '../../src/util/exec';
import { inNetns } from '../../src/util/netns';
import { Rtnl } from '../../src/kernel/rtnl/rtnl';

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
const ns = `trw${process.pid.toString(36)}${Math.floor(Math.random() * 1296).toString(36)}`;

describe('interfaces read once until the kernel reports a change (netns)', { skip: isRoot ? false : 'needs root' }, () => {
  let rtnl: Rtnl | undefined;
  const ip = (...args: string[]) => runChecked(`ip ${args.join(' ')}`, ['ip', ...args], { netns: ns });

  before(async () => {
    await runChecked('netns', ['ip', 'netns', 'add', ns]);
    await ip('link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'eth0p');
    await ip('link', 'set', 'eth0', 'up');
    // Opened inside the namespace; asked from outside it (the sockets stay where they were opened).
    rtnl = inNetns(ns, () => Rtnl.open());
  });
  after(async () => {
    rtnl?.close();
    await run(['ip', 'netns', 'del', ns]);
  });

  const eth0 = async () => {
    const all = await (rtnl as Rtnl).interfaces();
    const i = all.find((x) => x.name === 'eth0');
    assert.ok(i, 'eth0 is there');
    return { all, i };
  };

  it('the same answer while nothing changes, a new one after each kind of change', async () => {
    const first = await eth0();
    assert.equal((await eth0()).all, first.all, 'unchanged: the same frozen array');
    assert.ok(Object.isFrozen(first.all));

    await ip('addr', 'add', '198.18.7.1/32', 'dev', 'eth0');
    const added = await eth0();
    assert.notEqual(added.all, first.all);
    assert.deepEqual(
      added.i.addresses.map((a) => a.address),
      ['198.18.7.1'],
    );
    assert.equal((await eth0()).all, added.all);

    await ip('link', 'set', 'eth0', 'down');
    assert.equal((await eth0()).i.up, false);

    await ip('route', 'add', 'local', '198.18.7.2/32', 'dev', 'eth0', 'table', 'local', 'proto', '245');
    assert.deepEqual((await eth0()).i.localRoutes, [{ address: '198.18.7.2', protocol: 245 }]);

    // A route of another table: dumped again (routes are watched), the same interfaces.
    const beforeRoute = await eth0();
    await ip('link', 'set', 'eth0', 'up');
    await ip('route', 'add', '10.77.0.0/16', 'dev', 'eth0', 'table', '100');
    const afterRoute = await eth0();
    assert.notEqual(afterRoute.all, beforeRoute.all);
    assert.deepEqual(afterRoute.i.localRoutes, beforeRoute.i.localRoutes);

    await ip('addr', 'del', '198.18.7.1/32', 'dev', 'eth0');
    assert.deepEqual((await eth0()).i.addresses, []);
  });
});
