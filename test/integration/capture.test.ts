// Live capture in two network namespaces from this one process: the pcap
// sockets are opened inside each namespace (inNetns) and stay there, and the
// main thread comes back to its own namespace every time. The frames carry
// the kernel's nanosecond timestamps, one clock across the namespaces.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { startCapture, writeHostCapture, CaptureSession } from '../../src/capture/capture';
import { readPcap } from '../../src/capture/pcap';
import { DecodedPacket, HostCapture } from '../../src/capture/types';
import { findCommand, run, runChecked } from '../../src/util/exec';
import { inNetns, interfaceMac, netnsInode } from '../../src/util/netns';
import { deleteNetns } from '../helpers/balancer-netns';
import { epochNanos } from '../helpers/tshark';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const ADDR1 = '192.0.2.1';
const ADDR2 = '192.0.2.2';

/** A client run inside a namespace (no nc here): connect, send, print the reply. */
const CLIENT = `
const [host, port] = process.argv.slice(1);
const s = require('node:net').connect(Number(port), host, () => s.end('hello'));
s.setEncoding('utf8');
s.on('data', (d) => process.stdout.write(d));
s.on('error', (e) => { console.error(e.message); process.exit(1); });
setTimeout(() => { console.error('timeout'); process.exit(2); }, 5000).unref();
`;

const inOrder = (times: readonly bigint[]) => times.every((t, i) => i === 0 || (times[i - 1] ?? t) <= t);

const isIcmp = (p: DecodedPacket, src: string, dst: string) => p.ip?.protocol === 1 && p.ip.src === src && p.ip.dst === dst && !p.outer;
const tcpTo = (c: HostCapture, port: number) =>
  c.packets.filter((p) => p.transport?.kind === 'tcp' && (p.transport.dstPort === port || p.transport.srcPort === port));

/**
 * ns1 and ns2 (added to `created` as they exist, for the caller's finally),
 * joined by a veth pair: "a" (ADDR1) in ns1, "b" (ADDR2) in ns2.
 */
async function vethPair(ns1: string, ns2: string, created: string[]): Promise<void> {
  for (const ns of [ns1, ns2]) {
    await runChecked('create a namespace', ['ip', 'netns', 'add', ns]);
    created.push(ns);
  }
  // Created directly in the namespaces: nothing is added to the root namespace.
  // ("name" and "dev" are spelled out: iproute2 reads a bare "a" as "address".)
  await runChecked('create the veth pair', [
    'ip',
    'link',
    'add',
    'name',
    'a',
    'netns',
    ns1,
    'type',
    'veth',
    'peer',
    'name',
    'b',
    'netns',
    ns2,
  ]);
  for (const [ns, dev, addr] of [
    [ns1, 'a', ADDR1],
    [ns2, 'b', ADDR2],
  ] as const) {
    await runChecked('address', ['ip', 'addr', 'add', `${addr}/24`, 'dev', dev], { netns: ns });
    await runChecked('link up', ['ip', 'link', 'set', 'dev', dev, 'up'], { netns: ns });
    await runChecked('lo up', ['ip', 'link', 'set', 'dev', 'lo', 'up'], { netns: ns });
  }
}

