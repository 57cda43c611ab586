// A VIP another host on the segment already holds is refused (exit 2) before
// anything changes, whether the balancer learns that from its neighbour table
// or from an ARP request it sends; `vipAlreadyPresent: allow` adds it anyway;
// with nobody holding it, the ARP request leaves no neighbour entry behind.
// A VIP or real server that is a subnet's network or broadcast address is
// refused too. Two namespaces of the test's own: the balancer's eth0 and, on
// the same segment, a "holder" that may carry the VIP.
import { after, before, describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { run, runChecked, RunResult } from '../../src/util/exec';
import { CLI_ENTRY } from '../../src/util/self';
import { createBalancerNetns, deleteNetns } from '../helpers/balancer-netns';

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
const tag = `${process.pid}-${Math.floor(Math.random() * 1e6)}`;
const lb = `slbt-vip-lb-${tag}`;
const holder = `slbt-vip-ho-${tag}`;
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'slbctl-vip-'));
const VIP = '172.16.75.84';

function config(name: string, { vip = VIP, rs = '172.16.75.82', top = '', service = '' } = {}): string {
  const file = path.join(dir, name);
  fs.writeFileSync(
    file,
    `${top}services:
  - name: web
    vip: ${vip}
    port: 80
    mode: fullnat
${service}    realServers:
      - { address: ${rs}, port: 80 }
`,
  );
  return file;
}

function slbctl(args: string[]): Promise<RunResult> {
  return run([process.execPath, CLI_ENTRY, ...args], { netns: lb });
}

/** What a refused apply must leave as it was: rules, addresses, ip_forward. */
async function kernelSnapshot(): Promise<string> {
  const rules = await run(['nft', 'list', 'ruleset'], { netns: lb });
  const addrs = await run(['ip', '-o', '-4', 'addr', 'show'], { netns: lb });
  const fwd = await run(['cat', '/proc/sys/net/ipv4/ip_forward'], { netns: lb });
  return `${rules.stdout}\n${addrs.stdout.replace(/valid_lft.*$/gm, '')}\n${fwd.stdout}`;
}

async function neighbourOfVip(): Promise<string> {
  return (await run(['ip', '-n', lb, 'neigh', 'show', 'to', VIP])).stdout.trim();
}

async function destroy(): Promise<void> {
  const r = await slbctl(['destroy']);
  assert.equal(r.code, 0, r.stderr);
  await run(['sysctl', '-qw', 'net.ipv4.ip_forward=0'], { netns: lb });
}

