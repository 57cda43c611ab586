// Frame bytes -> decoded headers. Pure, and never throws: whatever is short
// or malformed is reported in `error` with what could be decoded before it.
import { DecodedPacket, IpHeader, LinkType, RawFrame } from './types';

const ETH_IPV4 = 0x0800;
const ETH_IPV6 = 0x86dd;
const ETH_VLAN = [0x8100, 0x88a8];
const PROTO_IPIP = 4;
const PROTO_TCP = 6;
const PROTO_UDP = 17;
const PROTO_IPV6 = 41;
/** IPv6 extension headers that are skipped to reach the transport header. */
const IPV6_EXTENSIONS = new Set([0, 43, 60]);
const IPV6_FRAGMENT = 44;

class Truncated extends Error {}

/** Bounds-checked reads: a short buffer becomes a Truncated error, caught at the top. */
class Reader {
  constructor(readonly b: Buffer, readonly end = b.length) {}
  need(offset: number, length: number, what: string): void {
    if (offset < 0 || offset + length > this.end) throw new Truncated(`${what} truncated`);
  }
  u8(o: number, what: string): number { this.need(o, 1, what); return this.b[o] as number; }
  u16(o: number, what: string): number { this.need(o, 2, what); return this.b.readUInt16BE(o); }
  u32(o: number, what: string): number { this.need(o, 4, what); return this.b.readUInt32BE(o); }
}

const mac = (b: Buffer, o: number) => Array.from(b.subarray(o, o + 6), (x) => x.toString(16).padStart(2, '0')).join(':');
const ipv4 = (b: Buffer, o: number) => `${b[o]}.${b[o + 1]}.${b[o + 2]}.${b[o + 3]}`;

function ipv6(b: Buffer, o: number): string {
  const groups: string[] = [];
  for (let i = 0; i < 8; i++) groups.push(b.readUInt16BE(o + i * 2).toString(16));
  // Compress the longest run of zero groups (RFC 5952).
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8;) {
    let j = i;
    while (j < 8 && groups[j] === '0') j++;
    if (j - i > bestLen) { best = i; bestLen = j - i; }
    i = j === i ? i + 1 : j;
  }
  if (best < 0) return groups.join(':');
  return `${groups.slice(0, best).join(':')}::${groups.slice(best + bestLen).join(':')}`;
}

interface IpResult { header: IpHeader; payload: number; end: number; firstFragment: boolean }

function decodeIp(r: Reader, o: number, version: 4 | 6): IpResult {
  if (version === 4) {
    const vihl = r.u8(o, 'IPv4 header');
    if (vihl >> 4 !== 4) throw new Truncated(`IPv4 header has version ${vihl >> 4}`);
    const ihl = (vihl & 0x0f) * 4;
    if (ihl < 20) throw new Truncated(`IPv4 header length ${ihl} is below 20`);
    r.need(o, ihl, 'IPv4 header');
    const total = r.u16(o + 2, 'IPv4 header');
    const fragOffset = r.u16(o + 6, 'IPv4 header') & 0x1fff;
    // The IP total length bounds the packet: Ethernet padding is not payload.
    const end = Math.min(r.end, total >= ihl ? o + total : r.end);
    return {
      header: { version: 4, src: ipv4(r.b, o + 12), dst: ipv4(r.b, o + 16), protocol: r.u8(o + 9, 'IPv4 header'), ttl: r.u8(o + 8, 'IPv4 header') },
      payload: o + ihl,
      end,
      firstFragment: fragOffset === 0,
    };
  }
  r.need(o, 40, 'IPv6 header');
  if (r.u8(o, 'IPv6 header') >> 4 !== 6) throw new Truncated('IPv6 header has another version');
  const end = Math.min(r.end, o + 40 + r.u16(o + 4, 'IPv6 header'));
  let next = r.u8(o + 6, 'IPv6 header');
  let p = o + 40;
  let firstFragment = true;
  for (let guard = 0; guard < 16 && (IPV6_EXTENSIONS.has(next) || next === IPV6_FRAGMENT); guard++) {
    const nextHeader = r.u8(p, 'IPv6 extension header');
    if (next === IPV6_FRAGMENT) {
      firstFragment = (r.u16(p + 2, 'IPv6 fragment header') & 0xfff8) === 0;
      p += 8;
    } else p += (r.u8(p + 1, 'IPv6 extension header') + 1) * 8;
    next = nextHeader;
  }
  return { header: { version: 6, src: ipv6(r.b, o + 8), dst: ipv6(r.b, o + 24), protocol: next, ttl: r.u8(o + 7, 'IPv6 header') }, payload: p, end, firstFragment };
}

