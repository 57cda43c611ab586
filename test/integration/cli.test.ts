// The CLI against the real kernel in a namespace of its own: plan/apply/
// status/destroy, and every kind of bad input gets one clear sentence, a
// documented exit code, and leaves the kernel exactly as it was.
import { after, before, describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { run, runChecked, RunResult } from '../../src/util/exec';
import { CLI_ENTRY } from '../../src/util/self';
import { createBalancerNetns, deleteNetns } from '../helpers/balancer-netns';

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
const ns = `slbt-cli-${process.pid}-${Math.floor(Math.random() * 1e6)}`;
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'slbctl-cli-'));

function config(name: string, body: string): string {
  const file = path.join(dir, name);
  fs.writeFileSync(file, body);
  return file;
}

const service = (mode: string, vip = '172.16.75.84', extra = '') => `services:
  - name: web
    vip: ${vip}
    port: 80
    mode: ${mode}
${extra}    realServers:
      - { address: 172.16.75.82, port: 80 }
      - { address: 172.16.75.85, port: 80, weight: 2 }
`;

/** slbctl inside the test's namespace; `path` replaces PATH for slbctl only (not for `ip`). */
function slbctl(args: string[], pathOverride?: string): Promise<RunResult> {
  const prefix = pathOverride ? ['/usr/bin/env', `PATH=${pathOverride}`] : [];
  return run([...prefix, process.execPath, CLI_ENTRY, ...args], { netns: ns });
}

/** Everything of the namespace's kernel state a bad input must not change. */
async function kernelSnapshot(): Promise<string> {
  const rules = await run(['nft', 'list', 'ruleset'], { netns: ns });
  const addrs = await run(['ip', '-o', '-4', 'addr', 'show'], { netns: ns });
  const fwd = await run(['cat', '/proc/sys/net/ipv4/ip_forward'], { netns: ns });
  return `${rules.stdout}\n${addrs.stdout.replace(/valid_lft.*$/gm, '')}\n${fwd.stdout}`;
}

