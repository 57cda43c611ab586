import { describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import { decodeFrame, formatPacket } from '../../src/capture/decode';
import { LinkType } from '../../src/capture/types';
import { PSH_ACK, SYN, SYN_ACK, ethernet, ipv4, ipv6, rng, tcp, udp } from '../helpers/frames';

const CLIENT_MAC = '02:00:00:00:00:40';
const LB_MAC = '02:00:00:00:00:83';
const V6_SRC: number[] = [0x20, 0x01, 0x0d, 0xb8, ...new Array<number>(11).fill(0), 1];
const V6_DST: number[] = [0x20, 0x01, 0x0d, 0xb8, ...new Array<number>(11).fill(0), 2];
const frame = (data: Buffer) => ({ tsNanos: 1n, wireLength: data.length, data });
const decode = (data: Buffer, link: LinkType = 'ETHERNET') => decodeFrame(frame(data), link);

describe('decodeFrame', () => {
  it('Ethernet / IPv4 / TCP SYN, with Ethernet padding not counted as payload', () => {
    const f = Buffer.concat([
      ethernet(LB_MAC, CLIENT_MAC, 0x0800, ipv4('10.8.21.40', '172.16.75.84', 6, tcp(51234, 80, SYN))),
      Buffer.alloc(6),
    ]);
    const p = decode(f);
    assert.equal(p.error, undefined);
    assert.equal(p.srcMac, CLIENT_MAC);
    assert.equal(p.dstMac, LB_MAC);
    assert.deepEqual(p.ip, { version: 4, src: '10.8.21.40', dst: '172.16.75.84', protocol: 6, ttl: 64 });
    assert.equal(p.transport?.kind, 'tcp');
    if (p.transport?.kind !== 'tcp') return;
    assert.equal(p.transport.srcPort, 51234);
    assert.equal(p.transport.dstPort, 80);
    assert.deepEqual(p.transport.flags, { syn: true, ack: false, fin: false, rst: false, psh: false });
    assert.equal(p.transport.payloadLength, 0);
    assert.equal(formatPacket(p), '10.8.21.40:51234 > 172.16.75.84:80 tcp [S] len 0');
  });

  it('a TCP payload length comes from the IP header', () => {
    const p = decode(
      ethernet(
        LB_MAC,
        CLIENT_MAC,
        0x0800,
        ipv4('172.16.75.82', '10.8.21.40', 6, tcp(80, 51234, PSH_ACK, Buffer.from('HTTP/1.1 200 OK\r\n'))),
      ),
    );
    assert.equal(p.transport?.kind === 'tcp' && p.transport.payloadLength, 17);
  });

  it('skips an 802.1Q VLAN tag', () => {
    const p = decode(ethernet(LB_MAC, CLIENT_MAC, 0x0800, ipv4('10.8.21.40', '172.16.75.84', 6, tcp(1, 80, SYN_ACK)), 75));
    assert.equal(p.etherType, 0x0800);
    assert.equal(p.ip?.dst, '172.16.75.84');
  });

  it('IPv4 / UDP', () => {
    const p = decode(ethernet(LB_MAC, CLIENT_MAC, 0x0800, ipv4('10.8.21.40', '172.16.75.84', 17, udp(5353, 53, Buffer.from('abcd')))));
    assert.deepEqual(p.transport, { kind: 'udp', srcPort: 5353, dstPort: 53, payloadLength: 4 });
  });

  it('IP-in-IP (DSR tunnel): outer header kept, inner decoded', () => {
    const inner = ipv4('10.8.21.40', '172.16.75.84', 6, tcp(40000, 80, SYN));
    const p = decode(ethernet(LB_MAC, CLIENT_MAC, 0x0800, ipv4('172.16.75.83', '172.16.75.82', 4, inner)));
    assert.equal(p.outer?.src, '172.16.75.83');
    assert.equal(p.outer?.dst, '172.16.75.82');
    assert.equal(p.ip?.src, '10.8.21.40');
    assert.equal(p.ip?.dst, '172.16.75.84');
    assert.equal(formatPacket(p), 'ipip 172.16.75.83 > 172.16.75.82: 10.8.21.40:40000 > 172.16.75.84:80 tcp [S] len 0');
  });

  it('IPv6 with a hop-by-hop extension header', () => {
    const hopByHop = Buffer.from([6, 0, 1, 4, 0, 0, 0, 0]);
    const p = decode(ethernet(LB_MAC, CLIENT_MAC, 0x86dd, ipv6(V6_SRC, V6_DST, 0, Buffer.concat([hopByHop, tcp(1234, 80, SYN)]))));
    assert.equal(p.error, undefined);
    assert.equal(p.ip?.src, '2001:db8::1');
    assert.equal(p.ip?.dst, '2001:db8::2');
    assert.equal(p.ip?.protocol, 6);
    assert.equal(p.transport?.kind === 'tcp' && p.transport.dstPort, 80);
  });

  it('IPv6 in IPv4 (protocol 41) and IPv4 in IPv6 (next header 4)', () => {
    const v6 = ipv6(V6_SRC, V6_DST, 6, tcp(1234, 80, SYN));
    const p = decode(ethernet(LB_MAC, CLIENT_MAC, 0x0800, ipv4('172.16.75.83', '172.16.75.82', 41, v6)));
    assert.equal(p.error, undefined);
    assert.equal(p.outer?.protocol, 41);
    assert.equal(p.ip?.version, 6);
    assert.equal(p.ip?.dst, '2001:db8::2');
    const q = decode(
      ethernet(LB_MAC, CLIENT_MAC, 0x86dd, ipv6(V6_SRC, V6_DST, 4, ipv4('10.8.21.40', '172.16.75.84', 17, udp(1, 53, Buffer.alloc(2))))),
    );
    assert.equal(q.error, undefined);
    assert.equal(q.outer?.src, '2001:db8::1');
    assert.deepEqual(q.transport, { kind: 'udp', srcPort: 1, dstPort: 53, payloadLength: 2 });
  });

  it('only the first IPv4 fragment has a transport header', () => {
    const later = ipv4('10.8.21.40', '172.16.75.84', 6, Buffer.alloc(24, 0xee));
    later.writeUInt16BE(0x00b9, 6); // fragment offset 185 * 8, no flags
    const p = decode(ethernet(LB_MAC, CLIENT_MAC, 0x0800, later));
    assert.equal(p.error, undefined);
    assert.deepEqual(p.transport, { kind: 'other' });
    assert.equal(formatPacket(p), '10.8.21.40 > 172.16.75.84 proto 6');
  });

  it('a frame cut by the snap length keeps the IP-declared payload length and says so', () => {
    const whole = ethernet(LB_MAC, CLIENT_MAC, 0x0800, ipv4('172.16.75.82', '10.8.21.40', 6, tcp(80, 51234, PSH_ACK, Buffer.alloc(1000))));
    const p = decode(whole.subarray(0, 14 + 20 + 20 + 10));
    assert.equal(p.transport?.kind === 'tcp' && p.transport.payloadLength, 1000);
    assert.match(p.error ?? '', /IPv4 packet truncated \(990 bytes missing\)/);
  });

  it('ICMP is named in the summary; malformed IPv4 lengths are reported', () => {
    const ping = decode(ethernet(LB_MAC, CLIENT_MAC, 0x0800, ipv4('192.0.2.1', '192.0.2.2', 1, Buffer.alloc(64))));
    assert.equal(formatPacket(ping), '192.0.2.1 > 192.0.2.2 icmp');
    const bad = ipv4('192.0.2.1', '192.0.2.2', 6, tcp(1, 2, SYN));
    bad.writeUInt16BE(12, 2); // total length below the header length
    assert.match(decode(bad, 'RAW').error ?? '', /total length 12/);
  });

  it('RAW and Linux cooked link types', () => {
    const packet = ipv4('10.8.21.40', '172.16.75.84', 6, tcp(1, 80, SYN));
    assert.equal(decode(packet, 'RAW').ip?.dst, '172.16.75.84');
    const cooked = Buffer.concat([Buffer.from([0, 0, 0, 1, 0, 6, 2, 0, 0, 0, 0, 0x40, 0, 0, 0x08, 0x00]), packet]);
    assert.equal(decode(cooked, 'LINUX_SLL').ip?.src, '10.8.21.40');
  });

  it('ARP and other ethertypes decode to MACs only', () => {
    const p = decode(ethernet('ff:ff:ff:ff:ff:ff', CLIENT_MAC, 0x0806, Buffer.alloc(28)));
    assert.equal(p.etherType, 0x0806);
    assert.equal(p.ip, undefined);
    assert.equal(p.error, undefined);
  });

  it('a frame cut at every offset never throws and says what is missing', () => {
    const wholes = [
      ethernet(
        LB_MAC,
        CLIENT_MAC,
        0x0800,
        ipv4('10.8.21.40', '172.16.75.84', 4, ipv4('10.8.21.40', '172.16.75.84', 6, tcp(1, 80, SYN, Buffer.from('GET /')))),
      ),
      ethernet(
        LB_MAC,
        CLIENT_MAC,
        0x86dd,
        ipv6(V6_SRC, V6_DST, 0, Buffer.concat([Buffer.from([17, 0, 1, 4, 0, 0, 0, 0]), udp(5353, 53, Buffer.from('q'))])),
        75,
      ),
    ];
    for (const whole of wholes) {
      for (let n = 0; n < whole.length; n++) {
        const p = decode(whole.subarray(0, n));
        assert.ok(p.error, `cut at ${n} of ${whole.length} bytes reports an error`);
      }
      assert.equal(decode(whole).error, undefined);
    }
  });

  it('fuzz: 20,000 random buffers and mutations of valid frames never throw', () => {
    const next = rng(0x51b);
    const valid = [
      ethernet(LB_MAC, CLIENT_MAC, 0x0800, ipv4('10.8.21.40', '172.16.75.84', 6, tcp(1, 80, SYN))),
      ethernet(
        LB_MAC,
        CLIENT_MAC,
        0x0800,
        ipv4('172.16.75.83', '172.16.75.82', 4, ipv4('10.8.21.40', '172.16.75.84', 17, udp(1, 2, Buffer.alloc(3)))),
      ),
      ethernet(
        LB_MAC,
        CLIENT_MAC,
        0x86dd,
        ipv6(
          new Array<number>(16).fill(1),
          new Array<number>(16).fill(2),
          44,
          Buffer.concat([Buffer.from([6, 0, 0, 0, 0, 0, 0, 0]), tcp(1, 2, SYN)]),
        ),
      ),
    ];
    const links: LinkType[] = ['ETHERNET', 'RAW', 'LINUX_SLL'];
    for (let i = 0; i < 20000; i++) {
      let data: Buffer;
      if (i % 2 === 0) {
        data = Buffer.from(Array.from({ length: Math.floor(next() * 120) }, () => Math.floor(next() * 256)));
      } else {
        data = Buffer.from(valid[i % valid.length]);
        for (let k = 0; k < 1 + Math.floor(next() * 4); k++) data[Math.floor(next() * data.length)] = Math.floor(next() * 256);
        data = data.subarray(0, Math.floor(next() * (data.length + 1)));
      }
      const link = links[i % links.length];
      assert.doesNotThrow(() => formatPacket(decodeFrame(frame(data), link)), `iteration ${i}`);
    }
  });
});
