// Full NAT with a pool of source addresses in the netns lab: slbctl adds the
// pool's addresses to the balancer, spreads new connections over them (the
// real servers say which address they saw, conntrack on the balancer agrees),
// sets the conntrack timeouts of the balancer's namespace, shows the port use
// in status, plans nothing more the second time, and puts it all back on
// destroy. A pool it cannot serve is refused with one sentence.
import { after, before, describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { labDown, labUp, nsName } from '../../src/lab/netns';
import { applyLabMode } from '../../src/lab/mode';
import { DEFAULT_LAB_OPTIONS, labServiceConfig } from '../../src/lab/lb-config';
import { REFERENCE_TOPOLOGY } from '../../src/lab/topology';
import { parseFlows } from '../../src/kernel/conntrack/conntrack';
import { CLI_ENTRY } from '../../src/util/self';
import { run } from '../../src/util/exec';

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
const lab = `tsp${(process.pid % 1000).toString(36)}${Math.floor(Math.random() * 1296).toString(36)}`;
const lb = () => nsName(lab, 'lb');
const lbCli = (args: string[]) => run([process.execPath, CLI_ENTRY, ...args], { netns: lb() });
const POOL = ['172.16.75.90', '172.16.75.91'];
const TIME_WAIT = 'net.netfilter.nf_conntrack_tcp_timeout_time_wait';

describe('full NAT with a source address pool in the netns lab', { skip: isRoot ? false : 'needs root: network namespaces' }, () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'slbctl-snatpool-'));
  const file = path.join(dir, 'pool.yaml');
  const options = { ...DEFAULT_LAB_OPTIONS, backend: 'nft' as const };
  let timeWaitBefore = '';

  before(async () => {
    await labUp(lab, REFERENCE_TOPOLOGY);
    await applyLabMode(lab, 'fullnat', () => undefined, options);
    await lbCli(['destroy']);
    timeWaitBefore = (await run(['sysctl', '-n', TIME_WAIT], { netns: lb() })).stdout.trim();
    const config = labServiceConfig('fullnat', REFERENCE_TOPOLOGY, options).replace(
      '    realServers:',
      `    snatAddresses: [${POOL.join(', ')}]\n    snatPorts: 20000-39999\n    realServers:`,
    );
    fs.writeFileSync(file, `conntrack:\n  tcpTimeWait: 7\n  tcpClose: 3\n${config}`);
  });
  after(async () => {
    await lbCli(['destroy']);
    await labDown(lab);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('both pool addresses carry connections, within the port range; status and a second plan agree', async () => {
    const planned = await lbCli(['plan', '-f', file]);
    assert.equal(planned.code, 0, planned.stdout + planned.stderr);
    assert.match(planned.stdout, new RegExp(`sysctl ${TIME_WAIT.replace(/\./g, '\\.')} ${timeWaitBefore} -> 7`));
    assert.match(planned.stdout, /\+ address 172\.16\.75\.90\/32 dev eth0/);
    assert.match(planned.stdout, /snat 172\.16\.75\.90,172\.16\.75\.91 ports 20000-39999/);
    const applied = await lbCli(['apply', '-f', file]);
    assert.equal(applied.code, 0, applied.stdout + applied.stderr);
    assert.equal((await run(['sysctl', '-n', TIME_WAIT], { netns: lb() })).stdout.trim(), '7');

    const seen = new Map<string, number>();
    for (let i = 0; i < 20; i++) {
      const r = await run(['curl', '-sS', '-m', '5', `http://${REFERENCE_TOPOLOGY.vip}/`], { netns: nsName(lab, 'client') });
      assert.equal(r.code, 0, r.stderr);
      const m = /saw client ([\d.]+):(\d+) /.exec(r.stdout);
      assert.ok(m, r.stdout);
      const port = Number(m[2]);
      assert.ok(port >= 20000 && port <= 39999, `source port ${port} is in snatPorts`);
      seen.set(m[1] ?? '', (seen.get(m[1] ?? '') ?? 0) + 1);
    }
    assert.deepEqual([...seen.keys()].sort(), POOL, `the real servers saw: ${[...seen].join(', ')}`);

    // The balancer's conntrack says the same: replies of the VIP's flows go to both pool addresses.
    const listed = await run(['conntrack', '-L', '-p', 'tcp', '--orig-dst', REFERENCE_TOPOLOGY.vip], { netns: lb() });
    const replyTo = new Set(parseFlows(listed.stdout).map((f) => f.replyDst));
    assert.deepEqual([...replyTo].sort(), POOL, listed.stdout);

    const status = await lbCli(['status', '--json']);
    const snat = (JSON.parse(status.stdout) as { snat: { address: string; used: number; capacity: number }[] }).snat;
    assert.deepEqual(
      snat.map((u) => u.address),
      POOL,
    );
    assert.ok(
      snat.every((u) => u.capacity === 20000 * 2 && u.used > 0),
      status.stdout,
    );
    const text = await lbCli(['status']);
    assert.match(text.stdout, /source NAT ports/);

    const again = await lbCli(['plan', '-f', file]);
    assert.match(again.stdout, /no changes/, again.stdout);
  });

  it('a config that drops the conntrack keys puts those timeouts back at once, not only at destroy', async () => {
    const without = path.join(dir, 'no-conntrack.yaml');
    fs.writeFileSync(without, fs.readFileSync(file, 'utf8').replace(/^conntrack:\n( {2}\w+: \d+\n)+/, ''));
    const planned = await lbCli(['plan', '-f', without]);
    assert.match(planned.stdout, new RegExp(`sysctl ${TIME_WAIT.replace(/\./g, '\\.')} 7 -> ${timeWaitBefore}`), planned.stdout);
    const applied = await lbCli(['apply', '-f', without]);
    assert.equal(applied.code, 0, applied.stdout + applied.stderr);
    assert.equal((await run(['sysctl', '-n', TIME_WAIT], { netns: lb() })).stdout.trim(), timeWaitBefore);
    const again = await lbCli(['plan', '-f', without]);
    assert.match(again.stdout, /no changes/, `given back, the key is no longer slbctl's: ${again.stdout}`);
    // Back to the pool config with its timeouts, for destroy to put them back once more.
    const reapplied = await lbCli(['apply', '-f', file]);
    assert.equal(reapplied.code, 0, reapplied.stdout + reapplied.stderr);
    assert.equal((await run(['sysctl', '-n', TIME_WAIT], { netns: lb() })).stdout.trim(), '7');
  });

  it('destroy removes the pool addresses and puts the timeouts back', async () => {
    const destroyed = await lbCli(['destroy']);
    assert.equal(destroyed.code, 0, destroyed.stdout + destroyed.stderr);
    const addresses = await run(['ip', '-4', '-o', 'addr', 'show', 'dev', 'eth0'], { netns: lb() });
    for (const a of POOL) assert.doesNotMatch(addresses.stdout, new RegExp(`${a.replace(/\./g, '\\.')}/32`));
    assert.equal((await run(['sysctl', '-n', TIME_WAIT], { netns: lb() })).stdout.trim(), timeWaitBefore);
  });

  it('refuses a pool address the balancer cannot have, in one sentence (exit 2)', async () => {
    const bad = path.join(dir, 'bad.yaml');
    fs.writeFileSync(bad, fs.readFileSync(file, 'utf8').replace(POOL[1] ?? '', '10.99.0.1'));
    const r = await lbCli(['plan', '-f', bad]);
    assert.equal(r.code, 2, r.stdout + r.stderr);
    assert.match(
      r.stderr,
      /services\[0\]\.snatAddresses\[1\] \(tcp\/172\.16\.75\.84:80\): 10\.99\.0\.1 is on no subnet of this host, so the real servers' replies to it could not find this host; use addresses of the subnet that faces the real servers/,
    );
    const dup = path.join(dir, 'dup.yaml');
    fs.writeFileSync(dup, fs.readFileSync(file, 'utf8').replace(POOL[1] ?? '', POOL[0] ?? ''));
    const v = await lbCli(['validate', '-f', dup]);
    assert.equal(v.code, 2, v.stdout + v.stderr);
    assert.match(v.stderr, /snatAddresses\[1\]: 172\.16\.75\.90 duplicates snatAddresses\[0\]/);
  });
});
