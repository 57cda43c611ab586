// Frame bytes -> decoded headers. Pure, and never throws: a capture is
// evidence, so a short or malformed frame still yields what could be decoded
// before the problem, with `error` saying what the problem was.
import { DecodedPacket, IpHeader, LinkType, RawFrame, TcpFlags } from './types';

const ETH_IPV4 = 0x0800;
const ETH_IPV6 = 0x86dd;
const ETH_VLAN = [0x8100, 0x88a8, 0x9100];
const PROTO_ICMP = 1;
const PROTO_IPIP = 4;
const PROTO_TCP = 6;
const PROTO_UDP = 17;
const PROTO_IPV6 = 41;
const PROTO_ICMPV6 = 58;
/** IPv6 extension headers skipped to reach the transport: hop-by-hop, routing, destination options. */
const IPV6_EXTENSIONS = new Set([0, 43, 60]);
const IPV6_FRAGMENT = 44;

/** Thrown inside the decoder only; decodeFrame turns it into `error`. */
class Malformed extends Error {}

/** Bounds-checked reads up to `end` (the frame's, or an IP packet's, end). */
class Reader {
  constructor(
    readonly b: Buffer,
    readonly end: number = b.length,
  ) {}
  need(offset: number, length: number, what: string): void {
    if (offset < 0 || offset + length > this.end) throw new Malformed(`${what} truncated`);
  }
  u8(o: number, what: string): number {
    this.need(o, 1, what);
    return this.b[o];
  }
  u16(o: number, what: string): number {
    this.need(o, 2, what);
    return this.b.readUInt16BE(o);
  }
  u32(o: number, what: string): number {
    this.need(o, 4, what);
    return this.b.readUInt32BE(o);
  }
  /** The same bytes, ending earlier (never later than this reader). */
  until(end: number): Reader {
    return new Reader(this.b, Math.min(this.end, end));
  }
}

const mac = (b: Buffer, o: number) => Array.from(b.subarray(o, o + 6), (x) => x.toString(16).padStart(2, '0')).join(':');
const ipv4 = (b: Buffer, o: number) => `${b[o]}.${b[o + 1]}.${b[o + 2]}.${b[o + 3]}`;

function ipv6(b: Buffer, o: number): string {
  const groups: string[] = [];
  for (let i = 0; i < 8; i++) groups.push(b.readUInt16BE(o + i * 2).toString(16));
  // Compress the longest run of two or more zero groups (RFC 5952).
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8;) {
    let j = i;
    while (j < 8 && groups[j] === '0') j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j === i ? i + 1 : j;
  }
  if (best < 0) return groups.join(':');
  return `${groups.slice(0, best).join(':')}::${groups.slice(best + bestLen).join(':')}`;
}

interface IpResult {
  header: IpHeader;
  /** Offset of the payload (after IPv6 extension headers). */
  payload: number;
  /** End of the packet as its header declares it; may lie beyond the captured bytes. */
  declaredEnd: number;
  /** Reads of the payload stop at the declared end or the captured end, whichever is first. */
  r: Reader;
  /** Only the first fragment carries the transport header. */
  firstFragment: boolean;
}

function decodeIpv4(r: Reader, o: number): IpResult {
  const vihl = r.u8(o, 'IPv4 header');
  if (vihl >> 4 !== 4) throw new Malformed(`IPv4 header has version ${vihl >> 4}`);
  const ihl = (vihl & 0x0f) * 4;
  if (ihl < 20) throw new Malformed(`IPv4 header length ${ihl} is below 20`);
  r.need(o, ihl, 'IPv4 header');
  const total = r.u16(o + 2, 'IPv4 header');
  if (total !== 0 && total < ihl) throw new Malformed(`IPv4 total length ${total} is below its header length ${ihl}`);
  // Total length 0 is what segmentation offload leaves in oversized packets:
  // fall back to the captured bytes, as tcpdump does.
  const declaredEnd = total === 0 ? r.end : o + total;
  return {
    header: { version: 4, src: ipv4(r.b, o + 12), dst: ipv4(r.b, o + 16), protocol: r.b[o + 9], ttl: r.b[o + 8] },
    payload: o + ihl,
    declaredEnd,
    r: r.until(declaredEnd),
    firstFragment: (r.b.readUInt16BE(o + 6) & 0x1fff) === 0,
  };
}

