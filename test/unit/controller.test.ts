// The controller's pure parts: what health, drains and the failure policy
// make of the config; the metrics text; the conntrack listing; log lines.
import { describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import { Config, Service, serviceKey } from '../../src/model/types';
import { Drain, effectiveConfig } from '../../src/controller/effective';
import { HealthState } from '../../src/health/state';
import { renderMetrics, parseListen, APPLY_BUCKETS } from '../../src/controller/metrics';
import { countFor, parseFlows } from '../../src/kernel/conntrack/conntrack';
import { createLogger } from '../../src/controller/log';

const hc = { type: 'tcp' as const, expectStatus: [200, 399] as [number, number], intervalMs: 200, timeoutMs: 150, rise: 2, fall: 2 };

function svc(over: Partial<Service> = {}): Service {
  return {
    name: 'web',
    vip: '172.16.75.84',
    port: 80,
    protocol: 'tcp',
    mode: 'fullnat',
    scheduler: 'rr',
    healthCheck: hc,
    realServers: [
      { address: '172.16.75.82', port: 80, weight: 3 },
      { address: '172.16.75.85', port: 80, weight: 1 },
    ],
    ...over,
  };
}

function weights(config: Config): [string, number][] {
  return (config.services[0]?.realServers ?? []).map((r) => [`${r.address}:${r.port}`, r.weight]);
}

const health = (states: Record<string, HealthState>) => (_s: string, r: string) => states[r];
const RS1 = '172.16.75.82:80';
const RS2 = '172.16.75.85:80';

describe('effectiveConfig', () => {
  const cases: [string, Partial<Service>, Record<string, HealthState>, Drain[], [string, number][], string[]][] = [
    [
      'both up: configured weights',
      {},
      { [RS1]: 'up', [RS2]: 'up' },
      [],
      [
        [RS1, 3],
        [RS2, 1],
      ],
      ['serving', 'serving'],
    ],
    [
      'not yet checked: keeps serving (a restart of slbctl must not black out the service)',
      {},
      {},
      [],
      [
        [RS1, 3],
        [RS2, 1],
      ],
      ['not yet checked', 'not yet checked'],
    ],
    [
      'down, quiesce (default): weight 0, still in the service',
      {},
      { [RS1]: 'down', [RS2]: 'up' },
      [],
      [
        [RS1, 0],
        [RS2, 1],
      ],
      ['down: quiesced', 'serving'],
    ],
    [
      'down, remove: out of the service',
      { failurePolicy: 'remove' },
      { [RS1]: 'down', [RS2]: 'up' },
      [],
      [[RS2, 1]],
      ['down: removed', 'serving'],
    ],
    [
      'UDP down: removed whatever the policy (stale flows must expire)',
      { protocol: 'udp' },
      { [RS1]: 'down', [RS2]: 'up' },
      [],
      [[RS2, 1]],
      ['down: removed', 'serving'],
    ],
    [
      'no health check: configured weights whatever the state',
      { healthCheck: undefined },
      { [RS1]: 'down' },
      [],
      [
        [RS1, 3],
        [RS2, 1],
      ],
      ['no health check', 'no health check'],
    ],
    [
      'draining: weight 0 even when up',
      {},
      { [RS1]: 'up', [RS2]: 'up' },
      [{ service: 'tcp/172.16.75.84:80', realServer: RS1, weight: 3, since: 0, deadline: 1, state: 'draining' }],
      [
        [RS1, 0],
        [RS2, 1],
      ],
      ['draining', 'serving'],
    ],
    [
      'drained: out',
      {},
      { [RS1]: 'up', [RS2]: 'up' },
      [{ service: 'tcp/172.16.75.84:80', realServer: RS1, weight: 3, since: 0, deadline: 1, state: 'removed' }],
      [[RS2, 1]],
      ['drained: removed', 'serving'],
    ],
    [
      'a drain of another service changes nothing',
      {},
      { [RS1]: 'up', [RS2]: 'up' },
      [{ service: 'tcp/172.16.75.84:443', realServer: RS1, weight: 3, since: 0, deadline: 1, state: 'removed' }],
      [
        [RS1, 3],
        [RS2, 1],
      ],
      ['serving', 'serving'],
    ],
    [
      'all down with a sorry server: only the sorry server',
      { sorryServer: { address: '172.16.75.90', port: 8080 } },
      { [RS1]: 'down', [RS2]: 'down' },
      [],
      [['172.16.75.90:8080', 1]],
      ['down: quiesced', 'down: quiesced', 'sorry server'],
    ],
    [
      'one down, one drained, with a sorry server: the sorry server',
      { sorryServer: { address: '172.16.75.90', port: 8080 } },
      { [RS1]: 'down', [RS2]: 'up' },
      [{ service: 'tcp/172.16.75.84:80', realServer: RS2, weight: 1, since: 0, deadline: 1, state: 'draining' }],
      [['172.16.75.90:8080', 1]],
      ['down: quiesced', 'draining', 'sorry server'],
    ],
    [
      'one down, one not yet checked: no sorry server yet',
      { sorryServer: { address: '172.16.75.90', port: 8080 } },
      { [RS1]: 'down' },
      [],
      [
        [RS1, 0],
        [RS2, 1],
      ],
      ['down: quiesced', 'not yet checked'],
    ],
    [
      'all down without a sorry server: all quiesced',
      {},
      { [RS1]: 'down', [RS2]: 'down' },
      [],
      [
        [RS1, 0],
        [RS2, 0],
      ],
      ['down: quiesced', 'down: quiesced'],
    ],
  ];
  for (const [name, over, states, drains, expected, decisions] of cases) {
    it(name, () => {
      const config: Config = { backend: 'nft', services: [svc(over)] };
      const eff = effectiveConfig(config, health(states), drains);
      assert.deepEqual(weights(eff.config), expected);
      assert.deepEqual(
        eff.decisions.get(serviceKey(config.services[0]))?.map((d) => d.decision),
        decisions,
      );
      assert.deepEqual(
        weights(config),
        [
          [RS1, 3],
          [RS2, 1],
        ],
        'the config itself is not changed',
      );
    });
  }
});

describe('metrics text', () => {
  const text = renderMetrics({
    backend: 'ipvs',
    services: [
      {
        key: 'tcp/172.16.75.84:80',
        name: 'we"b',
        mode: 'fullnat',
        protocol: 'tcp',
        packets: 10,
        bytes: 600,
        realServers: [{ address: '172.16.75.82', port: 80, configuredWeight: 3, weight: 0, decision: 'down: quiesced', health: 'down' }],
        counters: new Map([[RS1, { checksOk: 5, checksFailed: 2, transitions: { up: 1, down: 1 } }]]),
        kernel: new Map([[RS1, { active: 1, inactive: 2, packets: 7, bytes: 420 }]]),
      },
    ],
    applies: { ok: 4, failed: 1 },
    applyBuckets: APPLY_BUCKETS.map((le) => ({ le, count: le >= 0.05 ? 4 : 0 })),
    applySeconds: { sum: 0.12, count: 4 },
    driftRepairs: 2,
    reloads: { ok: 1, failed: 1 },
    checksByKind: [{ kind: 'tcp', ok: 5, failed: 2 }],
    loopDelay: [{ quantile: 0.99, seconds: 0.012 }],
    startedAt: 1_700_000_000_000,
  });
  const lines = text.trim().split('\n');
  it('every family has HELP and TYPE, every sample a number', () => {
    for (const l of lines) assert.match(l, /^(# (HELP|TYPE) slbctl_\w+ .+|slbctl_\w+(\{[^}]*\})? -?[\d.e+]+)$/, l);
  });
  it('labels are escaped, health is one-hot, counters are there', () => {
    assert.ok(
      lines.includes('slbctl_real_server_health{service="we\\"b",vip="tcp/172.16.75.84:80",real_server="172.16.75.82:80",state="down"} 1'),
    );
    assert.ok(
      lines.includes('slbctl_real_server_health{service="we\\"b",vip="tcp/172.16.75.84:80",real_server="172.16.75.82:80",state="up"} 0'),
    );
    assert.ok(
      lines.includes(
        'slbctl_health_transitions_total{service="we\\"b",vip="tcp/172.16.75.84:80",real_server="172.16.75.82:80",to="down"} 1',
      ),
    );
    assert.ok(
      lines.includes(
        'slbctl_real_server_connections{service="we\\"b",vip="tcp/172.16.75.84:80",real_server="172.16.75.82:80",state="inactive"} 2',
      ),
    );
    assert.ok(lines.includes('slbctl_drift_repairs_total 2'));
    assert.ok(lines.includes('slbctl_apply_duration_seconds_bucket{le="+Inf"} 4'));
    assert.ok(lines.includes('slbctl_config_reloads_total{result="failed"} 1'));
  });
  it('parses listen addresses', () => {
    assert.deepEqual(parseListen('127.0.0.1:9469'), { host: '127.0.0.1', port: 9469 });
    assert.deepEqual(parseListen(':9469'), { host: '0.0.0.0', port: 9469 });
    assert.deepEqual(parseListen('[::1]:9469'), { host: '::1', port: 9469 });
    assert.equal(parseListen('9469'), undefined);
    assert.equal(parseListen('127.0.0.1:70000'), undefined);
  });
});

describe('conntrack listing', () => {
  const listing = [
    'tcp      6 431999 ESTABLISHED src=10.8.21.40 dst=172.16.75.84 sport=40000 dport=80 src=172.16.75.82 dst=172.16.75.83 sport=80 dport=51000 [ASSURED] mark=0 use=1',
    'tcp      6 118 TIME_WAIT src=10.8.21.40 dst=172.16.75.84 sport=40001 dport=80 src=172.16.75.82 dst=172.16.75.83 sport=80 dport=51001 [ASSURED] mark=0 use=1',
    'tcp      6 431999 ESTABLISHED src=10.8.21.40 dst=172.16.75.84 sport=40002 dport=80 src=172.16.75.85 dst=10.8.21.40 sport=80 dport=40002 [ASSURED] mark=0 use=1',
    'udp      17 29 src=10.8.21.40 dst=172.16.75.84 sport=5000 dport=53 [UNREPLIED] src=172.16.75.82 dst=10.8.21.40 sport=53 dport=5000 mark=0 use=1',
    'conntrack v1.4.7 (conntrack-tools): 4 flow entries have been shown.',
  ].join('\n');
  it('reads original destination and reply source of each flow', () => {
    const flows = parseFlows(listing);
    assert.equal(flows.length, 4);
    assert.deepEqual(flows[3], {
      protocol: 'udp',
      origDst: '172.16.75.84',
      origDport: 53,
      replySrc: '172.16.75.82',
      replySport: 53,
      replyDst: '10.8.21.40',
    });
  });
  it('counts established as active, the rest as inactive, per service and real server', () => {
    const flows = parseFlows(listing);
    const s = { protocol: 'tcp' as const, vip: '172.16.75.84', port: 80 };
    assert.deepEqual(countFor(flows, s, { address: '172.16.75.82', port: 80 }), { active: 1, inactive: 1 });
    assert.deepEqual(countFor(flows, s, { address: '172.16.75.85', port: 80 }), { active: 1, inactive: 0 });
    assert.deepEqual(countFor(flows, { ...s, protocol: 'udp', port: 53 }, { address: '172.16.75.82', port: 53 }), {
      active: 1,
      inactive: 0,
    });
  });
});

describe('logs', () => {
  it('json: one object a line with time, level, event, msg and the fields', () => {
    const out: string[] = [];
    createLogger('json', (l) => out.push(l)).log('warn', 'health', 'rs1 down', { realServer: RS1, skipped: undefined });
    assert.equal(out.length, 1);
    assert.ok(out[0]?.endsWith('\n'));
    const o = JSON.parse(out[0]) as Record<string, unknown>;
    assert.deepEqual(Object.keys(o), ['time', 'level', 'event', 'msg', 'realServer']);
    assert.equal(o.level, 'warn');
  });
  it('text: readable, fields as key=value', () => {
    const out: string[] = [];
    createLogger('text', (l) => out.push(l)).log('info', 'apply', '1 operation', { ops: ['a', 'b'], check: 'http GET x' });
    assert.match(out[0], /^\d{4}-\d\d-\d\dT[\d:.]+Z info {2}apply: 1 operation {2}ops=a,b check="http GET x"\n$/);
  });
});
