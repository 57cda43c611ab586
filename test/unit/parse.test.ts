import { describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { formatIssue, parseConfig } from '../../src/model/parse';
import { BACKENDS, MODES, PROTOCOLS, SCHEDULERS, SCHEDULER_ALIASES } from '../../src/model/types';

const ROOT = path.join(__dirname, '..', '..', '..');

function issues(text: string): string[] {
  const r = parseConfig(text);
  assert.equal(r.ok, false, 'expected the config to be rejected');
  return r.ok ? [] : r.issues.map((i) => `${i.path}: ${i.message}`);
}

const minimal = `services:
  - vip: 172.16.75.84
    port: 80
    mode: fullnat
    realServers:
      - address: 172.16.75.82
`;

describe('parseConfig', () => {
  it('fills in the defaults', () => {
    const r = parseConfig(minimal);
    assert.ok(r.ok);
    assert.deepEqual(r.config, {
      backend: 'auto',
      services: [{ name: 'tcp/172.16.75.84:80', vip: '172.16.75.84', port: 80, protocol: 'tcp', mode: 'fullnat', scheduler: 'rr', realServers: [{ address: '172.16.75.82', port: 80, weight: 1 }] }],
    });
  });

  it('reads JSON too, and the alias "weighted"', () => {
    const r = parseConfig(JSON.stringify({ backend: 'nft', services: [{ vip: '172.16.75.84', port: 53, protocol: 'udp', mode: 'transparent', scheduler: 'weighted', realServers: [{ address: '172.16.75.82', port: 5353, weight: 3 }] }] }));
    assert.ok(r.ok);
    assert.equal(r.config.services[0]?.scheduler, 'wrr');
    assert.equal(r.config.services[0]?.realServers[0]?.port, 5353);
  });

  const rejected: [string, string, string[]][] = [
    ['a bad RS address, with its path', minimal.replace('address: 172.16.75.82', 'address: 172.16.75.82\n      - address: 172.16.75.300'), ['services[0].realServers[1].address: "172.16.75.300" is not an IPv4 address']],
    ['an unknown mode', minimal.replace('mode: fullnat', 'mode: bridge'), ['services[0].mode: "bridge" is not a known mode; use one of fullnat, transparent, dsr']],
    ['an unknown scheduler', minimal.replace('mode: fullnat', 'mode: fullnat\n    scheduler: fastest'), ['services[0].scheduler: "fastest" is not a known scheduler; use one of rr, wrr, sh, lc, wlc, lblc, lblcr, dh, sed, nq, fo, ovf, mh, weighted']],
    ['an unknown key', minimal.replace('port: 80', 'port: 80\n    colour: blue'), ['services[0].colour: unknown key; allowed keys are name, vip, port, protocol, mode, scheduler, interface, snatAddress, encapsulation, realServers']],
    ['a DSR real server on another port', minimal.replace('fullnat', 'dsr').replace('address: 172.16.75.82', 'address: 172.16.75.82\n        port: 8080'),
      ['services[0].realServers[0].port: is 8080 but the service port is 80: direct server return forwards the packet unchanged, so the real server must listen on the service port; drop the port or set it to 80']],
    ['a duplicate real server', minimal.replace('address: 172.16.75.82', 'address: 172.16.75.82\n      - address: 172.16.75.82'), ['services[0].realServers[1]: duplicates realServers[0] (172.16.75.82:80)']],
    ['ipip outside dsr', minimal.replace('port: 80\n', 'port: 80\n    encapsulation: ipip\n'), ['services[0].encapsulation: ipip only applies to mode dsr (this service is fullnat)']],
    ['snatAddress outside fullnat', minimal.replace('fullnat', 'dsr').replace('port: 80\n', 'port: 80\n    snatAddress: 172.16.75.83\n'), ['services[0].snatAddress: only applies to mode fullnat (this service is dsr)']],
    ['several errors at once', `services:\n  - vip: 1.2.3\n    port: 0\n    mode: fullnat\n    realServers: []\n`,
      ['services[0].vip: "1.2.3" is not an IPv4 address', 'services[0].port: 0 is not a port number (1-65535)', 'services[0].realServers: is required: a list of at least one real server']],
    ['no services', 'backend: nft\n', ['services: is required: a list of services']],
  ];
  for (const [name, text, expected] of rejected) {
    it(`rejects ${name}`, () => assert.deepEqual(issues(text), expected));
  }

  it('rejects two services on the same VIP, port and protocol', () => {
    const twice = `services:\n${minimal.split('\n').slice(1).join('\n')}${minimal.split('\n').slice(1).join('\n')}`;
    assert.deepEqual(issues(twice), ['services[1]: serves tcp/172.16.75.84:80 like services[0]; one VIP, port and protocol can have only one service']);
  });

  it('gives line numbers for YAML and reports YAML syntax errors', () => {
    const r = parseConfig(minimal.replace('address: 172.16.75.82', 'address: 999.1.1.1'));
    assert.ok(!r.ok);
    assert.equal(formatIssue('lb.yaml', r.issues[0] ?? { path: '', message: '' }), 'lb.yaml:6:18: services[0].realServers[0].address: "999.1.1.1" is not an IPv4 address');
    const broken = parseConfig('services: [\n');
    assert.ok(!broken.ok && broken.issues[0]?.line !== undefined);
  });

  it('the examples are valid', () => {
    for (const f of ['fullnat', 'transparent', 'dsr']) {
      const r = parseConfig(fs.readFileSync(path.join(ROOT, 'examples', `${f}.yaml`), 'utf8'));
      assert.ok(r.ok, `examples/${f}.yaml`);
      assert.equal(r.ok && r.config.services[0]?.mode, f);
    }
  });

  it('the JSON Schema says what the parser accepts', () => {
    type Props = Record<string, { enum?: string[] }>;
    const schema = JSON.parse(fs.readFileSync(path.join(ROOT, 'schema', 'slbctl.schema.json'), 'utf8')) as {
      properties: Props; $defs: { service: { properties: Props }; realServer: { properties: Props } };
    };
    const svc = schema.$defs.service.properties;
    assert.deepEqual(schema.properties.backend?.enum, [...BACKENDS]);
    assert.deepEqual(svc.mode?.enum, [...MODES]);
    assert.deepEqual(svc.protocol?.enum, [...PROTOCOLS]);
    assert.deepEqual(svc.scheduler?.enum, [...SCHEDULERS, ...Object.keys(SCHEDULER_ALIASES)]);
    assert.deepEqual(Object.keys(svc), ['name', 'vip', 'port', 'protocol', 'mode', 'scheduler', 'interface', 'snatAddress', 'encapsulation', 'realServers']);
    assert.deepEqual(svc.encapsulation?.enum, ['none', 'ipip']);
    assert.deepEqual(Object.keys(schema.$defs.realServer.properties), ['address', 'port', 'weight']);
    // Every key the schema names is one the parser knows: an unknown one would be reported.
    const all = parseConfig(`services:\n  - { name: a, vip: 1.1.1.1, port: 1, protocol: tcp, mode: fullnat, scheduler: rr, interface: eth0, snatAddress: 1.1.1.2, realServers: [{ address: 1.1.1.3, port: 2, weight: 1 }] }\n`);
    assert.ok(all.ok);
  });
});
