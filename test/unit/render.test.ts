// The nftables transaction of each scenario, as golden files a reader can
// review (test/fixtures/render/*.nft; UPDATE_GOLDEN=1 rewrites them), and a
// round trip through the real kernel in a private namespace: what is
// rendered reads back as the same services, and re-planning finds nothing.
import { after, before, describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { plan } from '../../src/plan/planner';
import { DesiredState, ObservedState } from '../../src/plan/types';
import { ServiceState } from '../../src/model/state';
import { backendSlots, MAX_SLOTS, renderPlan, slotShares } from '../../src/kernel/nft/render';
import { observeFromListings } from '../../src/kernel/nft/observe';
import { findCommand, run, runChecked } from '../../src/util/exec';

const GOLDEN = path.join(__dirname, '..', '..', '..', 'test', 'fixtures', 'render');

const service = (over: Partial<ServiceState> = {}): ServiceState => ({
  name: 'web', vip: '172.16.75.84', port: 80, protocol: 'tcp', mode: 'fullnat', scheduler: 'rr', device: 'eth0', snatAddress: '172.16.75.83',
  realServers: [{ address: '172.16.75.82', port: 80, weight: 1 }, { address: '172.16.75.85', port: 80, weight: 1 }],
  ...over,
});
const dsrService = service({
  mode: 'dsr', snatAddress: undefined, forwardDevice: 'eth0', forwardMac: '02:00:00:00:00:83',
  realServers: [{ address: '172.16.75.82', port: 80, weight: 1, mac: '02:00:00:00:00:82' }, { address: '172.16.75.85', port: 80, weight: 1, mac: '02:00:00:00:00:85' }],
});
const dns = service({ name: 'dns', port: 53, protocol: 'udp', mode: 'transparent', scheduler: 'sh', snatAddress: undefined, realServers: [{ address: '172.16.75.82', port: 53, weight: 2 }, { address: '172.16.75.85', port: 5353, weight: 1 }] });

function desiredOf(services: ServiceState[]): DesiredState {
  return { backend: 'nft', services, addresses: services.length ? [{ address: '172.16.75.84', device: 'eth0' }] : [], sysctls: {} };
}
const nothing: ObservedState = { kernel: { services: [], ownedAddresses: [], tables: [], ingressDevices: [] }, addresses: [], sysctls: {} };
const after1 = (services: ServiceState[], tables: ('ip' | 'netdev')[]): ObservedState => ({
  kernel: { services, ownedAddresses: [{ address: '172.16.75.84', device: 'eth0' }], tables, ingressDevices: tables.includes('netdev') ? ['eth0'] : [] },
  addresses: [{ address: '172.16.75.84', device: 'eth0' }], sysctls: {},
});

const scenarios: { name: string; desired: DesiredState; observed: ObservedState }[] = [
  { name: 'fullnat-first-apply', desired: desiredOf([service()]), observed: nothing },
  { name: 'transparent-udp-sh', desired: desiredOf([dns]), observed: nothing },
  { name: 'dsr-first-apply', desired: desiredOf([dsrService]), observed: nothing },
  {
    name: 'one-weight-change',
    desired: desiredOf([service({ scheduler: 'wrr', realServers: [{ address: '172.16.75.82', port: 80, weight: 1 }, { address: '172.16.75.85', port: 80, weight: 3 }] })]),
    observed: after1([service({ scheduler: 'wrr' })], ['ip']),
  },
  { name: 'destroy', desired: desiredOf([]), observed: after1([service(), dsrService], ['ip', 'netdev']) },
];

describe('renderPlan golden files', () => {
  for (const s of scenarios) {
    it(s.name, () => {
      const script = renderPlan(plan(s.desired, s.observed));
      const file = path.join(GOLDEN, `${s.name}.nft`);
      if (process.env.UPDATE_GOLDEN) fs.writeFileSync(file, script);
      assert.equal(script, fs.readFileSync(file, 'utf8'));
    });
  }
  it('no changes renders nothing', () => assert.equal(renderPlan(plan(desiredOf([service()]), after1([service()], ['ip']))), ''));
});

describe('backend slots', () => {
  it('rr gives each live RS one slot; weight 0 gets none', () => {
    assert.deepEqual(slotShares({ scheduler: 'rr', realServers: [{ address: 'a', port: 1, weight: 5 }, { address: 'b', port: 1, weight: 0 }, { address: 'c', port: 1, weight: 1 }] }), [1, 0, 1]);
  });
  it('wrr reduces weights by their gcd and interleaves smoothly', () => {
    const s = service({ scheduler: 'wrr', realServers: [{ address: '10.0.0.1', port: 80, weight: 20 }, { address: '10.0.0.2', port: 80, weight: 10 }] });
    assert.deepEqual(backendSlots(s).slots.map((x) => x.value), ['10.0.0.1 . 80', '10.0.0.2 . 80', '10.0.0.1 . 80']);
  });
  it('huge weight sums are scaled to at most about MAX_SLOTS', () => {
    const shares = slotShares({ scheduler: 'wrr', realServers: [{ address: 'a', port: 1, weight: 65535 }, { address: 'b', port: 1, weight: 65534 }, { address: 'c', port: 1, weight: 1 }] });
    assert.ok(shares.reduce((a, b) => a + b, 0) <= MAX_SLOTS + shares.length);
    assert.equal(shares[2], 1, 'a live RS keeps at least one slot');
  });
  it('all weights 0: the service drops new connections', () => {
    const s = service({ realServers: [{ address: '172.16.75.82', port: 80, weight: 0 }] });
    assert.match(renderPlan(plan(desiredOf([s]), nothing)), /meta l4proto tcp counter drop comment/);
  });
});

const canRunKernel = typeof process.getuid === 'function' && process.getuid() === 0 && findCommand('nft') !== undefined;

describe('round trip through the kernel', { skip: canRunKernel ? false : 'needs root and nft' }, () => {
  const ns = `slbt-rnd-${process.pid}-${Math.floor(Math.random() * 1e6)}`;
  before(async () => {
    await runChecked('netns', ['ip', 'netns', 'add', ns]);
    await runChecked('veth', ['ip', '-n', ns, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'eth1']);
  });
  after(async () => {
    await run(['ip', 'netns', 'del', ns]);
  });

  async function observeKernel(): Promise<ObservedState> {
    const list = async (family: string) => {
      const r = await run(['nft', '-j', 'list', 'table', family, 'slbctl'], { netns: ns });
      return r.code === 0 ? (JSON.parse(r.stdout) as unknown) : undefined;
    };
    const kernel = observeFromListings({ ip: await list('ip'), netdev: await list('netdev') });
    return { kernel, addresses: [{ address: '172.16.75.84', device: 'eth0' }], sysctls: {} };
  }

  const steps: { name: string; services: ServiceState[] }[] = [
    { name: 'fullnat + udp transparent', services: [service(), dns] },
    { name: 'one weight changed', services: [service({ scheduler: 'wrr', realServers: [{ address: '172.16.75.82', port: 80, weight: 2 }, { address: '172.16.75.85', port: 80, weight: 3 }] }), dns] },
    { name: 'fullnat became dsr', services: [dsrService, dns] },
    { name: 'everything removed', services: [] },
  ];
  for (const step of steps) {
    it(`${step.name}: reads back the same services and re-plans to nothing`, async () => {
      const desired = desiredOf(step.services);
      const script = renderPlan(plan(desired, await observeKernel()));
      const applied = await run(['nft', '-f', '-'], { netns: ns, input: script });
      assert.equal(applied.code, 0, `${applied.stderr}\n${script}`);
      const back = await observeKernel();
      const strip = (s: ServiceState) => JSON.parse(JSON.stringify({ ...s, counters: undefined, backendKeys: undefined })) as ServiceState;
      const key = (s: ServiceState) => `${s.protocol}/${s.port}`;
      assert.deepEqual(back.kernel.services.map(strip).sort((a, b) => key(a).localeCompare(key(b))), step.services.map(strip).sort((a, b) => key(a).localeCompare(key(b))));
      assert.deepEqual(plan(desired, back).ops, []);
    });
  }
});
