// The ha.bgp config (validation), and what slbctl writes for BIRD from it:
// the contract of the BGP speaker, checked without starting it (the netns lab
// test test/integration/ha-ecmp.test.ts runs BIRD for real).
import { describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import { parseConfig } from '../../src/model/parse';
import {
  BgpError,
  describeDisagreement,
  maglevByVip,
  maglevDisagreements,
  maglevOfCommunities,
  renderBirdConfig,
  resolveSpeaker,
  routeCommunities,
} from '../../src/ha/bird';
import { communitiesByProtocol } from '../../src/verify/maglev-agreement';
import { Service } from '../../src/model/types';
import { renderRouterBird } from '../../src/lab/ha';
import { REFERENCE_TOPOLOGY } from '../../src/lab/topology';
import { NetInterface } from '../../src/kernel/rtnl/rtnl';

const service = `services:
  - vip: 172.16.75.84
    port: 80
    protocol: tcp
    mode: dsr
    scheduler: mh
    realServers: [{ address: 172.16.75.82, port: 80, weight: 1 }]
`;

function issues(ha: string): string[] {
  const r = parseConfig(`${service}ha:\n${ha}`);
  return r.ok ? [] : r.issues.map((i) => `${i.path}: ${i.message}`);
}

const interfaces: NetInterface[] = [
  { index: 1, name: 'lo', up: true, addresses: [{ address: '127.0.0.1', prefixLength: 8 }] },
  { index: 2, name: 'eth0', up: true, mac: '02:00:00:00:00:01', addresses: [{ address: '172.16.75.83', prefixLength: 24 }] },
];

describe('ha.bgp validation', () => {
  it('takes a speaker with defaults, and makes VIPs allowed on several balancers', () => {
    const r = parseConfig(`${service}ha:\n  bgp:\n    asn: 65001\n    peers: [{ address: 172.16.75.1, asn: 65000 }]\n`);
    assert.ok(r.ok);
    assert.deepEqual(r.config.ha, { bgp: { asn: 65001, peers: [{ address: '172.16.75.1', asn: 65000 }], bfd: true, holdTime: 3 } });
    assert.equal(r.config.services[0]?.vipAlreadyPresent, 'allow');
  });

  it('refuses an ASN out of range, AS_TRANS, no peers, a duplicate peer, a bad hold time, one sentence each', () => {
    assert.match(
      issues('  bgp:\n    asn: 0\n    peers: [{ address: 172.16.75.1, asn: 65000 }]\n').join(),
      /ha\.bgp\.asn: 0 is not an AS number/,
    );
    assert.match(issues('  bgp:\n    asn: 4294967295\n    peers: [{ address: 172.16.75.1, asn: 65000 }]\n').join(), /ha\.bgp\.asn/);
    assert.match(issues('  bgp:\n    asn: 65001\n    peers: [{ address: 172.16.75.1, asn: 23456 }]\n').join(), /peers\[0\]\.asn: 23456/);
    assert.match(issues('  bgp:\n    asn: 65001\n    peers: []\n').join(), /ha\.bgp\.peers: is required/);
    assert.match(
      issues('  bgp:\n    asn: 65001\n    peers: [{ address: 172.16.75.1, asn: 65000 }, { address: 172.16.75.1, asn: 65002 }]\n').join(),
      /peers\[1\]\.address: 172\.16\.75\.1 is already peers\[0\]/,
    );
    assert.match(
      issues('  bgp:\n    asn: 65001\n    holdTime: 1\n    peers: [{ address: 172.16.75.1, asn: 65000 }]\n').join(),
      /holdTime: 1 is not a BGP hold time/,
    );
    assert.match(issues('  bgp:\n    asn: 65001\n    peers: [{ address: 255.255.255.255, asn: 65000 }]\n').join(), /peers\[0\]\.address/);
    assert.match(issues('  carp: {}\n').join(), /ha\.carp: unknown key; allowed keys are bgp, vrrp, sync/);
  });
});

describe('the BIRD config slbctl writes', () => {
  const bgp = { asn: 65001, peers: [{ address: '172.16.75.1', asn: 65000 }], bfd: true, holdTime: 3 };

  it('peers from the address and interface that face the router, announces exactly the VIPs given', () => {
    const c = resolveSpeaker(bgp, interfaces);
    assert.deepEqual(c.peers, [{ address: '172.16.75.1', asn: 65000, local: '172.16.75.83', device: 'eth0' }]);
    assert.equal(c.routerId, '172.16.75.83');
    const text = renderBirdConfig(c, ['172.16.75.90', '172.16.75.84']);
    assert.match(text, /router id 172\.16\.75\.83;/);
    assert.match(text, /local 172\.16\.75\.83 as 65001;\n {2}neighbor 172\.16\.75\.1 as 65000;\n {2}bfd on;/);
    assert.match(text, /interface "eth0" \{ min rx interval 100 ms; min tx interval 100 ms; multiplier 3; \};/);
    // Sorted: the same set renders the same file.
    assert.match(text, /route 172\.16\.75\.84\/32 blackhole;\n {2}route 172\.16\.75\.90\/32 blackhole;/);
    assert.match(text, /export where proto = "slbctl_vips"/);
    assert.doesNotMatch(text, /protocol kernel/, 'nothing is installed in the balancer');
    assert.equal(renderBirdConfig(c, []).includes('route '), false);
    assert.equal(renderBirdConfig({ ...c, bfd: false }, []).includes('bfd'), false);
  });

  it('tags each VIP route with the (AS, size, seed) large community of its mh services on nftables, defaults included', () => {
    const c = resolveSpeaker(bgp, interfaces);
    const svc = (vip: string, port: number, scheduler: Service['scheduler'], maglev?: Service['maglev']): Service => ({
      name: `${vip}:${port}`,
      vip,
      port,
      protocol: 'tcp',
      mode: 'dsr',
      scheduler,
      realServers: [],
      ...(maglev ? { maglev } : {}),
    });
    const services = [
      svc('172.16.75.84', 80, 'mh', { size: 251, seed: 42 }),
      svc('172.16.75.84', 81, 'mh'),
      svc('172.16.75.84', 82, 'mh', { size: 251, seed: 42 }),
      svc('172.16.75.90', 80, 'rr'),
    ];
    const maglev = maglevByVip(services, 'nft');
    assert.deepEqual(maglevByVip(services, 'ipvs'), new Map(), "IPVS's mh is the kernel's: nothing to announce");
    const text = renderBirdConfig(c, ['172.16.75.84', '172.16.75.90'], maglev);
    assert.match(
      text,
      /route 172\.16\.75\.84\/32 blackhole \{ bgp_large_community\.add\(\(65001, 251, 42\)\); bgp_large_community\.add\(\(65001, 1021, 1307\)\); \};/,
    );
    assert.match(text, /route 172\.16\.75\.90\/32 blackhole;/);
  });

  it("reads each balancer's Maglev communities from the router's `birdc show route PREFIX all`", () => {
    const text = [
      'Table master4:',
      '172.16.75.84/32      unicast [lb 08:45:32.206] * (100) [AS65001i]',
      '\tvia 172.16.75.83 on br0',
      '\tBGP.large_community: (65001, 1021, 1307)',
      '                     unicast [lb2 08:45:32.354] (100) [AS65001i]',
      '\tvia 172.16.75.86 on br0',
      '\tBGP.large_community: (65001, 1021, 7) (65001, 251, 42)',
      '                     unicast [lb3 08:45:33.000] (100) [AS65001i]',
      '\tvia 172.16.75.87 on br0',
    ].join('\n');
    assert.deepEqual(
      communitiesByProtocol(text),
      new Map([
        ['lb', ['(65001,1021,1307)']],
        ['lb2', ['(65001,1021,7)', '(65001,251,42)']],
        ['lb3', []],
      ]),
    );
  });

  it('ha.bgp.balancers: one list for every balancer (each skips its own address); learn-only iBGP with the others', () => {
    const ok = parseConfig(
      `${service}ha:\n  bgp:\n    asn: 65001\n    peers: [{ address: 172.16.75.1, asn: 65000 }]\n    balancers: [172.16.75.83, 172.16.75.86]\n`,
    );
    assert.ok(ok.ok);
    assert.deepEqual(ok.config.ha?.bgp?.balancers, ['172.16.75.83', '172.16.75.86']);
    assert.match(
      issues(
        '  bgp:\n    asn: 65001\n    peers: [{ address: 172.16.75.1, asn: 65000 }]\n    balancers: [172.16.75.86, 172.16.75.86]\n',
      ).join(),
      /balancers\[1\]: 172\.16\.75\.86 is listed twice/,
    );
    assert.match(
      issues('  bgp:\n    asn: 65001\n    peers: [{ address: 172.16.75.1, asn: 65000 }]\n    balancers: [172.16.75.1]\n').join(),
      /balancers\[0\]: 172\.16\.75\.1 is listed twice/,
    );
    assert.match(
      issues('  bgp:\n    asn: 65001\n    peers: [{ address: 172.16.75.1, asn: 65000 }]\n    balancers: 172.16.75.86\n').join(),
      /ha\.bgp\.balancers: must be a list/,
    );
    const c = resolveSpeaker({ ...bgp, balancers: ['172.16.75.83', '172.16.75.86'] }, interfaces);
    assert.deepEqual(c.balancers, [{ address: '172.16.75.86', asn: 65001, local: '172.16.75.83', device: 'eth0' }]);
    const text = renderBirdConfig(c, ['172.16.75.84']);
    assert.match(
      text,
      /protocol bgp balancer0 \{\n {2}local 172\.16\.75\.83 as 65001;\n {2}neighbor 172\.16\.75\.86 as 65001;\n {2}direct;\n(?: {2}[^\n]*\n)*? {2}ipv4 \{ import where net\.len = 32; export where proto = "slbctl_vips"; \};\n\}/,
    );
    assert.equal(/protocol bgp balancer0 \{[^}]*bfd on/.test(text), false, 'no BFD with the other balancers: they carry no traffic');
    assert.doesNotMatch(text, /protocol kernel/, "the other balancers' routes are never installed");
    assert.equal(resolveSpeaker({ ...bgp, balancers: ['172.16.75.83'] }, interfaces).balancers, undefined);
    assert.throws(
      () => resolveSpeaker({ ...bgp, balancers: ['10.9.9.9'] }, interfaces),
      (e: unknown) => e instanceof BgpError && /ha\.bgp\.balancers\[0\]: 10\.9\.9\.9 is on no subnet of this host/.test(e.message),
    );
  });

  it("compares the other balancers' Maglev communities with ours, VIP by VIP, in one sentence each", () => {
    const text = [
      'Table master4:',
      '172.16.75.84/32      unicast [balancer0 08:45:32.206] (100) [i]',
      '\tvia 172.16.75.86 on eth0',
      '\tBGP.large_community: (65001, 1021, 7) (64999, 1, 2)',
      '                     blackhole [slbctl_vips 08:45:30.000] * (200)',
      '\tBGP.large_community: (65001, 1021, 1307)',
      '172.16.75.90/32      unicast [balancer0 08:45:32.206] (100) [i]',
      '\tvia 172.16.75.86 on eth0',
    ].join('\n');
    const routes = routeCommunities(text);
    assert.deepEqual(
      routes.get('balancer0'),
      new Map([
        ['172.16.75.84/32', ['(64999,1,2)', '(65001,1021,7)']],
        ['172.16.75.90/32', []],
      ]),
    );
    assert.deepEqual(routes.get('slbctl_vips'), new Map([['172.16.75.84/32', ['(65001,1021,1307)']]]));
    assert.deepEqual(maglevOfCommunities(['(64999,1,2)', '(65001,1021,7)'], 65001), [{ size: 1021, seed: 7 }]);
    const theirs = new Map([
      [
        '172.16.75.86',
        new Map([
          ['172.16.75.84', [{ size: 1021, seed: 7 }]],
          ['172.16.75.90', []],
        ]),
      ],
    ]);
    const ours = new Map([
      ['172.16.75.84', [{ size: 1021, seed: 1307 }]],
      ['172.16.75.90', []],
      ['172.16.75.91', [{ size: 251, seed: 1 }]],
    ]);
    const found = maglevDisagreements(ours, theirs);
    assert.deepEqual(
      found.map((d) => d.vip),
      ['172.16.75.84'],
      'equal pairs agree; a VIP the other does not announce is not compared',
    );
    assert.equal(
      describeDisagreement(found[0]),
      'balancer 172.16.75.86 announces 172.16.75.84 with size 1021 seed 7, this balancer with size 1021 seed 1307: the two would send one flow to different real servers; give every balancer of the VIP the same scheduler, backend and maglev: {size, seed}',
    );
    assert.deepEqual(maglevDisagreements(new Map([['172.16.75.84', [{ size: 1021, seed: 7 }]]]), theirs), []);
  });

  it('refuses a peer on no subnet of this host, naming what it has', () => {
    assert.throws(
      () => resolveSpeaker({ ...bgp, peers: [{ address: '10.9.9.9', asn: 65000 }] }, interfaces),
      (e: unknown) => e instanceof BgpError && /10\.9\.9\.9 is on no subnet of this host .*172\.16\.75\.83\/24 on eth0/.test(e.message),
    );
  });

  it('the lab router learns both balancers and merges their routes (ECMP)', () => {
    const text = renderRouterBird(REFERENCE_TOPOLOGY);
    assert.match(text, /merge paths on;/);
    assert.match(text, /protocol bgp lb from balancer \{ neighbor 172\.16\.75\.83 as 65001; \}/);
    assert.match(text, /protocol bgp lb2 from balancer \{ neighbor 172\.16\.75\.86 as 65001; \}/);
  });
});
