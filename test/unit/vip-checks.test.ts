// The pure half of the host-dependent refusals: which addresses are the
// network or broadcast address of a subnet this host is on. (The ARP half is
// tested in namespaces: test/integration/vip-checks.test.ts.)
import { describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import { subnetEdge } from '../../src/engine/vip-checks';
import { NetInterface } from '../../src/kernel/rtnl/rtnl';

const interfaces: NetInterface[] = [
  { index: 1, name: 'lo', up: true, addresses: [{ address: '127.0.0.1', prefixLength: 8 }] },
  {
    index: 2,
    name: 'eth0',
    up: true,
    addresses: [
      { address: '172.16.75.83', prefixLength: 24 },
      { address: '172.16.75.84', prefixLength: 32 },
    ],
  },
  { index: 3, name: 'eth1', up: true, addresses: [{ address: '10.9.0.5', prefixLength: 30 }] },
  { index: 4, name: 'p2p', up: true, addresses: [{ address: '192.168.7.0', prefixLength: 31 }] },
];

describe('subnetEdge', () => {
  const cases: [string, string | undefined][] = [
    ['172.16.75.0', 'the network address of 172.16.75.0/24 on eth0, which names the subnet, not a host in it'],
    ['172.16.75.255', 'the broadcast address of 172.16.75.0/24 on eth0, which reaches every host there, not one'],
    ['172.16.75.1', undefined],
    ['172.16.75.254', undefined],
    ['10.9.0.4', 'the network address of 10.9.0.4/30 on eth1, which names the subnet, not a host in it'],
    ['10.9.0.7', 'the broadcast address of 10.9.0.4/30 on eth1, which reaches every host there, not one'],
    ['10.9.0.6', undefined],
    // RFC 3021: both addresses of a /31 are hosts; a /32 has no subnet to speak of.
    ['192.168.7.0', undefined],
    ['192.168.7.1', undefined],
    ['172.16.76.0', undefined],
  ];
  for (const [address, reason] of cases) {
    it(`${address}: ${reason ?? 'a host address (or on no subnet here)'}`, () => assert.equal(subnetEdge(address, interfaces), reason));
  }
});