test('capture on both ends of a veth pair, in two namespaces, from one process', { timeout: 60_000 }, async (t) => {
  if (process.getuid?.() !== 0) {
    t.skip('needs root: creates network namespaces and opens capture sockets');
    return;
  }
  const tag = `slbt-cap-${process.pid}-${crypto.randomBytes(3).toString('hex')}`;
  const ns1 = `${tag}-1`;
  const ns2 = `${tag}-2`;
  const created: string[] = [];
  const sessions: CaptureSession[] = [];
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'slbctl-capture-'));
  let server: net.Server | undefined;
  const inodeBefore = netnsInode();
  try {
    await vethPair(ns1, ns2, created);

    await t.test('errors name the host, namespace and device, and the thread comes back', () => {
      assert.throws(
        () => startCapture({ host: 'h1', netns: ns1, device: 'nosuch0' }),
        /^Error: capture on h1 \(netns .*-1\) device nosuch0: .*nosuch0/,
      );
      assert.throws(() => inNetns(`${tag}-absent`, () => 1), new RegExp(`/run/netns/${tag}-absent: No such file`));
      assert.throws(
        () =>
          inNetns(ns1, () => {
            throw new Error('inside');
          }),
        /inside/,
      );
      assert.equal(netnsInode(), inodeBefore);
    });

    // The server's listening socket is made inside ns2 (listen without a host
    // binds synchronously), so only a client in ns1 can reach it.
    server = inNetns(ns2, () => {
      const s = net.createServer((c) => {
        c.on('data', () => undefined);
        c.end('ok');
      });
      s.listen(0);
      return s;
    });
    const port = (server.address() as net.AddressInfo).port;
    assert.equal(netnsInode(), inodeBefore, 'back in our own namespace after making the server');

    const startedNanos = BigInt(Date.now()) * 1_000_000n;
    // ns1 filtered (proves the filter is compiled and applied), ns2 sees everything.
    sessions.push(startCapture({ host: 'ns1', netns: ns1, device: 'a', filter: 'icmp or tcp' }));
    sessions.push(startCapture({ host: 'ns2', netns: ns2, device: 'b' }));
    assert.equal(netnsInode(), inodeBefore, 'back in our own namespace after opening the captures');

    await runChecked('ping', ['ping', '-c', '3', '-i', '0.2', '-W', '1', ADDR2], { netns: ns1, timeoutMs: 10_000 });
    const client = await runChecked('tcp client', [process.execPath, '-e', CLIENT, ADDR2, String(port)], { netns: ns1, timeoutMs: 10_000 });
    assert.equal(client.stdout, 'ok');
    await sleep(300); // let the last frames reach the event loop before closing
    const [c1, c2] = sessions.map((s) => s.stop()) as [HostCapture, HostCapture];
    const stoppedNanos = BigInt(Date.now()) * 1_000_000n;

    assert.equal(c1.linkType, 'ETHERNET');
    assert.equal(c1.mac, interfaceMac(ns1, 'a'));
    assert.equal(c2.mac, interfaceMac(ns2, 'b'));
    assert.notEqual(c1.mac, c2.mac);
    assert.equal(netnsInode(), inodeBefore);

    for (const c of [c1, c2]) {
      const requests = c.packets.filter((p) => isIcmp(p, ADDR1, ADDR2));
      const replies = c.packets.filter((p) => isIcmp(p, ADDR2, ADDR1));
      assert.equal(requests.length, 3, `${c.host} saw 3 echo requests`);
      assert.equal(replies.length, 3, `${c.host} saw 3 echo replies`);
      for (const p of requests) assert.deepEqual([p.srcMac, p.dstMac], [c1.mac, c2.mac]);
      for (const p of replies) assert.deepEqual([p.srcMac, p.dstMac], [c2.mac, c1.mac]);

      const syn = tcpTo(c, port).find((p) => p.transport?.kind === 'tcp' && p.transport.flags.syn && !p.transport.flags.ack);
      assert.equal(syn?.ip?.src, ADDR1, `${c.host} saw the SYN from ns1`);
      const data = tcpTo(c, port).filter((p) => p.transport?.kind === 'tcp' && p.transport.payloadLength > 0);
      assert.deepEqual(
        data.map((p) => p.transport?.kind === 'tcp' && p.transport.payloadLength).sort((x, y) => Number(x) - Number(y)),
        [2, 5],
        `${c.host} saw "hello" and "ok"`,
      );
      assert.ok(
        c.packets.every((p) => !p.error),
        `${c.host}: no decode errors`,
      );

      const times = c.frames.map((f) => f.tsNanos);
      assert.ok(inOrder(times), `${c.host}: timestamps in order`);
      // Date.now() has whole milliseconds: a millisecond either side.
      assert.ok(
        times.every((ts) => ts >= startedNanos - 1_000_000n && ts <= stoppedNanos + 1_000_000n),
        `${c.host}: timestamps within the capture`,
      );
    }
    assert.ok(
      c1.packets.every((p) => p.etherType === 0x0800),
      'the filter kept ARP and IPv6 out of ns1',
    );
    assert.ok(
      c2.packets.some((p) => p.etherType === 0x0806),
      'ns2, unfiltered, saw ARP',
    );

    const file = writeHostCapture(c2, dir);
    assert.equal(file, path.join(dir, 'ns2.pcap'));
    assert.equal(c2.pcapPath, file);
    assert.deepEqual(readPcap(file).frames, c2.frames);
  } finally {
    for (const s of sessions) s.stop();
    server?.close();
    for (const ns of created) await deleteNetns(ns);
    fs.rmSync(dir, { recursive: true, force: true });
  }
  assert.equal(netnsInode(), inodeBefore);
});

