// Config text in, a normalised Config or every issue (path, message, line)
// out. The tables below are the contract of `slbctl validate`; the last part
// keeps schema/slbctl.schema.json and examples/ in step with the parser.
import { describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ConfigIssue, formatIssue, parseConfig } from '../../src/model/parse';
import {
  BACKENDS,
  Config,
  MODES,
  Mode,
  SERVICE_PROTOCOLS,
  SCHEDULERS,
  SCHEDULER_ALIASES,
  Service,
  VIP_PRESENCE,
  VIP_FORMS,
} from '../../src/model/types';
import { isIPv4 } from '../../src/model/ip';

/** The repository root (this file runs as dist/test/unit/parse.test.js). */
const ROOT = path.resolve(__dirname, '..', '..', '..');

/** Issues as "path: message", the way `slbctl validate` prints them without the file name. */
function issuesOf(text: string): string[] {
  const r = parseConfig(text);
  assert.equal(r.ok, false, `expected the config to be rejected:\n${text}`);
  return r.ok ? [] : r.issues.map((i) => (i.path ? `${i.path}: ${i.message}` : i.message));
}

function configOf(text: string): Config {
  const r = parseConfig(text);
  if (!r.ok) assert.fail(`expected the config to be accepted, got:\n${r.issues.map((i) => formatIssue('config', i)).join('\n')}`);
  return r.config;
}

// ---------------------------------------------------------------- inputs

/** The lab's reference service with nothing but the required keys. */
const MINIMAL_YAML = `services:
  - vip: 172.16.75.84
    port: 80
    mode: fullnat
    realServers:
      - address: 172.16.75.82
      - address: 172.16.75.85
`;

type RawService = Record<string, unknown>;
const rawWeb: RawService = {
  vip: '172.16.75.84',
  port: 80,
  mode: 'fullnat',
  realServers: [{ address: '172.16.75.82' }, { address: '172.16.75.85' }],
};

/** The reference service as JSON text with some keys changed (undefined removes a key). */
function webJson(over: RawService = {}, top: Record<string, unknown> = {}): string {
  const service = Object.fromEntries(Object.entries({ ...rawWeb, ...over }).filter(([, v]) => v !== undefined));
  return JSON.stringify({ ...top, services: [service] });
}
const jsonOf = (services: RawService[], top: Record<string, unknown> = {}) => JSON.stringify({ ...top, services });

/** The normalised reference service: what every default fills in. */
function web(over: Partial<Service> = {}): Service {
  return {
    name: 'tcp/172.16.75.84:80',
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
  };
}

// ---------------------------------------------------------------- accepted

