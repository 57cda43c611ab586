// Full NAT's source NAT pool (snatAddresses), its port range (snatPorts) and
// the conntrack timeouts: parsed and refused with one sentence each, resolved
// against a made-up balancer, rendered as nftables text, and (as root with nft)
// loaded into a private namespace, read back as the same services, and
// re-planned to no changes.
import { describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import { parseConfig } from '../../src/model/parse';
import { Config, Service } from '../../src/model/types';
import { ServiceState } from '../../src/model/state';
import { HostFacts, ResolveError, resolveConfig } from '../../src/engine/resolve';
import type { NetInterface } from '../../src/kernel/rtnl/rtnl';
import { plan } from '../../src/plan/planner';
import { formatPlan } from '../../src/plan/format';
import { DesiredState, ObservedState } from '../../src/plan/types';
import { renderPlan } from '../../src/kernel/nft/render';
import { observeFromInventories, observeFromListings } from '../../src/kernel/nft/observe';
import { expectedInventory } from '../../src/kernel/nft/expected';
import { objectRepairs } from '../../src/kernel/nft/integrity';
import { snatUse } from '../../src/kernel/conntrack/snat-use';
import { parseFlows } from '../../src/kernel/conntrack/conntrack';
import { findCommand, run, runChecked } from '../../src/util/exec';
import { SnatWatch } from '../../src/controller/snat-watch';
import { renderMetrics } from '../../src/controller/metrics';

const POOL = ['172.16.75.90', '172.16.75.91'];

const yaml = (service: string, top = '') => `${top}services:
  - name: web
    vip: 172.16.75.84
    port: 80
    mode: fullnat
${service}    realServers:
      - address: 172.16.75.82
      - address: 172.16.75.85
`;

function issues(text: string): string[] {
  const r = parseConfig(text);
  assert.equal(r.ok, false, 'the config should be refused');
  return r.ok ? [] : r.issues.map((i) => `${i.path}: ${i.message}`);
}

function parsed(text: string): Config {
  const r = parseConfig(text);
  assert.ok(r.ok, r.ok ? '' : r.issues.map((i) => `${i.path}: ${i.message}`).join('\n'));
  return r.config;
}

describe('snatAddresses, snatPorts and conntrack in the config', () => {
  it('a pool keeps its order; its first address is the service snatAddress', () => {
    const c = parsed(
      yaml(`    snatAddresses: [${POOL.join(', ')}]\n    snatPorts: "20000-40000"\n`, 'conntrack: { tcpTimeWait: 10, tcpClose: 5 }\n'),
    );
    const s = c.services[0];
    assert.equal(s?.snatAddress, POOL[0]);
    assert.deepEqual(s?.snatPool, POOL);
    assert.equal(s?.snatPorts, '20000-40000');
    assert.deepEqual(c.conntrack, { tcpTimeWait: 10, tcpClose: 5 });
  });

  it('a pool of one is snatAddress, and snatAddress stays a pool of one', () => {
    const one = parsed(yaml('    snatAddresses: [172.16.75.90]\n')).services[0];
    const plain = parsed(yaml('    snatAddress: 172.16.75.90\n')).services[0];
    assert.deepEqual(one, plain);
    assert.equal(one?.snatPool, undefined);
  });

  const refused: { name: string; service: string; top?: string; want: string[] }[] = [
    {
      name: 'both keys',
      service: '    snatAddress: 172.16.75.90\n    snatAddresses: [172.16.75.91]\n',
      want: ['services[0].snatAddresses: is a pool and snatAddress is one address; set one of them, not both'],
    },
    {
      name: 'a duplicate, the VIP, a multicast address',
      service: '    snatAddresses: [172.16.75.90, 172.16.75.90, 172.16.75.84, 224.0.0.1]\n',
      want: [
        'services[0].snatAddresses[1]: 172.16.75.90 duplicates snatAddresses[0]',
        'services[0].snatAddresses[2]: 172.16.75.84 is the VIP itself; use an address of this host that faces the real servers',
        'services[0].snatAddresses[3]: 224.0.0.1 is a multicast address (224.0.0.0/4): it names a group of receivers, not one host; use a unicast address of this host that faces the real servers',
      ],
    },
    {
      name: 'an empty pool, not an address',
      service: '    snatAddresses: []\n',
      want: ['services[0].snatAddresses: must be a list of 1 to 64 addresses of this host that face the real servers'],
    },
    {
      name: 'IPv6 in an IPv4 pool',
      service: '    snatAddresses: [172.16.75.90, "fd00::1"]\n',
      want: ['services[0].snatAddresses[1]: "fd00::1" is not an IPv4 address'],
    },
    {
      name: 'port ranges',
      service: '    snatPorts: "40000-20000"\n',
      want: ['services[0].snatPorts: "40000-20000" is not a port range; write "low-high" with 1 <= low < high <= 65535, e.g. "1024-65535"'],
    },
    {
      name: 'conntrack timeouts',
      service: '',
      top: 'conntrack: { tcpTimeWait: 0, tcpLinger: 5, tcpLoose: 0 }\n',
      want: [
        'conntrack.tcpLinger: unknown key; allowed keys are tcpTimeWait, tcpClose, tcpFinWait, tcpCloseWait, tcpLoose',
        'conntrack.tcpTimeWait: 0 is not a timeout (whole seconds, 1 to 86400)',
        'conntrack.tcpLoose: 0 is not true or false',
      ],
    },
  ];
  for (const r of refused) it(`refuses ${r.name}, one sentence each`, () => assert.deepEqual(issues(yaml(r.service, r.top)), r.want));

  it('a pool and ports only for fullnat, and a pool not for the L7 engine', () => {
    assert.deepEqual(issues(yaml('    snatAddresses: [172.16.75.90]\n').replace('mode: fullnat', 'mode: transparent')), [
      'services[0].snatAddresses: only applies to mode fullnat (this service is transparent)',
    ]);
    assert.deepEqual(issues(yaml(`    protocol: http\n    snatAddresses: [${POOL.join(', ')}]\n    snatPorts: "2000-3000"\n`)), [
      'services[0].snatAddresses: the L7 engine (HAProxy) connects from one address; for protocol http use snatAddress',
      "services[0].snatPorts: is the kernel's source NAT; the L7 engine (HAProxy) picks its own ports for protocol http",
    ]);
  });
});

// ---------------------------------------------------------------- resolve

const eth0: NetInterface = {
  index: 2,
  name: 'eth0',
  up: true,
  mac: '02:00:00:00:00:83',
  addresses: [{ address: '172.16.75.83', prefixLength: 24 }],
};
const facts: HostFacts = { interfaces: [eth0], macOf: () => undefined };

describe('a pool resolved against the balancer', () => {
  const config = (over: Partial<Service> = {}, conntrack?: Config['conntrack']): Config => {
    const c = parsed(yaml(''));
    return { ...c, backend: 'nft', services: [{ ...c.services[0], ...over }], ...(conntrack ? { conntrack } : {}) };
  };

  it('pool addresses are added where their subnet is; the conntrack timeouts become sysctls', () => {
    const d = resolveConfig(
      config({ snatAddress: POOL[0], snatPool: POOL, snatPorts: '20000-40000' }, { tcpTimeWait: 10, tcpLoose: false }),
      facts,
    );
    assert.deepEqual(d.addresses, [
      { address: '172.16.75.84', device: 'eth0' },
      { address: '172.16.75.90', device: 'eth0' },
      { address: '172.16.75.91', device: 'eth0' },
    ]);
    assert.equal(d.services[0]?.snatPorts, '20000-40000');
    assert.deepEqual(d.services[0]?.snatPool, POOL);
    assert.equal(d.sysctls['net.netfilter.nf_conntrack_tcp_timeout_time_wait'], '10');
    assert.equal(d.sysctls['net.netfilter.nf_conntrack_tcp_loose'], '0');
  });

  it('the balancer own address stays where it is (nothing to add)', () => {
    const d = resolveConfig(config({ snatAddress: '172.16.75.83' }), facts);
    assert.deepEqual(d.addresses, [
      { address: '172.16.75.84', device: 'eth0' },
      { address: '172.16.75.83', device: 'eth0' },
    ]);
  });

  it('refuses an address on no subnet of this host, and a pool on the IPVS backend', () => {
    assert.throws(
      () => resolveConfig(config({ snatAddress: '10.9.9.9', snatPool: ['10.9.9.9', '172.16.75.90'] }), facts),
      (e: unknown) =>
        e instanceof ResolveError &&
        e.message ===
          "services[0].snatAddresses[0] (tcp/172.16.75.84:80): 10.9.9.9 is on no subnet of this host, so the real servers' replies to it could not find this host; use addresses of the subnet that faces the real servers",
    );
    assert.throws(
      () => resolveConfig(config({ snatAddress: POOL[0], snatPool: POOL }), facts, 'ipvs'),
      /snatAddresses with more than one address and snatPorts need the nftables backend; the IPVS backend source-NATs with one iptables rule to one address/,
    );
  });
});

// ---------------------------------------------------------------- nftables

const web = (over: Partial<ServiceState> = {}): ServiceState => ({
  name: 'web',
  vip: '172.16.75.84',
  port: 80,
  protocol: 'tcp',
  mode: 'fullnat',
  scheduler: 'rr',
  device: 'eth0',
  snatAddress: POOL[0],
  snatPool: POOL,
  realServers: [
    { address: '172.16.75.82', port: 80, weight: 1 },
    { address: '172.16.75.85', port: 80, weight: 1 },
  ],
  ...over,
});
const dnsPorts = web({
  name: 'dns',
  port: 53,
  protocol: 'udp',
  snatAddress: '172.16.75.83',
  snatPool: undefined,
  snatPorts: '30000-30999',
});

const desired = (services: ServiceState[]): DesiredState => ({
  backend: 'nft',
  services,
  addresses: [{ address: '172.16.75.84', device: 'eth0' }],
  sysctls: {},
});
const programmed = (services: ServiceState[]): ObservedState => {
  const { legacyOwnedAddresses: _l, ...kernel } = observeFromInventories(expectedInventory(services));
  return { kernel: { ...kernel, ownedAddresses: [] }, addresses: [{ address: '172.16.75.84', device: 'eth0' }], sysctls: {} };
};
const snatLines = (script: string) => script.split('\n').filter((l) => / (chain|rule) ip slbctl snat_/.test(l));

describe('the source NAT rules', () => {
  it('a pool hashes the flow over its addresses; a port range follows the address', () => {
    const p = plan(desired([web({ snatPorts: '20000-40000' }), dnsPorts]), programmed([]));
    assert.match(
      formatPlan(p.ops),
      /\+ service tcp\/172\.16\.75\.84:80 "web" fullnat rr dev eth0 snat 172\.16\.75\.90,172\.16\.75\.91 ports 20000-40000/,
    );
    assert.deepEqual(snatLines(renderPlan(p)), [
      'add chain ip slbctl snat_172_16_75_84',
      'add rule ip slbctl snat_172_16_75_84 meta l4proto udp ct original proto-dst 53 snat ip to 172.16.75.83:30000-30999',
      'add rule ip slbctl snat_172_16_75_84 meta l4proto tcp ct original proto-dst 80 snat ip to jhash ip saddr . tcp sport mod 2 seed 0x5a7 map { 0 : 172.16.75.90, 1 : 172.16.75.91 } : 20000-40000',
    ]);
  });

  it('read back from the tables: no changes; a new pool is a change of the service', () => {
    const now = [web(), dnsPorts];
    assert.equal(formatPlan(plan(desired(now), programmed(now)).ops), 'no changes');
    const bigger = web({ snatPool: [...POOL, '172.16.75.92'] });
    const p = plan(desired([bigger, dnsPorts]), programmed(now));
    assert.equal(
      formatPlan(p.ops),
      '~ service tcp/172.16.75.84:80: snatPool 172.16.75.90,172.16.75.91 -> 172.16.75.90,172.16.75.91,172.16.75.92',
    );
    assert.match(renderPlan(p), /map \{ 0 : 172\.16\.75\.90, 1 : 172\.16\.75\.91, 2 : 172\.16\.75\.92 \}$/m);
  });
});

describe('SNAT port use from conntrack', () => {
  it('counts flows by the reply destination, against ports x real servers', () => {
    const flows = parseFlows(
      [
        'tcp      6 8 TIME_WAIT src=10.8.21.40 dst=172.16.75.84 sport=5000 dport=80 src=172.16.75.82 dst=172.16.75.90 sport=80 dport=21000 [ASSURED] mark=0 use=1',
        'tcp      6 8 TIME_WAIT src=10.8.21.40 dst=172.16.75.84 sport=5001 dport=80 src=172.16.75.85 dst=172.16.75.91 sport=80 dport=22000 [ASSURED] mark=0 use=1',
        'tcp      6 431999 ESTABLISHED src=10.8.21.40 dst=172.16.75.84 sport=5002 dport=80 src=172.16.75.82 dst=172.16.75.90 sport=80 dport=23000 [ASSURED] mark=0 use=1',
        'tcp      6 431999 ESTABLISHED src=10.8.21.40 dst=172.16.75.99 sport=5002 dport=80 src=172.16.75.82 dst=10.8.21.40 sport=80 dport=5002 [ASSURED] mark=0 use=1',
      ].join('\n'),
    );
    assert.deepEqual(snatUse([web({ snatPorts: '20000-29999' })], flows), [
      { address: '172.16.75.90', services: ['tcp/172.16.75.84:80'], used: 2, capacity: 20000, ratio: 0.0001 },
      { address: '172.16.75.91', services: ['tcp/172.16.75.84:80'], used: 1, capacity: 20000, ratio: 0.00005 },
    ]);
  });
});

describe('the controller watches the pool', () => {
  const flow = (i: number, to: string) =>
    `tcp      6 8 TIME_WAIT src=10.8.21.40 dst=172.16.75.84 sport=${5000 + i} dport=80 src=172.16.75.82 dst=${to} sport=80 dport=${20000 + i} [ASSURED] mark=0 use=1`;
  const small = web({ snatPorts: '20000-20009' }); // 10 ports x 2 real servers: 20 per address

  it('warns once past 80 % of an address, says when it is back, and exposes the gauges', async () => {
    let listing = '';
    const lines: string[] = [];
    const watch = new SnatWatch(
      (level, _event, message) => lines.push(`${level}: ${message}`),
      60_000,
      () => Promise.resolve(parseFlows(listing)),
    );
    try {
      listing = Array.from({ length: 17 }, (_, i) => flow(i, POOL[0] ?? '')).join('\n');
      watch.track([small]); // samples at once
      await new Promise((r) => setImmediate(r));
      await watch.sample();
      assert.deepEqual(lines, [
        'warn: source address 172.16.75.90 has 17 of its 20 ports in use (85%); add addresses to snatAddresses, widen snatPorts or shorten conntrack.tcpTimeWait before new connections fail',
      ]);
      listing = flow(1, POOL[0] ?? '');
      await watch.sample();
      assert.equal(lines[1], 'info: source address 172.16.75.90 is back to 5% of its ports');
      const text = renderMetrics({
        backend: 'nft',
        services: [],
        applies: { ok: 0, failed: 0 },
        applyBuckets: [],
        applySeconds: { sum: 0, count: 0 },
        driftRepairs: 0,
        reloads: { ok: 0, failed: 0 },
        loopDelay: [],
        checksByKind: [],
        snat: watch.use,
        startedAt: 0,
      });
      assert.match(text, /^slbctl_snat_ports_in_use\{address="172\.16\.75\.90"\} 1$/m);
      assert.match(text, /^slbctl_snat_ports_capacity\{address="172\.16\.75\.91"\} 20$/m);
      assert.match(text, /^slbctl_snat_port_use_ratio\{address="172\.16\.75\.90"\} 0\.05$/m);
    } finally {
      watch.stop();
    }
  });
});

// ---------------------------------------------------------------- the real kernel

const canUseKernel = typeof process.getuid === 'function' && process.getuid() === 0 && findCommand('nft') !== undefined;

describe('the pool in the real kernel (private namespace)', { skip: canUseKernel ? false : 'needs root and nft' }, () => {
  it('loads, lists back as the same pool and ports, and re-plans to no changes', async () => {
    const ns = `slbt-snp-${process.pid}-${Math.floor(Math.random() * 1e9).toString(36)}`;
    await runChecked('create the test namespace', ['ip', 'netns', 'add', ns]);
    try {
      const apply = async (services: ServiceState[], before: ObservedState) => {
        const script = renderPlan(plan(desired(services), before));
        const r = await run(['nft', '-f', '-'], { netns: ns, input: script });
        assert.equal(r.code, 0, `${r.stderr}\n${script}`);
      };
      const observe = async (): Promise<ObservedState> => {
        const r = await runChecked('list', ['nft', '-j', 'list', 'table', 'ip', 'slbctl'], { netns: ns });
        const { legacyOwnedAddresses: _l, ...kernel } = observeFromListings({ ip: JSON.parse(r.stdout) as unknown });
        return { kernel: { ...kernel, ownedAddresses: [] }, addresses: [{ address: '172.16.75.84', device: 'eth0' }], sysctls: {} };
      };
      for (const services of [[web({ snatPorts: '20000-40000' }), dnsPorts], [web({ snatPool: [...POOL, '172.16.75.92'] })]]) {
        await apply(services, await observe().catch(() => programmed([])));
        const back = await observe();
        const fullnat = back.kernel.services.find((s) => s.port === 80);
        assert.deepEqual(fullnat?.snatPool, services[0]?.snatPool);
        assert.equal(fullnat?.snatPorts, services[0]?.snatPorts);
        assert.equal(back.kernel.services.find((s) => s.port === 53)?.snatPorts, services[1]?.snatPorts);
        assert.equal(formatPlan(plan(desired(services), back).ops), 'no changes');
        // The drift check's own comparison: the listed source-NAT rules are the declared ones.
        assert.deepEqual(objectRepairs(services, back.kernel, new Set(), new Set()), []);
      }
    } finally {
      await run(['ip', 'netns', 'del', ns]);
    }
  });
});
