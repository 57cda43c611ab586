// The netns lab itself: the reference topology with nothing in the root
// namespace (not even transiently), the real servers' HTTP servers, the RS
// side of each mode, a refusal to build over an existing lab, and a clean
// teardown even of a lab left half-made by a crash or a failed `lab up`.
import { after, before, describe, it } from 'node:test';
import { ChildProcess, spawn } from 'node:child_process';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  configureRealServers,
  labDown,
  labExec,
  labExists,
  labStateDir,
  labUp,
  nsName,
  readLabState,
  removeVipFromRealServer,
  setRealServerClientRoute,
} from '../../src/lab/netns';
import { LAB_HOSTS, LabTopology, REFERENCE_TOPOLOGY } from '../../src/lab/topology';
import { run, runChecked } from '../../src/util/exec';

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
const skip = isRoot ? false : 'needs root: creates network namespaces';
// "t" + tag + up to 4 characters: well inside the 12-character lab name rule.
const uniqueLab = (tag: string) => `t${tag}${(process.pid % 1000).toString(36)}${Math.floor(Math.random() * 1296).toString(36)}`;

async function rootNamespaceView(): Promise<string> {
  const links = await run(['ip', '-o', 'link', 'show']);
  const addrs = await run(['ip', '-o', '-4', 'addr', 'show']);
  const routes = await run(['ip', 'route', 'show']);
  // Interface index and name only: counters and flags of the host's own links may move.
  const names = links.stdout.split('\n').map((l) => l.split(':').slice(0, 2).join(':'));
  return [names.join('\n'), addrs.stdout.replace(/valid_lft.*$/gm, ''), routes.stdout].join('\n');
}

/**
 * Watch link events in the root namespace: a veth made there and moved into
 * a lab namespace afterwards would show up here, though gone again by the
 * time a before/after comparison looks.
 */
class RootLinkWatch {
  private readonly child: ChildProcess;
  private readonly lines: string[] = [];
  private constructor(private readonly known: Set<string>) {
    this.child = spawn('ip', ['-o', 'monitor', 'link'], { stdio: ['ignore', 'pipe', 'ignore'] });
    this.child.stdout?.on('data', (b: Buffer) => this.lines.push(...b.toString().split('\n').filter(Boolean)));
  }
  static async start(): Promise<RootLinkWatch> {
    const links = await runChecked('root links', ['ip', '-o', 'link', 'show']);
    const watch = new RootLinkWatch(
      new Set(
        links.stdout
          .split('\n')
          .map((l) => l.split(':')[0] ?? '')
          .filter(Boolean),
      ),
    );
    await new Promise((r) => setTimeout(r, 200)); // let the monitor subscribe
    return watch;
  }
  /** Events for interfaces that did not exist in the root namespace before. */
  stop(): string[] {
    this.child.kill();
    return this.lines.filter((l) => {
      const index = /^(?:Deleted )?(\d+):/.exec(l)?.[1];
      return index !== undefined && !this.known.has(index);
    });
  }
}

const sysctlIn = async (lab: string, host: 'rs1' | 'rs2', key: string) =>
  (await runChecked('sysctl', ['sysctl', '-n', key], { netns: nsName(lab, host) })).stdout.trim();
const addrsOnLo = async (lab: string, host: 'rs1' | 'rs2') =>
  (await runChecked('addr', ['ip', '-o', '-4', 'addr', 'show', 'dev', 'lo'], { netns: nsName(lab, host) })).stdout;
const routesOf = async (lab: string, host: 'rs1' | 'rs2') =>
  (await runChecked('routes', ['ip', 'route', 'show'], { netns: nsName(lab, host) })).stdout;

