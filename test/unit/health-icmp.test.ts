// The icmp health check kind: validation, the echo packet codec, and (as
// root) real echoes to 127.0.0.0/8 over the one shared raw socket.
import { after, describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import { parseConfig } from '../../src/model/parse';
import { IcmpChecker, closeIcmpSockets, echoRequest, inetChecksum, parseIcmp } from '../../src/health/icmp';

const base = `services:\n  - vip: 172.16.75.84\n    port: 80\n    mode: dsr\n    realServers: [{ address: 172.16.75.82 }]\n`;
const withCheck = (hc: string) => base.replace('mode: dsr', `mode: dsr\n    healthCheck: ${hc}`);

describe('icmp health check validation', () => {
  it('accepts icmp with timing and the documented defaults', () => {
    const r = parseConfig(withCheck('{ type: icmp, interval: 200ms, timeout: 150ms, fall: 2 }'));
    assert.ok(r.ok, JSON.stringify(!r.ok && r.issues));
    assert.deepEqual(r.config.services[0]?.healthCheck, {
      type: 'icmp',
      expectStatus: [200, 399],
      intervalMs: 200,
      timeoutMs: 150,
      rise: 2,
      fall: 2,
    });
  });
  it('refuses, one clear issue each, what an echo request does not have', () => {
    const r = parseConfig(withCheck('{ type: icmp, port: 80, url: "http://{address}/", expectStatus: 200, body: ok, command: [true] }'));
    assert.ok(!r.ok);
    const why = 'does not apply to icmp checks (an echo request has no port, URL, status, body or command)';
    assert.deepEqual(
      r.issues.map((i) => `${i.path}: ${i.message}`),
      ['port', 'url', 'expectStatus', 'body', 'command'].map((k) => `services[0].healthCheck.${k}: ${why}`),
    );
  });
  it('still checks timing for icmp', () => {
    const r = parseConfig(withCheck('{ type: icmp, interval: 50ms }'));
    assert.ok(!r.ok);
    assert.deepEqual(
      r.issues.map((i) => i.message),
      ['50ms is below the fastest interval, 100ms'],
    );
  });
});

/** An IPv4 header (no options) before `payload`. */
function ip(src: string, dst: string, payload: Buffer): Buffer {
  const h = Buffer.alloc(20);
  h[0] = 0x45;
  h.writeUInt16BE(20 + payload.length, 2);
  h[8] = 64;
  h[9] = 1;
  src.split('.').forEach((o, i) => {
    h[12 + i] = Number(o);
  });
  dst.split('.').forEach((o, i) => {
    h[16 + i] = Number(o);
  });
  h.writeUInt16BE(inetChecksum(h), 10);
  return Buffer.concat([h, payload]);
}

describe('icmp echo codec', () => {
  it('builds an echo request whose checksum verifies', () => {
    const req = echoRequest(0x1234, 7);
    assert.equal(req[0], 8);
    assert.equal(req.readUInt16BE(4), 0x1234);
    assert.equal(req.readUInt16BE(6), 7);
    assert.equal(inetChecksum(req), 0);
  });
  it('reads an echo reply: id, seq and source', () => {
    const reply = echoRequest(0x1234, 7);
    reply[0] = 0;
    assert.deepEqual(parseIcmp(ip('172.16.75.82', '172.16.75.83', reply)), { kind: 'reply', id: 0x1234, seq: 7, from: '172.16.75.82' });
  });
  it('reads a host unreachable that quotes our request', () => {
    const quoted = ip('172.16.75.83', '172.16.75.99', echoRequest(42, 3)).subarray(0, 28);
    const err = Buffer.concat([Buffer.from([3, 1, 0, 0, 0, 0, 0, 0]), quoted]);
    assert.deepEqual(parseIcmp(ip('172.16.75.83', '172.16.75.83', err)), {
      kind: 'error',
      id: 42,
      seq: 3,
      to: '172.16.75.99',
      from: '172.16.75.83',
      detail: 'host unreachable',
    });
  });
  it('ignores what is not about an echo', () => {
    assert.equal(parseIcmp(ip('1.2.3.4', '5.6.7.8', Buffer.from([13, 0, 0, 0, 0, 0, 0, 0]))), undefined);
    assert.equal(parseIcmp(Buffer.alloc(10)), undefined);
  });
  it('refuses a target that is not IPv4', () => {
    assert.throws(() => new IcmpChecker('172.16.75.300'), /is not an IPv4 address/);
  });
});

describe('icmp checker on loopback', { skip: process.getuid?.() !== 0 ? 'needs root for a raw socket' : false }, () => {
  after(closeIcmpSockets);
  it('echoes 127.0.0.1 and demultiplexes 300 concurrent probes from one socket', async () => {
    const one = await new IcmpChecker('127.0.0.1').check(500);
    assert.equal(one.ok, true, one.detail);
    assert.match(one.detail, /^echo reply in [\d.]+ ms$/);
    const checkers = Array.from({ length: 300 }, (_, i) => new IcmpChecker(`127.0.${i % 3}.${1 + (i % 200)}`));
    assert.equal(new Set(checkers.map((c) => c.identifier)).size, 300, 'one echo identifier per checker');
    for (let round = 0; round < 2; round++) {
      const results = await Promise.all(checkers.map((c) => c.check(2000)));
      assert.deepEqual(
        results.filter((r) => !r.ok),
        [],
      );
    }
  });
});