const accepted: { name: string; text: string; config: Config }[] = [
  {
    name: 'maglev size and seed on an mh service (a YAML hex seed; an absent one is the default)',
    text: 'services:\n  - vip: 172.16.75.84\n    port: 80\n    mode: fullnat\n    scheduler: mh\n    maglev: {size: 251, seed: 0x2a}\n    realServers: [{address: 172.16.75.82}, {address: 172.16.75.85}]\n  - vip: 172.16.75.84\n    port: 81\n    mode: fullnat\n    scheduler: mh\n    maglev: {size: 11}\n    realServers: [{address: 172.16.75.82}]\n',
    config: {
      backend: 'auto',
      services: [
        { ...web({ scheduler: 'mh' }), maglev: { size: 251, seed: 42 } },
        {
          ...web({ scheduler: 'mh', port: 81, name: 'tcp/172.16.75.84:81' }),
          realServers: [{ address: '172.16.75.82', port: 81, weight: 1 }],
          maglev: { size: 11, seed: 0x51b },
        },
      ],
    },
  },
  {
    name: 'YAML with only the required keys: protocol tcp, scheduler rr, weight 1, RS port = service port, name protocol/vip:port, backend auto',
    text: MINIMAL_YAML,
    config: { backend: 'auto', services: [web()] },
  },
  {
    name: 'the same as JSON text (JSON is YAML)',
    text: webJson(),
    config: { backend: 'auto', services: [web()] },
  },
  {
    name: 'JSON with every key set',
    text: jsonOf(
      [
        {
          name: 'dns',
          vip: '172.16.75.84',
          port: 53,
          protocol: 'udp',
          mode: 'transparent',
          scheduler: 'sh',
          interface: 'eth0',
          realServers: [
            { address: '172.16.75.82', port: 5353, weight: 3 },
            { address: '172.16.75.85', port: 53, weight: 0 },
          ],
        },
      ],
      { backend: 'nft' },
    ),
    config: {
      backend: 'nft',
      services: [
        {
          name: 'dns',
          vip: '172.16.75.84',
          port: 53,
          protocol: 'udp',
          mode: 'transparent',
          scheduler: 'sh',
          interface: 'eth0',
          realServers: [
            { address: '172.16.75.82', port: 5353, weight: 3 },
            { address: '172.16.75.85', port: 53, weight: 0 },
          ],
        },
      ],
    },
  },
  {
    name: 'the scheduler alias "weighted" becomes wrr',
    text: webJson({ scheduler: 'weighted' }),
    config: { backend: 'auto', services: [web({ scheduler: 'wrr' })] },
  },
  {
    name: 'fullnat with its own snatAddress',
    text: webJson({ name: 'web', snatAddress: '172.16.75.83' }),
    config: { backend: 'auto', services: [web({ name: 'web', snatAddress: '172.16.75.83' })] },
  },
  {
    name: 'dsr with the RS port written out (equal to the service port)',
    text: webJson({ mode: 'dsr', realServers: [{ address: '172.16.75.82', port: 80 }] }),
    config: { backend: 'auto', services: [web({ mode: 'dsr', realServers: [{ address: '172.16.75.82', port: 80, weight: 1 }] })] },
  },
  {
    name: 'dsr with encapsulation ipip keeps it; encapsulation none is the default and is dropped',
    text: jsonOf(
      [
        { ...rawWeb, mode: 'dsr', encapsulation: 'ipip' },
        { ...rawWeb, port: 443, mode: 'dsr', encapsulation: 'none' },
      ],
      { backend: 'ipvs' },
    ),
    config: {
      backend: 'ipvs',
      services: [
        web({ mode: 'dsr', encapsulation: 'ipip' }),
        web({ name: 'tcp/172.16.75.84:443', port: 443, mode: 'dsr', realServers: web().realServers.map((r) => ({ ...r, port: 443 })) }),
      ],
    },
  },
  {
    name: 'the same VIP and port with tcp and udp are two services',
    text: jsonOf([rawWeb, { ...rawWeb, protocol: 'udp' }]),
    config: { backend: 'auto', services: [web(), web({ name: 'udp/172.16.75.84:80', protocol: 'udp' })] },
  },
  {
    name: 'YAML flow style',
    text: 'backend: nft\nservices:\n  - { name: web, vip: 172.16.75.84, port: 80, mode: dsr, realServers: [{ address: 172.16.75.82, weight: 2 }] }\n',
    config: {
      backend: 'nft',
      services: [web({ name: 'web', mode: 'dsr', realServers: [{ address: '172.16.75.82', port: 80, weight: 2 }] })],
    },
  },
  {
    name: 'an empty service list (apply removes everything slbctl programmed)',
    text: 'services: []\n',
    config: { backend: 'auto', services: [] },
  },
];

// ---------------------------------------------------------------- rejected

const ALLOWED_SERVICE_KEYS =
  'name, vip, port, protocol, mode, scheduler, interface, vipAlreadyPresent, snatAddress, snatAddresses, snatPorts, encapsulation, persistence, maglev, healthCheck, failurePolicy, sorryServer, tls, cache, realServers';