describe('slbctl CLI on the kernel', { skip: isRoot ? false : 'needs root' }, () => {
  before(async () => {
    // Two veth ends inside the namespace: a LB-side eth0 and a peer holding the RS addresses.
    await createBalancerNetns(ns);
  });
  after(async () => {
    await deleteNetns(ns);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('plan, apply, re-apply, one-weight change, status, destroy', async () => {
    const file = config('ok.yaml', service('fullnat'));
    const plan = await slbctl(['plan', '-f', file, '--no-nft']);
    assert.equal(plan.code, 0, plan.stderr);
    assert.equal(
      plan.stdout,
      [
        'backend: nft',
        '~ sysctl net.ipv4.ip_forward 0 -> 1',
        '+ table ip slbctl',
        '+ address 172.16.75.84/32 dev eth0',
        '+ service tcp/172.16.75.84:80 "web" fullnat rr dev eth0 snat 172.16.75.83',
        '+   real server 172.16.75.82:80 weight 1',
        '+   real server 172.16.75.85:80 weight 2',
        '',
      ].join('\n'),
    );
    assert.equal((await slbctl(['plan', '-f', file, '--detailed-exitcode'])).code, 2);
    assert.equal((await slbctl(['apply', '-f', file])).code, 0);
    const again = await slbctl(['apply', '-f', file]);
    assert.equal(again.stdout, 'no changes\n');
    assert.equal((await slbctl(['plan', '-f', file, '--detailed-exitcode'])).code, 0);
    const heavier = config('heavier.yaml', service('fullnat').replace('weight: 2', 'weight: 5'));
    const change = await slbctl(['apply', '-f', heavier]);
    assert.match(change.stdout, /^~ real server tcp\/172\.16\.75\.84:80 -> 172\.16\.75\.85:80 weight 2 -> 5$/m);
    assert.match(change.stdout, /applied 1 operation\n/);
    const status = JSON.parse((await slbctl(['status', '--json'])).stdout) as {
      services: { mode: string; realServers: { weight: number }[] }[];
    };
    assert.equal(status.services[0]?.mode, 'fullnat');
    assert.deepEqual(
      status.services[0]?.realServers.map((r) => r.weight),
      [1, 5],
    );
    const destroy = await slbctl(['destroy']);
    assert.equal(destroy.code, 0, destroy.stderr);
    const rules = await run(['nft', 'list', 'ruleset'], { netns: ns });
    assert.doesNotMatch(rules.stdout, /slbctl/);
    const addrs = await run(['ip', '-o', 'addr', 'show', 'dev', 'eth0'], { netns: ns });
    assert.doesNotMatch(addrs.stdout, /172\.16\.75\.84/);
    await run(['sysctl', '-qw', 'net.ipv4.ip_forward=0'], { netns: ns });
  });

  it('never removes an address or a table it did not create', async () => {
    await runChecked('addr', ['ip', '-n', ns, 'addr', 'add', '172.16.75.84/32', 'dev', 'eth0']);
    await runChecked('nft', ['nft', 'add', 'table', 'ip', 'someone_else'], { netns: ns });
    try {
      const file = config('own.yaml', service('transparent'));
      assert.equal((await slbctl(['apply', '-f', file])).code, 0);
      assert.equal((await slbctl(['destroy'])).code, 0);
      const addrs = await run(['ip', '-o', 'addr', 'show', 'dev', 'eth0'], { netns: ns });
      assert.match(addrs.stdout, /172\.16\.75\.84\/32/, "the operator's VIP stays");
      const rules = await run(['nft', 'list', 'tables'], { netns: ns });
      assert.match(rules.stdout, /someone_else/);
    } finally {
      await run(['ip', '-n', ns, 'addr', 'del', '172.16.75.84/32', 'dev', 'eth0']);
      await run(['nft', 'delete', 'table', 'ip', 'someone_else'], { netns: ns });
      await run(['sysctl', '-qw', 'net.ipv4.ip_forward=0'], { netns: ns });
    }
  });

  const badCases: { name: string; args: () => string[]; code: number; message: RegExp; path?: string }[] = [
    {
      name: 'a config error names the path',
      args: () => ['apply', '-f', config('bad.yaml', service('fullnat').replace('172.16.75.85', '172.16.75.300'))],
      code: 2,
      message: /services\[0\]\.realServers\[1\]\.address: "172\.16\.75\.300" is not an IPv4 address/,
    },
    {
      name: 'an unknown mode',
      args: () => ['apply', '-f', config('mode.yaml', service('bridge'))],
      code: 2,
      message: /services\[0\]\.mode: "bridge" is not a known mode; use one of fullnat, transparent, dsr/,
    },
    {
      name: 'a VIP on no interface',
      args: () => ['apply', '-f', config('novip.yaml', service('fullnat', '192.0.2.10'))],
      code: 2,
      message: /VIP 192\.0\.2\.10 is on no interface/,
    },
    {
      name: 'the IPVS backend on a kernel without IPVS',
      args: () => ['apply', '--backend', 'ipvs', '-f', config('ipvs.yaml', service('dsr'))],
      code: 3,
      message: /backend ipvs: the kernel has no IPVS .*modprobe ip_vs/,
    },
    {
      name: 'a missing config file',
      args: () => ['apply', '-f', path.join(dir, 'nope.yaml')],
      code: 2,
      message: /cannot read config .*nope\.yaml: no such file/,
    },
    {
      name: 'a missing nft binary',
      args: () => ['apply', '-f', config('nonft.yaml', service('fullnat'))],
      path: '/nonexistent',
      code: 3,
      message: /nft program is not installed.*apt-get install nftables/,
    },
  ];
  for (const c of badCases) {
    it(`bad input: ${c.name} -> one sentence, exit ${c.code}, kernel untouched`, async () => {
      const before = await kernelSnapshot();
      const r = await slbctl(c.args(), c.path);
      assert.equal(r.code, c.code, `${r.stdout}${r.stderr}`);
      assert.match(r.stderr, c.message);
      assert.equal(await kernelSnapshot(), before);
    });
  }

  it('bad input: not root (no CAP_NET_ADMIN) -> exit 3, kernel untouched', async () => {
    const before = await kernelSnapshot();
    const file = config('user.yaml', service('fullnat'));
    fs.chmodSync(dir, 0o755);
    fs.chmodSync(file, 0o644);
    const r = await run([
      'ip',
      'netns',
      'exec',
      ns,
      'setpriv',
      '--reuid=65534',
      '--regid=65534',
      '--clear-groups',
      process.execPath,
      CLI_ENTRY,
      'apply',
      '-f',
      file,
    ]);
    assert.equal(r.code, 3, r.stderr);
    assert.match(r.stderr, /needs CAP_NET_ADMIN/);
    assert.equal(await kernelSnapshot(), before);
  });

  it('a transaction the kernel rejects is rolled back: VIP and sysctl restored', async () => {
    // A UDP service first (its table is whole), then backends_tcp is swapped for one of the right
    // type that holds one element: the TCP service's two slots make the kernel refuse the transaction
    // after the VIP was added.
    const udp = `services:\n  - { name: dns, vip: 172.16.75.90, port: 53, protocol: udp, mode: fullnat, realServers: [{ address: 172.16.75.82, port: 53 }] }\n`;
    const first = await slbctl(['apply', '-f', config('udp.yaml', udp)]);
    assert.equal(first.code, 0, `${first.stdout}${first.stderr}`);
    await runChecked('nft', ['nft', '-f', '-'], {
      netns: ns,
      input:
        'delete map ip slbctl backends_tcp\nadd map ip slbctl backends_tcp { typeof ip daddr . tcp dport . numgen inc mod 1 : ip daddr . tcp dport; size 1; }\n',
    });
    try {
      const before = await kernelSnapshot();
      const both = `${udp}  - { name: web, vip: 172.16.75.84, port: 80, mode: fullnat, realServers: [{ address: 172.16.75.82, port: 80 }, { address: 172.16.75.85, port: 80 }] }\n`;
      const r = await slbctl(['apply', '-f', config('reject.yaml', both)]);
      assert.equal(r.code, 4, `${r.stdout}${r.stderr}`);
      assert.match(r.stderr, /nftables: transaction rejected, nothing was changed/);
      assert.equal(await kernelSnapshot(), before);
    } finally {
      await slbctl(['destroy']);
    }
  });
});