function decodeIpv6(r: Reader, o: number): IpResult {
  r.need(o, 40, 'IPv6 header');
  const version = r.b[o] >> 4;
  if (version !== 6) throw new Malformed(`IPv6 header has version ${version}`);
  const length = r.b.readUInt16BE(o + 4);
  // Length 0 means a jumbogram (or offload): the captured bytes are the bound.
  const declaredEnd = length === 0 ? r.end : o + 40 + length;
  const header: IpHeader = {
    version: 6,
    src: ipv6(r.b, o + 8),
    dst: ipv6(r.b, o + 24),
    protocol: r.b[o + 6],
    ttl: r.b[o + 7],
  };
  const result: IpResult = { header, payload: o + 40, declaredEnd, r: r.until(declaredEnd), firstFragment: true };
  // Walk the extension headers; the bound keeps a loop of them finite.
  for (let guard = 0; guard < 16; guard++) {
    const next = header.protocol;
    if (next === IPV6_FRAGMENT) {
      header.protocol = result.r.u8(result.payload, 'IPv6 fragment header');
      result.firstFragment = (result.r.u16(result.payload + 2, 'IPv6 fragment header') & 0xfff8) === 0;
      result.payload += 8;
    } else if (IPV6_EXTENSIONS.has(next)) {
      header.protocol = result.r.u8(result.payload, 'IPv6 extension header');
      result.payload += (result.r.u8(result.payload + 1, 'IPv6 extension header') + 1) * 8;
    } else break;
  }
  return result;
}

function decodeTransport(ip: IpResult, p: DecodedPacket): void {
  const { r, payload: o } = ip;
  if (!ip.firstFragment) {
    p.transport = { kind: 'other' };
    return;
  }
  if (ip.header.protocol === PROTO_TCP) {
    const dataOffset = (r.u8(o + 12, 'TCP header') >> 4) * 4;
    if (dataOffset < 20) throw new Malformed(`TCP data offset ${dataOffset} is below 20`);
    r.need(o, dataOffset, 'TCP header');
    const flags = r.b[o + 13];
    p.transport = {
      kind: 'tcp',
      srcPort: r.b.readUInt16BE(o),
      dstPort: r.b.readUInt16BE(o + 2),
      seq: r.b.readUInt32BE(o + 4),
      ack: r.b.readUInt32BE(o + 8),
      flags: { fin: (flags & 1) !== 0, syn: (flags & 2) !== 0, rst: (flags & 4) !== 0, psh: (flags & 8) !== 0, ack: (flags & 16) !== 0 },
      // From the IP length, not the frame: Ethernet padding is not payload,
      // and a frame cut by the snap length still reports the real size.
      payloadLength: Math.max(0, ip.declaredEnd - o - dataOffset),
    };
  } else if (ip.header.protocol === PROTO_UDP) {
    const length = r.u16(o + 4, 'UDP header');
    p.transport = {
      kind: 'udp',
      srcPort: r.u16(o, 'UDP header'),
      dstPort: r.u16(o + 2, 'UDP header'),
      payloadLength: Math.max(0, Math.min(length, ip.declaredEnd - o) - 8),
    };
    if (length < 8) throw new Malformed(`UDP length ${length} is below 8`);
  } else p.transport = { kind: 'other' };
}

function decodeIp(r: Reader, o: number, version: 4 | 6): IpResult {
  return version === 4 ? decodeIpv4(r, o) : decodeIpv6(r, o);
}

/** Says when the capture holds less than the IP header declares (snap length, or a cut). */
function checkCaptured(ip: IpResult, frameEnd: number): void {
  if (ip.declaredEnd > frameEnd) {
    throw new Malformed(`IPv${ip.header.version} packet truncated (${ip.declaredEnd - frameEnd} bytes missing)`);
  }
}

function decodeFromIp(r: Reader, o: number, version: 4 | 6, p: DecodedPacket): void {
  let ip = decodeIp(r, o, version);
  const tunnel = ip.header.protocol === PROTO_IPIP || ip.header.protocol === PROTO_IPV6;
  if (tunnel && ip.firstFragment) {
    // IP-in-IP (DSR tunnel mode): keep the outer header, decode the inner one
    // within the outer packet's bounds.
    p.outer = ip.header;
    ip = decodeIp(ip.r, ip.payload, ip.header.protocol === PROTO_IPIP ? 4 : 6);
  }
  p.ip = ip.header;
  decodeTransport(ip, p);
  checkCaptured(ip, r.end);
  if (p.outer && ip.declaredEnd > ip.r.end) throw new Malformed('inner IP packet longer than its tunnel packet');
}

