// L7 service types in the model: what validate accepts and refuses, how they
// resolve (TLS files checked), and the L7 engine's plan (start, reload,
// weights by the runtime API, stop).
import { describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { selfSignedCertificate } from '../../src/util/certificate';
import { parseConfig } from '../../src/model/parse';
import { resolveConfig, HostFacts } from '../../src/engine/resolve';
import { planL7, describeL7 } from '../../src/backends/haproxy/plan';
import { L7ServiceState } from '../../src/model/state';
import { plan } from '../../src/plan/planner';
import { formatPlan } from '../../src/plan/format';
import { EMPTY_STATE } from '../../src/model/state';
import { parseMangleListing } from '../../src/backends/haproxy/return-path';

const facts: HostFacts = {
  interfaces: [
    {
      name: 'eth0',
      index: 2,
      mac: '02:00:00:00:00:01',
      up: true,
      addresses: [{ address: '172.16.75.83', prefixLength: 24 }],
    },
  ],
  macOf: () => undefined,
};

function issues(yaml: string): string[] {
  const r = parseConfig(yaml);
  return r.ok ? [] : r.issues.map((i) => `${i.path}: ${i.message}`);
}

const service = (extra: string, protocol = 'http', mode = 'fullnat') => `services:
  - vip: 172.16.75.100
    port: 80
    protocol: ${protocol}
    mode: ${mode}
${extra}    realServers:
      - { address: 172.16.75.91 }
      - { address: 172.16.75.92 }
`;

describe('L7 service types: validation', () => {
  it('http with fullnat and transparent is valid', () => {
    assert.deepEqual(issues(service('')), []);
    assert.deepEqual(issues(service('', 'http', 'transparent')), []);
  });

  it('http with dsr is refused in one sentence', () => {
    assert.deepEqual(issues(service('', 'http', 'dsr')), [
      'services[0].mode: dsr cannot serve protocol http: direct server return is L4 (the balancer never sees the reply, so it cannot proxy HTTP); use mode fullnat or transparent, or protocol tcp',
    ]);
  });

  it('https needs tls; tls is only for https; cache is only for L7', () => {
    assert.match(issues(service('', 'https'))[0] ?? '', /^services\[0\]\.tls: is required for protocol https/);
    assert.match(issues(service('    tls: { certificate: /a, key: /b }\n'))[0] ?? '', /only applies to protocol https/);
    assert.match(issues(service('    cache: { maxAge: 60 }\n', 'tcp'))[0] ?? '', /only applies to protocol http or https/);
  });

  it('cache sizes: units, bounds, object at most half the cache', () => {
    const r = parseConfig(service('    cache: { maxAge: 30, maxObjectSize: 512k, totalSize: 8m }\n'));
    assert.ok(r.ok);
    assert.deepEqual(r.config.services[0]?.cache, { maxAge: 30, maxObjectSize: 512 * 1024, totalSize: 8 * 1024 * 1024 });
    assert.match(issues(service('    cache: { totalSize: 5g }\n'))[0] ?? '', /is not a cache size \(1m to 4095m/);
    assert.match(issues(service('    cache: { maxObjectSize: 5m, totalSize: 8m }\n'))[0] ?? '', /over half the cache/);
  });

  it('an L7 scheduler, no persistence, no ipip', () => {
    assert.match(issues(service('    scheduler: wlc\n'))[0] ?? '', /not a scheduler of the L7 engine; use one of rr, wrr, sh, lc/);
    assert.match(issues(service('    persistence: { timeout: 60 }\n'))[0] ?? '', /scheduler sh keeps a client on one real server/);
  });

  it('an L4 tcp and an L7 http service cannot share VIP:port', () => {
    const yaml = `services:
  - { vip: 172.16.75.100, port: 80, protocol: tcp, mode: fullnat, realServers: [{ address: 172.16.75.91 }] }
  - { vip: 172.16.75.100, port: 80, protocol: http, mode: fullnat, realServers: [{ address: 172.16.75.91 }] }
`;
    assert.deepEqual(issues(yaml), [
      'services[1]: takes tcp/172.16.75.100:80 like services[0]; an L4 and an L7 service cannot share one VIP and port',
    ]);
  });
});

describe('L7 service types: resolve', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'slbctl-l7-'));
  const cert = (name: string) => selfSignedCertificate(dir, name, name, 1);

  it('http goes to the L7 engine with its VIP device and source address; the kernel backend gets none', () => {
    const r = parseConfig(service(''));
    assert.ok(r.ok);
    const d = resolveConfig(r.config, facts, 'nft');
    assert.deepEqual(d.services, []);
    assert.deepEqual(d.addresses, [{ address: '172.16.75.100', device: 'eth0' }]);
    assert.equal(d.l7?.length, 1);
    assert.equal(d.l7?.[0]?.snatAddress, '172.16.75.83');
    assert.equal(d.l7?.[0]?.device, 'eth0');
  });

  it("https: unreadable files and a key that is not the certificate's are refused", async () => {
    const a = await cert('a');
    const b = await cert('b');
    const withTls = (t: { certificate: string; key: string }) => {
      const r = parseConfig(service(`    tls: { certificate: ${t.certificate}, key: ${t.key} }\n`, 'https'));
      assert.ok(r.ok);
      return () => resolveConfig(r.config, facts, 'nft');
    };
    assert.doesNotThrow(withTls(a));
    assert.throws(withTls({ certificate: a.certificate, key: b.key }), /is not the private key of the certificate/);
    assert.throws(withTls({ certificate: path.join(dir, 'none.crt'), key: a.key }), /cannot be read: ENOENT/);
    assert.throws(withTls({ certificate: a.key, key: a.key }), /is not a PEM certificate/);
    fs.rmSync(dir, { recursive: true, force: true });
  });
});