const rejected: { name: string; text: string; issues: string[] }[] = [
  {
    name: 'maglev settings that are not a prime size or a 32-bit seed, or on another scheduler',
    text: jsonOf([
      { ...rawWeb, scheduler: 'mh', maglev: { size: 1000, seed: -1 } },
      { ...rawWeb, port: 81, scheduler: 'mh', maglev: { size: 65537, seed: 2 ** 32 } },
      { ...rawWeb, port: 82, scheduler: 'mh', maglev: { size: 11, seed: 1, ring: 3 } },
      { ...rawWeb, port: 83, maglev: { size: 1021 } },
      { ...rawWeb, port: 84, scheduler: 'mh', maglev: 7 },
    ]),
    issues: [
      'services[0].maglev.size: 1000 is not a Maglev table size (a prime from 11 to 65521, e.g. 1021)',
      'services[0].maglev.seed: -1 is not a hash seed (a whole number from 0 to 4294967295, e.g. 0x51b)',
      'services[1].maglev.size: 65537 is not a Maglev table size (a prime from 11 to 65521, e.g. 1021)',
      'services[1].maglev.seed: 4294967296 is not a hash seed (a whole number from 0 to 4294967295, e.g. 0x51b)',
      'services[2].maglev.ring: unknown key; allowed keys are size, seed',
      'services[3].maglev: only applies to scheduler mh (this service is rr)',
      'services[4].maglev: must be a mapping with size (a prime) and seed (a 32-bit unsigned number)',
    ],
  },
  {
    name: 'an RS address that is not IPv4',
    text: webJson({ realServers: [{ address: '172.16.75.82' }, { address: '172.16.75.300' }] }),
    issues: ['services[0].realServers[1].address: "172.16.75.300" is not an IPv4 address'],
  },
  {
    name: 'a VIP with a leading zero or a number instead of a string',
    text: jsonOf([
      { ...rawWeb, vip: '172.16.075.84' },
      { ...rawWeb, vip: 3232235777 },
    ]),
    issues: ['services[0].vip: "172.16.075.84" is not an IPv4 address', 'services[1].vip: 3232235777 is not an IPv4 address'],
  },
  {
    name: 'an unknown mode',
    text: webJson({ mode: 'bridge' }),
    issues: ['services[0].mode: "bridge" is not a known mode; use one of fullnat, transparent, dsr'],
  },
  {
    name: 'an unknown scheduler (the list names the alias too)',
    text: webJson({ scheduler: 'fastest' }),
    issues: [
      'services[0].scheduler: "fastest" is not a known scheduler; use one of rr, wrr, sh, lc, wlc, lblc, lblcr, dh, sed, nq, fo, ovf, mh, weighted',
    ],
  },
  {
    name: 'an unknown protocol, backend and encapsulation',
    text: webJson({ protocol: 'sctp', mode: 'dsr', encapsulation: 'gre' }, { backend: 'ebpf' }),
    issues: [
      'backend: "ebpf" is not a known backend; use one of auto, nft, ipvs',
      'services[0].protocol: "sctp" is not a known protocol; use one of tcp, udp, http, https',
      'services[0].encapsulation: "gre" is not a known encapsulation; use one of none, ipip',
    ],
  },
  {
    name: 'unknown keys at every level',
    text: webJson({ colour: 'blue', realServers: [{ address: '172.16.75.82', wieght: 2 }] }, { verbose: true }),
    issues: [
      'verbose: unknown key; allowed keys are backend, vipAlreadyPresent, vipAs, conntrack, services, ha',
      `services[0].colour: unknown key; allowed keys are ${ALLOWED_SERVICE_KEYS}`,
      'services[0].realServers[0].wieght: unknown key; allowed keys are address, port, weight',
    ],
  },
  {
    name: 'a DSR real server on another port than the service',
    text: webJson({ mode: 'dsr', realServers: [{ address: '172.16.75.82' }, { address: '172.16.75.85', port: 8080 }] }),
    issues: [
      'services[0].realServers[1].port: is 8080 but the service port is 80: direct server return forwards the packet unchanged, so the real server must listen on the service port; drop the port or set it to 80',
    ],
  },
  {
    name: 'a duplicate real server (the default port makes them equal)',
    text: webJson({
      realServers: [{ address: '172.16.75.82' }, { address: '172.16.75.85' }, { address: '172.16.75.82', port: 80, weight: 5 }],
    }),
    issues: ['services[0].realServers[2]: duplicates realServers[0] (172.16.75.82:80)'],
  },
  {
    name: 'the VIP as its own real server',
    text: webJson({ realServers: [{ address: '172.16.75.84' }] }),
    issues: ['services[0].realServers[0].address: is the VIP itself'],
  },
  {
    name: 'two services on the same protocol, VIP and port',
    text: jsonOf([
      { ...rawWeb, name: 'a' },
      { ...rawWeb, name: 'b', mode: 'dsr' },
    ]),
    issues: ['services[1]: serves tcp/172.16.75.84:80 like services[0]; one VIP, port and protocol can have only one service'],
  },
  {
    name: 'two services with the same name',
    text: jsonOf([
      { ...rawWeb, name: 'web' },
      { ...rawWeb, name: 'web', port: 443 },
    ]),
    issues: ['services[1].name: "web" is already the name of services[0]'],
  },
  {
    name: 'snatAddress outside fullnat, ipip outside dsr',
    text: jsonOf([
      { ...rawWeb, mode: 'dsr', snatAddress: '172.16.75.83' },
      { ...rawWeb, port: 443, encapsulation: 'ipip' },
    ]),
    issues: [
      'services[0].snatAddress: only applies to mode fullnat (this service is dsr)',
      'services[1].encapsulation: ipip only applies to mode dsr (this service is fullnat)',
    ],
  },
  {
    name: 'every required key missing, all reported at once',
    text: 'services:\n  - name: web\n    realServers:\n      - port: 80\n',
    issues: [
      'services[0].vip: is required',
      'services[0].port: is required',
      'services[0].mode: is required; use one of fullnat, transparent, dsr',
      'services[0].realServers[0].address: is required',
    ],
  },
  {
    name: 'several errors in several services at once',
    text: jsonOf([
      { ...rawWeb, vip: '1.2.3', port: 0, realServers: [] },
      {
        ...rawWeb,
        port: '80',
        realServers: [
          { address: '172.16.75.82', weight: -1 },
          { address: '172.16.75.85', weight: 1.5 },
        ],
      },
    ]),
    issues: [
      'services[0].vip: "1.2.3" is not an IPv4 address',
      'services[0].port: 0 is not a port number (1-65535)',
      'services[0].realServers: is required: a list of at least one real server',
      'services[1].port: "80" is not a port number (1-65535)',
      'services[1].realServers[0].weight: -1 is not a weight (an integer from 0 to 65535)',
      'services[1].realServers[1].weight: 1.5 is not a weight (an integer from 0 to 65535)',
    ],
  },
  {
    name: 'out-of-range port and weight',
    text: webJson({ port: 65536, realServers: [{ address: '172.16.75.82', port: 70000, weight: 65536 }] }),
    issues: [
      'services[0].port: 65536 is not a port number (1-65535)',
      'services[0].realServers[0].port: 70000 is not a port number (1-65535)',
      'services[0].realServers[0].weight: 65536 is not a weight (an integer from 0 to 65535)',
    ],
  },
  {
    name: 'a bad name and interface',
    text: webJson({ name: 'web server', interface: 'a-very-long-interface-name' }),
    issues: [
      'services[0].name: must be 1-32 characters of letters, digits, "_", "." or "-"',
      'services[0].interface: "a-very-long-interface-name" is not an interface name',
    ],
  },
  {
    name: 'a name over 32 characters (it goes into a 128-byte nft comment)',
    text: webJson({ name: 'x'.repeat(33) }),
    issues: ['services[0].name: must be 1-32 characters of letters, digits, "_", "." or "-"'],
  },
  { name: 'no services key', text: 'backend: nft\n', issues: ['services: is required: a list of services'] },
  { name: 'services as a mapping', text: 'services:\n  web: {}\n', issues: ['services: is required: a list of services'] },
  {
    name: 'a service that is not a mapping',
    text: 'services:\n  - 172.16.75.84\n',
    issues: ['services[0]: must be a mapping (vip, port, protocol, mode, scheduler, realServers)'],
  },
  {
    name: 'a real server that is not a mapping',
    text: webJson({ realServers: ['172.16.75.82:80'] }),
    issues: ['services[0].realServers[0]: must be a mapping with address, port and weight'],
  },
  { name: 'a document that is a list', text: '- services: []\n', issues: ['the config must be a mapping with a "services" list'] },
  { name: 'an empty document', text: '', issues: ['the config must be a mapping with a "services" list'] },
  // YAML syntax errors: the parser's own sentence, without the position (that is in line/column).
  {
    name: 'a YAML syntax error',
    text: 'services: [\n',
    issues: ['Flow sequence in block collection must be sufficiently indented and end with a ]'],
  },
  { name: 'a bad indentation', text: 'services:\n  - vip: 172.16.75.84\n   port: 80\n', issues: ['Sequence item without - indicator'] },
  { name: 'a duplicate key', text: 'services: []\nservices: []\n', issues: ['Map keys must be unique'] },
  // Valid JSON to JSON.parse, which keeps the last: the fast JSON path must still refuse it.
  { name: 'a duplicate key in JSON', text: '{"backend": "nft", "services": [], "backend": "ipvs"}', issues: ['Map keys must be unique'] },
  {
    name: 'a duplicate key in JSON, escaped quotes before it',
    text: '{"services": [], "a\\"": 1, "services": []}',
    issues: ['Map keys must be unique'],
  },
  {
    name: 'a JSON syntax error',
    text: '{"services": [}',
    issues: ['Flow sequence in block collection must be sufficiently indented and end with a ]', 'Flow map must end with a }'],
  },
];

