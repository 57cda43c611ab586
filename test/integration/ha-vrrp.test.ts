// Two balancers as an active/standby pair (ha.vrrp + ha.sync), each a network
// namespace of this test running `slbctl run`, on one bridge with a client and
// a real server: exactly one balancer holds the VIP; a fullnat connection made
// through the master is copied into the standby's conntrackd; kill -9 of the
// master's controller ends its keepalived (parent-death signal), the standby
// takes the VIP and the floating source address over, commits the copied
// connections to its kernel, and serves the VIP. Failover time is measured
// and printed, not asserted.
import { after, before, describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { run, runChecked } from '../../src/util/exec';
import { RS_HTTP_SCRIPT } from '../../src/lab/processes';
import { CLI_ENTRY } from '../../src/util/self';
import { Started, sleep, startIn, startSlbctl, waitUntil } from '../helpers/processes';
import { LongLived, openLongLived } from '../helpers/long-lived';

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
const have = (bin: string) => ['/usr/sbin', '/usr/bin', '/sbin'].some((d) => fs.existsSync(path.join(d, bin)));
const skip = !isRoot
  ? 'needs root: creates network namespaces'
  : !have('keepalived') || !have('conntrackd') || !have('conntrack')
    ? 'needs keepalived, conntrackd and conntrack (scripts/setup.sh installs them)'
    : false;

const tag = `vr${(process.pid % 1296).toString(36)}${Math.floor(Math.random() * 1296).toString(36)}`;
const ns = { sw: `${tag}-sw`, a: `${tag}-a`, b: `${tag}-b`, client: `${tag}-c`, rs: `${tag}-rs` };
// Under /run, not /tmp: keepalived runs the notify script only from a path no other user can write.
const runtime = `/run/slbctl-test-${tag}`;
process.env.RUNTIME_DIRECTORY = runtime;

const ADDR = { a: '172.16.75.83', b: '172.16.75.86', client: '172.16.75.40', rs: '172.16.75.82' };
const VIP = '172.16.75.84';
const SNAT = '172.16.75.99';

function config(self: 'a' | 'b', vips = [VIP]): string {
  const other = self === 'a' ? ADDR.b : ADDR.a;
  return JSON.stringify({
    backend: 'nft',
    services: vips.map((vip, i) => ({
      name: `web${i}`,
      vip,
      port: 80,
      protocol: 'tcp',
      mode: 'fullnat',
      // Floating: the real server answers the master, whichever it is, and a copied connection keeps its source.
      snatAddress: SNAT,
      // Tracked: a balancer whose checks all fail gives the VIPs up (VRRP FAULT).
      healthCheck: { type: 'tcp', interval: '200ms', fall: 2, rise: 2 },
      realServers: [{ address: ADDR.rs, port: 80, weight: 1 }],
    })),
    ha: {
      vrrp: {
        interface: 'eth0',
        virtualRouterId: 51,
        priority: self === 'a' ? 150 : 100,
        peers: [other],
        advertInterval: 100,
        addresses: [SNAT],
      },
      sync: { engine: 'conntrackd', interface: 'eth0', peer: other },
    },
  });
}

async function addresses(n: string): Promise<string[]> {
  const r = await run(['ip', '-n', n, '-4', '-o', 'addr', 'show', 'dev', 'eth0']);
  return [...r.stdout.matchAll(/inet (\S+)\//g)].map((m) => m[1] ?? '');
}

const holds = async (n: string) => (await addresses(n)).includes(VIP);

async function statusLine(n: string): Promise<string> {
  const r = await run([process.execPath, CLI_ENTRY, 'status'], { netns: n });
  return /^vrrp: .*$/m.exec(r.stdout)?.[0] ?? r.stdout + r.stderr;
}

async function curlVip(): Promise<{ code: number; body: string }> {
  const r = await run(['curl', '-s', '--max-time', '2', `http://${VIP}/`], { netns: ns.client });
  return { code: r.code, body: r.stdout };
}

describe('two balancers, VRRP active/standby with conntrackd (namespaces of this test)', { skip, timeout: 120_000 }, () => {
  const started: Started[] = [];
  let a: Started | undefined;
  let b: Started | undefined;
  let live: LongLived | undefined;

  before(async () => {
    for (const n of Object.values(ns)) {
      await runChecked('netns', ['ip', 'netns', 'add', n]);
      await runChecked('no ipv6', ['sysctl', '-qw', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1'], {
        netns: n,
      });
      await runChecked('lo', ['ip', '-n', n, 'link', 'set', 'lo', 'up']);
    }
    await runChecked('bridge', ['ip', '-n', ns.sw, 'link', 'add', 'br0', 'type', 'bridge']);
    await runChecked('bridge', ['ip', '-n', ns.sw, 'link', 'set', 'br0', 'up']);
    for (const host of ['a', 'b', 'client', 'rs'] as const) {
      const port = `p${host}`;
      await runChecked('veth', ['ip', '-n', ns.sw, 'link', 'add', port, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns[host]]);
      await runChecked('port', ['ip', '-n', ns.sw, 'link', 'set', port, 'master', 'br0', 'up']);
      await runChecked('addr', ['ip', '-n', ns[host], 'addr', 'add', `${ADDR[host]}/24`, 'dev', 'eth0']);
      await runChecked('up', ['ip', '-n', ns[host], 'link', 'set', 'eth0', 'up']);
    }
    const server = startIn(ns.rs, [RS_HTTP_SCRIPT, '--name', 'rs1', '--port', '80']);
    started.push(server);
    await waitUntil('the real server answers', 10_000, async () => {
      const r = await run(['curl', '-s', '--max-time', '1', `http://${ADDR.rs}/`], { netns: ns.client });
      return r.code === 0;
    });
    fs.mkdirSync(runtime, { recursive: true, mode: 0o755 });
    for (const self of ['a', 'b'] as const) fs.writeFileSync(path.join(runtime, `${self}.json`), config(self));
  });

  after(async () => {
    live?.kill();
    for (const p of started) if (!p.done()) p.child.kill('SIGTERM');
    await Promise.race([Promise.all(started.map((p) => p.exited)), sleep(10_000)]);
    for (const p of started) if (!p.done()) p.child.kill('SIGKILL');
    for (const n of Object.values(ns)) await run(['ip', 'netns', 'del', n]);
    fs.rmSync(runtime, { recursive: true, force: true });
  });

  it('one master holds the VIP; the standby has the connection; kill -9 of the master moves the VIP and the connection', async (t) => {
    a = startSlbctl(ns.a, ['run', '-f', path.join(runtime, 'a.json'), '--metrics', 'off']);
    started.push(a);
    await waitUntil('balancer a becomes master', 15_000, () => holds(ns.a), 50).catch((e: unknown) => {
      throw new Error(`${(e as Error).message}\n${a?.out() ?? ''}${a?.err() ?? ''}`);
    });
    b = startSlbctl(ns.b, ['run', '-f', path.join(runtime, 'b.json'), '--metrics', 'off']);
    started.push(b);
    await waitUntil('balancer b logs its BACKUP state', 15_000, () => /-> BACKUP/.test(b?.err() ?? ''), 50).catch((e: unknown) => {
      throw new Error(`${(e as Error).message}\n${b?.out() ?? ''}${b?.err() ?? ''}`);
    });
    // Exactly one holder, and it stays so (no flapping between the two) for a second.
    for (let i = 0; i < 10; i++) {
      assert.deepEqual([await holds(ns.a), await holds(ns.b)], [true, false]);
      await sleep(100);
    }
    assert.ok((await addresses(ns.a)).includes(SNAT), 'the floating source address is on the master');
    assert.match(a.err(), /start -> BACKUP/);
    assert.match(a.err(), /BACKUP -> MASTER: this balancer holds the VIPs/);

    assert.equal(await statusLine(ns.a), 'vrrp: MASTER in group 51, priority 150 (this balancer holds the VIPs)');
    assert.equal(await statusLine(ns.b), 'vrrp: BACKUP in group 51, priority 100');

    const first = await curlVip();
    assert.equal(first.code, 0, 'curl through the master');
    assert.match(first.body, /rs1/);

    // A connection held open across the failover: half a request now, the rest through b.
    live = openLongLived(ns.client, VIP, 80);
    assert.ok(await live.connected(), 'the live connection is established through a');

    // The connections the client made through a reach b's conntrackd (its external cache).
    const conf = (self: 'a' | 'b') =>
      path.join(runtime, 'conntrackd', '', `net-${fs.statSync(`/run/netns/${ns[self]}`).ino}`, 'conntrackd.conf');
    let cache = '';
    await waitUntil(
      "the client's connection in b's external cache",
      10_000,
      async () => {
        cache = (await run(['conntrackd', '-C', conf('b'), '-e'], { netns: ns.b })).stdout;
        return cache.split('\n').some((l) => l.includes('ESTABLISHED') && l.includes(`src=${ADDR.client} dst=${VIP}`));
      },
      100,
    ).catch((e: unknown) => {
      throw new Error(`${(e as Error).message}: ${cache}`);
    });
    const cached = cache.split('\n').filter((l) => l.includes(VIP));
    t.diagnostic(`b's external cache: ${cached.map((l) => l.trim().replace(/\s+/g, ' ')).join(' | ')}`);
    const before = (await run(['conntrack', '-L', '-d', VIP], { netns: ns.b })).stdout;
    assert.doesNotMatch(before, new RegExp(`src=${ADDR.client.replace(/\./g, '\\.')}`), "not in b's kernel while b is standby");

    // The master's controller dies without a word: keepalived and conntrackd get SIGTERM from the kernel.
    const killedAt = Date.now();
    process.kill(a.pid, 'SIGKILL');
    await waitUntil('b holds the VIP', 15_000, () => holds(ns.b), 10);
    const vipMoved = Date.now() - killedAt;
    await waitUntil('a no longer holds the VIP', 15_000, async () => !(await holds(ns.a)), 10);
    let served: { code: number; body: string } = { code: -1, body: '' };
    await waitUntil(
      'the VIP answers through b',
      15_000,
      async () => {
        served = await curlVip();
        return served.code === 0;
      },
      10,
    );
    const servedAfter = Date.now() - killedAt;
    assert.match(served.body, /rs1/);
    assert.ok((await addresses(ns.b)).includes(SNAT), 'the floating source address moved with the VIP');
    // keepalived's log is read back every 100 ms: the transition is reported shortly after it happened.
    await waitUntil('b logs its transition to MASTER', 5_000, () => /BACKUP -> MASTER/.test(b?.err() ?? ''), 20);
    const logged = Date.now() - killedAt;
    assert.equal(await statusLine(ns.b), 'vrrp: MASTER in group 51, priority 100 (this balancer holds the VIPs)');
    // b's notify script committed the copied connection to its kernel (conntrackd -c).
    let committed = '';
    await waitUntil(
      "the copied connection in b's kernel",
      10_000,
      async () => {
        committed = (await run(['conntrack', '-L', '-d', VIP], { netns: ns.b })).stdout;
        return committed.split('\n').some((l) => l.includes('ESTABLISHED') && l.includes(`src=${ADDR.client} dst=${VIP}`));
      },
      100,
    ).catch((e: unknown) => {
      const notify = fs.readFileSync(
        path.join(runtime, 'keepalived', `net-${fs.statSync(`/run/netns/${ns.b}`).ino}`, 'notify.log'),
        'utf8',
      );
      throw new Error(`${(e as Error).message}: ${committed}; notify.log: ${notify}`);
    });
    // The live connection goes on through b: its state came from a, and the source address it was NATed to moved with the VIP.
    const ended = await live.finish(15_000);
    assert.equal(ended.code, 0, `the live connection after the failover: ${ended.output}`);
    assert.match(ended.output, /HTTP\/1\.1 200[\s\S]*rs1/);
    const load = fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
    t.diagnostic(
      `failover after kill -9 of the master's controller: VIP on b in ${vipMoved} ms, first answer through b ${servedAfter} ms, logged by b's controller at ${logged} ms (advert 100 ms; load ${load})`,
    );
    // A reload that adds a service: keepalived takes the new config (SIGHUP) and the master holds the new VIP too.
    const VIP2 = '172.16.75.87';
    fs.writeFileSync(path.join(runtime, 'b.json'), config('b', [VIP, VIP2]));
    await waitUntil('b holds the new VIP after the reload', 15_000, async () => (await addresses(ns.b)).includes(VIP2), 50).catch(
      (e: unknown) => {
        throw new Error(`${(e as Error).message}\n${b?.err() ?? ''}`);
      },
    );
    assert.match(b.err(), /keepalived reloaded: floating 172\.16\.75\.84\/32, 172\.16\.75\.87\/32, 172\.16\.75\.99\/32/);
    assert.ok(await holds(ns.b), 'the first VIP stayed');
    assert.match(b.err(), /BACKUP -> MASTER/);
    assert.doesNotMatch(b.err(), /MASTER -> /, 'the reload kept the state');

    // Nothing of a's engines is left running (keepalived takes about a second to end after its SIGTERM).
    let left = '';
    await waitUntil(
      "a's keepalived and conntrackd end",
      10_000,
      async () => {
        const pids = (await run(['ip', 'netns', 'pids', ns.a])).stdout.split(/\s+/).filter(Boolean);
        left = pids
          .map((p) => `${p} ${fs.existsSync(`/proc/${p}/comm`) ? fs.readFileSync(`/proc/${p}/comm`, 'utf8').trim() : ''}`)
          .join(', ');
        return pids.length === 0;
      },
      100,
    ).catch((e: unknown) => {
      throw new Error(`${(e as Error).message}: ${left}`);
    });
  });

  it('a master whose checks all fail goes to FAULT and the standby takes the VIPs; it comes back as the standby', async () => {
    assert.ok(b && !b.done() && (await holds(ns.b)), 'b is master after the first test');
    // The same VIPs as b since its reload: with different address lists the pair was seen to end with two masters.
    fs.writeFileSync(path.join(runtime, 'a.json'), config('a', [VIP, '172.16.75.87']));
    a = startSlbctl(ns.a, ['run', '-f', path.join(runtime, 'a.json'), '--metrics', 'off']);
    started.push(a);
    await waitUntil('a logs its BACKUP state', 15_000, () => /-> BACKUP/.test(a?.err() ?? ''), 50);
    // Only b's checks fail: its own connections to the real server are dropped on output (forwarded ones are not).
    const block = (verb: 'add' | 'delete') =>
      verb === 'add'
        ? [
            ['nft', 'add', 'table', 'inet', 'tblock'],
            ['nft', 'add', 'chain', 'inet', 'tblock', 'out', '{ type filter hook output priority 0; }'],
            ['nft', 'add', 'rule', 'inet', 'tblock', 'out', 'ip', 'daddr', ADDR.rs, 'tcp', 'dport', '80', 'drop'],
          ]
        : [['nft', 'delete', 'table', 'inet', 'tblock']];
    for (const argv of block('add')) await runChecked('block checks', argv, { netns: ns.b });
    await waitUntil('b goes to FAULT', 15_000, () => /MASTER -> FAULT/.test(b?.err() ?? ''), 50).catch((e: unknown) => {
      throw new Error(`${(e as Error).message}
${b?.err() ?? ''}`);
    });
    assert.match(b.err(), /no service has a real server with a weight: VRRP FAULT/);
    await waitUntil('a holds the VIP', 15_000, () => holds(ns.a), 20);
    assert.equal(await holds(ns.b), false, 'b gave the VIP up');
    assert.match(await statusLine(ns.b), /^vrrp: FAULT in group 51/);
    const through = await curlVip();
    assert.equal(through.code, 0, 'the VIP answers through a');
    // b's checks pass again: it leaves FAULT as the standby (nopreempt), a keeps the VIP.
    for (const argv of block('delete')) await runChecked('unblock checks', argv, { netns: ns.b });
    await waitUntil('b leaves FAULT', 15_000, () => /FAULT -> BACKUP/.test(b?.err() ?? ''), 50);
    assert.match(b.err(), /a service has a real server again/);
    for (let i = 0; i < 5; i++) {
      assert.deepEqual([await holds(ns.a), await holds(ns.b)], [true, false]);
      await sleep(100);
    }
  });
});