const l7 = (weights: number[], extra: Partial<L7ServiceState> = {}): L7ServiceState => ({
  name: 'web',
  vip: '172.16.75.100',
  port: 80,
  protocol: 'http',
  mode: 'fullnat',
  scheduler: 'rr',
  device: 'eth0',
  snatAddress: '172.16.75.83',
  realServers: weights.map((weight, i) => ({ address: `172.16.75.9${i + 1}`, port: 80, weight })),
  ...extra,
});

describe('L7 engine plan', () => {
  it('nothing wanted, nothing running: no change; undefined desired leaves the engine alone', () => {
    assert.deepEqual(planL7([], undefined), []);
    assert.deepEqual(planL7(undefined, { running: true, services: [l7([1])] }), []);
  });

  it('start when not running (also after a crash), stop when nothing is wanted', () => {
    assert.deepEqual(planL7([l7([1, 1])], undefined), [{ what: 'start', services: [l7([1, 1])] }]);
    assert.deepEqual(planL7([l7([1, 1])], { running: false, services: [] }), [{ what: 'start', services: [l7([1, 1])] }]);
    assert.deepEqual(planL7([], { running: true, services: [l7([1])] }), [{ what: 'stop', services: [l7([1])] }]);
  });

  it('weights only: runtime API changes, no reload; a weight changed by hand (-1) is set back', () => {
    assert.deepEqual(planL7([l7([1, 1])], { running: true, services: [l7([1, 1])] }), []);
    const changes = planL7([l7([3, 0])], { running: true, services: [l7([1, -1])] });
    assert.deepEqual(
      changes.map((c) => (c.what === 'set-weight' ? `${c.address} ${c.from}->${c.to}` : c.what)),
      ['172.16.75.91 1->3', '172.16.75.92 -1->0'],
    );
  });

  it('a new real server, a new service, a changed mode or cache: one seamless reload, with what changed', () => {
    const [c] = planL7([l7([1, 1, 1]), l7([1], { port: 8080 })], { running: true, services: [l7([1, 1])] });
    assert.equal(c?.what, 'reload');
    assert.deepEqual(c?.what === 'reload' ? c.changes : [], [
      '~ http/172.16.75.100:80: + real server 172.16.75.93:80',
      '+ http/172.16.75.100:8080',
    ]);
    const m = planL7([l7([1], { mode: 'transparent', snatAddress: undefined })], { running: true, services: [l7([1])] }).find(
      (c) => c.what === 'reload',
    );
    assert.deepEqual(m?.what === 'reload' ? m.changes : [], [
      '~ http/172.16.75.100:80: mode fullnat -> transparent, snatAddress 172.16.75.83 -> -',
    ]);
  });

  it('the plan prints the L7 changes after the VIP is added', () => {
    const p = plan(
      { backend: 'nft', services: [], addresses: [{ address: '172.16.75.100', device: 'eth0' }], sysctls: {}, l7: [l7([1])] },
      { kernel: EMPTY_STATE, addresses: [], sysctls: {} },
    );
    assert.equal(
      formatPlan(p.ops),
      [
        '+ address 172.16.75.100/32 dev eth0',
        '+ haproxy: start (master-worker) serving',
        '    http/172.16.75.100:80 "web" L7 reverse proxy rr dev eth0 from 172.16.75.83',
        '      real server 172.16.75.91:80 weight 1',
      ].join('\n'),
    );
    assert.deepEqual(describeL7({ what: 'stop', services: [] }), ['- haproxy: stop (served nothing)']);
  });
});

