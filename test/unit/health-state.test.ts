import { describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import { HealthStatus, INITIAL, observe } from '../../src/health/state';

const ok = { ok: true, detail: 'HTTP 200', millis: 1 };
const bad = { ok: false, detail: 'connection refused', millis: 1 };
const timing = { rise: 2, fall: 3 };

/** Feed results; return the state after each and the transitions seen. */
function run(results: boolean[], start: HealthStatus = INITIAL): { states: string; transitions: string[] } {
  let status = start;
  const states: string[] = [];
  const transitions: string[] = [];
  for (const r of results) {
    const step = observe(status, r ? ok : bad, timing, 0);
    status = step.status;
    states.push(status.state);
    if (step.transition) transitions.push(`${step.transition.from}->${step.transition.to}: ${step.transition.reason}`);
  }
  return { states: states.join(' '), transitions };
}

describe('health state machine (rise 2, fall 3)', () => {
  const cases: [string, boolean[], string, string[]][] = [
    ['a new server comes up after rise successes', [true, true], 'unknown up', ['unknown->up: 2 checks passed (HTTP 200)']],
    [
      'a new server that never answers goes down after fall failures',
      [false, false, false],
      'unknown unknown down',
      ['unknown->down: 3 checks failed (last: connection refused)'],
    ],
    [
      'one lost probe moves nothing',
      [true, true, false, true, false, false, true],
      'unknown up up up up up up',
      ['unknown->up: 2 checks passed (HTTP 200)'],
    ],
    [
      'fall consecutive failures take it down; rise successes bring it back',
      [true, true, false, false, false, true, true],
      'unknown up up up down down up',
      [
        'unknown->up: 2 checks passed (HTTP 200)',
        'up->down: 3 checks failed (last: connection refused)',
        'down->up: 2 checks passed (HTTP 200)',
      ],
    ],
  ];
  for (const [name, results, states, transitions] of cases) {
    it(name, () => assert.deepEqual(run(results), { states, transitions }));
  }
});
