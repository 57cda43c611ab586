// Runs on a kernel with IPVS (the UML guest), started by
// test/integration/ipvs-sync.test.ts. Two balancer namespaces A and B with
// the same IPVS NAT service, joined by a veth for the sync multicast; a
// client talks to the VIP through A only. Without sync daemons B learns
// nothing; with the daemons slbctl starts (src/ha/ipvs-sync.ts, a master and
// a backup on each), B's connection table gets A's connection.
import { after, before, describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import * as path from 'node:path';
import { ChildProcess, spawn } from 'node:child_process';
import { run, runChecked } from '../../src/util/exec';
import { CLI_ENTRY } from '../../src/util/self';

const p = `sy${process.pid % 10000}`;
const ns = { client: `${p}c`, a: `${p}a`, b: `${p}b`, rs: `${p}r` };
const VIP = '10.9.1.100';
const DRIVER = path.join(__dirname, 'ipvs-sync-driver.js');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function inNs(netns: string, argv: string[]): Promise<string> {
  return (await runChecked(argv.join(' '), argv, { netns })).stdout;
}

async function veth(a: [string, string, string], b: [string, string, string]): Promise<void> {
  await runChecked('veth', ['ip', 'link', 'add', a[1], 'netns', a[0], 'type', 'veth', 'peer', 'name', b[1], 'netns', b[0]]);
  for (const [netns, dev, addr] of [a, b]) {
    await inNs(netns, ['ip', 'addr', 'add', addr, 'dev', dev]);
    await inNs(netns, ['ip', 'link', 'set', dev, 'up']);
  }
}

/** ipvsadm -Lnc lines (TCP connections) whose client is CLIENT:port. */
async function entriesFrom(netns: string, port: number): Promise<string[]> {
  const out = await inNs(netns, ['ipvsadm', '-Lnc']);
  return out.split('\n').filter((l) => l.includes(`10.9.1.1:${port} `));
}

async function curlFrom(port: number): Promise<void> {
  const r = await run(['curl', '-sS', '--max-time', '5', '--local-port', String(port), `http://${VIP}/`], { netns: ns.client });
  assert.equal(r.stdout, 'ok', `curl through A from port ${port}: ${r.stderr}`);
}

/** The driver in one namespace; its stderr (one line a daemon, or the refusal) and exit code. */
const driver = (netns: string, ...args: string[]) => run([process.execPath, DRIVER, ...args], { netns });

/** GET_DAEMON in one namespace, through slbctl's client. */
async function daemonsIn(netns: string): Promise<{ state: string; interface: string; syncId: number; port: number }[]> {
  return JSON.parse((await driver(netns, 'list')).stdout) as { state: string; interface: string; syncId: number; port: number }[];
}

describe('IPVS connection sync between two balancer namespaces', () => {
  let server: ChildProcess | undefined;

  before(async () => {
    for (const n of Object.values(ns)) await runChecked('netns', ['ip', 'netns', 'add', n]);
    for (const n of Object.values(ns)) await inNs(n, ['ip', 'link', 'set', 'lo', 'up']);
    await veth([ns.client, 'c0', '10.9.1.1/24'], [ns.a, 'a0', '10.9.1.2/24']);
    await veth([ns.a, 'a1', '10.9.2.2/24'], [ns.rs, 'r0', '10.9.2.1/24']);
    await veth([ns.a, 'as', '10.9.3.1/24'], [ns.b, 'bs', '10.9.3.2/24']);
    await inNs(ns.client, ['ip', 'route', 'add', 'default', 'via', '10.9.1.2']);
    await inNs(ns.rs, ['ip', 'route', 'add', 'default', 'via', '10.9.2.2']);
    // B: the same VIP and real server subnet, on a dummy (B is not on the client's path).
    await inNs(ns.b, ['ip', 'link', 'add', 'd0', 'type', 'dummy']);
    await inNs(ns.b, ['ip', 'addr', 'add', '10.9.2.2/24', 'dev', 'd0']);
    await inNs(ns.b, ['ip', 'link', 'set', 'd0', 'up']);
    for (const [n, dev] of [
      [ns.a, 'a0'],
      [ns.b, 'd0'],
    ] as const) {
      await inNs(n, ['ip', 'addr', 'add', `${VIP}/32`, 'dev', dev]);
      await inNs(n, ['sysctl', '-qw', 'net.ipv4.ip_forward=1']);
      await inNs(n, ['ipvsadm', '-A', '-t', `${VIP}:80`, '-s', 'rr']);
      await inNs(n, ['ipvsadm', '-a', '-t', `${VIP}:80`, '-r', '10.9.2.1:80', '-m']);
    }
    server = spawn(
      'ip',
      ['netns', 'exec', ns.rs, process.execPath, '-e', "require('http').createServer((q,s)=>s.end('ok')).listen(80,'10.9.2.1')"],
      { stdio: 'ignore' },
    );
    for (let i = 0; i < 100; i++) {
      if ((await run(['curl', '-s', '--max-time', '1', 'http://10.9.2.1/'], { netns: ns.a })).stdout === 'ok') break;
      await sleep(100);
    }
  });

  after(async () => {
    server?.kill('SIGKILL');
    // The sync daemons, services and links go with the namespaces (only these, made here).
    for (const n of Object.values(ns)) await run(['ip', 'netns', 'del', n]);
  });

  it('without sync daemons, B has no entry for a connection through A', async () => {
    await curlFrom(40001);
    assert.equal((await entriesFrom(ns.a, 40001)).length, 1, 'A holds the connection');
    // Longer than the master's flush interval (2 s): a sync message would have come by now.
    await sleep(3000);
    assert.deepEqual(await entriesFrom(ns.b, 40001), []);
  });

  it('refuses to replace a daemon slbctl did not start, in one sentence, changing nothing', async () => {
    await inNs(ns.b, ['ipvsadm', '--start-daemon', 'backup', '--mcast-interface', 'bs', '--syncid', '9']);
    const r = await driver(ns.b, 'start', 'bs', '7');
    assert.equal(r.code, 2);
    assert.match(
      r.stderr,
      /^ha\.sync: a backup sync daemon on bs \(sync id 9, group 224\.0\.0\.81:8848\) already runs in this namespace and slbctl did not start it; stop it \(ipvsadm --stop-daemon backup\) or set ha\.sync to match it\n$/,
    );
    assert.deepEqual(
      (await daemonsIn(ns.b)).map((d) => [d.state, d.syncId]),
      [['backup', 9]],
    );
    await inNs(ns.b, ['ipvsadm', '--stop-daemon', 'backup']);
  });

  it('with the daemons slbctl starts on both, B gets the connection made through A', async (t) => {
    for (const n of [ns.a, ns.b]) {
      const r = await driver(n, 'start', n === ns.a ? 'as' : 'bs', '7');
      assert.equal(r.code, 0, r.stderr);
    }
    const listed = await daemonsIn(ns.b);
    assert.deepEqual(listed.map((d) => `${d.state} ${d.interface} ${d.syncId} ${d.port}`).sort(), ['backup bs 7 8848', 'master bs 7 8848']);
    assert.match(await inNs(ns.b, ['ipvsadm', '-L', '--daemon']), /master sync daemon \(mcast=bs, syncid=7/);
    const status = await inNs(ns.b, [process.execPath, CLI_ENTRY, 'status']);
    assert.match(status, /^ipvs sync: master sync daemon on bs \(sync id 7, group 224\.0\.0\.81:8848\)$/m);
    assert.match(status, /^ipvs sync: backup sync daemon on bs \(sync id 7, group 224\.0\.0\.81:8848\)$/m);
    await curlFrom(40002);
    const done = Date.now();
    let entry: string[] = [];
    for (let i = 0; i < 200 && entry.length === 0; i++) {
      entry = await entriesFrom(ns.b, 40002);
      if (entry.length === 0) await sleep(25);
    }
    t.diagnostic(`synced entry on B ${Date.now() - done} ms after the curl through A ended (polled every 25 ms): ${entry.join(' | ')}`);
    assert.equal(entry.length, 1, 'B holds the connection made through A');
    assert.match(entry[0] ?? '', /10\.9\.1\.1:40002 +10\.9\.1\.100:80 +10\.9\.2\.1:80/);
  });

  it('stop ends exactly the daemons it started', async () => {
    const r = await driver(ns.a, 'stop', 'as', '7');
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(await daemonsIn(ns.a), []);
    assert.equal((await daemonsIn(ns.b)).length, 2, "B's are B's own");
  });
});
