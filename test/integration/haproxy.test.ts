// The HAProxy module against a real haproxy, in three network namespaces of
// the test's own: a client (cl), the balancer (lb, where HAProxy runs) and
// the real servers (rs, one node HTTP server per address). curl in cl talks
// to the VIP on lb; the answers name the server and the client address it saw.
//
//   cl 10.231.1.2 ── 10.231.1.1 lb (VIP 10.231.9.100) 10.231.2.1 ── rs 10.231.2.11/.12/.13
import { after, before, describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import { ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { backendName, L7Service, renderHaproxyConfig, serverName } from '../../src/backends/haproxy/render';
import { assemblePemFiles, HaproxyError, HaproxyInstance } from '../../src/backends/haproxy/instance';
import { check, HaproxyConfigError, haproxyMissing } from '../../src/backends/haproxy/check';
import { selfSignedCertificate } from '../../src/util/certificate';
import { findCommand, run, runChecked } from '../../src/util/exec';

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
const skip = !isRoot ? 'needs root' : (haproxyMissing() ?? false);

const tag = `hp${process.pid % 10000}`;
const NS = { cl: `${tag}-cl`, lb: `${tag}-lb`, rs: `${tag}-rs` };
const VIP = '10.231.9.100';
const LB_RS_SIDE = '10.231.2.1';
const RS = { rs1: '10.231.2.11', rs2: '10.231.2.12', rs3: '10.231.2.13' };
const SERVER_JS = path.join(__dirname, '..', 'helpers', 'slow-http-server.js');

const rsProcesses: ChildProcess[] = [];
const instances: HaproxyInstance[] = [];
let tmp = '';

async function ip(...args: string[]): Promise<void> {
  await runChecked('test topology', ['ip', ...args]);
}

async function createTopology(): Promise<void> {
  for (const ns of Object.values(NS)) await ip('netns', 'add', ns);
  await ip('link', 'add', 'cl0', 'netns', NS.cl, 'type', 'veth', 'peer', 'name', 'lbc0', 'netns', NS.lb);
  await ip('link', 'add', 'rs0', 'netns', NS.rs, 'type', 'veth', 'peer', 'name', 'lbr0', 'netns', NS.lb);
  await ip('-n', NS.cl, 'addr', 'add', '10.231.1.2/24', 'dev', 'cl0');
  await ip('-n', NS.lb, 'addr', 'add', '10.231.1.1/24', 'dev', 'lbc0');
  await ip('-n', NS.lb, 'addr', 'add', `${LB_RS_SIDE}/24`, 'dev', 'lbr0');
  await ip('-n', NS.lb, 'addr', 'add', `${VIP}/32`, 'dev', 'lo');
  for (const a of Object.values(RS)) await ip('-n', NS.rs, 'addr', 'add', `${a}/24`, 'dev', 'rs0');
  for (const [ns, devs] of [
    [NS.cl, ['lo', 'cl0']],
    [NS.lb, ['lo', 'lbc0', 'lbr0']],
    [NS.rs, ['lo', 'rs0']],
  ] as const)
    for (const dev of devs) await ip('-n', ns, 'link', 'set', dev, 'up');
  await ip('-n', NS.cl, 'route', 'add', 'default', 'via', '10.231.1.1');
}

async function startRealServer(name: string, address: string): Promise<void> {
  const child = spawn('ip', ['netns', 'exec', NS.rs, process.execPath, SERVER_JS, name, address, '80'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  rsProcesses.push(child);
  await new Promise<void>((resolve, reject) => {
    child.stdout?.once('data', () => resolve());
    child.once('exit', (code) => reject(new Error(`real server ${name} exited ${code}`)));
  });
}

/** curl from the client namespace; the body, or throws with curl's reason. */
async function curl(url: string, ...extra: string[]): Promise<string> {
  const r = await run(['curl', '-sS', '--max-time', '20', ...extra, url], { netns: NS.cl, timeoutMs: 30_000 });
  if (r.code !== 0) throw new Error(`curl ${url}: exit ${r.code}: ${r.stderr.trim()}`);
  return r.stdout;
}

const service = (over: Partial<L7Service> = {}): L7Service => ({
  key: `http/${VIP}:80`,
  name: 'web',
  vip: VIP,
  port: 80,
  protocol: 'http',
  mode: 'fullnat',
  scheduler: 'rr',
  snatAddress: LB_RS_SIDE,
  realServers: [
    { address: RS.rs1, port: 80, weight: 1 },
    { address: RS.rs2, port: 80, weight: 1 },
  ],
  ...over,
});

/** The kernel's inode of the socket listening on the VIP's port 80 in the balancer namespace. */
async function listenerInode(): Promise<string> {
  const r = await runChecked('ss', ['ss', '-ltnHe', `src ${VIP}:80`], { netns: NS.lb });
  const inodes = [...r.stdout.matchAll(/ino:(\d+)/g)].map((m) => m[1]);
  assert.equal(inodes.length, 1, r.stdout);
  return inodes[0] ?? '';
}

/** Which servers answered n requests, e.g. { rs1: 2, rs2: 2 }. */
async function answers(n: number): Promise<Record<string, number>> {
  const seen: Record<string, number> = {};
  for (let i = 0; i < n; i++) {
    const who = (await curl(`http://${VIP}/`)).split(' ')[0] ?? '?';
    seen[who] = (seen[who] ?? 0) + 1;
  }
  return seen;
}

describe('haproxy instance on a real haproxy', { skip }, () => {
  const web = new HaproxyInstance({ id: `${tag}-test`, netns: NS.lb, stopDeadlineMs: 1000 });
  instances.push(web);
  const be = backendName(`http/${VIP}:80`);

  before(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), `${tag}-`));
    await createTopology();
    for (const [name, address] of Object.entries(RS)) await startRealServer(name, address);
  });

  after(async () => {
    for (const i of instances) await i.stop().catch((e: unknown) => console.error(`cleanup: ${String(e)}`));
    for (const c of rsProcesses) c.kill('SIGKILL');
    for (const ns of Object.values(NS)) await run(['ip', 'netns', 'del', ns]);
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('starts a full-NAT http service; the real server sees the balancer, not the client', async () => {
    await web.start(renderHaproxyConfig([service()], web.paths));
    assert.ok(web.running());
    const mode = fs.statSync(web.paths.dir).mode & 0o777;
    assert.equal(mode, 0o700, `instance directory mode ${mode.toString(8)}`);
    assert.equal(fs.statSync(web.paths.config).mode & 0o777, 0o600);
    const body = await curl(`http://${VIP}/`);
    assert.match(body, new RegExp(`^rs[12] saw client (::ffff:)?${LB_RS_SIDE.replace(/\./g, '\\.')}\\n$`));
    assert.deepEqual(await answers(4), { rs1: 2, rs2: 2 });
  });

  it('apply() of what already runs changes nothing', async () => {
    const worker = await web.runtime.workerPid();
    assert.equal(await web.apply(renderHaproxyConfig([service()], web.paths)), 'unchanged');
    assert.equal(await web.runtime.workerPid(), worker);
  });

  it('weight and state change through the runtime API, without a reload', async (t) => {
    const master = web.masterPid();
    const worker = await web.runtime.workerPid();
    await web.runtime.setWeight(be, serverName({ address: RS.rs2, port: 80 }), 0);
    assert.deepEqual(await answers(4), { rs1: 4 });
    await web.runtime.setWeight(be, serverName({ address: RS.rs2, port: 80 }), 1);
    await web.runtime.setState(be, serverName({ address: RS.rs1, port: 80 }), 'maint');
    assert.deepEqual(await answers(4), { rs2: 4 });
    await web.runtime.setState(be, serverName({ address: RS.rs1, port: 80 }), 'ready');
    assert.deepEqual(await answers(4), { rs1: 2, rs2: 2 });
    await assert.rejects(web.runtime.setState(be, 'rs_nobody_80', 'drain'), /No such server/);
    assert.equal(web.masterPid(), master);
    assert.equal(await web.runtime.workerPid(), worker);
    t.diagnostic(`master ${master}, worker ${worker} unchanged`);
  });

  it('reloads seamlessly: a slow request in flight completes, no new connection is refused, runtime state survives', async (t) => {
    const master = web.masterPid();
    const worker = await web.runtime.workerPid();
    // rs2 in maintenance: the saved server state must carry it into the new worker.
    await web.runtime.setState(be, serverName({ address: RS.rs2, port: 80 }), 'maint');
    // Served by rs1 (rs2 is in maintenance), answered after 3 s: across the reload.
    const slow = curl(`http://${VIP}/slow?ms=3000`);
    const inFlight = await (async () => {
      for (let i = 0; i < 100; i++) {
        const row = (await web.runtime.stats()).find((r) => r.pxname === be && r.svname === serverName({ address: RS.rs1, port: 80 }));
        if ((row?.scur ?? 0) > 0) return true;
        await new Promise((r) => setTimeout(r, 20));
      }
      return false;
    })();
    assert.ok(inFlight, 'the slow request never reached rs1');
    // New connections all through the reload.
    let reloading = true;
    const during: string[] = [];
    const failures: string[] = [];
    const hammer = (async () => {
      while (reloading) {
        try {
          during.push(await curl(`http://${VIP}/`));
        } catch (e) {
          failures.push(String(e));
        }
      }
    })();
    const three = service({ realServers: [...service().realServers, { address: RS.rs3, port: 80, weight: 1 }] });
    const listenerBefore = await listenerInode();
    const result = await web.reload(renderHaproxyConfig([three], web.paths));
    reloading = false;
    await hammer;
    assert.match(await slow, /^rs1 saw client/);
    assert.deepEqual(failures, []);
    assert.ok(during.length > 0);
    assert.equal(web.masterPid(), master);
    assert.notEqual(result.workerPid, worker);
    assert.deepEqual(result.previousWorkers, [worker]);
    // The very same listening socket, handed to the new worker (expose-fd listeners): it was never closed and bound again.
    assert.equal(await listenerInode(), listenerBefore);
    assert.deepEqual(await answers(4), { rs1: 2, rs3: 2 }, 'rs2 stays in maintenance across the reload');
    await web.runtime.setState(be, serverName({ address: RS.rs2, port: 80 }), 'ready');
    t.diagnostic(
      `reload took ${result.milliseconds} ms; ${during.length} requests during it, none refused; worker ${worker} -> ${result.workerPid}`,
    );
  });

  it('a client connected before a reload and sending its request after it is still served', async (t) => {
    // A raw TCP client in the client namespace: connects, waits for "go" on stdin, then sends its request.
    const script = [
      "const s = require('net').connect(80, process.argv[1]);",
      "s.on('connect', () => process.stdout.write('connected\\n'));",
      "process.stdin.once('data', () => s.write('GET / HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n'));",
      "let got = ''; s.on('data', (b) => (got += b)); s.on('close', () => { process.stdout.write('ANSWER ' + JSON.stringify(got) + '\\n'); process.exit(0); });",
      "s.on('error', (e) => { process.stdout.write('ERROR ' + e.code + '\\n'); process.exit(0); });",
    ].join('\n');
    const client = spawn('ip', ['netns', 'exec', NS.cl, process.execPath, '-e', script, VIP], { stdio: ['pipe', 'pipe', 'inherit'] });
    let out = '';
    client.stdout.on('data', (b: Buffer) => (out += b.toString()));
    await new Promise<void>((resolve) => {
      const poll = setInterval(() => {
        if (out.includes('connected')) {
          clearInterval(poll);
          resolve();
        }
      }, 20);
    });
    const result = await web.reload(renderHaproxyConfig([service()], web.paths));
    client.stdin.write('go\n');
    await new Promise((resolve) => client.once('exit', resolve));
    const answer = /ANSWER (".*")/.exec(out)?.[1];
    const body = answer ? (JSON.parse(answer) as string) : '';
    t.diagnostic(
      `connected before the reload (worker ${result.previousWorkers.join(',')} -> ${result.workerPid}), request after it: ${JSON.stringify(body.split('\r\n')[0] || out.trim())}`,
    );
    assert.match(body, /^HTTP\/1\.1 200/);
  });

  it('stats() shows sessions and bytes per server', async () => {
    await answers(2);
    const rows = await web.runtime.stats();
    const servers = rows.filter((r) => r.pxname === be && r.svname.startsWith('rs_'));
    assert.deepEqual(servers.map((r) => r.svname).sort(), [
      serverName({ address: RS.rs1, port: 80 }),
      serverName({ address: RS.rs2, port: 80 }),
    ]);
    for (const r of servers) {
      assert.ok((r.stot ?? 0) > 0, `${r.svname} stot ${r.stot}`);
      assert.ok((r.bin ?? 0) > 0 && (r.bout ?? 0) > 0, `${r.svname} bytes ${r.bin}/${r.bout}`);
      assert.equal(r.weight, 1);
      // HAProxy's checks are off (slbctl checks): a server in service shows as "no check".
      assert.equal(r.status, 'no check');
    }
    assert.ok(rows.some((r) => r.pxname === be && r.svname === 'BACKEND'));
  });

  it('an invalid config gives haproxy own, readable message and leaves the running worker alone', async () => {
    const worker = await web.runtime.workerPid();
    const bad = renderHaproxyConfig([service()], web.paths).replace('balance roundrobin', 'balance roundrobin\n    bogus thing');
    await assert.rejects(check(bad), (e: unknown) => {
      assert.ok(e instanceof HaproxyConfigError);
      assert.match(e.message, /parsing \[haproxy\.cfg:\d+\] : unknown keyword 'bogus' in 'backend' section/);
      return true;
    });
    await assert.rejects(web.reload(bad), HaproxyConfigError);
    assert.equal(await web.runtime.workerPid(), worker);
    assert.ok(!fs.existsSync(`${web.paths.config}.new`));
    assert.match(await curl(`http://${VIP}/`), /saw client/);
  });

  it("a VIP the balancer does not have fails the start with HAProxy's reason and leaves nothing running", async (t) => {
    const stray = new HaproxyInstance({ id: `${tag}-stray`, netns: NS.lb, stopDeadlineMs: 1000 });
    instances.push(stray);
    await assert.rejects(
      stray.start(renderHaproxyConfig([service({ key: 'http/10.231.9.200:80', vip: '10.231.9.200' })], stray.paths)),
      (e: unknown) => {
        t.diagnostic(String(e));
        assert.ok(e instanceof HaproxyError);
        assert.match(String(e), /cannot bind socket.*10\.231\.9\.200:80/);
        return true;
      },
    );
    assert.equal(stray.running(), false);
    await stray.stop();
    assert.equal(fs.existsSync(stray.paths.dir), false);
  });

  it('stop() leaves no process and no directory', async () => {
    const master = web.masterPid();
    assert.ok(master);
    const pids = [master, ...(await web.processes()).map((p) => p.pid)];
    await web.stop();
    assert.equal(web.running(), false);
    for (const pid of pids)
      assert.equal(fs.existsSync(`/proc/${pid}`) && !/\) Z /.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8')), false, `pid ${pid} alive`);
    assert.equal(fs.existsSync(web.paths.dir), false);
    await assert.rejects(curl(`http://${VIP}/`));
  });

  it('transparent: the real server sees the client address itself', async () => {
    // The return path slbctl will set for transparent L7: replies from the
    // real servers (to the client's address, not ours) are delivered to the
    // local HAProxy socket rather than forwarded.
    await ip('-n', NS.rs, 'route', 'add', 'default', 'via', LB_RS_SIDE);
    await ip('-n', NS.lb, 'rule', 'add', 'iif', 'lbr0', 'ipproto', 'tcp', 'sport', '80', 'lookup', '100', 'priority', '100');
    await ip('-n', NS.lb, 'route', 'add', 'local', '0.0.0.0/0', 'dev', 'lo', 'table', '100');
    const tp = new HaproxyInstance({ id: `${tag}-tp`, netns: NS.lb, stopDeadlineMs: 1000 });
    instances.push(tp);
    await tp.start(renderHaproxyConfig([service({ mode: 'transparent', snatAddress: undefined })], tp.paths));
    assert.match(await curl(`http://${VIP}/`), /^rs[12] saw client (::ffff:)?10\.231\.1\.2\n$/);
    await tp.stop();
  });

  it(
    'https: TLS ends at the balancer with a certificate made here',
    { skip: findCommand('openssl') ? false : 'openssl is not installed' },
    async () => {
      const { certificate: crt, key } = await selfSignedCertificate(tmp, 'web', VIP, 1);
      const tls = new HaproxyInstance({ id: `${tag}-tls`, netns: NS.lb, stopDeadlineMs: 1000 });
      instances.push(tls);
      const services = [service({ key: `https/${VIP}:443`, port: 443, protocol: 'https', tls: { certificate: crt, key } })];
      const files = assemblePemFiles(services, tls.paths);
      await tls.start(renderHaproxyConfig(services, tls.paths), files);
      assert.equal(fs.statSync(files[0]?.path ?? '').mode & 0o777, 0o600);
      assert.match(await curl(`https://${VIP}/`, '-k'), /^rs[12] saw client/);
      await tls.stop();
    },
  );
});
