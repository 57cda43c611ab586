// Builders of raw frames for decoder tests (no I/O).

function checksumless(parts: (number[] | Buffer)[]): Buffer {
  return Buffer.concat(parts.map((p) => (Buffer.isBuffer(p) ? p : Buffer.from(p))));
}

const ip4 = (a: string) => a.split('.').map(Number);
const mac = (m: string) => m.split(':').map((x) => parseInt(x, 16));

export function ethernet(dst: string, src: string, etherType: number, payload: Buffer, vlan?: number): Buffer {
  const tag = vlan === undefined ? [] : [0x81, 0x00, (vlan >> 8) & 0x0f, vlan & 0xff];
  return checksumless([mac(dst), mac(src), tag, [etherType >> 8, etherType & 0xff], payload]);
}

export function ipv4(src: string, dst: string, protocol: number, payload: Buffer, ttl = 64): Buffer {
  const total = 20 + payload.length;
  return checksumless([[0x45, 0, total >> 8, total & 0xff, 0, 1, 0x40, 0, ttl, protocol, 0, 0], ip4(src), ip4(dst), payload]);
}

export function ipv6(src: number[], dst: number[], next: number, payload: Buffer): Buffer {
  const len = payload.length;
  return checksumless([[0x60, 0, 0, 0, len >> 8, len & 0xff, next, 64], src, dst, payload]);
}

export function tcp(srcPort: number, dstPort: number, flags: number, data = Buffer.alloc(0)): Buffer {
  return checksumless([
    [srcPort >> 8, srcPort & 0xff, dstPort >> 8, dstPort & 0xff, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, flags, 0xff, 0xff, 0, 0, 0, 0],
    data,
  ]);
}

export function udp(srcPort: number, dstPort: number, data: Buffer): Buffer {
  const len = 8 + data.length;
  return checksumless([[srcPort >> 8, srcPort & 0xff, dstPort >> 8, dstPort & 0xff, len >> 8, len & 0xff, 0, 0], data]);
}

export const SYN = 0x02;
export const SYN_ACK = 0x12;
export const PSH_ACK = 0x18;

/** A deterministic pseudo-random generator (mulberry32) so fuzz failures reproduce. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
