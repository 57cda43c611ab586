// What `slbctl validate` refuses beyond the shape of the config: durations
// over one day (Node would fire the timer at once), addresses that cannot be
// one host, a command check whose program is not there, and YAML aliases that
// expand to more than a config could hold. Each refusal names the path, the
// line when there is one, and the fix.
import { after, describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { formatIssue, parseConfig } from '../../src/model/parse';
import { ConfigFileError, loadConfigFile } from '../../src/model/load';
import { MIN_EXPANSION_LIMIT } from '../../src/model/alias-guard';
import { CLI_ENTRY } from '../../src/util/self';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'slbctl-limits-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

const service = (extra: Record<string, unknown> = {}) => ({
  vip: '172.16.75.84',
  port: 80,
  mode: 'fullnat',
  realServers: [{ address: '172.16.75.82' }],
  ...extra,
});
const json = (extra: Record<string, unknown> = {}) => JSON.stringify({ services: [service(extra)] });

function issues(text: string): string[] {
  const r = parseConfig(text);
  assert.equal(r.ok, false, `expected a refusal:\n${text}`);
  return r.ok ? [] : r.issues.map((i) => (i.path ? `${i.path}: ${i.message}` : i.message));
}

function accepted(text: string): void {
  const r = parseConfig(text);
  assert.ok(r.ok, r.ok ? '' : r.issues.map((i) => formatIssue('config', i)).join('\n'));
}

describe('durations are at most one day', () => {
  const refused: [string, Record<string, unknown>, string][] = [
    [
      'an interval in milliseconds that Node would clamp to 1 ms',
      { interval: 3000000000 },
      'services[0].healthCheck.interval: 3000000000 is longer than one day; use at most "86400s" (86400000ms)',
    ],
    [
      'an interval in seconds',
      { interval: '86401s' },
      'services[0].healthCheck.interval: "86401s" is longer than one day; use at most "86400s" (86400000ms)',
    ],
    [
      'a timeout (and no second complaint about the interval)',
      { interval: '1s', timeout: 99999999999 },
      'services[0].healthCheck.timeout: 99999999999 is longer than one day; use at most "86400s" (86400000ms)',
    ],
  ];
  for (const [name, timing, issue] of refused) {
    it(`refuses ${name}`, () => assert.deepEqual(issues(json({ healthCheck: { type: 'tcp', ...timing } })), [issue]));
  }

  it('accepts exactly one day', () => accepted(json({ healthCheck: { type: 'tcp', interval: '86400s', timeout: 86400000 } })));

  it('a persistence timeout is at most one day too', () => {
    accepted(json({ mode: 'dsr', persistence: { timeout: 86400 } }));
    assert.deepEqual(issues(json({ mode: 'dsr', persistence: { timeout: 86401 } })), [
      'services[0].persistence.timeout: 86401 is not a persistence timeout (whole seconds, 1 to 86400: at most one day)',
    ]);
  });
});

describe('a VIP or real server is the address of one host', () => {
  const reasons: [string, string][] = [
    ['0.0.0.0', 'the unspecified address (0.0.0.0), which means "any address", not one host'],
    ['127.0.0.1', 'a loopback address (127.0.0.0/8): it never leaves the host that has it'],
    ['127.10.20.30', 'a loopback address (127.0.0.0/8): it never leaves the host that has it'],
    ['224.0.0.18', 'a multicast address (224.0.0.0/4): it names a group of receivers, not one host'],
    ['239.255.255.250', 'a multicast address (224.0.0.0/4): it names a group of receivers, not one host'],
    ['240.0.0.1', 'a reserved address (240.0.0.0/4): it is not routed as unicast'],
    ['255.255.255.255', 'the limited broadcast address (255.255.255.255): it reaches every host on the segment, not one'],
  ];
  for (const [address, reason] of reasons) {
    it(`refuses ${address} as VIP, real server, sorry server and source address`, () => {
      const text = JSON.stringify({
        services: [
          service({ vip: address }),
          service({ port: 443, snatAddress: address, realServers: [{ address }], healthCheck: { type: 'tcp' }, sorryServer: { address } }),
        ],
      });
      assert.deepEqual(issues(text), [
        `services[0].vip: ${address} is ${reason}; use one unicast address that clients can reach as the VIP`,
        `services[1].snatAddress: ${address} is ${reason}; use a unicast address of this host that faces the real servers`,
        `services[1].sorryServer.address: ${address} is ${reason}; use the sorry server's own unicast address`,
        `services[1].realServers[0].address: ${address} is ${reason}; use the real server's own unicast address`,
      ]);
    });
  }

  it('accepts the unicast neighbours of those ranges', () => {
    for (const vip of ['1.0.0.1', '126.255.255.254', '128.0.0.1', '223.255.255.254']) accepted(json({ vip }));
  });

  it('a netmask of 255.255.255.255 is still a netmask, not an address', () => {
    accepted(json({ mode: 'dsr', persistence: { timeout: 60, netmask: '255.255.255.255' } }));
  });
});

describe('vipAlreadyPresent', () => {
  const presence = (text: string) => {
    const r = parseConfig(text);
    assert.ok(r.ok);
    return r.config.services.map((s) => s.vipAlreadyPresent ?? 'refuse');
  };
  it('defaults to refuse; the top level sets every service; a service overrides it', () => {
    assert.deepEqual(presence(json()), ['refuse']);
    assert.deepEqual(
      presence(JSON.stringify({ vipAlreadyPresent: 'allow', services: [service(), service({ port: 443, vipAlreadyPresent: 'refuse' })] })),
      ['allow', 'refuse'],
    );
    assert.deepEqual(presence(JSON.stringify({ services: [service({ vipAlreadyPresent: 'allow' }), service({ port: 443 })] })), [
      'allow',
      'refuse',
    ]);
  });
  it('refuses another value', () => {
    assert.deepEqual(issues(JSON.stringify({ vipAlreadyPresent: 'yes', services: [service({ vipAlreadyPresent: true })] })), [
      'vipAlreadyPresent: "yes" is not a known vipAlreadyPresent setting; use one of refuse, allow',
      'services[0].vipAlreadyPresent: true is not a known vipAlreadyPresent setting; use one of refuse, allow',
    ]);
  });
});

describe('vipAs', () => {
  it('defaults to address (left out of the config, so plans and digests are as before); route is kept', () => {
    const plain = parseConfig(json());
    assert.ok(plain.ok);
    assert.equal(plain.config.vipAs, undefined);
    const address = parseConfig(JSON.stringify({ vipAs: 'address', services: [service()] }));
    assert.ok(address.ok);
    assert.equal(address.config.vipAs, undefined);
    const route = parseConfig(JSON.stringify({ vipAs: 'route', services: [service()] }));
    assert.ok(route.ok);
    assert.equal(route.config.vipAs, 'route');
  });
  it('refuses another value in one sentence', () => {
    assert.deepEqual(issues(JSON.stringify({ vipAs: 'anyip', services: [service()] })), [
      'vipAs: "anyip" is not a known vipAs form; use one of address, route',
    ]);
  });
});

describe("a command check's program must be there", () => {
  const script = path.join(dir, 'probe.sh');
  fs.writeFileSync(script, '#!/bin/sh\nexit 0\n', { mode: 0o644 });
  const check = (program: string) => json({ healthCheck: { type: 'command', command: [program, '{address}'] } });
  const refused: [string, string, string][] = [
    [
      'an absolute path that does not exist',
      '/nonexistent/slbctl-probe',
      '"/nonexistent/slbctl-probe" does not exist; install the program or correct the path',
    ],
    [
      'a file that is not executable',
      script,
      `"${script}" is not executable; make it so (chmod +x ${script}) or run it through its interpreter, e.g. [/bin/sh, ${script}]`,
    ],
    ['a directory', dir, `"${dir}" is not a file; give the path of the program itself`],
    [
      'a relative path (the controller does not run where validate did)',
      './probe.sh',
      '"./probe.sh" is a relative path; give the absolute path of the program, or a program name on PATH',
    ],
  ];
  for (const [name, program, message] of refused) {
    it(`refuses ${name}`, () => assert.deepEqual(issues(check(program)), [`services[0].healthCheck.command: ${message}`]));
  }
  it('accepts an absolute path to an executable and a name on PATH', () => {
    accepted(check('/bin/true'));
    accepted(check('true'));
  });
});

describe('YAML aliases', () => {
  /** A config whose services share one health check and whose real servers are all aliases. */
  function manyAliases(services: number): string {
    const lines = [
      'checks:',
      '  - &check { type: tcp, interval: 2s, timeout: 1s }',
      'servers:',
      '  - &rs1 { address: 172.16.75.82 }',
      '  - &rs2 { address: 172.16.75.85 }',
      'services:',
    ];
    for (let i = 0; i < services; i++)
      lines.push(`  - { vip: 172.16.75.84, port: ${1000 + i}, mode: fullnat, healthCheck: *check, realServers: [*rs1, *rs2] }`);
    return `${lines.join('\n')}\n`;
  }

  it('an ordinary config with hundreds of aliases is read (yaml alone stops at 100)', () => {
    // The unknown keys that held the anchors are the only complaints: the aliases themselves expanded.
    assert.deepEqual(issues(manyAliases(150)), [
      'checks: unknown key; allowed keys are backend, vipAlreadyPresent, vipAs, conntrack, services, ha',
      'servers: unknown key; allowed keys are backend, vipAlreadyPresent, vipAs, conntrack, services, ha',
    ]);
  });

  const laughs = (levels: number) => {
    const lines = ['a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]'];
    for (let i = 1; i < levels; i++)
      lines.push(
        `a${i}: &a${i} [${Array(10)
          .fill(`*a${i - 1}`)
          .join(', ')}]`,
      );
    lines.push(`services: *a${levels - 1}`);
    return `${lines.join('\n')}\n`;
  };

  it('a billion laughs (10^12 nodes) is refused without expanding it, at the alias that passes the limit', () => {
    const r = parseConfig(laughs(12));
    assert.ok(!r.ok);
    // Line 5 holds a4 (11111 nodes an alias); its 8th alias (column 45) brings the total past 10^5.
    assert.deepEqual(
      r.issues.map((i) => formatIssue('bomb.yaml', i)),
      [
        `bomb.yaml:5:45: the aliases expand this document to more than ${MIN_EXPANSION_LIMIT} nodes (a YAML alias bomb?); write the repeated parts out or nest fewer aliases`,
      ],
    );
  });

  it('a cycle and an alias without an anchor have their lines', () => {
    const at = (text: string) => {
      const r = parseConfig(text);
      assert.ok(!r.ok);
      return r.issues.map((i) => formatIssue('c.yaml', i));
    };
    assert.deepEqual(at('services: []\nloop: &l [1, *l]\n'), [
      'c.yaml:2:14: alias *l refers to a node that contains it (a cycle); write the repeated part out instead',
    ]);
    assert.deepEqual(at('services: *nope\n'), [
      'c.yaml:1:11: alias *nope has no anchor &nope before it; define the anchor first (an alias can only repeat what came before)',
    ]);
  });

  it('a bomb file is a ConfigFileError naming file and line, and `validate` exits 2 with it', () => {
    const file = path.join(dir, 'bomb.yaml');
    fs.writeFileSync(file, laughs(9));
    assert.throws(
      () => loadConfigFile(file),
      (e: unknown) => e instanceof ConfigFileError && e.message.includes(`${file}:5:45: the aliases expand`),
    );
    const r = spawnSync(process.execPath, [CLI_ENTRY, 'validate', '-f', file], { encoding: 'utf8' });
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, new RegExp(`${file.replace(/[.]/g, '\\.')}:5:45: the aliases expand this document`));
  });
});