describe('netns lab: a lab up', { skip }, () => {
  const lab = uniqueLab('a');
  let rootBefore = '';
  let watch: RootLinkWatch | undefined;
  const log: string[] = [];

  before(async () => {
    rootBefore = await rootNamespaceView();
    watch = await RootLinkWatch.start();
    const started = Date.now();
    await labUp(lab, REFERENCE_TOPOLOGY, (line) => log.push(line));
    log.push(`labUp took ${Date.now() - started} ms`);
  });

  after(async () => {
    watch?.stop();
    await labDown(lab); // a no-op when the last test got that far
  });

  it('has all five namespaces, nothing new in the root namespace, and reports its steps', async (t) => {
    t.diagnostic(log[log.length - 1] ?? '');
    assert.deepEqual(await labExists(lab), { present: [...LAB_HOSTS], missing: [] });
    assert.equal(await rootNamespaceView(), rootBefore, 'the root namespace is unchanged');
    assert.ok(
      log.some((l) => l.includes(`${nsName(lab, 'router')}: br0 172.16.75.1/24`)),
      'the log names the bridge',
    );
    const bridgeIn = await runChecked('router links', ['ip', '-o', 'link', 'show', 'master', 'br0'], { netns: nsName(lab, 'router') });
    assert.deepEqual(
      bridgeIn.stdout
        .split('\n')
        .filter(Boolean)
        .map((l) => l.split(':')[1]?.trim().split('@')[0])
        .sort(),
      ['lb', 'rs1', 'rs2'],
    );
    assert.equal((await runChecked('fwd', ['sysctl', '-n', 'net.ipv4.ip_forward'], { netns: nsName(lab, 'router') })).stdout.trim(), '1');
    assert.equal(
      (await runChecked('v6', ['sysctl', '-n', 'net.ipv6.conf.eth0.disable_ipv6'], { netns: nsName(lab, 'client') })).stdout.trim(),
      '1',
    );
    assert.deepEqual(await readLabState(lab).then((s) => s?.provider), 'netns');
  });

  it('routes the client to RS1 through the router', async () => {
    const ping = await labExec(lab, 'client', ['ping', '-n', '-c', '1', '-W', '2', '172.16.75.82']);
    assert.equal(ping.code, 0, `ping: ${ping.stdout}${ping.stderr}`);
    assert.match(ping.stdout, /ttl=63/, 'one hop (the router) between client and RS1');
  });

  it('serves HTTP on both real servers, naming the RS and the client address it saw', async () => {
    const one = await labExec(lab, 'client', ['curl', '-s', '-i', '--max-time', '3', 'http://172.16.75.82/']);
    assert.equal(one.code, 0, one.stderr);
    assert.match(one.stdout, /^HTTP\/1\.1 200 OK\r\n/);
    assert.match(one.stdout, /\r\nX-Real-Server: rs1\r\n/i);
    assert.match(one.stdout, /\r\nConnection: close\r\n/i);
    assert.match(one.stdout, /\r\n\r\nrs1 saw client 10\.8\.21\.40:\d+ on 172\.16\.75\.82:80\n$/);
    const two = await labExec(lab, 'client', ['curl', '-s', '--max-time', '3', 'http://172.16.75.85/']);
    assert.match(two.stdout, /^rs2 saw client 10\.8\.21\.40:\d+ on 172\.16\.75\.85:80\n$/);
  });

  it('keeps pid and log files of the servers in the state dir', async () => {
    for (const h of ['rs1', 'rs2'] as const) {
      const pid = Number(fs.readFileSync(path.join(labStateDir(lab), `${h}-http.pid`), 'utf8'));
      assert.match(fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8'), /rs-http-server\.js/);
      const pids = (await runChecked('pids', ['ip', 'netns', 'pids', nsName(lab, h)])).stdout.split(/\s+/);
      assert.ok(pids.includes(String(pid)), `the pid file's process runs in ${nsName(lab, h)}`);
      assert.match(
        fs.readFileSync(path.join(labStateDir(lab), `${h}-http.log`), 'utf8'),
        new RegExp(`${h}: listening on 0\\.0\\.0\\.0:80`),
      );
    }
  });

  it('refuses to build over the existing lab', async () => {
    await assert.rejects(
      labUp(lab),
      new RegExp(`lab "${lab}" already exists \\(namespaces ${lab}-client, .*\\); run \`slbctl lab down --name ${lab}\` first`),
    );
  });

  it('configures the real servers for dsr, then transparent, then fullnat, each undoing the last', async () => {
    const dsr = await configureRealServers(lab, 'dsr');
    assert.ok(
      dsr.some((s) => s.startsWith('rs1: VIP 172.16.75.84/32 on lo')),
      dsr.join('\n'),
    );
    for (const h of ['rs1', 'rs2'] as const) {
      assert.match(await addrsOnLo(lab, h), /inet 172\.16\.75\.84\/32/);
      for (const scope of ['all', 'eth0']) {
        assert.equal(await sysctlIn(lab, h, `net.ipv4.conf.${scope}.arp_ignore`), '1');
        assert.equal(await sysctlIn(lab, h, `net.ipv4.conf.${scope}.arp_announce`), '2');
      }
      assert.match(await routesOf(lab, h), /^default via 172\.16\.75\.1 dev eth0/m);
    }
    assert.equal((await readLabState(lab))?.mode, 'dsr');
    assert.deepEqual(await configureRealServers(lab, 'dsr').then((s) => s.length), dsr.length, 'dsr twice is fine');

    const transparent = await configureRealServers(lab, 'transparent');
    assert.ok(
      transparent.some((s) => s.includes('rs1: reset (VIP off lo')),
      transparent.join('\n'),
    );
    for (const h of ['rs1', 'rs2'] as const) {
      assert.doesNotMatch(await addrsOnLo(lab, h), /172\.16\.75\.84/);
      assert.match(await routesOf(lab, h), /^10\.8\.21\.0\/24 via 172\.16\.75\.83 dev eth0/m);
      assert.equal(await sysctlIn(lab, h, 'net.ipv4.conf.all.arp_ignore'), '0');
      assert.equal(await sysctlIn(lab, h, 'net.ipv4.conf.eth0.arp_announce'), '0');
    }
    assert.equal((await readLabState(lab))?.mode, 'transparent');

    await configureRealServers(lab, 'fullnat');
    assert.doesNotMatch(await routesOf(lab, 'rs1'), /10\.8\.21\.0\/24/);
    assert.equal((await readLabState(lab))?.mode, 'fullnat');
  });

  it('lets negative tests break a mode on purpose', async () => {
    await configureRealServers(lab, 'dsr');
    assert.equal(await removeVipFromRealServer(lab, 'rs2'), true);
    assert.equal(await removeVipFromRealServer(lab, 'rs2'), false, 'removing it again is no error');
    assert.doesNotMatch(await addrsOnLo(lab, 'rs2'), /172\.16\.75\.84/);
    assert.match(await addrsOnLo(lab, 'rs1'), /172\.16\.75\.84/);
    await configureRealServers(lab, 'transparent');
    await setRealServerClientRoute(lab, 'rs2', '172.16.75.1');
    assert.match(await routesOf(lab, 'rs2'), /^10\.8\.21\.0\/24 via 172\.16\.75\.1 dev eth0/m);
  });

  it('lab down removes everything; a second one is a no-op; the root namespace never saw a lab interface', async (t) => {
    const pids = ['rs1', 'rs2'].map((h) => Number(fs.readFileSync(path.join(labStateDir(lab), `${h}-http.pid`), 'utf8')));
    const started = Date.now();
    const { removed } = await labDown(lab);
    t.diagnostic(`labDown took ${Date.now() - started} ms`);
    assert.deepEqual(removed.sort(), LAB_HOSTS.map((h) => nsName(lab, h)).sort());
    assert.deepEqual((await labExists(lab)).present, []);
    assert.equal(fs.existsSync(labStateDir(lab)), false, 'the state dir is gone');
    for (const pid of pids)
      assert.equal(
        fs.existsSync(`/proc/${pid}/cmdline`) && fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('rs-http-server'),
        false,
        `server ${pid} stopped`,
      );
    assert.deepEqual(await labDown(lab), { removed: [] }, 'a second lab down has nothing to do');
    assert.equal(await rootNamespaceView(), rootBefore);
    assert.deepEqual(watch?.stop(), [], 'no interface ever appeared in the root namespace');
  });
});

describe('netns lab: failures and leftovers', { skip }, () => {
  it('lab down cleans a lab left half-made, processes included', async () => {
    const lab = uniqueLab('h');
    try {
      await runChecked('ns', ['ip', 'netns', 'add', nsName(lab, 'client')]);
      await runChecked('ns', ['ip', 'netns', 'add', nsName(lab, 'rs1')]);
      // A process that ignores SIGTERM, so the SIGKILL step is exercised too.
      const stubborn = spawn('ip', ['netns', 'exec', nsName(lab, 'rs1'), 'sh', '-c', 'trap "" TERM; sleep 60'], { stdio: 'ignore' });
      const polite = spawn('ip', ['netns', 'exec', nsName(lab, 'client'), 'sleep', '60'], { stdio: 'ignore' });
      const ended = (c: ChildProcess) => new Promise<string>((resolve) => c.on('exit', (code, signal) => resolve(String(signal ?? code))));
      const [stubbornEnd, politeEnd] = [ended(stubborn), ended(polite)];
      await new Promise((r) => setTimeout(r, 300));
      const { removed } = await labDown(lab);
      assert.deepEqual(removed.sort(), [nsName(lab, 'client'), nsName(lab, 'rs1')].sort());
      assert.deepEqual((await labExists(lab)).present, []);
      const within3s = (p: Promise<string>) => Promise.race([p, new Promise<string>((r) => setTimeout(() => r('still running'), 3000))]);
      assert.equal(await within3s(politeEnd), 'SIGTERM', 'a process left in the lab was stopped');
      assert.equal(await within3s(stubbornEnd), 'SIGKILL', 'one that ignores SIGTERM was killed');
    } finally {
      await labDown(lab);
    }
  });

  it('lab down also stops servers whose namespace was deleted from under them', async () => {
    const lab = uniqueLab('o');
    try {
      await labUp(lab);
      const pid = Number(fs.readFileSync(path.join(labStateDir(lab), 'rs1-http.pid'), 'utf8'));
      await runChecked('del', ['ip', 'netns', 'del', nsName(lab, 'rs1')]); // as a crash or a hand might
      assert.ok(fs.existsSync(`/proc/${pid}`), 'the server outlives its namespace name');
      const { removed } = await labDown(lab);
      assert.equal(removed.length, LAB_HOSTS.length - 1);
      await new Promise((r) => setTimeout(r, 100));
      assert.equal(
        fs.existsSync(`/proc/${pid}/cmdline`) && fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('rs-http-server'),
        false,
        'found by its pid file and stopped',
      );
    } finally {
      await labDown(lab);
    }
  });

  for (const [what, broken, error] of [
    [
      'an address the kernel refuses',
      {
        ...REFERENCE_TOPOLOGY,
        hosts: REFERENCE_TOPOLOGY.hosts.map((h) =>
          h.name === 'rs2' ? { ...h, interfaces: [{ name: 'eth0', cidr: '172.16.75.300/24', segment: 'server-net' as const }] } : h,
        ),
      },
      /address/,
    ],
    ['an HTTP server that cannot start', { ...REFERENCE_TOPOLOGY, servicePort: 65536 }, /HTTP server in .*-rs1 exited \(2\).*bad --port/],
  ] as Array<[string, LabTopology, RegExp]>) {
    it(`a lab up failing half-way (${what}) removes what it made`, async () => {
      const lab = uniqueLab('f');
      const rootBefore = await rootNamespaceView();
      try {
        await assert.rejects(labUp(lab, broken), error);
        assert.deepEqual((await labExists(lab)).present, []);
        assert.equal(fs.existsSync(labStateDir(lab)), false);
        assert.equal(await rootNamespaceView(), rootBefore);
      } finally {
        await labDown(lab);
      }
    });
  }

  it('rejects lab names that would make bad namespace names or paths', async () => {
    await assert.rejects(labUp('Bad Name'), /lab name "Bad Name" must be/);
    for (const bad of ['', '-x', 'abcdefghijklm', '../x', 'a.b', 'a/b']) {
      await assert.rejects(labDown(bad), /must be 1-12 characters/, bad);
      assert.throws(() => nsName(bad, 'rs1'), /must be 1-12 characters/);
    }
    assert.equal(nsName('slb', 'rs1'), 'slb-rs1');
    assert.equal(nsName('abcdefghijkl', 'router'), 'abcdefghijkl-router');
  });
});