describe('L7 engine plan: the transparent return path', () => {
  const transparent = l7([1], { mode: 'transparent', snatAddress: undefined });
  it('comes before HAProxy serves a transparent service, and is repaired when a piece is missing', () => {
    assert.deepEqual(
      planL7([transparent], undefined).map((c) => c.what),
      ['return-path', 'start'],
    );
    assert.deepEqual(
      planL7([transparent], { running: true, services: [transparent], returnPath: 'partial' }).map((c) => c.what),
      ['return-path'],
    );
    assert.deepEqual(planL7([transparent], { running: true, services: [transparent], returnPath: 'complete' }), []);
  });

  it('goes after the last transparent service, and with destroy', () => {
    const running = { running: true, services: [transparent], returnPath: 'complete' as const };
    assert.deepEqual(
      planL7([l7([1])], running).map((c) => (c.what === 'return-path' ? `return-path ${c.add}` : c.what)),
      ['reload', 'return-path false'],
    );
    assert.deepEqual(
      planL7([], running).map((c) => (c.what === 'return-path' ? `return-path ${c.add}` : c.what)),
      ['stop', 'return-path false'],
    );
  });
});

describe('L7 transparent return path through iptables (kernels whose nftables has no ip family)', () => {
  it("reads slbctl's chain, its one rule and the jumps from `iptables -t mangle -S`, nothing else", () => {
    const listing = [
      '-P PREROUTING ACCEPT',
      '-N OTHER',
      '-N SLBCTL-L7',
      '-A PREROUTING -j OTHER',
      '-A PREROUTING -j SLBCTL-L7',
      '-A SLBCTL-L7 -p tcp -m socket --transparent -j MARK --set-xmark 0x534c37/0xffffffff',
      '-A OTHER -p tcp -m socket --transparent -j MARK --set-xmark 0x1/0xffffffff',
    ].join('\n');
    assert.deepEqual(parseMangleListing(listing), { chain: true, rule: true, jumps: 1 });
    assert.deepEqual(parseMangleListing('-P PREROUTING ACCEPT\n-N SLBCTL-L7\n-A PREROUTING -j SLBCTL-L7\n-A PREROUTING -j SLBCTL-L7'), {
      chain: true,
      rule: false,
      jumps: 2,
    });
    assert.deepEqual(parseMangleListing('-P PREROUTING ACCEPT\n-A OTHER -j MARK --set-xmark 0x534c37/0xffffffff'), {
      chain: false,
      rule: false,
      jumps: 0,
    });
  });
});
