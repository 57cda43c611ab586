// The ownership record of VIP routes (vipAs route; src/engine/ownership.ts):
// listed as "adding" before a plan adds them, "owned" after, and dropped once
// deleted or found gone; a switch from an address to a route moves the VIP
// from one list to the other.
import { describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import { plan } from '../../src/plan/planner';
import { DesiredState, ObservedState } from '../../src/plan/types';
import { ownershipAfter, ownershipIntent, ownedRoutesOf } from '../../src/engine/ownership';
import { EMPTY_OWNERSHIP, Ownership, hasIntent } from '../../src/records/ownership';

const VIP = { address: '172.16.75.84', device: 'eth0' };
const nothing: DesiredState = { backend: 'nft', services: [], addresses: [], sysctls: {} };
const kernel = { services: [], ownedAddresses: [], tables: [], ingressDevices: [] };

describe('ownership of VIP routes', () => {
  it('a route to add is "adding" before the plan runs and "owned" after', () => {
    const p = plan({ ...nothing, routes: [VIP] }, { kernel, addresses: [], sysctls: {} });
    const intent = ownershipIntent(EMPTY_OWNERSHIP, p, 'nft');
    assert.deepEqual(intent.routes, [{ ...VIP, backend: 'nft', state: 'adding' }]);
    assert.ok(hasIntent(intent));
    const after = ownershipAfter(EMPTY_OWNERSHIP, p, 'nft');
    assert.deepEqual(after.routes, [{ ...VIP, backend: 'nft', state: 'owned' }]);
    assert.deepEqual(after.addresses, []);
  });

  it('an "adding" route counts as owned only when a route of slbctl is there', () => {
    const record: Ownership = { ...EMPTY_OWNERSHIP, routes: [{ ...VIP, backend: 'nft', state: 'adding' }] };
    assert.deepEqual(ownedRoutesOf(record, 'nft', [VIP]), [VIP]);
    assert.deepEqual(ownedRoutesOf(record, 'nft', []), []);
    assert.deepEqual(ownedRoutesOf(record, 'ipvs', [VIP]), []);
  });

  it('destroy: a deleted route and a route already gone both leave the record', () => {
    const record: Ownership = { ...EMPTY_OWNERSHIP, routes: [{ ...VIP, backend: 'nft', state: 'owned' }] };
    const there: ObservedState = {
      kernel: { ...kernel, ownedRoutes: [VIP] },
      addresses: [],
      routes: [{ ...VIP, slbctl: true }],
      sysctls: {},
    };
    const gone: ObservedState = { ...there, routes: [] };
    for (const observed of [there, gone]) {
      const after = ownershipAfter(record, plan(nothing, observed), 'nft');
      assert.equal(after.routes, undefined);
    }
  });

  it('address to route: the address leaves the record and the route enters it', () => {
    const record: Ownership = { ...EMPTY_OWNERSHIP, addresses: [{ ...VIP, backend: 'nft', state: 'owned' }] };
    const observed: ObservedState = { kernel: { ...kernel, ownedAddresses: [VIP] }, addresses: [VIP], sysctls: {} };
    const after = ownershipAfter(record, plan({ ...nothing, routes: [VIP] }, observed), 'nft');
    assert.deepEqual(after.addresses, []);
    assert.deepEqual(after.routes, [{ ...VIP, backend: 'nft', state: 'owned' }]);
  });
});