describe('VIPs and real servers checked against this host and its segment', { skip: isRoot ? false : 'needs root' }, () => {
  let holderMac = '';

  before(async () => {
    // createBalancerNetns gives eth0 (172.16.75.83/24) and its veth peer; the peer moves to the holder.
    await createBalancerNetns(lb);
    await runChecked('holder netns', ['ip', 'netns', 'add', holder]);
    await runChecked('no ipv6', ['sysctl', '-qw', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1'], {
      netns: holder,
    });
    await runChecked('peer to holder', ['ip', '-n', lb, 'link', 'set', 'peer0', 'netns', holder]);
    await runChecked('holder addr', ['ip', '-n', holder, 'addr', 'add', '172.16.75.90/24', 'dev', 'peer0']);
    for (const dev of ['peer0', 'lo']) await runChecked('holder up', ['ip', '-n', holder, 'link', 'set', dev, 'up']);
    holderMac =
      (JSON.parse((await runChecked('mac', ['ip', '-n', holder, '-j', 'link', 'show', 'peer0'])).stdout) as { address: string }[])[0]
        ?.address ?? '';
    assert.match(holderMac, /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/);
  });
  after(async () => {
    await deleteNetns(lb);
    await deleteNetns(holder);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('a VIP the holder answers ARP for: apply exits 2 naming it, adds nothing; then the neighbour table alone is enough', async () => {
    await runChecked('holder takes the VIP', ['ip', '-n', holder, 'addr', 'add', `${VIP}/24`, 'dev', 'peer0']);
    try {
      assert.equal(await neighbourOfVip(), '', 'the balancer has not heard of the VIP yet');
      const file = config('held.yaml');
      const before = await kernelSnapshot();
      const r = await slbctl(['apply', '-f', file]);
      assert.equal(r.code, 2, r.stdout + r.stderr);
      assert.equal(
        r.stderr,
        `slbctl: services[0].vip (tcp/${VIP}:80): ${VIP} is already held by another host: ${holderMac} answered an ARP request for it on eth0; adding it here too would have two hosts answer for it. Remove it from that host or choose another VIP; if it is meant to move here, set vipAlreadyPresent: allow on the service (or at the top of the config)\n`,
      );
      assert.equal(await kernelSnapshot(), before, 'nothing was added');
      // The answer is now in the balancer's neighbour table: the next apply is refused from it, without asking again.
      assert.match(await neighbourOfVip(), new RegExp(`lladdr ${holderMac} (REACHABLE|STALE|DELAY)`));
      const again = await slbctl(['apply', '-f', file]);
      assert.equal(again.code, 2);
      assert.match(
        again.stderr,
        new RegExp(`already held by another host: this host's neighbour table has it at ${holderMac} \\((reachable|stale|delay)\\)`),
      );
      const plan = await slbctl(['plan', '-f', file]);
      assert.equal(plan.code, 2, 'plan shows the refusal apply would meet');
      assert.equal(await kernelSnapshot(), before);
    } finally {
      await run(['ip', '-n', holder, 'addr', 'del', `${VIP}/24`, 'dev', 'peer0']);
      await run(['ip', '-n', lb, 'neigh', 'flush', 'to', VIP]);
    }
  });

  it('vipAlreadyPresent: allow (on the service, or at the top) adds the held VIP anyway', async () => {
    await runChecked('holder takes the VIP', ['ip', '-n', holder, 'addr', 'add', `${VIP}/24`, 'dev', 'peer0']);
    try {
      for (const [name, where] of [
        ['service', { service: '    vipAlreadyPresent: allow\n' }],
        ['top', { top: 'vipAlreadyPresent: allow\n' }],
      ] as const) {
        const r = await slbctl(['apply', '-f', config(`allow-${name}.yaml`, where)]);
        assert.equal(r.code, 0, `${name}: ${r.stderr}`);
        assert.match(r.stdout, /applied \d+ operations/);
        const addrs = await run(['ip', '-n', lb, '-o', '-4', 'addr', 'show', 'dev', 'eth0']);
        assert.match(addrs.stdout, new RegExp(`${VIP.replace(/\./g, '\\.')}/32`));
        await destroy();
      }
    } finally {
      await run(['ip', '-n', holder, 'addr', 'del', `${VIP}/24`, 'dev', 'peer0']);
      await run(['ip', '-n', lb, 'neigh', 'flush', 'to', VIP]);
    }
  });

  it('a VIP nobody holds is added, and the unanswered ARP request leaves no neighbour entry', async () => {
    try {
      const r = await slbctl(['apply', '-f', config('free.yaml')]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(await neighbourOfVip(), '');
      // Re-applying adds no address, so nothing is asked: still no entry, and no changes.
      const again = await slbctl(['apply', '-f', config('free.yaml')]);
      assert.equal(again.stdout, 'no changes\n');
    } finally {
      await destroy();
    }
  });

  it('1,500 new VIPs nobody holds: asked in batches the neighbour table holds (it refuses entries past gc_thresh3), all added', async () => {
    // A /21 of the test's own on the balancer's eth0, so every VIP is on a connected subnet and asked about.
    await runChecked('a /21', ['ip', '-n', lb, 'addr', 'add', '10.99.0.1/21', 'dev', 'eth0']);
    try {
      const vips = Array.from({ length: 1500 }, (_, i) => `10.99.${1 + Math.floor(i / 250)}.${1 + (i % 250)}`);
      const file = path.join(dir, 'many.yaml');
      fs.writeFileSync(
        file,
        `services:\n${vips.map((v, i) => `  - { name: s${i}, vip: ${v}, port: 80, mode: fullnat, realServers: [{ address: 172.16.75.82, port: 80 }] }\n`).join('')}`,
      );
      const r = await slbctl(['apply', '-q', '-f', file]);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      const addrs = await run(['ip', '-n', lb, '-o', '-4', 'addr', 'show', 'dev', 'eth0']);
      assert.equal(addrs.stdout.split('\n').filter((l) => / 10\.99\.\d+\.\d+\/32 /.test(l)).length, 1500);
      const neigh = await run(['ip', '-n', lb, 'neigh', 'show', 'dev', 'eth0']);
      assert.doesNotMatch(neigh.stdout, /10\.99\./, 'the unanswered requests left no entries');
    } finally {
      await destroy();
      await run(['ip', '-n', lb, 'addr', 'del', '10.99.0.1/21', 'dev', 'eth0']);
    }
  });

  const edges: [string, { vip?: string; rs?: string }, RegExp][] = [
    [
      "a VIP that is the subnet's broadcast address",
      { vip: '172.16.75.255' },
      /^slbctl: services\[0\]\.vip \(tcp\/172\.16\.75\.255:80\): 172\.16\.75\.255 is the broadcast address of 172\.16\.75\.0\/24 on eth0, which reaches every host there, not one; choose a host address inside the subnet\n$/,
    ],
    [
      "a real server that is the subnet's network address",
      { rs: '172.16.75.0' },
      /^slbctl: services\[0\]\.realServers\[0\]\.address \(tcp\/172\.16\.75\.84:80\): 172\.16\.75\.0 is the network address of 172\.16\.75\.0\/24 on eth0, which names the subnet, not a host in it; choose a host address inside the subnet\n$/,
    ],
  ];
  for (const [name, where, message] of edges) {
    it(`${name}: exit 2, nothing changed`, async () => {
      const before = await kernelSnapshot();
      const r = await slbctl(['apply', '-f', config('edge.yaml', where)]);
      assert.equal(r.code, 2, r.stdout + r.stderr);
      assert.match(r.stderr, message);
      assert.equal(await kernelSnapshot(), before);
    });
  }
});