describe('parseConfig accepts', () => {
  for (const c of accepted) it(c.name, () => assert.deepEqual(configOf(c.text), c.config));
});

describe('parseConfig rejects', () => {
  for (const c of rejected) it(c.name, () => assert.deepEqual(issuesOf(c.text), c.issues));

  // Bug: Checker.oneOf looks names up in plain objects, so the names of
  // Object.prototype's members pass as a mode, protocol, scheduler, backend or
  // encapsulation: `mode: constructor` is accepted and yields the Object
  // function as the mode. These are what the parser should say.
  const prototypeNames: { name: string; text: string; issue: string }[] = [
    {
      name: 'mode: constructor',
      text: webJson({ mode: 'constructor' }),
      issue: 'services[0].mode: "constructor" is not a known mode; use one of fullnat, transparent, dsr',
    },
    {
      name: 'scheduler: toString',
      text: webJson({ scheduler: 'toString' }),
      issue:
        'services[0].scheduler: "toString" is not a known scheduler; use one of rr, wrr, sh, lc, wlc, lblc, lblcr, dh, sed, nq, fo, ovf, mh, weighted',
    },
    {
      name: 'protocol: __proto__',
      text: webJson({ protocol: '__proto__' }),
      issue: 'services[0].protocol: "__proto__" is not a known protocol; use one of tcp, udp, http, https',
    },
    {
      name: 'backend: hasOwnProperty',
      text: webJson({}, { backend: 'hasOwnProperty' }),
      issue: 'backend: "hasOwnProperty" is not a known backend; use one of auto, nft, ipvs',
    },
  ];
  for (const c of prototypeNames) {
    it(`${c.name} (names of Object.prototype members)`, () => {
      assert.deepEqual(issuesOf(c.text), [c.issue]);
    });
  }
});

