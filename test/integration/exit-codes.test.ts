// The README's exit codes on the nftables backend, in a namespace of the
// test's own (the same suite runs on IPVS inside user-mode-linux:
// test/uml/exit-codes.test.ts).
import { after, before, describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { CLI_ENTRY } from '../../src/util/self';
import { run, runChecked } from '../../src/util/exec';
import { createBalancerNetns, deleteNetns } from '../helpers/balancer-netns';
import { ExitCodeEnv, exitCodeSuite } from '../helpers/exit-codes';

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
const ns = `slbt-exit-${process.pid}`;
let dir = '';

const service = (vip: string, port: number, protocol = 'tcp') =>
  `  - { name: s${port}, vip: ${vip}, port: ${port}, protocol: ${protocol}, mode: fullnat, realServers: [{ address: 172.16.75.82, port: ${port} }, { address: 172.16.75.85, port: ${port} }] }\n`;

const env = (): ExitCodeEnv => ({
  backend: 'nft',
  prefix: ['ip', 'netns', 'exec', ns],
  dir,
  slbctl: (args, o = {}) =>
    run([
      'ip',
      'netns',
      'exec',
      ns,
      ...(o.path ? ['/usr/bin/env', `PATH=${o.path}`] : []),
      ...(o.nobody ? ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups'] : []),
      process.execPath,
      CLI_ENTRY,
      ...args,
    ]),
  snapshot: async () => {
    const rules = await run(['nft', 'list', 'ruleset'], { netns: ns });
    const addrs = await run(['ip', '-o', '-4', 'addr', 'show'], { netns: ns });
    const fwd = await run(['sysctl', '-n', 'net.ipv4.ip_forward'], { netns: ns });
    return `${rules.stdout}\n${addrs.stdout.replace(/valid_lft.*$/gm, '')}\n${fwd.stdout}`;
  },
  goodConfig: `backend: nft\nservices:\n${service('172.16.75.84', 80)}`,
  kernelRefusal: async () => {
    // A UDP service makes the table whole; then backends_tcp is swapped for one that holds a single element.
    const udp = `backend: nft\nservices:\n${service('172.16.75.90', 53, 'udp')}`;
    const file = path.join(dir, 'udp.yaml');
    fs.writeFileSync(file, udp);
    await runChecked('apply udp', ['ip', 'netns', 'exec', ns, process.execPath, CLI_ENTRY, 'apply', '-q', '-f', file]);
    await runChecked('nft', ['nft', '-f', '-'], {
      netns: ns,
      input:
        'delete map ip slbctl backends_tcp\nadd map ip slbctl backends_tcp { typeof ip daddr . tcp dport . numgen inc mod 1 : ip daddr . tcp dport; size 1; }\n',
    });
    return {
      config: `${udp}${service('172.16.75.84', 80)}`,
      refusal: /nftables: transaction rejected, nothing was changed/,
      undo: async () => {
        await run(['ip', 'netns', 'exec', ns, process.execPath, CLI_ENTRY, 'destroy']);
      },
    };
  },
  missingProgram: {
    path: '/nonexistent',
    config: `backend: nft\nservices:\n${service('172.16.75.84', 80)}`,
    message: /the nft program is not installed/,
  },
});

if (isRoot) {
  before(async () => {
    await createBalancerNetns(ns);
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'slbctl-exit-'));
    fs.chmodSync(dir, 0o755);
  });
  after(async () => {
    await deleteNetns(ns);
    fs.rmSync(dir, { recursive: true, force: true });
  });
  exitCodeSuite('nftables (a namespace of its own)', env);

  describe('an L7 service with HAProxy missing', () => {
    it('exits 3 in one sentence naming scripts/setup.sh, nothing changed', async () => {
      // A PATH with nft (and the tools slbctl runs besides) but no haproxy.
      const bin = fs.mkdtempSync(path.join(os.tmpdir(), 'slbctl-nohaproxy-'));
      try {
        for (const tool of ['nft', 'ip', 'openssl']) {
          const found = ['/usr/sbin', '/usr/bin', '/sbin', '/bin'].map((d) => path.join(d, tool)).find((f) => fs.existsSync(f));
          if (found) fs.symlinkSync(found, path.join(bin, tool));
        }
        const file = path.join(dir, 'l7.yaml');
        fs.writeFileSync(file, `backend: nft\nservices:\n${service('172.16.75.84', 80, 'http')}`);
        const before = await env().snapshot();
        const r = await env().slbctl(['apply', '-f', file], { path: bin });
        assert.equal(r.code, 3, r.stdout + r.stderr);
        assert.match(r.stderr.trim(), /^slbctl: haproxy is not installed: run scripts\/setup\.sh/);
        assert.equal(r.stderr.trim().split('\n').length, 1, 'one sentence');
        assert.equal(await env().snapshot(), before, 'nothing changed');
      } finally {
        fs.rmSync(bin, { recursive: true, force: true });
      }
    });
  });

  describe('slbctl run with ha.bgp and BIRD missing', () => {
    it('exits 3 in one sentence naming bird2 and scripts/setup.sh, nothing changed', async () => {
      const bin = fs.mkdtempSync(path.join(os.tmpdir(), 'slbctl-nobird-'));
      try {
        for (const tool of ['nft', 'ip']) {
          const found = ['/usr/sbin', '/usr/bin', '/sbin', '/bin'].map((d) => path.join(d, tool)).find((f) => fs.existsSync(f));
          if (found) fs.symlinkSync(found, path.join(bin, tool));
        }
        const file = path.join(dir, 'bgp.yaml');
        fs.writeFileSync(
          file,
          `backend: nft\nha:\n  bgp:\n    asn: 65001\n    peers: [{ address: 172.16.75.1, asn: 65000 }]\nservices:\n${service('172.16.75.84', 80)}`,
        );
        const before = await env().snapshot();
        const r = await env().slbctl(['run', '-f', file, '--metrics', 'off'], { path: bin });
        assert.equal(r.code, 3, r.stdout + r.stderr);
        assert.match(r.stderr, /ha\.bgp needs BIRD 2 .*bird2.*scripts\/setup\.sh/);
        assert.equal(await env().snapshot(), before, 'nothing changed');
      } finally {
        fs.rmSync(bin, { recursive: true, force: true });
      }
    });
  });

  describe('slbctl run with ha.vrrp', () => {
    const vrrp = (iface: string, sync: boolean) =>
      `backend: nft\nha:\n  vrrp: { interface: ${iface}, virtualRouterId: 51, priority: 100 }\n${
        sync ? '  sync: { engine: conntrackd, interface: eth0, peer: 172.16.75.86 }\n' : ''
      }services:\n${service('172.16.75.84', 80)}`;

    for (const [missing, sync, message] of [
      ['keepalived', false, /ha\.vrrp needs keepalived, which is not installed; run scripts\/setup\.sh or apt-get install keepalived/],
      ['conntrackd', true, /ha\.sync needs conntrackd, which is not installed; run scripts\/setup\.sh or apt-get install conntrackd/],
    ] as const) {
      it(`${missing} missing: exits 3 in one sentence naming scripts/setup.sh, nothing changed`, async () => {
        const bin = fs.mkdtempSync(path.join(os.tmpdir(), `slbctl-no${missing}-`));
        try {
          for (const tool of ['nft', 'ip', 'keepalived', 'conntrackd'].filter((t) => t !== missing)) {
            const found = ['/usr/sbin', '/usr/bin', '/sbin', '/bin'].map((d) => path.join(d, tool)).find((f) => fs.existsSync(f));
            if (found) fs.symlinkSync(found, path.join(bin, tool));
          }
          const file = path.join(dir, `no-${missing}.yaml`);
          fs.writeFileSync(file, vrrp('eth0', sync));
          const before = await env().snapshot();
          const r = await env().slbctl(['run', '-f', file, '--metrics', 'off'], { path: bin });
          assert.equal(r.code, 3, r.stdout + r.stderr);
          assert.match(r.stderr, message);
          assert.equal(await env().snapshot(), before, 'nothing changed');
        } finally {
          fs.rmSync(bin, { recursive: true, force: true });
        }
      });
    }

    it('an interface this host lacks: exits 2 in one sentence naming the ones it has, nothing changed', async () => {
      const file = path.join(dir, 'no-interface.yaml');
      fs.writeFileSync(file, vrrp('eth9', false));
      const before = await env().snapshot();
      const r = await env().slbctl(['run', '-f', file, '--metrics', 'off']);
      assert.equal(r.code, 2, r.stdout + r.stderr);
      assert.match(r.stderr, /ha\.vrrp\.interface: "eth9" does not exist on this host \(it has lo, peer0, eth0\)/);
      assert.equal(await env().snapshot(), before, 'nothing changed');
    });
  });
}
