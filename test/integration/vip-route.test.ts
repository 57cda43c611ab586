// vipAs: route on the real kernel, in a netns lab of its own: the VIP is a
// local route of table local (slbctl's protocol 245), not an address. Traffic
// through it works in fullnat and transparent mode, the router's ARP for it is
// answered (arp_ignore 0) and is not with arp_ignore 1, a switch from address
// to route and back never leaves the VIP unheld, a route deleted by hand comes
// back at the next apply, and destroy removes slbctl's routes only.
import { after, before, describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { labDown, labUp, nsName } from '../../src/lab/netns';
import { applyLabMode } from '../../src/lab/mode';
import { labServiceConfig } from '../../src/lab/lb-config';
import { REFERENCE_TOPOLOGY } from '../../src/lab/topology';
import { CLI_ENTRY } from '../../src/util/self';
import { run, runChecked } from '../../src/util/exec';
import { Mode } from '../../src/model/types';

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
const VIP = REFERENCE_TOPOLOGY.vip;
const lab = `tvr${(process.pid % 1000).toString(36)}${Math.floor(Math.random() * 1296).toString(36)}`.slice(0, 12);
const LB = () => nsName(lab, 'lb');
const quiet = () => undefined;

const slbctl = (...args: string[]) => run([process.execPath, CLI_ENTRY, ...args], { netns: LB() });

async function curlThroughVip(): Promise<string> {
  const r = await run(['curl', '-sS', '--max-time', '3', `http://${VIP}/`], { netns: nsName(lab, 'client') });
  return r.code === 0 ? r.stdout.trim() : `curl exit ${r.code}: ${r.stderr.trim()}`;
}

/** The balancer's local /32 routes of table local for `address`, with their protocol (iproute2's JSON). */
async function localRoutes(address: string): Promise<{ dev: string; protocol: string }[]> {
  const r = await runChecked('ip route show', ['ip', '-j', 'route', 'show', 'table', 'local', 'type', 'local', address], { netns: LB() });
  return (JSON.parse(r.stdout || '[]') as { dev: string; protocol?: string }[]).map((x) => ({ dev: x.dev, protocol: x.protocol ?? '' }));
}

/** iproute2 prints 245 by name when an rt_protos file names it, else as the number. */
const slbctlRoutes = async (address: string) => (await localRoutes(address)).filter((r) => r.protocol === '245');
const foreignRoutes = async (address: string) =>
  (await localRoutes(address)).filter((r) => r.protocol !== '245' && r.protocol !== 'kernel');

async function vipIsAddress(): Promise<boolean> {
  const r = await runChecked('ip addr show', ['ip', '-o', '-4', 'addr', 'show'], { netns: LB() });
  return r.stdout.includes(` ${VIP}/`);
}

/** The router's neighbour entry for the VIP (it forwards the client's packets onto the balancer's segment). */
async function routerNeighbour(): Promise<string> {
  const r = await runChecked('ip neigh show', ['ip', 'neigh', 'show', 'to', VIP], { netns: nsName(lab, 'router') });
  return r.stdout.trim();
}

const flushRouterNeighbour = () => run(['ip', 'neigh', 'flush', 'to', `${VIP}/32`], { netns: nsName(lab, 'router') });

describe('vipAs: route (netns lab)', { skip: isRoot ? false : 'needs root: network namespaces and nftables' }, () => {
  let dir = '';
  const configFile = (mode: Mode, as: 'address' | 'route') => {
    const file = path.join(dir, `${mode}-${as}.yaml`);
    fs.writeFileSync(file, `${labServiceConfig(mode, REFERENCE_TOPOLOGY)}${as === 'route' ? 'vipAs: route\n' : ''}`);
    return file;
  };

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'slbctl-viproute-'));
    await labUp(lab, REFERENCE_TOPOLOGY);
    // The lab's own fullnat setup (real servers included), with the VIP as an address.
    await applyLabMode(lab, 'fullnat', quiet);
  });
  after(async () => {
    await slbctl('destroy', '--force');
    await labDown(lab);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('fullnat: a switch from address to route adds the route before the address goes, and traffic flows', async () => {
    assert.ok(await vipIsAddress(), 'the lab starts with the VIP as an address');
    const file = configFile('fullnat', 'route');
    const planned = await slbctl('plan', '-f', file);
    const lines = planned.stdout.split('\n');
    const add = lines.indexOf(`+ route local ${VIP}/32 dev eth0 table local`);
    const del = lines.indexOf(`- address ${VIP}/32 dev eth0`);
    assert.ok(add >= 0 && del > add, planned.stdout + planned.stderr);
    const r = await slbctl('apply', '-f', file);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.deepEqual(await slbctlRoutes(VIP), [{ dev: 'eth0', protocol: '245' }]);
    assert.equal(await vipIsAddress(), false, 'ip addr lists no VIP');
    const status = await slbctl('status');
    assert.match(status.stdout, new RegExp(`^local routes added by slbctl \\(vipAs route\\): ${VIP.replace(/\./g, '\\.')} on eth0$`, 'm'));
    await flushRouterNeighbour();
    assert.match(await curlThroughVip(), /saw client 172\.16\.75\.83:/);
    assert.match(await routerNeighbour(), /lladdr \S+ (REACHABLE|STALE|DELAY)/);
    const again = await slbctl('apply', '-f', file);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /no changes/);
  });

  it('a route deleted by hand is put back by the next apply (the memo of the last plan covers routes)', async () => {
    await runChecked('ip route del', ['ip', 'route', 'del', 'local', `${VIP}/32`, 'dev', 'eth0', 'table', 'local'], { netns: LB() });
    assert.deepEqual(await slbctlRoutes(VIP), []);
    const file = configFile('fullnat', 'route');
    const planned = await slbctl('plan', '-f', file);
    assert.match(planned.stdout, new RegExp(`^\\+ route local ${VIP.replace(/\./g, '\\.')}/32 dev eth0 table local$`, 'm'));
    const r = await slbctl('apply', '-f', file);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.deepEqual(await slbctlRoutes(VIP), [{ dev: 'eth0', protocol: '245' }]);
    assert.match(await curlThroughVip(), /saw client 172\.16\.75\.83:/);
  });

  it('with arp_ignore 1 the kernel does not answer ARP for a route VIP (the documented trade-off)', async () => {
    const key = 'net.ipv4.conf.eth0.arp_ignore';
    await runChecked('sysctl', ['sysctl', '-qw', `${key}=1`], { netns: LB() });
    try {
      await flushRouterNeighbour();
      assert.match(await curlThroughVip(), /^curl exit/);
    } finally {
      await runChecked('sysctl', ['sysctl', '-qw', `${key}=0`], { netns: LB() });
      await flushRouterNeighbour();
    }
    assert.match(await curlThroughVip(), /saw client 172\.16\.75\.83:/);
  });

  it('transparent: back to an address (the lab), then to a route; the real servers see the client', async () => {
    await applyLabMode(lab, 'transparent', quiet);
    assert.ok(await vipIsAddress(), 'the lab applied the VIP as an address again');
    assert.deepEqual(await slbctlRoutes(VIP), [], 'the switch back removed the route');
    const r = await slbctl('apply', '-f', configFile('transparent', 'route'));
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.deepEqual(await slbctlRoutes(VIP), [{ dev: 'eth0', protocol: '245' }]);
    assert.equal(await vipIsAddress(), false);
    await flushRouterNeighbour();
    assert.match(await curlThroughVip(), /saw client 10\.8\.21\.40:/);
    assert.match(await routerNeighbour(), /lladdr \S+ (REACHABLE|STALE|DELAY)/);
  });

  it('VIP routes are read from table local alone: 5,000 routes of another table (a BGP feed) are not dumped', async () => {
    const table = ['table', '100'];
    const feed = Array.from({ length: 5000 }, (_, i) => `route add 10.${100 + Math.floor(i / 250)}.${i % 250}.0/24 dev eth0 table 100\n`);
    await runChecked('ip -batch', ['ip', '-batch', '-'], { input: feed.join(''), netns: LB() });
    const mine = '172.16.75.98';
    await runChecked('ip route add', ['ip', 'route', 'add', 'local', `${mine}/32`, 'dev', 'eth0', 'table', 'local', 'proto', 'static'], {
      netns: LB(),
    });
    try {
      // In the balancer: the addon's dump, then interfaces() through it and through the full dump it replaces.
      const dist = path.join(__dirname, '..', '..', 'src');
      const script = `const { Rtnl } = require(${JSON.stringify(path.join(dist, 'kernel', 'rtnl', 'rtnl.js'))});
const n = require(${JSON.stringify(path.join(dist, 'util', 'netns.js'))}).native();
(async () => {
  const raw = n.dumpLocalRoutes();
  const r = Rtnl.open();
  const strict = await r.interfaces();
  n.dumpLocalRoutes = undefined;
  const full = await r.interfaces();
  r.close();
  const routes = strict.flatMap((i) => (i.localRoutes ?? []).map((x) => x.address + ' ' + x.protocol));
  process.stdout.write(JSON.stringify({ bytes: raw.length, same: JSON.stringify(strict) === JSON.stringify(full), routes }));
})();`;
      const r = await run([process.execPath, '-e', script], { netns: LB() });
      assert.equal(r.code, 0, r.stderr);
      const out = JSON.parse(r.stdout) as { bytes: number; same: boolean; routes: string[] };
      assert.equal(out.same, true, 'the strict dump and the full dump give the same interfaces');
      assert.ok(out.routes.includes(`${mine} 4`), `a foreign local route is read: ${out.routes.join(', ')}`);
      // A few local routes of ~60 bytes each, not 5,000 routes of another table.
      assert.ok(out.bytes < 1000, `the strict dump carried ${out.bytes} bytes`);
    } finally {
      await run(['ip', 'route', 'flush', ...table], { netns: LB() });
      await run(['ip', 'route', 'del', 'local', `${mine}/32`, 'dev', 'eth0', 'table', 'local'], { netns: LB() });
    }
  });

  it('destroy removes slbctl routes only; a local route for the VIP slbctl did not add is used and left', async () => {
    const other = '172.16.75.99';
    const addForeign = (address: string) =>
      runChecked('ip route add', ['ip', 'route', 'add', 'local', `${address}/32`, 'dev', 'eth0', 'table', 'local', 'proto', 'static'], {
        netns: LB(),
      });
    await addForeign(other);
    const destroyed = await slbctl('destroy', '--force');
    assert.equal(destroyed.code, 0, destroyed.stdout + destroyed.stderr);
    assert.deepEqual(await slbctlRoutes(VIP), []);
    assert.deepEqual(await foreignRoutes(other), [{ dev: 'eth0', protocol: 'static' }]);

    // The VIP held by someone else's local route: slbctl adds none and so owns none.
    await addForeign(VIP);
    const file = configFile('transparent', 'route');
    const planned = await slbctl('plan', '-f', file);
    assert.doesNotMatch(planned.stdout, /route local/);
    const r = await slbctl('apply', '-f', file);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(await curlThroughVip(), /saw client 10\.8\.21\.40:/);
    const again = await slbctl('destroy', '--force');
    assert.equal(again.code, 0, again.stdout + again.stderr);
    assert.deepEqual(await foreignRoutes(VIP), [{ dev: 'eth0', protocol: 'static' }]);
    for (const address of [VIP, other])
      await runChecked('ip route del', ['ip', 'route', 'del', 'local', `${address}/32`, 'dev', 'eth0', 'table', 'local'], { netns: LB() });
  });
});