describe('issue positions', () => {
  const file = `backend: nft
services:
  - name: web
    vip: 172.16.75.84
    port: 80
    mode: bridge
    realServers:
      - address: 172.16.75.82
      - address: 172.16.75.300
        weight: -1
  - name: dns
    vip: 172.16.75.84
    port: 53
    realServers: [{ address: 172.16.75.85 }]
`;

  it('every issue of a YAML file has its line and column, as validate prints them', () => {
    const r = parseConfig(file);
    assert.ok(!r.ok);
    assert.deepEqual(
      r.issues.map((i) => formatIssue('lb.yaml', i)),
      [
        'lb.yaml:6:11: services[0].mode: "bridge" is not a known mode; use one of fullnat, transparent, dsr',
        'lb.yaml:9:18: services[0].realServers[1].address: "172.16.75.300" is not an IPv4 address',
        'lb.yaml:10:17: services[0].realServers[1].weight: -1 is not a weight (an integer from 0 to 65535)',
        // A missing key points at the mapping that should hold it.
        'lb.yaml:11:5: services[1].mode: is required; use one of fullnat, transparent, dsr',
      ],
    );
  });

  it('JSON text gets positions too (line 1 when it is on one line)', () => {
    const r = parseConfig(webJson({ vip: '1.2.3' }));
    assert.ok(!r.ok);
    assert.deepEqual(
      r.issues.map((i): Pick<ConfigIssue, 'path' | 'line' | 'column'> => ({ path: i.path, line: i.line, column: i.column })),
      [{ path: 'services[0].vip', line: 1, column: 21 }],
    );
  });

  const syntax: { name: string; text: string; at: string[] }[] = [
    {
      name: 'an unclosed flow sequence',
      text: 'services: [\n',
      at: ['lb.yaml:2:1: Flow sequence in block collection must be sufficiently indented and end with a ]'],
    },
    {
      name: 'a bad indentation',
      text: 'services:\n  - vip: 172.16.75.84\n   port: 80\n',
      at: ['lb.yaml:3:1: Sequence item without - indicator'],
    },
    { name: 'a duplicate key', text: 'backend: nft\nservices: []\nbackend: ipvs\n', at: ['lb.yaml:3:1: Map keys must be unique'] },
    { name: 'a tab for indentation', text: 'services:\n\t- vip: 172.16.75.84\n', at: ['lb.yaml:2:1: Tabs are not allowed as indentation'] },
  ];
  for (const c of syntax) {
    it(`a YAML syntax error has its position: ${c.name}`, () => {
      const r = parseConfig(c.text);
      assert.ok(!r.ok);
      assert.deepEqual(
        r.issues.map((i) => formatIssue('lb.yaml', i)),
        c.at,
      );
    });
  }

  it('formatIssue without a position names only the file', () => {
    assert.equal(
      formatIssue('lb.json', { path: 'services', message: 'is required: a list of services' }),
      'lb.json: services: is required: a list of services',
    );
    assert.equal(
      formatIssue('lb.json', { path: '', message: 'the config must be a mapping with a "services" list' }),
      'lb.json: the config must be a mapping with a "services" list',
    );
  });
});

// ---------------------------------------------------------------- examples

describe('examples/', () => {
  const modes: Mode[] = ['fullnat', 'transparent', 'dsr'];
  for (const mode of modes) {
    it(`examples/${mode}.yaml is the lab's reference service in mode ${mode}`, () => {
      const text = fs.readFileSync(path.join(ROOT, 'examples', `${mode}.yaml`), 'utf8');
      assert.equal(text.split('\n')[0], '# yaml-language-server: $schema=../schema/slbctl.schema.json');
      assert.ok(fs.existsSync(path.join(ROOT, 'examples', '../schema/slbctl.schema.json')), 'the $schema path resolves from examples/');
      assert.deepEqual(configOf(text), { backend: 'nft', services: [web({ name: 'web', mode })] });
    });
  }
});

// ---------------------------------------------------------------- schema

interface SchemaProperty {
  enum?: unknown[];
  pattern?: string;
  minimum?: number;
  maximum?: number;
  default?: unknown;
  $ref?: string;
  description?: string;
  allOf?: SchemaProperty[];
  not?: SchemaProperty;
}
interface SchemaObject {
  properties: Record<string, SchemaProperty>;
  required: string[];
  additionalProperties: boolean;
  description?: string;
}
interface Schema extends SchemaObject {
  $schema: string;
  $defs: { ipv4: SchemaProperty; unicastAddress: SchemaProperty; port: SchemaProperty; service: SchemaObject; realServer: SchemaObject };
}