function decodeTransport(r: Reader, ip: IpResult, p: DecodedPacket): void {
  const o = ip.payload;
  if (!ip.firstFragment) {
    p.transport = { kind: 'other' };
    return;
  }
  if (ip.header.protocol === PROTO_TCP) {
    const dataOffset = (r.u8(o + 12, 'TCP header') >> 4) * 4;
    if (dataOffset < 20) throw new Truncated(`TCP data offset ${dataOffset} is below 20`);
    r.need(o, dataOffset, 'TCP header');
    const flags = r.u8(o + 13, 'TCP header');
    p.transport = {
      kind: 'tcp',
      srcPort: r.u16(o, 'TCP header'),
      dstPort: r.u16(o + 2, 'TCP header'),
      seq: r.u32(o + 4, 'TCP header'),
      ack: r.u32(o + 8, 'TCP header'),
      flags: { fin: (flags & 1) !== 0, syn: (flags & 2) !== 0, rst: (flags & 4) !== 0, psh: (flags & 8) !== 0, ack: (flags & 16) !== 0 },
      payloadLength: Math.max(0, ip.end - o - dataOffset),
    };
  } else if (ip.header.protocol === PROTO_UDP) {
    p.transport = { kind: 'udp', srcPort: r.u16(o, 'UDP header'), dstPort: r.u16(o + 2, 'UDP header'), payloadLength: Math.max(0, Math.min(r.u16(o + 4, 'UDP header') - 8, ip.end - o - 8)) };
  } else p.transport = { kind: 'other' };
}

function decodeFromIp(r: Reader, o: number, version: 4 | 6, p: DecodedPacket): void {
  let ip = decodeIp(r, o, version);
  if (ip.header.protocol === PROTO_IPIP || ip.header.protocol === PROTO_IPV6) {
    // IP-in-IP (DSR tunnel mode): report the outer header, decode the inner one.
    p.outer = ip.header;
    const inner = new Reader(r.b, ip.end);
    ip = decodeIp(inner, ip.payload, ip.header.protocol === PROTO_IPIP ? 4 : 6);
    p.ip = ip.header;
    decodeTransport(inner, ip, p);
    return;
  }
  p.ip = ip.header;
  decodeTransport(new Reader(r.b, ip.end), ip, p);
}

export function decodeFrame(frame: RawFrame, linkType: LinkType): DecodedPacket {
  const p: DecodedPacket = { tsMicros: frame.tsMicros };
  const r = new Reader(frame.data);
  try {
    let o = 0;
    let etherType: number;
    if (linkType === 'RAW') {
      const version = r.u8(0, 'IP header') >> 4;
      if (version !== 4 && version !== 6) throw new Truncated(`raw frame has IP version ${version}`);
      decodeFromIp(r, 0, version, p);
      return p;
    }
    if (linkType === 'LINUX_SLL') {
      r.need(0, 16, 'Linux cooked header');
      etherType = r.u16(14, 'Linux cooked header');
      o = 16;
    } else {
      r.need(0, 14, 'Ethernet header');
      p.dstMac = mac(frame.data, 0);
      p.srcMac = mac(frame.data, 6);
      etherType = r.u16(12, 'Ethernet header');
      o = 14;
      for (let guard = 0; guard < 4 && ETH_VLAN.includes(etherType); guard++) {
        etherType = r.u16(o + 2, 'VLAN tag');
        o += 4;
      }
    }
    p.etherType = etherType;
    if (etherType === ETH_IPV4) decodeFromIp(r, o, 4, p);
    else if (etherType === ETH_IPV6) decodeFromIp(r, o, 6, p);
  } catch (e) {
    p.error = e instanceof Truncated ? e.message : `decoder error: ${(e as Error).message}`;
  }
  return p;
}

function tcpFlags(f: { syn: boolean; ack: boolean; fin: boolean; rst: boolean; psh: boolean }): string {
  const s = `${f.syn ? 'S' : ''}${f.fin ? 'F' : ''}${f.rst ? 'R' : ''}${f.psh ? 'P' : ''}${f.ack ? '.' : ''}`;
  return s || 'none';
}

/** One tcpdump-like line. */
export function formatPacket(p: DecodedPacket): string {
  const outer = p.outer ? `ipip ${p.outer.src} > ${p.outer.dst}: ` : '';
  if (!p.ip) return `${outer}${p.etherType !== undefined ? `ethertype 0x${p.etherType.toString(16).padStart(4, '0')}` : 'no IP'}${p.error ? ` (${p.error})` : ''}`;
  const t = p.transport;
  const ports = t && t.kind !== 'other' ? [`:${t.srcPort}`, `:${t.dstPort}`] : ['', ''];
  let what = `proto ${p.ip.protocol}`;
  if (t?.kind === 'tcp') what = `tcp [${tcpFlags(t.flags)}] len ${t.payloadLength}`;
  else if (t?.kind === 'udp') what = `udp len ${t.payloadLength}`;
  return `${outer}${p.ip.src}${ports[0]} > ${p.ip.dst}${ports[1]} ${what}${p.error ? ` (${p.error})` : ''}`;
}