export function decodeFrame(frame: RawFrame, linkType: LinkType): DecodedPacket {
  const p: DecodedPacket = { tsNanos: frame.tsNanos };
  const r = new Reader(frame.data);
  try {
    if (linkType === 'RAW') {
      const version = r.u8(0, 'IP header') >> 4;
      if (version !== 4 && version !== 6) throw new Malformed(`raw frame has IP version ${version}`);
      decodeFromIp(r, 0, version, p);
      return p;
    }
    let o: number;
    let etherType: number;
    if (linkType === 'LINUX_SLL') {
      etherType = r.u16(14, 'Linux cooked header');
      o = 16;
    } else {
      r.need(0, 14, 'Ethernet header');
      p.dstMac = mac(frame.data, 0);
      p.srcMac = mac(frame.data, 6);
      etherType = frame.data.readUInt16BE(12);
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
    // Anything but Malformed is a decoder bug; still report it rather than throw.
    p.error = e instanceof Malformed ? e.message : `decoder error: ${(e as Error).message}`;
  }
  return p;
}

/** tcpdump's letters, in tcpdump's order, so summaries read the same. */
function tcpFlags(f: TcpFlags): string {
  const s = `${f.fin ? 'F' : ''}${f.syn ? 'S' : ''}${f.rst ? 'R' : ''}${f.psh ? 'P' : ''}${f.ack ? '.' : ''}`;
  return s || 'none';
}

function protocolName(n: number): string {
  if (n === PROTO_ICMP) return 'icmp';
  if (n === PROTO_ICMPV6) return 'icmp6';
  return `proto ${n}`;
}

/** One tcpdump-like line, e.g. `10.8.21.40:51234 > 172.16.75.84:80 tcp [S] len 0`. */
export function formatPacket(p: DecodedPacket): string {
  const outer = p.outer ? `ipip ${p.outer.src} > ${p.outer.dst}: ` : '';
  const error = p.error ? ` (${p.error})` : '';
  if (!p.ip) {
    const what = p.etherType !== undefined ? `ethertype 0x${p.etherType.toString(16).padStart(4, '0')}` : 'no IP';
    const macs = p.srcMac && p.dstMac ? `${p.srcMac} > ${p.dstMac} ` : '';
    return `${outer}${macs}${what}${error}`;
  }
  const t = p.transport;
  const [sport, dport] = t && t.kind !== 'other' ? [`:${t.srcPort}`, `:${t.dstPort}`] : ['', ''];
  let what = protocolName(p.ip.protocol);
  if (t?.kind === 'tcp') what = `tcp [${tcpFlags(t.flags)}] len ${t.payloadLength}`;
  else if (t?.kind === 'udp') what = `udp len ${t.payloadLength}`;
  return `${outer}${p.ip.src}${sport} > ${p.ip.dst}${dport} ${what}${error}`;
}

/** What the headers decoded above leave out but the ladder needs to match and label packets. */
export interface PacketBytes {
  /** The (inner) IPv4 header's identification: NAT keeps it, so it follows a packet across hosts. */
  ipId?: number;
  /** The TCP or UDP payload as captured. */
  payload: Buffer;
}

/** The IPv4 identification and the transport payload of a frame; empty payload when it has none or is malformed. */
export function packetBytes(frame: RawFrame, linkType: LinkType): PacketBytes {
  const b = frame.data;
  const empty: PacketBytes = { payload: Buffer.alloc(0) };
  try {
    const r = new Reader(b);
    let o = linkType === 'RAW' ? 0 : linkType === 'LINUX_SLL' ? 16 : 14;
    let etherType = linkType === 'RAW' ? (r.u8(0, 'IP header') >> 4 === 6 ? ETH_IPV6 : ETH_IPV4) : r.u16(o - 2, 'link header');
    for (let guard = 0; linkType === 'ETHERNET' && guard < 4 && ETH_VLAN.includes(etherType); guard++) {
      etherType = r.u16(o + 2, 'VLAN tag');
      o += 4;
    }
    if (etherType !== ETH_IPV4 && etherType !== ETH_IPV6) return empty;
    let ip = decodeIp(r, o, etherType === ETH_IPV4 ? 4 : 6);
    let start = o;
    if ((ip.header.protocol === PROTO_IPIP || ip.header.protocol === PROTO_IPV6) && ip.firstFragment) {
      start = ip.payload;
      ip = decodeIp(ip.r, ip.payload, ip.header.protocol === PROTO_IPIP ? 4 : 6);
    }
    const ipId = ip.header.version === 4 ? b.readUInt16BE(start + 4) : undefined;
    const withId = (payload: Buffer): PacketBytes => (ipId === undefined ? { payload } : { ipId, payload });
    if (!ip.firstFragment) return withId(Buffer.alloc(0));
    const end = Math.min(ip.declaredEnd, b.length);
    if (ip.header.protocol === PROTO_TCP)
      return withId(b.subarray(Math.min(end, ip.payload + (ip.r.u8(ip.payload + 12, 'TCP header') >> 4) * 4), end));
    if (ip.header.protocol === PROTO_UDP) return withId(b.subarray(Math.min(end, ip.payload + 8), end));
    return withId(Buffer.alloc(0));
  } catch {
    return empty;
  }
}