function loadSchema(): Schema {
  return JSON.parse(fs.readFileSync(path.join(ROOT, 'schema', 'slbctl.schema.json'), 'utf8')) as Schema;
}

/** The keys the parser accepts at one level, read from its own unknown-key message. */
function keysAcceptedAt(text: string, issuePath: string): string[] {
  const issue = (parseConfig(text) as { ok: false; issues: ConfigIssue[] }).issues.find((i) => i.path === issuePath);
  const match = /allowed keys are (.*)$/.exec(issue?.message ?? '');
  assert.ok(match, `no unknown-key issue at ${issuePath}`);
  return (match[1] ?? '').split(', ');
}

/** The keys the parser reports as missing at one level. */
function keysRequiredAt(text: string, prefix: string): string[] {
  const r = parseConfig(text);
  assert.ok(!r.ok);
  return r.issues.filter((i) => i.message.startsWith('is required') && i.path.startsWith(prefix)).map((i) => i.path.slice(prefix.length));
}

describe('schema/slbctl.schema.json says what the parser accepts', () => {
  const schema = loadSchema();
  const service = schema.$defs.service;
  const realServer = schema.$defs.realServer;

  it('is draft 2020-12 and closed at every level', () => {
    assert.equal(schema.$schema, 'https://json-schema.org/draft/2020-12/schema');
    assert.deepEqual([schema.additionalProperties, service.additionalProperties, realServer.additionalProperties], [false, false, false]);
  });

  it('the enums are the model constants', () => {
    assert.deepEqual(schema.properties.backend?.enum, [...BACKENDS]);
    assert.deepEqual(service.properties.mode?.enum, [...MODES]);
    assert.deepEqual(service.properties.protocol?.enum, [...SERVICE_PROTOCOLS]);
    assert.deepEqual(service.properties.scheduler?.enum, [...SCHEDULERS, ...Object.keys(SCHEDULER_ALIASES)]);
    assert.deepEqual(schema.properties.vipAlreadyPresent?.enum, [...VIP_PRESENCE]);
    assert.deepEqual(service.properties.vipAlreadyPresent?.enum, [...VIP_PRESENCE]);
    assert.deepEqual(schema.properties.vipAs?.enum, [...VIP_FORMS]);
  });

  it('the property names are the keys the parser accepts, in its order', () => {
    assert.deepEqual(Object.keys(schema.properties), keysAcceptedAt(webJson({}, { x: 1 }), 'x'));
    assert.deepEqual(Object.keys(service.properties), keysAcceptedAt(webJson({ x: 1 }), 'services[0].x'));
    assert.deepEqual(
      Object.keys(realServer.properties),
      keysAcceptedAt(webJson({ realServers: [{ address: '172.16.75.82', x: 1 }] }), 'services[0].realServers[0].x'),
    );
  });

  it('the other enums are the values the parser names', () => {
    const encapsulations = /use one of (.*)$/.exec(issuesOf(webJson({ mode: 'dsr', encapsulation: '?' }))[0] ?? '')?.[1];
    assert.deepEqual(service.properties.encapsulation?.enum, encapsulations?.split(', '));
  });

  it('the required keys are the ones the parser reports missing', () => {
    assert.deepEqual(schema.required, keysRequiredAt('{}', ''));
    assert.deepEqual(service.required, keysRequiredAt('services: [{}]', 'services[0].'));
    assert.deepEqual(realServer.required, keysRequiredAt(webJson({ realServers: [{}] }), 'services[0].realServers[0].'));
  });

  it('the defaults are the ones the parser fills in', () => {
    const minimal = configOf(MINIMAL_YAML);
    const s = minimal.services[0];
    assert.deepEqual(
      [
        schema.properties.backend?.default,
        service.properties.protocol?.default,
        service.properties.scheduler?.default,
        realServer.properties.weight?.default,
      ],
      [minimal.backend, s?.protocol, s?.scheduler, s?.realServers[0]?.weight],
    );
  });

  it('every property has a description for editors', () => {
    const missing = [
      ...Object.entries(schema.properties).map(([k, v]) => [k, v] as const),
      ...Object.entries(service.properties).map(([k, v]) => [`service.${k}`, v] as const),
      ...Object.entries(realServer.properties).map(([k, v]) => [`realServer.${k}`, v] as const),
    ]
      .filter(([, v]) => !v.description)
      .map(([k]) => k);
    assert.deepEqual(missing, []);
  });

  // Each sample goes through the schema's pattern and through the parser; both must agree.
  const ipv4Samples = [
    '172.16.75.84',
    '0.0.0.0',
    '255.255.255.255',
    '10.0.0.1',
    '172.16.75.300',
    '172.16.075.84',
    '1.2.3',
    '1.2.3.4.5',
    '01.2.3.4',
    ' 1.2.3.4',
    '1.2.3.4 ',
    'a.b.c.d',
    '256.1.1.1',
    '1..2.3',
  ];
  const unicast = schema.$defs.unicastAddress;
  const samples: { field: string; pattern: string | undefined; values: string[]; parserAccepts: (v: string) => boolean }[] = [
    { field: 'an IPv4 address', pattern: schema.$defs.ipv4.pattern, values: ipv4Samples, parserAccepts: isIPv4 },
    {
      // The address of one host: the ipv4 pattern, and not the "not" pattern.
      field: 'a unicast address',
      pattern: `^(?!.*(?:${unicast.allOf?.[1]?.not?.pattern ?? ''}))(?:${schema.$defs.ipv4.pattern ?? ''})$`,
      values: [
        ...ipv4Samples,
        '0.1.2.3',
        '126.255.255.255',
        '127.0.0.1',
        '127.255.255.254',
        '128.0.0.1',
        '223.255.255.255',
        '224.0.0.1',
        '239.255.255.255',
        '240.0.0.1',
        '254.1.1.1',
        '255.255.255.254',
      ],
      parserAccepts: (v) => parseConfig(webJson({ vip: v })).ok,
    },
    {
      field: 'a service name',
      pattern: service.properties.name?.pattern,
      values: ['web', 'web-1.prod_a', 'x'.repeat(32), 'x'.repeat(33), '', 'web server', 'web/1', 'wéb'],
      parserAccepts: (v) => parseConfig(webJson({ name: v })).ok,
    },
    {
      field: 'an interface name',
      pattern: service.properties.interface?.pattern,
      values: ['eth0', 'eth0.100', 'br-lan', 'x'.repeat(15), 'x'.repeat(16), '', 'eth 0', 'eth/0'],
      parserAccepts: (v) => parseConfig(webJson({ interface: v })).ok,
    },
  ];
  for (const s of samples) {
    it(`the pattern of ${s.field} agrees with the parser`, () => {
      assert.ok(s.pattern);
      const re = new RegExp(s.pattern);
      for (const v of s.values) assert.equal(re.test(v), s.parserAccepts(v), JSON.stringify(v));
    });
  }

  it('the port and weight ranges agree with the parser', () => {
    const port = schema.$defs.port;
    const weight = realServer.properties.weight;
    assert.deepEqual([port.minimum, port.maximum], [1, 65535]);
    assert.deepEqual([weight?.minimum, weight?.maximum], [0, 65535]);
    const portOk = (p: number) => parseConfig(webJson({ port: p })).ok;
    const weightOk = (w: number) => parseConfig(webJson({ realServers: [{ address: '172.16.75.82', weight: w }] })).ok;
    assert.deepEqual([0, 1, 65535, 65536].map(portOk), [false, true, true, false]);
    assert.deepEqual([-1, 0, 65535, 65536].map(weightOk), [false, true, true, false]);
  });
});

