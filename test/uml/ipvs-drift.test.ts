// Runs on a kernel with IPVS (started by test/integration/ipvs.test.ts):
// drift of every object slbctl owns beside IPVS. A service or destination
// deleted or changed with ipvsadm, the iptables source-NAT chain flushed,
// unhooked, hooked twice or given a rule by hand, the VIP removed: `plan`
// names each repair and `apply` makes it, then plan finds nothing.
import { after, before, describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { CLI_ENTRY } from '../../src/util/self';
import { run, runChecked } from '../../src/util/exec';

const CONFIG = `backend: ipvs
services:
  - { name: web, vip: 10.0.3.1, port: 80, mode: fullnat, realServers: [{ address: 10.0.3.2, port: 80 }, { address: 10.0.3.3, port: 80 }] }
  - { name: dsr, vip: 10.0.3.9, port: 80, mode: dsr, scheduler: wlc, realServers: [{ address: 10.0.3.2, port: 80, weight: 2 }] }
`;

const iptables = (...args: string[]) => runChecked(`iptables ${args.join(' ')}`, ['iptables-legacy', '-t', 'nat', ...args]);
const ipvsadm = (...args: string[]) => runChecked(`ipvsadm ${args.join(' ')}`, ['ipvsadm', ...args]);

const drifts: { name: string; edit: () => Promise<unknown>; plan: RegExp }[] = [
  { name: 'a service deleted', edit: () => ipvsadm('-D', '-t', '10.0.3.9:80'), plan: /\+ service tcp\/10\.0\.3\.9:80 "dsr" dsr wlc/ },
  {
    name: 'a destination deleted',
    edit: () => ipvsadm('-d', '-t', '10.0.3.1:80', '-r', '10.0.3.3:80'),
    plan: /\+ real server tcp\/10\.0\.3\.1:80 -> 10\.0\.3\.3:80 weight 1/,
  },
  {
    name: 'a weight changed',
    edit: () => ipvsadm('-e', '-t', '10.0.3.9:80', '-r', '10.0.3.2:80', '-g', '-w', '7'),
    plan: /~ real server tcp\/10\.0\.3\.9:80 -> 10\.0\.3\.2:80 weight 7 -> 2/,
  },
  {
    name: 'a scheduler changed',
    edit: () => ipvsadm('-E', '-t', '10.0.3.1:80', '-s', 'wrr'),
    plan: /~ service tcp\/10\.0\.3\.1:80: scheduler wrr -> rr/,
  },
  {
    name: 'the source-NAT chain flushed',
    edit: () => iptables('-F', 'SLBCTL-SNAT'),
    plan: /~ iptables chain SLBCTL-SNAT: \+ tcp\/10\.0\.3\.1:80 -> 10\.0\.3\.254/,
  },
  {
    name: 'the jump to the source-NAT chain deleted',
    edit: () => iptables('-D', 'POSTROUTING', '-j', 'SLBCTL-SNAT'),
    plan: /~ iptables chain SLBCTL-SNAT: 0 jumps from POSTROUTING -> 1/,
  },
  {
    name: 'a second jump added',
    edit: () => iptables('-A', 'POSTROUTING', '-j', 'SLBCTL-SNAT'),
    plan: /~ iptables chain SLBCTL-SNAT: 2 jumps from POSTROUTING -> 1/,
  },
  {
    name: 'a foreign rule in the source-NAT chain',
    edit: () => iptables('-A', 'SLBCTL-SNAT', '-p', 'udp', '-j', 'RETURN'),
    plan: /~ iptables chain SLBCTL-SNAT: 1 rule not slbctl's removed/,
  },
  {
    name: 'the whole source-NAT chain removed',
    edit: async () => {
      await iptables('-D', 'POSTROUTING', '-j', 'SLBCTL-SNAT');
      await iptables('-F', 'SLBCTL-SNAT');
      await iptables('-X', 'SLBCTL-SNAT');
    },
    plan: /~ iptables chain SLBCTL-SNAT: chain SLBCTL-SNAT created, 0 jumps from POSTROUTING -> 1/,
  },
  {
    name: 'the VIP removed from the interface',
    edit: () => runChecked('ip', ['ip', 'addr', 'del', '10.0.3.1/32', 'dev', 'slbd0']),
    plan: /\+ address 10\.0\.3\.1\/32 dev slbd0/,
  },
];

describe('drift of every object slbctl owns (IPVS and its iptables chain)', () => {
  let dir = '';
  let file = '';
  const slbctl = (...args: string[]) => run([process.execPath, CLI_ENTRY, ...args]);

  before(async () => {
    await run(['ip', 'link', 'add', 'slbd0', 'type', 'veth', 'peer', 'name', 'slbd1']);
    await runChecked('addr', ['ip', 'addr', 'replace', '10.0.3.254/24', 'dev', 'slbd0']);
    await runChecked('up', ['ip', 'link', 'set', 'slbd0', 'up']);
    // From forwarding off, so destroy has a value of its own to put back.
    fs.writeFileSync('/proc/sys/net/ipv4/ip_forward', '0\n');
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'slbctl-ipvs-drift-'));
    file = path.join(dir, 'drift.yaml');
    fs.writeFileSync(file, CONFIG);
    const r = await slbctl('apply', '-f', file);
    assert.equal(r.code, 0, r.stdout + r.stderr);
  });
  after(async () => {
    await slbctl('destroy', '--force');
    await run(['ip', 'link', 'del', 'slbd0']);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  for (const d of drifts) {
    it(`${d.name}: plan names the repair, apply makes it`, async () => {
      await d.edit();
      const planned = await slbctl('plan', '-f', file, '--detailed-exitcode');
      assert.equal(planned.code, 2, `plan must find changes:\n${planned.stdout}${planned.stderr}`);
      assert.match(planned.stdout, d.plan);
      const applied = await slbctl('apply', '-q', '-f', file);
      assert.equal(applied.code, 0, applied.stdout + applied.stderr);
      const again = await slbctl('plan', '-f', file, '--detailed-exitcode');
      assert.equal(again.code, 0, `after the repair plan must find nothing:\n${again.stdout}`);
    });
  }

  it('destroy removes the services, the chain and its jump, the VIPs, and puts ip_forward back', async () => {
    const r = await slbctl('destroy');
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.equal((await ipvsadm('-Sn')).stdout.trim(), '');
    assert.doesNotMatch((await iptables('-S')).stdout, /SLBCTL-SNAT/);
    assert.doesNotMatch((await runChecked('ip', ['ip', '-o', '-4', 'addr', 'show', 'dev', 'slbd0'])).stdout, /10\.0\.3\.(1|9)\//);
    assert.match(r.stdout, /~ sysctl net\.ipv4\.ip_forward 1 -> 0/);
    assert.equal(fs.readFileSync('/proc/sys/net/ipv4/ip_forward', 'utf8').trim(), '0');
    const again = await slbctl('apply', '-q', '-f', file);
    assert.equal(again.code, 0, again.stdout + again.stderr);
  });
});
