// A probe's timeout counts only time the event loop could have read the
// answer: an answer that arrived while the loop was blocked (a big plan, a
// burst of checks) is read, not timed out; a server that never answers
// still fails.
import { after, before, describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import * as net from 'node:net';
import { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import { loopStopwatch } from '../../src/health/loop-clock';
import { TcpChecker } from '../../src/health/tcp';
import { HttpChecker } from '../../src/health/http';

/** Keep the event loop busy, as a long synchronous task does. */
function blockLoop(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until) {
    /* busy */
  }
}

const nextTurn = () => new Promise<void>((r) => setImmediate(r));

describe('event-loop stopwatch and probe deadlines', () => {
  let server: net.Server;
  let port = 0;
  const held: net.Socket[] = [];
  before(async () => {
    // Accepts and never answers: a TCP check passes (the kernel completes the handshake), an HTTP one never does.
    server = net.createServer((s) => {
      held.push(s);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as AddressInfo).port;
  });
  after(async () => {
    for (const s of held) s.destroy();
    await new Promise((r) => server.close(r));
  });

  it('the stopwatch leaves out a block of the loop', async () => {
    const sw = loopStopwatch();
    try {
      await nextTurn();
      blockLoop(200);
      await nextTurn();
      // The heartbeat was at least 200 ms late; less its period and jitter (7 ms) is left out.
      assert.ok(sw.waited() <= sw.wall() - 190, `waited ${sw.waited()} of ${sw.wall()} ms`);
    } finally {
      sw.release();
    }
  });

  it("a probe started in the same turn as a long task passes: the block is not the server's time", async () => {
    // Expired timers run before I/O in a loop turn: without care, the timeout would win over the connection.
    const pending = new TcpChecker('127.0.0.1', port).check(50);
    blockLoop(250);
    const r = await pending;
    assert.equal(r.ok, true, r.detail);
  });

  it('a server that never answers still fails after a block, with the timeout named', async () => {
    const pending = new HttpChecker(`http://127.0.0.1:${port}/`).check(50);
    await nextTurn();
    blockLoop(250);
    const r = await pending;
    assert.deepEqual({ ok: r.ok, detail: r.detail }, { ok: false, detail: 'no answer within 50 ms' });
  });
});