describe('persistence', () => {
  const base = `services:\n  - vip: 172.16.75.84\n    port: 80\n    mode: dsr\n    realServers: [{ address: 172.16.75.82 }]\n`;
  it('defaults the netmask to one client address', () => {
    const r = parseConfig(base.replace('mode: dsr', 'mode: dsr\n    persistence: { timeout: 300 }'));
    assert.ok(r.ok);
    assert.deepEqual(r.config.services[0]?.persistence, { timeout: 300, netmask: '255.255.255.255' });
  });
  it('rejects a bad timeout and a mask that is not contiguous', () => {
    const r = parseConfig(base.replace('mode: dsr', 'mode: dsr\n    persistence: { timeout: 0, netmask: 255.0.255.0 }'));
    assert.ok(!r.ok);
    assert.deepEqual(
      r.issues.map((i) => `${i.path}: ${i.message}`),
      [
        'services[0].persistence.timeout: 0 is not a persistence timeout (whole seconds, 1 to 86400: at most one day)',
        'services[0].persistence.netmask: 255.0.255.0 is not a netmask (contiguous ones, e.g. 255.255.255.0)',
      ],
    );
  });
});

describe('healthCheck', () => {
  const base = `services:\n  - vip: 172.16.75.84\n    port: 80\n    mode: fullnat\n    realServers: [{ address: 172.16.75.82 }]\n`;
  const withCheck = (hc: string) => base.replace('mode: fullnat', `mode: fullnat\n    healthCheck: ${hc}`);
  it('fills in the documented defaults', () => {
    const r = parseConfig(withCheck('{ type: http, body: ok }'));
    assert.ok(r.ok);
    assert.deepEqual(r.config.services[0]?.healthCheck, {
      type: 'http',
      expectStatus: [200, 399],
      body: 'ok',
      intervalMs: 1000,
      timeoutMs: 800,
      rise: 2,
      fall: 3,
    });
  });
  it('reads durations and ranges', () => {
    const r = parseConfig(
      withCheck(
        '{ type: https, url: "https://{address}/health", expectStatus: "200-204", interval: 200ms, timeout: 150ms, rise: 1, fall: 2 }',
      ),
    );
    assert.ok(r.ok);
    assert.deepEqual(r.config.services[0]?.healthCheck, {
      type: 'https',
      url: 'https://{address}/health',
      expectStatus: [200, 204],
      intervalMs: 200,
      timeoutMs: 150,
      rise: 1,
      fall: 2,
    });
  });
  const refused: [string, string, string][] = [
    [
      'a timeout longer than the interval',
      '{ type: tcp, interval: 1s, timeout: 2s }',
      'services[0].healthCheck.timeout: 2000ms is longer than the interval (1000ms): a check must end before the next one starts',
    ],
    [
      'a URL that is not HTTP(S)',
      '{ type: http, url: "ftp://172.16.75.82/" }',
      'services[0].healthCheck.url: "ftp://172.16.75.82/" is not an http:// or https:// URL',
    ],
    [
      'a command that does not exist',
      '{ type: command, command: [no-such-probe, "{address}"] }',
      'services[0].healthCheck.command: "no-such-probe" is not on PATH',
    ],
    [
      'an interval below the fastest',
      '{ type: tcp, interval: 10ms, timeout: 5ms }',
      'services[0].healthCheck.interval: 10ms is below the fastest interval, 100ms',
    ],
    [
      'an unknown type',
      '{ type: icmp6 }',
      'services[0].healthCheck.type: "icmp6" is not a health check type; use one of tcp, http, https, command, icmp',
    ],
  ];
  for (const [name, hc, message] of refused) {
    it(`refuses ${name} at validation time`, () => {
      const r = parseConfig(withCheck(hc));
      assert.ok(!r.ok);
      assert.deepEqual(
        r.issues.map((i) => `${i.path}: ${i.message}`),
        [message],
      );
    });
  }
});

