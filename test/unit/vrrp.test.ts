// ha.vrrp and ha.sync (validation), and what slbctl writes for keepalived and
// conntrackd from them: the contract of the active/standby engines, checked
// without starting them (test/integration/ha-vrrp.test.ts runs them for real).
import { describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import { parseConfig } from '../../src/model/parse';
import { Config } from '../../src/model/types';
import { floatingAddresses, parseTransition, renderKeepalivedConfig } from '../../src/ha/keepalived';
import { conntrackdFiles, localSyncAddress, renderConntrackdConfig, renderNotifyScript } from '../../src/ha/conntrackd';
import { HaEngineError } from '../../src/ha/child';
import { resolveVrrp } from '../../src/ha/vrrp';
import { resolveConfig } from '../../src/engine/resolve';
import { NetInterface } from '../../src/kernel/rtnl/rtnl';
import { DEFAULT_LAB_OPTIONS, LAB_VRRP_ROUTER_ID, labServiceConfig } from '../../src/lab/lb-config';
import { REFERENCE_TOPOLOGY } from '../../src/lab/topology';

const service = `services:
  - vip: 172.16.75.84
    port: 80
    protocol: tcp
    mode: fullnat
    snatAddress: 172.16.75.99
    realServers: [{ address: 172.16.75.82, port: 80, weight: 1 }]
`;

function parsed(ha: string, services = service): Config {
  const r = parseConfig(`${services}ha:\n${ha}`);
  assert.ok(r.ok, r.ok ? '' : r.issues.map((i) => `${i.path}: ${i.message}`).join('\n'));
  return r.config;
}

function issues(ha: string, services = service): string[] {
  const r = parseConfig(`${services}ha:\n${ha}`);
  return r.ok ? [] : r.issues.map((i) => `${i.path}: ${i.message}`);
}

const interfaces: NetInterface[] = [
  { index: 1, name: 'lo', up: true, addresses: [{ address: '127.0.0.1', prefixLength: 8 }] },
  { index: 2, name: 'eth0', up: true, mac: '02:00:00:00:00:01', addresses: [{ address: '172.16.75.83', prefixLength: 24 }] },
  { index: 3, name: 'eth1', up: true, mac: '02:00:00:00:00:02', addresses: [{ address: '10.0.0.1', prefixLength: 30 }] },
];

const VRRP = '  vrrp:\n    interface: eth0\n    virtualRouterId: 51\n    priority: 150\n';

describe('ha.vrrp and ha.sync validation', () => {
  it('takes a pair with defaults: multicast, adverts every second, no extra address', () => {
    assert.deepEqual(parsed(VRRP).ha, {
      vrrp: { interface: 'eth0', virtualRouterId: 51, priority: 150, peers: [], advertIntervalMs: 1000, addresses: [] },
    });
  });

  it('takes unicast peers, a fast advert interval, floating addresses (a /32 unless said), and sync', () => {
    const c = parsed(
      `${VRRP}    peers: [172.16.75.86]\n    advertInterval: 100\n    addresses: [172.16.75.99, 10.1.0.1/24]\n  sync:\n    engine: conntrackd\n    interface: eth1\n    peer: 10.0.0.2\n`,
    );
    assert.deepEqual(c.ha?.vrrp?.peers, ['172.16.75.86']);
    assert.equal(c.ha?.vrrp?.advertIntervalMs, 100);
    assert.deepEqual(c.ha?.vrrp?.addresses, ['172.16.75.99/32', '10.1.0.1/24']);
    assert.deepEqual(c.ha?.sync, { engine: 'conntrackd', interface: 'eth1', peer: '10.0.0.2' });
  });

  it('refuses each bad input with one sentence at its path', () => {
    const cases: [string, RegExp][] = [
      ['  vrrp: {}\n', /ha\.vrrp\.interface: is required.*ha\.vrrp\.virtualRouterId: is required.*ha\.vrrp\.priority: is required/],
      ['  vrrp: 3\n', /ha\.vrrp: must be a mapping/],
      [VRRP.replace('51', '0'), /virtualRouterId: 0 is not a VRRP virtual router id; use a whole number, 1-255/],
      [VRRP.replace('51', '256'), /virtualRouterId: 256 is not/],
      [VRRP.replace('150', '255'), /priority: 255 is not a VRRP priority; use a whole number, 1-254/],
      [VRRP.replace('eth0', '"eth 0"'), /interface: "eth 0" is not an interface name/],
      [`${VRRP}    advertInterval: 15\n`, /advertInterval: 15 is not a VRRP advert interval; use milliseconds in steps of 10, 10-40950/],
      [`${VRRP}    advertInterval: 50000\n`, /advertInterval: 50000 is not/],
      [`${VRRP}    peers: [172.16.75.86, 172.16.75.86]\n`, /peers\[1\]: 172\.16\.75\.86 is already peers\[0\]; list it once/],
      [`${VRRP}    peers: [224.0.0.18]\n`, /peers\[0\]: 224\.0\.0\.18 is/],
      [`${VRRP}    peers: 172.16.75.86\n`, /peers: must be a list/],
      [`${VRRP}    addresses: [10.1.0.1/33]\n`, /addresses\[0\]: "10\.1\.0\.1\/33" is not an IPv4 address with an optional prefix length/],
      [
        `${VRRP}    addresses: [172.16.75.84]\n`,
        /ha\.vrrp\.addresses: 172\.16\.75\.84 is the VIP of services\[0\]; VIPs float with VRRP without being listed/,
      ],
      [
        `${VRRP}    state: MASTER\n`,
        /ha\.vrrp\.state: unknown key; allowed keys are interface, virtualRouterId, priority, peers, advertInterval, addresses/,
      ],
      ['  bgp:\n    asn: 65001\n    peers: [{ address: 172.16.75.1, asn: 65000 }]\n' + VRRP, /^ha: has both bgp and vrrp; choose one/],
      ['  sync:\n    engine: conntrackd\n    interface: eth1\n    peer: 10.0.0.2\n', /ha\.sync: needs ha\.vrrp/],
      [
        `${VRRP}  sync:\n    engine: ipvs\n    interface: eth1\n    peer: 10.0.0.2\n`,
        /ha\.sync\.peer: does not apply to engine ipvs \(it is a conntrackd setting\); remove it/,
      ],
      [`${VRRP}  sync: { engine: conntrackd }\n`, /ha\.sync\.interface: is required.*ha\.sync\.peer: is required/],
    ];
    for (const [ha, want] of cases) {
      const got = issues(ha);
      assert.match(got.join(' | '), want, ha);
      // One sentence each: no message runs over several lines or sentences.
      for (const m of got) assert.doesNotMatch(m, /\n|\. [A-Z]/, m);
    }
  });

  it('refuses http services under ha.vrrp: HAProxy could not bind to the VIP on the standby', () => {
    const http = service.replace('protocol: tcp', 'protocol: http');
    assert.match(issues(VRRP, http).join(), /services\[0\]\.protocol: http services cannot run under ha\.vrrp yet/);
  });

  it('leaves the VIPs out of the addresses slbctl plans: keepalived holds them', () => {
    const facts = { interfaces, macOf: () => undefined };
    const without = parseConfig(service);
    assert.ok(without.ok);
    assert.deepEqual(resolveConfig(without.config, facts).addresses, [
      { address: '172.16.75.84', device: 'eth0' },
      { address: '172.16.75.99', device: 'eth0' },
    ]);
    const desired = resolveConfig(parsed(VRRP), facts);
    assert.deepEqual(desired.addresses, [{ address: '172.16.75.99', device: 'eth0' }], 'only the (unlisted) source address');
    assert.equal(desired.services.length, 1, 'the services are still programmed on both balancers');
  });

  it('a fullnat source address listed in ha.vrrp.addresses floats with keepalived; one not listed is planned as without ha', () => {
    const facts = { interfaces, macOf: () => undefined };
    assert.deepEqual(resolveConfig(parsed(`${VRRP}    addresses: [172.16.75.99]\n`), facts).addresses, []);
    assert.deepEqual(resolveConfig(parsed(VRRP), facts).addresses, [{ address: '172.16.75.99', device: 'eth0' }]);
  });
});

describe('ha.vrrp against this host, before anything starts', () => {
  it('an interface it lacks is one sentence naming the ones it has; the sync source is the address facing the peer', () => {
    assert.throws(
      () => resolveVrrp(parsed(VRRP.replace('eth0', 'eth9')), interfaces),
      (e: unknown) =>
        e instanceof HaEngineError && e.message === 'ha.vrrp.interface: "eth9" does not exist on this host (it has lo, eth0, eth1)',
    );
    assert.deepEqual(resolveVrrp(parsed(VRRP), interfaces), {});
    assert.deepEqual(resolveVrrp(parsed(`${VRRP}  sync: { engine: conntrackd, interface: eth1, peer: 10.0.0.2 }\n`), interfaces), {
      syncFrom: '10.0.0.1',
    });
  });
});

describe('the keepalived config slbctl writes', () => {
  it('one instance, BACKUP with nopreempt, every VIP as a /32 plus the floating addresses, VRRPv3 timing', () => {
    const c = parsed(`${VRRP}    advertInterval: 100\n    addresses: [172.16.75.99]\n`);
    const vrrp = c.ha?.vrrp;
    assert.ok(vrrp);
    const floating = floatingAddresses(c);
    assert.deepEqual(floating, [
      { address: '172.16.75.84/32', device: 'eth0' },
      { address: '172.16.75.99/32', device: 'eth0' },
    ]);
    const text = renderKeepalivedConfig(vrrp, floating);
    assert.match(text, /vrrp_version 3/);
    assert.match(
      text,
      /vrrp_instance slbctl \{\n {2}state BACKUP\n {2}nopreempt\n {2}interface eth0\n {2}virtual_router_id 51\n {2}priority 150\n {2}advert_int 0\.1\n/,
    );
    assert.match(text, /virtual_ipaddress \{\n {4}172\.16\.75\.84\/32 dev eth0\n {4}172\.16\.75\.99\/32 dev eth0\n {2}\}/);
    assert.doesNotMatch(text, /virtual_server|unicast_peer|notify/, 'no LVS section, multicast, no sync hook');
  });

  it('unicast peers and the notify hook when sync is on', () => {
    const c = parsed(`${VRRP}    peers: [172.16.75.86]\n`);
    const vrrp = c.ha?.vrrp;
    assert.ok(vrrp);
    const text = renderKeepalivedConfig(vrrp, floatingAddresses(c), '/run/slbctl/keepalived/net-1/notify.sh');
    assert.match(text, /unicast_peer \{\n {4}172\.16\.75\.86\n {2}\}/);
    assert.match(text, /notify_master "\/run\/slbctl\/keepalived\/net-1\/notify\.sh master"/);
    assert.match(text, /notify_backup "\/run\/slbctl\/keepalived\/net-1\/notify\.sh backup"/);
    assert.throws(() => renderKeepalivedConfig(vrrp, [], '/tmp/a b/notify.sh'), HaEngineError);
  });

  it("tracks the services' health through a file keepalived watches (weight 0: non-zero is FAULT)", () => {
    const c = parsed(VRRP);
    const vrrp = c.ha?.vrrp;
    assert.ok(vrrp);
    const text = renderKeepalivedConfig(vrrp, floatingAddresses(c), undefined, '/run/slbctl/keepalived/net-1/health');
    assert.match(text, /^track_file slbctl_health \{\n {2}file "\/run\/slbctl\/keepalived\/net-1\/health"\n {2}weight 0\n\}$/m);
    assert.match(text, /virtual_ipaddress \{[^}]*\}\n {2}track_file \{\n {4}slbctl_health\n {2}\}/);
    assert.throws(() => renderKeepalivedConfig(vrrp, [], undefined, '/run/a "b"/health'), HaEngineError);
  });

  it('reads the transitions of its own instance from keepalived console lines', () => {
    assert.equal(parseTransition('Sat Nov 28 05:17:06 2026: (slbctl) Entering MASTER STATE'), 'MASTER');
    assert.equal(parseTransition('Sat Nov 28 05:17:05 2026: (slbctl) Entering BACKUP STATE (init)'), 'BACKUP');
    assert.equal(parseTransition('(slbctl) Entering FAULT STATE'), 'FAULT');
    assert.equal(parseTransition('(other) Entering MASTER STATE'), undefined);
    assert.equal(parseTransition('Startup complete'), undefined);
  });
});

describe('the conntrackd config slbctl writes', () => {
  const sync = { engine: 'conntrackd' as const, interface: 'eth1', peer: '10.0.0.2' };
  const files = conntrackdFiles('/run/slbctl/conntrackd/net-7');

  it('FTFW over UDP unicast from the address facing the peer, with its own lock, socket and log', () => {
    assert.equal(localSyncAddress(sync, interfaces), '10.0.0.1');
    const text = renderConntrackdConfig(sync, '10.0.0.1', files);
    assert.match(text, /Mode FTFW \{/);
    assert.match(
      text,
      /UDP \{\n {4}IPv4_address 10\.0\.0\.1\n {4}IPv4_Destination_Address 10\.0\.0\.2\n {4}Port 3780\n {4}Interface eth1\n/,
    );
    assert.match(text, /LockFile \/run\/slbctl\/conntrackd\/net-7\/conntrackd\.lock/);
    assert.match(text, /UNIX \{\n {4}Path \/run\/slbctl\/conntrackd\/net-7\/conntrackd\.ctl\n/);
    assert.doesNotMatch(text, /\/var\/(lock|run)/, 'nothing host-wide: one conntrackd per namespace');
    assert.doesNotMatch(text, /Multicast/);
  });

  it('refuses a sync interface that does not exist and a peer off its subnets, one sentence each', () => {
    assert.throws(
      () => localSyncAddress({ ...sync, interface: 'eth9' }, interfaces),
      /ha\.sync\.interface: "eth9" does not exist on this host \(it has lo, eth0, eth1\)/,
    );
    assert.throws(
      () => localSyncAddress({ ...sync, peer: '172.16.75.86' }, interfaces),
      /ha\.sync\.peer: 172\.16\.75\.86 is on no subnet of eth1 \(it has 10\.0\.0\.1\/30\)/,
    );
  });

  it('the notify script: master commits, flushes, resyncs and sends in bulk; backup ages the kernel entries and asks for a resync', () => {
    const script = renderNotifyScript('/usr/sbin/conntrackd', files, "/run/it's/notify.log");
    assert.match(script, /^#!\/bin\/sh\n/);
    assert.match(script, /ct\(\) \{ '\/usr\/sbin\/conntrackd' -C '\/run\/slbctl\/conntrackd\/net-7\/conntrackd\.conf' "\$@"/);
    assert.match(script, /master\) ct -c; ct -f; ct -R; ct -B ;;/);
    assert.match(script, /backup\) ct -t; ct -n ;;/);
    assert.match(script, /exec >>'\/run\/it'\\''s\/notify\.log' 2>&1/, 'paths are single-quoted for sh');
  });
});

describe("the lab pair's configs (lab mode fullnat|transparent --ha vrrp)", () => {
  const pairConfig = (mode: 'fullnat' | 'transparent', engine: 'conntrackd' | 'ipvs', sync = true): Config => {
    const text = labServiceConfig(mode, REFERENCE_TOPOLOGY, { ...DEFAULT_LAB_OPTIONS, ha: 'vrrp', sync, syncEngine: engine }, 'lb2');
    const r = parseConfig(text);
    assert.ok(r.ok, r.ok ? '' : r.issues.map((i) => `${i.path}: ${i.message}`).join('\n'));
    return r.config;
  };

  it('nftables: conntrackd to the peer, and conntrack does not pick up a flow mid-stream', () => {
    const c = pairConfig('fullnat', 'conntrackd');
    assert.deepEqual(c.ha?.sync, { engine: 'conntrackd', interface: 'eth0', peer: '172.16.75.83' });
    assert.equal(c.conntrack?.tcpLoose, false);
  });

  it("IPVS: the kernel's sync daemons on eth0 with the VRRP group's id, and conntrack picks the synced flow up for the source NAT", () => {
    for (const mode of ['fullnat', 'transparent'] as const) {
      const c = pairConfig(mode, 'ipvs');
      assert.equal(c.ha?.sync?.engine, 'ipvs');
      assert.equal(c.ha?.sync?.interface, 'eth0');
      assert.equal(c.ha?.sync?.engine === 'ipvs' ? c.ha.sync.syncId : undefined, LAB_VRRP_ROUTER_ID);
      assert.equal(c.conntrack?.tcpLoose, true);
    }
  });

  it('--no-sync: no sync section, whichever engine the backend would use', () => {
    assert.equal(pairConfig('fullnat', 'ipvs', false).ha?.sync, undefined);
    assert.equal(pairConfig('fullnat', 'conntrackd', false).ha?.sync, undefined);
  });
});
