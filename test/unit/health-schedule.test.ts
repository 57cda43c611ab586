// When checks start: on a grid of intervals, so late timers do not slow the
// configured rate; and the monitors keep checking while an apply (a child
// process, as nft is) is in flight.
import { describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import { nextDue } from '../../src/health/schedule';
import { Monitors } from '../../src/controller/monitors';
import { Checker, CheckResult } from '../../src/health/types';
import { Config } from '../../src/model/types';
import { run } from '../../src/util/exec';

describe('nextDue', () => {
  const cases: [string, number, number, number, number][] = [
    // [what, previous due, interval, now, expected]
    ['a check that ended early waits for its slot', 1000, 100, 1020, 1100],
    ['a late timer does not push the next slot back', 1000, 100, 1090, 1100],
    ['ending exactly at the next slot starts then', 1000, 100, 1100, 1100],
    ['a check that overran its slot is followed at once, not by a burst', 1000, 100, 1350, 1350],
  ];
  for (const [what, due, interval, now, expected] of cases) it(what, () => assert.equal(nextDue(due, interval, now), expected));

  it('late timers keep the grid: ten checks each started up to 90 ms late still take ten intervals', () => {
    let due = 0;
    const lateness = [5, 30, 0, 90, 12, 45, 89, 1, 60, 33];
    for (const late of lateness) due = nextDue(due, 100, due + late);
    assert.equal(due, 1000);
  });
});

describe('monitors while an apply is in flight', () => {
  it('checks keep starting while a child process (as an apply runs nft) has not finished', async () => {
    let started = 0;
    const checker: Checker = {
      kind: 'fake',
      target: 'fake',
      check: (): Promise<CheckResult> => {
        started++;
        return Promise.resolve({ ok: true, detail: 'fine', millis: 0 });
      },
    };
    const monitors = new Monitors(() => undefined);
    const config: Config = {
      backend: 'nft',
      services: [
        {
          name: 'web',
          vip: '198.51.100.1',
          port: 80,
          protocol: 'tcp',
          mode: 'fullnat',
          scheduler: 'rr',
          healthCheck: { type: 'tcp', expectStatus: [200, 399], intervalMs: 100, timeoutMs: 80, rise: 2, fall: 3 },
          realServers: [
            { address: '198.51.100.10', port: 80, weight: 1 },
            { address: '198.51.100.11', port: 80, weight: 1 },
          ],
        },
      ],
    };
    monitors.set(config, () => checker);
    try {
      const apply = run(['sleep', '1']);
      const before = started;
      const r = await apply;
      assert.equal(r.code, 0);
      assert.ok(started - before > 0, `checks started during the apply: ${started - before}`);
      assert.ok((monitors.checksByKind.get('fake')?.ok ?? 0) > 0, 'the checks are counted by kind');
    } finally {
      monitors.stopAll();
    }
  });
});
