// Checkers against real servers on loopback (127.0.0.1 only).
import { after, before, describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import * as http from 'node:http';
import * as net from 'node:net';
import { AddressInfo } from 'node:net';
import { TcpChecker } from '../../src/health/tcp';
import { HttpChecker } from '../../src/health/http';
import { hardLimitMs } from '../../src/health/settle';
import { CommandChecker } from '../../src/health/command';

function closedPort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

describe('health checkers', () => {
  let server: http.Server;
  let port = 0;
  const hanging: net.Socket[] = [];
  before(async () => {
    server = http.createServer((req, res) => {
      if (req.url === '/hang') {
        hanging.push(req.socket);
        return;
      }
      if (req.url === '/down') {
        res.writeHead(503).end('maintenance');
        return;
      }
      res.writeHead(200, { 'Content-Type': 'text/plain' }).end('rs1 ok\n');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as AddressInfo).port;
  });
  after(async () => {
    for (const s of hanging) s.destroy();
    await new Promise((r) => server.close(r));
  });

  it('tcp: a listening port passes, a closed one fails with the reason', async () => {
    assert.deepEqual((({ ok, detail }) => ({ ok, detail }))(await new TcpChecker('127.0.0.1', port).check(500)), {
      ok: true,
      detail: 'connected',
    });
    const closed = await new TcpChecker('127.0.0.1', await closedPort()).check(500);
    assert.deepEqual({ ok: closed.ok, detail: closed.detail }, { ok: false, detail: 'connection refused' });
  });

  it('http: status range and body match', async () => {
    const url = `http://127.0.0.1:${port}`;
    assert.equal((await new HttpChecker(`${url}/`).check(500)).detail, 'HTTP 200');
    assert.equal((await new HttpChecker(`${url}/`, { status: [200, 200], body: 'rs1 ok' }).check(500)).ok, true);
    const body = await new HttpChecker(`${url}/`, { status: [200, 299], body: 'rs2' }).check(500);
    assert.deepEqual({ ok: body.ok, detail: body.detail }, { ok: false, detail: 'HTTP 200 but the body lacks "rs2"' });
    const down = await new HttpChecker(`${url}/down`).check(500);
    assert.deepEqual({ ok: down.ok, detail: down.detail }, { ok: false, detail: 'HTTP 503, expected 200-399' });
  });

  it('http: a server that never answers fails after the timeout, and surely by the hard limit', async () => {
    const r = await new HttpChecker(`http://127.0.0.1:${port}/hang`).check(150);
    assert.equal(r.ok, false);
    assert.equal(r.detail, 'no answer within 150 ms');
    // Later than 150 ms only by time this process could not run (settle.ts); never hangs.
    assert.ok(r.millis >= 149 && r.millis < hardLimitMs(150) + 500, `took ${r.millis} ms`);
  });

  it('command: exit code decides, a slow command is killed at the timeout', async () => {
    assert.equal((await new CommandChecker(['true']).check(1000)).ok, true);
    assert.deepEqual((({ ok, detail }) => ({ ok, detail }))(await new CommandChecker(['false']).check(1000)), {
      ok: false,
      detail: 'exit 1',
    });
    const slow = await new CommandChecker(['sleep', '5']).check(150);
    assert.deepEqual({ ok: slow.ok, detail: slow.detail }, { ok: false, detail: 'did not finish within 150 ms' });
  });

  it('bad checks are refused when they are made, not at 3 a.m.', () => {
    assert.throws(() => new HttpChecker('ftp://172.16.75.82/'), /is not http:\/\/ or https:\/\//);
    assert.throws(() => new CommandChecker(['no-such-health-probe']), /"no-such-health-probe" is not on PATH/);
    assert.throws(() => new CommandChecker([]), /empty/);
  });
});