test(
  'kernel nanosecond timestamps: one clock across namespaces, drained at stop, written to a pcap tshark reads',
  { timeout: 60_000 },
  async (t) => {
    if (process.getuid?.() !== 0) {
      t.skip('needs root: creates network namespaces and opens capture sockets');
      return;
    }
    const tag = `slbt-nsc-${process.pid}-${crypto.randomBytes(3).toString('hex')}`;
    const ns1 = `${tag}-1`;
    const ns2 = `${tag}-2`;
    const created: string[] = [];
    const sessions: CaptureSession[] = [];
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'slbctl-nscapture-'));
    let server: http.Server | undefined;
    try {
      await vethPair(ns1, ns2, created);
      // A small HTTP server listening inside ns2 (listen without a host binds synchronously).
      server = inNetns(ns2, () => {
        const s = http.createServer((_req, res) => res.end('ok'));
        s.listen(0);
        return s;
      });
      const port = (server.address() as net.AddressInfo).port;

      // Both captures at once, on either end of the pair.
      sessions.push(startCapture({ host: 'ns1', netns: ns1, device: 'a', filter: 'icmp or tcp' }));
      sessions.push(startCapture({ host: 'ns2', netns: ns2, device: 'b', filter: 'icmp or tcp' }));
      const curl = await runChecked('curl', ['curl', '-sS', '--max-time', '5', `http://${ADDR2}:${port}/`], {
        netns: ns1,
        timeoutMs: 10_000,
      });
      assert.equal(curl.stdout, 'ok');
      // The ping runs last and the captures stop as soon as it exits, without
      // waiting: its every request and reply passed both capture points before
      // ping saw the last reply, so they are queued in the kernel, and stop()
      // must drain them.
      await runChecked('ping', ['ping', '-c', '3', '-i', '0.2', '-W', '1', ADDR2], { netns: ns1, timeoutMs: 10_000 });
      const [c1, c2] = sessions.map((s) => s.stop()) as [HostCapture, HostCapture];

      const echo = (c: HostCapture, src: string, dst: string) =>
        c.frames.filter((_f, i) => isIcmp(c.packets[i], src, dst)).map((f) => f.tsNanos);
      const requests1 = echo(c1, ADDR1, ADDR2);
      const replies1 = echo(c1, ADDR2, ADDR1);
      const requests2 = echo(c2, ADDR1, ADDR2);
      const replies2 = echo(c2, ADDR2, ADDR1);
      for (const [what, times] of Object.entries({ requests1, replies1, requests2, replies2 })) {
        assert.equal(times.length, 3, `${what}: all 3 echo frames, read at stop`);
      }

      for (const c of [c1, c2]) {
        const times = c.frames.map((f) => f.tsNanos);
        assert.ok(inOrder(times), `${c.host}: timestamps in order`);
        // Microsecond stamps would all end in 000; the kernel's nanoseconds do not.
        assert.ok(
          times.some((ts) => ts % 1000n !== 0n),
          `${c.host}: sub-microsecond digits in the timestamps`,
        );
        assert.ok(
          c.frames.every((f) => f.wireLength === f.data.length),
          `${c.host}: whole frames, wire length reported`,
        );
      }

      // One clock for both namespaces: each echo request leaves ns1 before ns2
      // sees it, ns2 answers after that, and the answer reaches ns1 after ns2
      // sent it.
      for (let i = 0; i < 3; i++) {
        const [q1, q2, r2, r1] = [requests1[i], requests2[i], replies2[i], replies1[i]] as bigint[];
        assert.ok(q1 <= q2, `echo ${i}: request sent in ns1 (${q1}) no later than received in ns2 (${q2})`);
        assert.ok(q1 < r2, `echo ${i}: reply sent in ns2 (${r2}) after the request left ns1 (${q1})`);
        assert.ok(r2 <= r1, `echo ${i}: reply sent in ns2 (${r2}) no later than received in ns1 (${r1})`);
      }
      const synAt = (c: HostCapture, synAck: boolean) => {
        const i = c.packets.findIndex((p) => p.transport?.kind === 'tcp' && p.transport.flags.syn && p.transport.flags.ack === synAck);
        assert.ok(i >= 0, `${c.host} saw the ${synAck ? 'SYN-ACK' : 'SYN'}`);
        return c.frames[i]?.tsNanos ?? 0n;
      };
      assert.ok(synAt(c1, false) < synAt(c2, true), 'the SYN-ACK in ns2 comes after the SYN in ns1');

      if (!findCommand('tshark')) {
        t.diagnostic('tshark is not installed: the pcaps are checked by our own reader only');
      }
      for (const c of [c1, c2]) {
        const file = writeHostCapture(c, dir);
        assert.deepEqual(readPcap(file).frames, c.frames);
        if (!findCommand('tshark')) continue;
        const r = await run(['tshark', '-r', file, '-T', 'fields', '-e', 'frame.time_epoch']);
        assert.equal(r.code, 0, r.stderr);
        assert.deepEqual(
          r.stdout.trimEnd().split('\n').map(epochNanos),
          c.frames.map((f) => f.tsNanos),
          `${c.host}: tshark reads the same nanosecond times`,
        );
      }
    } finally {
      for (const s of sessions) {
        try {
          s.stop();
        } catch {
          // already reported by the test body
        }
      }
      server?.close();
      for (const ns of created) await deleteNetns(ns);
      fs.rmSync(dir, { recursive: true, force: true });
    }
  },
);
