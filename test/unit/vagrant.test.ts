// The Vagrant lab's pure parts: the VM plan derived from the topology, the
// one shell-quoting helper every remote command goes through, and the real
// servers' steps per mode.
import { describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { REFERENCE_TOPOLOGY } from '../../src/lab/topology';
import { vagrantPlan } from '../../src/vagrant/plan';
import { shellCommand, shellQuote } from '../../src/vagrant/ssh';
import { VM_PLACE } from '../../src/vagrant/mode';
import { realServerSteps } from '../../src/lab/rs-steps';
import { Encapsulation, Mode } from '../../src/model/types';
import { managementNet } from '../../src/vagrant/lab';
import { renderRouterBird } from '../../src/lab/ha';

describe('vagrant plan', () => {
  it('puts the reference addresses on four VMs, the router in the client VM', () => {
    const plan = vagrantPlan(REFERENCE_TOPOLOGY);
    assert.deepEqual(
      plan.vms.map((v) => v.name),
      ['client', 'lb', 'rs1', 'rs2'],
    );
    const args = (name: string) => plan.vms.find((v) => v.name === name)?.provision ?? [];
    assert.ok(args('client').includes('client_cidr=10.8.21.40/24'));
    assert.ok(args('client').includes('router_cidr=172.16.75.1/24'));
    assert.ok(args('client').includes('router_client_cidr=10.8.21.1/24'));
    assert.ok(args('lb').includes('cidr=172.16.75.83/24'));
    assert.ok(args('rs1').includes('cidr=172.16.75.82/24') && args('rs1').includes('http_name=rs1'));
    assert.ok(args('rs2').includes('cidr=172.16.75.85/24'));
    for (const vm of plan.vms) assert.ok(vm.provision.includes('router=172.16.75.1') && vm.provision.includes('client_net=10.8.21.0/24'));
  });

  it('adds lb2 (172.16.75.86) with two balancers, and BIRD on the router and both balancers; one balancer stays four VMs without it', () => {
    const plan = vagrantPlan(REFERENCE_TOPOLOGY, 2);
    assert.deepEqual(
      plan.vms.map((v) => v.name),
      ['client', 'lb', 'lb2', 'rs1', 'rs2'],
    );
    const args = (name: string) => plan.vms.find((v) => v.name === name)?.provision ?? [];
    assert.ok(args('lb2').includes('role=balancer') && args('lb2').includes('cidr=172.16.75.86/24'));
    for (const vm of ['client', 'lb', 'lb2']) assert.ok(args(vm).includes('bgp=yes'), vm);
    for (const vm of ['rs1', 'rs2']) assert.ok(!args(vm).includes('bgp=yes'), vm);
    assert.ok(vagrantPlan(REFERENCE_TOPOLOGY).vms.every((v) => !v.provision.includes('bgp=yes')));
    assert.deepEqual(vagrantPlan(REFERENCE_TOPOLOGY, 1), vagrantPlan(REFERENCE_TOPOLOGY));
  });

  it("renders the router's BIRD with BFD on the client VM's lab NIC", () => {
    const conf = renderRouterBird(REFERENCE_TOPOLOGY, 'eth1');
    assert.match(conf, /interface "eth1"/);
    assert.match(conf, /neighbor 172\.16\.75\.86 as 65001/);
    assert.match(renderRouterBird(REFERENCE_TOPOLOGY), /interface "br0"/);
  });

  it('gives each lab a management network outside the lab ranges', () => {
    for (const lab of ['slb', 'vt', 'a-very-long1']) assert.match(managementNet(lab), /^192\.168\.2[0-3]\d\.0\/24$/);
  });
});

describe('shellQuote', () => {
  it('round-trips any argument through sh', () => {
    const argv = ['printf', '%s|', 'plain', 'with space', "it's", '$(id) `x` $HOME', 'a"b', '', 'new\nline', '*'];
    const r = spawnSync('sh', ['-c', shellCommand(argv)], { encoding: 'utf8' });
    assert.equal(r.stdout, `${argv.slice(2).join('|')}|`);
  });
  it('leaves plain words alone', () => {
    assert.equal(shellQuote('172.16.75.84/32'), '172.16.75.84/32');
    assert.equal(shellQuote('a b'), "'a b'");
  });
});

describe('real server steps', () => {
  const text = (mode: Mode, enc: Encapsulation = 'none') => {
    const steps = realServerSteps(mode, REFERENCE_TOPOLOGY, enc, VM_PLACE);
    return [...steps.reset, ...steps.own].map((s) => s.argv.join(' '));
  };
  it('fullnat: only the reset, client network via the router', () => {
    assert.ok(text('fullnat').includes('ip route replace 10.8.21.0/24 via 172.16.75.1 dev eth1'));
    assert.ok(!text('fullnat').some((l) => l.startsWith('ip addr add')));
  });
  it('transparent: replies to the client go back through the LB', () => {
    assert.equal(text('transparent').at(-1), 'ip route replace 10.8.21.0/24 via 172.16.75.83 dev eth1');
  });
  it('dsr: ARP settings before the VIP appears on lo', () => {
    const steps = text('dsr');
    const vip = steps.indexOf('ip addr add 172.16.75.84/32 dev lo');
    assert.ok(vip > steps.indexOf('sysctl -qw net.ipv4.conf.eth1.arp_ignore=1'));
    assert.ok(vip > steps.indexOf('sysctl -qw net.ipv4.conf.all.arp_announce=2'));
    assert.ok(text('dsr', 'ipip').includes('ip link set tunl0 up'));
  });
});

describe('real server steps in the netns lab (the same list, another place)', () => {
  const place = { device: 'eth0', clientRoute: 'default' as const, canLoadModules: false };
  const text = (mode: Mode, enc: Encapsulation = 'none') => {
    const steps = realServerSteps(mode, REFERENCE_TOPOLOGY, enc, place);
    return [...steps.reset, ...steps.own].map((s) => s.argv.join(' '));
  };
  it('the reset restores the default route via the router and drops a client-net route', () => {
    assert.ok(text('fullnat').includes('ip route replace default via 172.16.75.1'));
    assert.ok(text('fullnat').includes('ip route del 10.8.21.0/24'));
  });
  it('transparent routes the client network via the LB; dsr with ipip brings tunl0 up without loading a module', () => {
    assert.equal(text('transparent').at(-1), 'ip route replace 10.8.21.0/24 via 172.16.75.83');
    assert.ok(text('dsr', 'ipip').includes('ip link set tunl0 up'));
    assert.ok(!text('dsr', 'ipip').includes('modprobe ipip'));
  });
});