describe('failurePolicy and sorryServer', () => {
  const base = `services:\n  - vip: 172.16.75.84\n    port: 80\n    mode: MODE\n    realServers: [{ address: 172.16.75.82 }]\n`;
  const withKeys = (keys: string, mode = 'fullnat') =>
    base.replace(
      'mode: MODE',
      `mode: ${mode}\n${keys
        .split('\n')
        .map((l) => `    ${l}`)
        .join('\n')}`,
    );
  it('reads them, the sorry server port defaulting to the service port', () => {
    const r = parseConfig(withKeys('healthCheck: { type: tcp }\nfailurePolicy: remove\nsorryServer: { address: 172.16.75.90 }'));
    assert.ok(r.ok, JSON.stringify(r));
    assert.equal(r.config.services[0]?.failurePolicy, 'remove');
    assert.deepEqual(r.config.services[0]?.sorryServer, { address: '172.16.75.90', port: 80 });
  });
  const refused: [string, string, string, string[]][] = [
    [
      'an unknown policy',
      'healthCheck: { type: tcp }\nfailurePolicy: panic',
      'fullnat',
      ['services[0].failurePolicy: "panic" is not a known failure policy; use one of quiesce, remove'],
    ],
    [
      'a policy without a health check',
      'failurePolicy: remove',
      'fullnat',
      ['services[0].failurePolicy: needs a healthCheck: without one, no real server ever fails'],
    ],
    [
      'a sorry server without a health check',
      'sorryServer: { address: 172.16.75.90 }',
      'fullnat',
      ['services[0].sorryServer: needs a healthCheck: the sorry server serves when every real server is down'],
    ],
    [
      'a DSR sorry server on another port',
      'healthCheck: { type: tcp }\nsorryServer: { address: 172.16.75.90, port: 8080 }',
      'dsr',
      ['services[0].sorryServer.port: is 8080 but the service port is 80: direct server return cannot change the port'],
    ],
    [
      'a sorry server that is also a real server',
      'healthCheck: { type: tcp }\nsorryServer: { address: 172.16.75.82 }',
      'fullnat',
      ['services[0].sorryServer: 172.16.75.82:80 is also a real server; the sorry server serves only when they are all down'],
    ],
    [
      'an unknown sorry server key',
      'healthCheck: { type: tcp }\nsorryServer: { address: 172.16.75.90, weight: 2 }',
      'fullnat',
      ['services[0].sorryServer.weight: unknown key; allowed keys are address, port'],
    ],
  ];
  for (const [name, keys, mode, issues] of refused) {
    it(`refuses ${name}`, () => {
      const r = parseConfig(withKeys(keys, mode));
      assert.ok(!r.ok);
      assert.deepEqual(
        r.issues.map((i) => `${i.path}: ${i.message}`),
        issues,
      );
    });
  }
});
