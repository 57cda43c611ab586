import { describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import { plan } from '../../src/plan/planner';
import { formatPlan } from '../../src/plan/format';
import { DesiredState, ObservedState } from '../../src/plan/types';
import { KernelState, ServiceState } from '../../src/model/state';

export const web = (over: Partial<ServiceState> = {}): ServiceState => ({
  name: 'web', vip: '172.16.75.84', port: 80, protocol: 'tcp', mode: 'fullnat', scheduler: 'rr', device: 'eth0', snatAddress: '172.16.75.83',
  realServers: [{ address: '172.16.75.82', port: 80, weight: 1 }, { address: '172.16.75.85', port: 80, weight: 1 }],
  ...over,
});

const desired = (services: ServiceState[]): DesiredState => ({
  backend: 'nft',
  services,
  addresses: [...new Set(services.map((s) => s.vip))].map((address) => ({ address, device: 'eth0' })),
  sysctls: services.some((s) => s.mode !== 'dsr') ? { 'net.ipv4.ip_forward': '1' } : {},
});

/** The kernel after slbctl applied `services` (VIPs owned and present). */
function programmed(services: ServiceState[], extra: Partial<KernelState> = {}): ObservedState {
  const owned = [...new Set(services.map((s) => s.vip))].map((address) => ({ address, device: 'eth0' }));
  return {
    kernel: {
      services,
      ownedAddresses: owned,
      tables: services.length ? (services.some((s) => s.mode === 'dsr') ? ['ip', 'netdev'] : ['ip']) : [],
      ingressDevices: services.some((s) => s.mode === 'dsr') ? ['eth0'] : [],
      ...extra,
    },
    addresses: [{ address: '172.16.75.83', device: 'eth0' }, ...owned],
    sysctls: { 'net.ipv4.ip_forward': '1' },
  };
}

const empty: ObservedState = { kernel: { services: [], ownedAddresses: [], tables: [], ingressDevices: [] }, addresses: [{ address: '172.16.75.83', device: 'eth0' }], sysctls: { 'net.ipv4.ip_forward': '0' } };

const cases: { name: string; desired: DesiredState; observed: ObservedState; expected: string }[] = [
  {
    name: 'first apply adds everything in order',
    desired: desired([web()]),
    observed: empty,
    expected: `~ sysctl net.ipv4.ip_forward 0 -> 1
+ table ip slbctl
+ address 172.16.75.84/32 dev eth0
+ service tcp/172.16.75.84:80 "web" fullnat rr dev eth0 snat 172.16.75.83
+   real server 172.16.75.82:80 weight 1
+   real server 172.16.75.85:80 weight 1`,
  },
  { name: 'the same state again: no changes', desired: desired([web()]), observed: programmed([web()]), expected: 'no changes' },
  {
    name: 'one weight: one operation',
    desired: desired([web({ realServers: [{ address: '172.16.75.82', port: 80, weight: 1 }, { address: '172.16.75.85', port: 80, weight: 4 }] })]),
    observed: programmed([web()]),
    expected: '~ real server tcp/172.16.75.84:80 -> 172.16.75.85:80 weight 1 -> 4',
  },
  {
    name: 'a real server added and one removed',
    desired: desired([web({ realServers: [{ address: '172.16.75.82', port: 80, weight: 1 }, { address: '172.16.75.86', port: 80, weight: 1 }] })]),
    observed: programmed([web()]),
    expected: '+ real server tcp/172.16.75.84:80 -> 172.16.75.86:80 weight 1\n- real server tcp/172.16.75.84:80 -> 172.16.75.85:80',
  },
  {
    name: 'a mode change updates the service',
    desired: desired([web({ mode: 'transparent', snatAddress: undefined })]),
    observed: programmed([web()]),
    expected: '~ service tcp/172.16.75.84:80: mode fullnat -> transparent, snatAddress 172.16.75.83 -> -',
  },
  {
    name: 'to DSR: netdev table and ingress hook first',
    desired: { ...desired([web({ mode: 'dsr', snatAddress: undefined, forwardDevice: 'eth0', forwardMac: '02:00:00:00:00:83' })]), sysctls: {} },
    observed: programmed([web()]),
    expected: `+ table netdev slbctl
+ ingress hook on eth0
~ service tcp/172.16.75.84:80: mode fullnat -> dsr, snatAddress 172.16.75.83 -> -, forwardDevice - -> eth0, forwardMac - -> 02:00:00:00:00:83`,
  },
  {
    name: 'the last service removed: its VIP and the table go too',
    desired: desired([]),
    observed: programmed([web()]),
    expected: `- service tcp/172.16.75.84:80 "web" fullnat rr dev eth0 snat 172.16.75.83
- address 172.16.75.84/32 dev eth0
- table ip slbctl`,
  },
  {
    name: 'a VIP slbctl did not add is never removed',
    desired: desired([]),
    observed: programmed([web()], { ownedAddresses: [] }),
    expected: `- service tcp/172.16.75.84:80 "web" fullnat rr dev eth0 snat 172.16.75.83
- table ip slbctl`,
  },
  {
    name: 'drift: a service deleted by hand is added again',
    desired: desired([web()]),
    observed: programmed([], { tables: ['ip'], ownedAddresses: [{ address: '172.16.75.84', device: 'eth0' }] }),
    expected: `+ address 172.16.75.84/32 dev eth0
+ service tcp/172.16.75.84:80 "web" fullnat rr dev eth0 snat 172.16.75.83
+   real server 172.16.75.82:80 weight 1
+   real server 172.16.75.85:80 weight 1`,
  },
];

describe('plan', () => {
  for (const c of cases) it(c.name, () => assert.equal(formatPlan(plan(c.desired, c.observed).ops), c.expected));

  it('is deterministic: services come out in key order whatever the input order', () => {
    const a = web({ port: 443, name: 'tls' });
    const b = web();
    assert.deepEqual(plan(desired([a, b]), empty).ops, plan(desired([b, a]), empty).ops);
  });
});
