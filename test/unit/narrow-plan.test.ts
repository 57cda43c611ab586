// The narrowed plan (only the services a config change touched, src/engine/narrow.ts)
// against the full planner on the same inputs: for every kind of change, the
// same operations in the same order, and the same nftables script.
import { describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import { plan } from '../../src/plan/planner';
import { formatPlan } from '../../src/plan/format';
import { DesiredState, ObservedState } from '../../src/plan/types';
import { OwnedAddress, ServiceState } from '../../src/model/state';
import { serviceKey } from '../../src/model/types';
import { kernelFromApplied } from '../../src/kernel/nft/applied';
import { renderPlan } from '../../src/kernel/nft/render';
import { narrowScope } from '../../src/engine/narrow';

/** 40 services: 20 VIPs with two ports each (so VIPs are shared), fullnat and transparent. */
function services(): ServiceState[] {
  const out: ServiceState[] = [];
  for (let i = 0; i < 20; i++)
    for (const port of [80, 443]) {
      const s: ServiceState = {
        name: `s${i}-${port}`,
        vip: `10.1.0.${i + 10}`,
        port,
        protocol: 'tcp',
        mode: i % 2 === 0 ? 'fullnat' : 'transparent',
        scheduler: 'wrr',
        device: 'eth0',
        realServers: [1, 2, 3, 4].map((j) => ({ address: `10.2.${i}.${j}`, port: 8080, weight: 1 })),
      };
      if (s.mode === 'fullnat') s.snatAddress = '10.2.0.254';
      out.push(s);
    }
  return out;
}

const vipsOf = (list: ServiceState[]): OwnedAddress[] =>
  [...new Set(list.map((s) => s.vip))].map((address) => ({ address, device: 'eth0' }));

const desiredOf = (list: ServiceState[]): DesiredState => ({
  backend: 'nft',
  services: list,
  addresses: vipsOf(list),
  sysctls: { 'net.ipv4.ip_forward': '1' },
  l7: [],
});

/** The kernel as slbctl recorded it after applying `before`, the host with its VIPs, owned by slbctl. */
function observedAfter(before: ServiceState[]): ObservedState {
  const kernel = kernelFromApplied(before, 7);
  kernel.ownedAddresses = vipsOf(before);
  const addresses = [...vipsOf(before), { address: '10.2.0.254', device: 'eth0' }];
  return { kernel, addresses, sysctls: { 'net.ipv4.ip_forward': '1' }, ownership: { addresses: [], sysctls: [], ipvsServices: [] } };
}

const changes: [string, (list: ServiceState[]) => ServiceState[]][] = [
  [
    'one weight',
    (l) => l.map((s, i) => (i === 3 ? { ...s, realServers: s.realServers.map((r, j) => (j === 0 ? { ...r, weight: 5 } : r)) } : s)),
  ],
  [
    'a real server added',
    (l) => l.map((s, i) => (i === 5 ? { ...s, realServers: [...s.realServers, { address: '10.2.9.9', port: 8080, weight: 2 }] } : s)),
  ],
  ['a real server removed', (l) => l.map((s, i) => (i === 6 ? { ...s, realServers: s.realServers.slice(1) } : s))],
  ['a service added on a new VIP', (l) => [...l, { ...l[0], name: 'new', vip: '10.1.1.1' }]],
  ['a service added on a shared VIP', (l) => [...l, { ...l[0], name: 'new', port: 8443 }]],
  ['a service removed, its VIP shared', (l) => l.filter((_, i) => i !== 8)],
  ['both services of a VIP removed', (l) => l.filter((_, i) => i !== 8 && i !== 9)],
  ['a VIP changed', (l) => l.map((s, i) => (i === 10 ? { ...s, vip: '10.1.1.2' } : s))],
  ['a mode changed', (l) => l.map((s, i) => (i === 12 ? { ...s, mode: 'transparent' as const, snatAddress: undefined } : s))],
  [
    'a scheduler changed and a service removed',
    (l) => l.map((s, i) => (i === 14 ? { ...s, scheduler: 'mh' as const } : s)).filter((_, i) => i !== 30),
  ],
];

describe('narrowed plan = full plan', () => {
  for (const [what, change] of changes) {
    it(what, () => {
      const before = services();
      const after = change(services()).map((s) => {
        const { snatAddress, ...rest } = s;
        return snatAddress === undefined ? rest : s;
      });
      const digest = (s: ServiceState) => JSON.stringify(s);
      const was = new Map(before.map((s) => [serviceKey(s), digest(s)]));
      const now = new Set(after.map(serviceKey));
      const changedKeys = after.filter((s) => was.get(serviceKey(s)) !== digest(s)).map(serviceKey);
      const removed = before.map(serviceKey).filter((k) => !now.has(k));
      assert.ok(changedKeys.length + removed.length > 0);
      const scope = narrowScope(
        new Set([...changedKeys, ...removed]),
        new Map(before.map((s) => [serviceKey(s), s])),
        after.filter((s) => changedKeys.includes(serviceKey(s))),
      );
      const full = plan(desiredOf(after), observedAfter(before));
      const narrow = plan(desiredOf(after), observedAfter(before), scope);
      assert.ok(full.ops.length > 0);
      assert.equal(formatPlan(narrow.ops), formatPlan(full.ops));
      assert.deepEqual(narrow.ops, full.ops);
      assert.equal(renderPlan(narrow), renderPlan(full));
    });
  }

  it('no change: a narrowed plan of nothing is empty, as the full one', () => {
    const full = plan(desiredOf(services()), observedAfter(services()));
    const narrow = plan(desiredOf(services()), observedAfter(services()), { services: new Set(), addresses: new Set() });
    assert.deepEqual(full.ops, []);
    assert.deepEqual(narrow.ops, []);
  });
});
