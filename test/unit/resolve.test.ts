// resolveConfig: the config plus facts about this host (interfaces, neighbour
// MACs) become the desired kernel state. The host here is made up, shaped like
// the lab's balancer: eth0 on the server segment 172.16.75.0/24, and an eth1
// on a second network for the cases that need one.
import { describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import { HostFacts, ResolveError, resolveConfig } from '../../src/engine/resolve';
import type { NetInterface } from '../../src/kernel/rtnl/rtnl';
import { Config, Service } from '../../src/model/types';
import { ServiceState } from '../../src/model/state';
import { DesiredState } from '../../src/plan/types';

const lo: NetInterface = { index: 1, name: 'lo', up: true, addresses: [{ address: '127.0.0.1', prefixLength: 8 }] };
const eth0: NetInterface = {
  index: 2,
  name: 'eth0',
  up: true,
  mac: '02:00:00:00:00:83',
  addresses: [{ address: '172.16.75.83', prefixLength: 24 }],
};
const eth1: NetInterface = {
  index: 3,
  name: 'eth1',
  up: true,
  mac: '02:00:00:00:01:01',
  addresses: [{ address: '192.168.50.1', prefixLength: 24 }],
};

/** Neighbours that answered ARP. */
const NEIGHBOURS: Record<string, string> = {
  '172.16.75.82': '02:00:00:00:00:82',
  '172.16.75.85': '02:00:00:00:00:85',
  '192.168.50.10': '02:00:00:00:01:10',
};

function host(interfaces: NetInterface[] = [lo, eth0, eth1], neighbours: Record<string, string> = NEIGHBOURS): HostFacts {
  return { interfaces, macOf: (address) => neighbours[address] };
}

/** The lab's reference service as parseConfig returns it. */
const web = (over: Partial<Service> = {}): Service => ({
  name: 'web',
  vip: '172.16.75.84',
  port: 80,
  protocol: 'tcp',
  mode: 'fullnat',
  scheduler: 'rr',
  realServers: [
    { address: '172.16.75.82', port: 80, weight: 1 },
    { address: '172.16.75.85', port: 80, weight: 1 },
  ],
  ...over,
});
const config = (...services: Service[]): Config => ({ backend: 'nft', services });

/** The reference service resolved on the lab's balancer. */
const resolved = (over: Partial<ServiceState> = {}): ServiceState => ({
  name: 'web',
  vip: '172.16.75.84',
  port: 80,
  protocol: 'tcp',
  mode: 'fullnat',
  scheduler: 'rr',
  device: 'eth0',
  snatAddress: '172.16.75.83',
  realServers: [
    { address: '172.16.75.82', port: 80, weight: 1 },
    { address: '172.16.75.85', port: 80, weight: 1 },
  ],
  ...over,
});
const dsrResolved = (over: Partial<ServiceState> = {}): ServiceState =>
  resolved({
    mode: 'dsr',
    snatAddress: undefined,
    forwardDevice: 'eth0',
    forwardMac: '02:00:00:00:00:83',
    realServers: [
      { address: '172.16.75.82', port: 80, weight: 1, mac: '02:00:00:00:00:82' },
      { address: '172.16.75.85', port: 80, weight: 1, mac: '02:00:00:00:00:85' },
    ],
    ...over,
  });

/** Drop keys whose value is undefined, so expectations can say `snatAddress: undefined` for "absent". */
const defined = <T extends object>(o: T): T => JSON.parse(JSON.stringify(o)) as T;

const FORWARDING = { 'net.ipv4.ip_forward': '1' };

const resolves: { name: string; config: Config; facts?: HostFacts; backend?: 'nft' | 'ipvs'; desired: DesiredState }[] = [
  {
    name: 'fullnat: the VIP goes on the interface whose subnet holds it; SNAT to our address facing the first RS; ip_forward on',
    config: config(web()),
    desired: { backend: 'nft', services: [resolved()], addresses: [{ address: '172.16.75.84', device: 'eth0' }], sysctls: FORWARDING },
  },
  {
    name: 'fullnat: an explicit snatAddress is kept as written, and added where its subnet is',
    config: config(web({ snatAddress: '172.16.75.99' })),
    desired: {
      backend: 'nft',
      services: [resolved({ snatAddress: '172.16.75.99' })],
      addresses: [
        { address: '172.16.75.84', device: 'eth0' },
        { address: '172.16.75.99', device: 'eth0' },
      ],
      sysctls: FORWARDING,
    },
  },
  {
    name: 'fullnat: the RS subnet decides the SNAT address, not the VIP subnet',
    config: config(web({ vip: '192.168.50.84' })),
    desired: {
      backend: 'nft',
      services: [resolved({ vip: '192.168.50.84', device: 'eth1' })],
      addresses: [{ address: '192.168.50.84', device: 'eth1' }],
      sysctls: FORWARDING,
    },
  },
  {
    name: 'transparent: no SNAT address; ip_forward on',
    config: config(web({ mode: 'transparent' })),
    desired: {
      backend: 'nft',
      services: [defined(resolved({ mode: 'transparent', snatAddress: undefined }))],
      addresses: [{ address: '172.16.75.84', device: 'eth0' }],
      sysctls: FORWARDING,
    },
  },
  {
    name: "dsr: each RS gets its MAC from the neighbour table, the frame leaves by the RS's interface with its MAC; no ip_forward",
    config: config(web({ mode: 'dsr' })),
    desired: { backend: 'nft', services: [defined(dsrResolved())], addresses: [{ address: '172.16.75.84', device: 'eth0' }], sysctls: {} },
  },
  {
    name: 'dsr: the VIP can arrive on one interface and the real servers sit behind another',
    config: config(web({ vip: '192.168.50.84', mode: 'dsr' })),
    desired: {
      backend: 'nft',
      services: [defined(dsrResolved({ vip: '192.168.50.84', device: 'eth1' }))],
      addresses: [{ address: '192.168.50.84', device: 'eth1' }],
      sysctls: {},
    },
  },
  {
    name: 'dsr next to a NAT service: ip_forward on (for the NAT service)',
    config: config(web({ mode: 'dsr' }), web({ name: 'dns', port: 53, protocol: 'udp', mode: 'transparent' })),
    desired: {
      backend: 'nft',
      services: [
        defined(dsrResolved()),
        defined(resolved({ name: 'dns', port: 53, protocol: 'udp', mode: 'transparent', snatAddress: undefined })),
      ],
      addresses: [{ address: '172.16.75.84', device: 'eth0' }],
      sysctls: FORWARDING,
    },
  },
  {
    name: 'a VIP already on an interface (even as /32) stays where it is',
    config: config(web()),
    facts: host([lo, eth0, { ...eth1, addresses: [...eth1.addresses, { address: '172.16.75.84', prefixLength: 32 }] }]),
    desired: {
      backend: 'nft',
      services: [resolved({ device: 'eth1' })],
      addresses: [{ address: '172.16.75.84', device: 'eth1' }],
      sysctls: FORWARDING,
    },
  },
  {
    name: 'a VIP on lo (as a DSR real server holds it) does not count: the subnet decides',
    config: config(web()),
    facts: host([{ ...lo, addresses: [...lo.addresses, { address: '172.16.75.84', prefixLength: 32 }] }, eth0, eth1]),
    desired: { backend: 'nft', services: [resolved()], addresses: [{ address: '172.16.75.84', device: 'eth0' }], sysctls: FORWARDING },
  },
  {
    name: 'an explicit interface wins over the subnet',
    config: config(web({ interface: 'eth1' })),
    desired: {
      backend: 'nft',
      services: [resolved({ device: 'eth1' })],
      addresses: [{ address: '172.16.75.84', device: 'eth1' }],
      sysctls: FORWARDING,
    },
  },
  {
    name: 'two services on one VIP: the VIP is added once',
    config: config(web(), web({ name: 'tls', port: 443, realServers: [{ address: '172.16.75.82', port: 443, weight: 1 }] })),
    desired: {
      backend: 'nft',
      services: [resolved(), resolved({ name: 'tls', port: 443, realServers: [{ address: '172.16.75.82', port: 443, weight: 1 }] })],
      addresses: [{ address: '172.16.75.84', device: 'eth0' }],
      sysctls: FORWARDING,
    },
  },
  {
    name: 'IPVS dsr: IPVS forwards by itself, so no MACs are looked up (none answered here)',
    config: config(web({ mode: 'dsr', scheduler: 'wlc' })),
    facts: host(undefined, {}),
    backend: 'ipvs',
    desired: {
      backend: 'ipvs',
      services: [defined(resolved({ mode: 'dsr', scheduler: 'wlc', snatAddress: undefined }))],
      addresses: [{ address: '172.16.75.84', device: 'eth0' }],
      sysctls: {},
    },
  },
  {
    name: 'IPVS dsr with ipip: the encapsulation is kept',
    config: config(web({ mode: 'dsr', encapsulation: 'ipip' })),
    backend: 'ipvs',
    desired: {
      backend: 'ipvs',
      services: [defined(resolved({ mode: 'dsr', snatAddress: undefined, encapsulation: 'ipip' }))],
      addresses: [{ address: '172.16.75.84', device: 'eth0' }],
      sysctls: {},
    },
  },
];

const SVC = 'services[0] (tcp/172.16.75.84:80)';

const refuses: { name: string; config: Config; facts?: HostFacts; backend?: 'nft' | 'ipvs'; error: string }[] = [
  {
    name: "maglev size and seed on IPVS, whose mh table and hash are the kernel build's",
    config: config(web({ scheduler: 'mh', maglev: { size: 1021, seed: 7 } })),
    backend: 'ipvs',
    error: `${SVC}: maglev size and seed need the nftables backend; the IPVS backend's mh has a table size fixed when the kernel is built and a hash of its own`,
  },
  {
    name: 'an explicit interface that does not exist, named with the ones that do',
    config: config(web({ interface: 'eth9' })),
    error: `${SVC}: interface "eth9" does not exist on this host (it has lo, eth0, eth1)`,
  },
  {
    name: 'a VIP in no local subnet',
    config: config(web({ vip: '10.99.0.84' })),
    error:
      'services[0] (tcp/10.99.0.84:80): VIP 10.99.0.84 is on no interface: no address here is in a subnet that contains it; add the subnet to an interface or set "interface:" to the interface that should carry the VIP',
  },
  {
    name: 'a VIP whose only match is a /32 host address elsewhere does not count as a subnet',
    config: config(web({ vip: '10.99.0.84' })),
    facts: host([lo, eth0, { ...eth1, addresses: [{ address: '10.99.0.1', prefixLength: 32 }] }]),
    error:
      'services[0] (tcp/10.99.0.84:80): VIP 10.99.0.84 is on no interface: no address here is in a subnet that contains it; add the subnet to an interface or set "interface:" to the interface that should carry the VIP',
  },
  {
    name: 'fullnat without snatAddress when no local address faces the first RS',
    config: config(web({ realServers: [{ address: '10.99.0.5', port: 80, weight: 1 }] })),
    error: `${SVC}: no address of this host faces real server 10.99.0.5; set "snatAddress:" to the balancer address the real servers should see`,
  },
  {
    name: 'dsr: an RS that did not answer ARP, named',
    config: config(web({ mode: 'dsr' })),
    facts: host(undefined, { '172.16.75.82': '02:00:00:00:00:82' }),
    error: `${SVC} real server 172.16.75.85: did not answer ARP on eth0; check that it is up and on that segment`,
  },
  {
    name: 'dsr: an RS that is not on a local subnet (DSR only rewrites the MAC)',
    config: config(web({ mode: 'dsr', realServers: [{ address: '10.99.0.5', port: 80, weight: 1 }] })),
    error: `${SVC} real server 10.99.0.5: is not on a subnet of this host: direct server return only rewrites the MAC, so real servers must share an L2 segment with the balancer`,
  },
  {
    name: 'dsr: real servers behind two interfaces',
    config: config(
      web({
        mode: 'dsr',
        realServers: [
          { address: '172.16.75.82', port: 80, weight: 1 },
          { address: '192.168.50.10', port: 80, weight: 1 },
        ],
      }),
    ),
    error: `${SVC}: real servers are on different interfaces (eth0, eth1); one DSR service forwards out of one interface`,
  },
  {
    name: 'dsr: the forwarding interface has no MAC',
    config: config(web({ mode: 'dsr' })),
    facts: host([lo, { ...eth0, mac: undefined }, eth1]),
    error: `${SVC}: interface eth0 has no MAC address`,
  },
  {
    name: 'nft backend: an IPVS-only scheduler',
    config: config(web({ scheduler: 'wlc' })),
    error: `${SVC}: scheduler wlc needs the IPVS backend; the nftables backend has rr, wrr, sh, mh`,
  },
  {
    name: 'nft backend: ipip encapsulation',
    config: config(web({ mode: 'dsr', encapsulation: 'ipip' })),
    error: `${SVC}: encapsulation ipip (IPVS tunnel mode) needs the IPVS backend; the nftables backend does direct routing (MAC rewrite)`,
  },
  {
    name: 'the failing service is named by its index and key',
    config: config(web(), web({ name: 'dns', vip: '10.99.0.53', port: 53, protocol: 'udp' })),
    error:
      'services[1] (udp/10.99.0.53:53): VIP 10.99.0.53 is on no interface: no address here is in a subnet that contains it; add the subnet to an interface or set "interface:" to the interface that should carry the VIP',
  },
];

describe('resolveConfig resolves', () => {
  for (const c of resolves) {
    it(c.name, () => assert.deepEqual(defined(resolveConfig(c.config, c.facts ?? host(), c.backend)), { l7: [], ...c.desired }));
  }

  it('does not change the config it was given', () => {
    const cfg = config(web({ mode: 'dsr' }));
    const copy = structuredClone(cfg);
    resolveConfig(cfg, host());
    assert.deepEqual(cfg, copy);
  });

  // Bug: the default SNAT address is the first non-/32 address of the
  // interface facing the RS, not the address in the RS's subnet. With two
  // subnets on eth0 the real servers are sent a source they cannot reply to.
  it('fullnat: with two subnets on one interface, SNAT uses the address in the RS subnet', () => {
    const twoSubnets = host([
      lo,
      {
        ...eth0,
        addresses: [
          { address: '10.0.0.1', prefixLength: 24 },
          { address: '172.16.75.83', prefixLength: 24 },
        ],
      },
    ]);
    assert.equal(resolveConfig(config(web()), twoSubnets).services[0]?.snatAddress, '172.16.75.83');
  });
});

describe('resolveConfig refuses', () => {
  for (const c of refuses) {
    it(c.name, () => {
      assert.throws(
        () => resolveConfig(c.config, c.facts ?? host(), c.backend),
        (e: unknown) => {
          assert.ok(e instanceof ResolveError, `not a ResolveError: ${String(e)}`);
          assert.equal(e.message, c.error);
          assert.ok(c.error.startsWith(`${e.where}: `), 'where names the service (and the RS)');
          return true;
        },
      );
    });
  }
});

describe('resolveConfig for IPVS fullnat', () => {
  it('keeps the SNAT address and asks for IPVS conntrack entries, which source NAT needs', () => {
    const d = resolveConfig({ backend: 'ipvs', services: [web()] }, host(), 'ipvs');
    assert.equal(d.services[0]?.snatAddress, '172.16.75.83');
    assert.deepEqual(d.sysctls, { 'net.ipv4.ip_forward': '1', 'net.ipv4.vs.conntrack': '1' });
  });
});
