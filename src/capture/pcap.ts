// Classic libpcap files (what tcpdump -w writes), so every capture slbctl
// makes can be opened in Wireshark or tshark to check its verdict by hand.
// slbctl writes the nanosecond variant (magic 0xa1b23c4d, as tcpdump
// --time-stamp-precision=nano does): its frames carry the kernel's
// nanosecond times, and cutting them to microseconds would merge frames a
// few hundred nanoseconds apart. It reads both variants (a pcap from
// elsewhere may carry microseconds; the Vagrant lab asks tcpdump for nanoseconds).
import * as fs from 'node:fs';
import * as os from 'node:os';
import { LinkType, RawFrame } from './types';
import { writeFileNoFollow } from '../util/safe-write';

const LINKTYPES: Record<LinkType, number> = { ETHERNET: 1, RAW: 101, LINUX_SLL: 113 };
const MAGIC_MICRO = 0xa1b2c3d4;
const MAGIC_NANO = 0xa1b23c4d;
const SNAPLEN = 65535;
const NANOS_PER_SECOND = 1_000_000_000n;
const FILE_HEADER = 24;
const RECORD_HEADER = 16;

export interface PcapContents {
  /** A name slbctl decodes, or the file's raw link-layer number when it is another. */
  linkType: LinkType | number;
  frames: RawFrame[];
}

export function encodePcap(linkType: LinkType, frames: readonly RawFrame[]): Buffer {
  // Host byte order, like libpcap itself: readers detect it from the magic.
  const le = os.endianness() === 'LE';
  const u16 = (b: Buffer, v: number, o: number) => (le ? b.writeUInt16LE(v, o) : b.writeUInt16BE(v, o));
  const u32 = (b: Buffer, v: number, o: number) => (le ? b.writeUInt32LE(v, o) : b.writeUInt32BE(v, o));
  const header = Buffer.alloc(FILE_HEADER);
  u32(header, MAGIC_NANO, 0);
  u16(header, 2, 4);
  u16(header, 4, 6);
  // thiszone 0 and sigfigs 0: timestamps are UTC, as everyone writes them.
  u32(header, SNAPLEN, 16);
  u32(header, LINKTYPES[linkType], 20);
  const parts: Buffer[] = [header];
  for (const f of frames) {
    const record = Buffer.alloc(RECORD_HEADER);
    const nanos = f.tsNanos < 0n ? 0n : f.tsNanos;
    u32(record, Number(nanos / NANOS_PER_SECOND), 0);
    u32(record, Number(nanos % NANOS_PER_SECOND), 4);
    u32(record, f.data.length, 8);
    u32(record, Math.max(f.wireLength, f.data.length), 12);
    parts.push(record, f.data);
  }
  return Buffer.concat(parts);
}

/** Write a pcap file; slbctl writes them as root, so never through a link (src/util/safe-write.ts). */
export function writePcap(file: string, linkType: LinkType, frames: readonly RawFrame[]): void {
  writeFileNoFollow(file, encodePcap(linkType, frames));
}

/** Parse a classic pcap file of either byte order, micro- or nanosecond timestamps. */
export function decodePcap(data: Buffer): PcapContents {
  if (data.length < FILE_HEADER) throw new Error('pcap: file shorter than its header');
  const magicLE = data.readUInt32LE(0);
  const magicBE = data.readUInt32BE(0);
  const little = magicLE === MAGIC_MICRO || magicLE === MAGIC_NANO;
  if (!little && magicBE !== MAGIC_MICRO && magicBE !== MAGIC_NANO) throw new Error('pcap: not a pcap file (bad magic)');
  const nano = (little ? magicLE : magicBE) === MAGIC_NANO;
  const u32 = (o: number) => (little ? data.readUInt32LE(o) : data.readUInt32BE(o));
  const network = u32(20) & 0xffff; // the upper 16 bits may describe an FCS, not the link type
  const linkType = (Object.keys(LINKTYPES) as LinkType[]).find((k) => LINKTYPES[k] === network) ?? network;
  const frames: RawFrame[] = [];
  let o = FILE_HEADER;
  // A last record cut short (the writer was killed mid-write) is dropped:
  // everything before it is still good evidence.
  while (o + RECORD_HEADER <= data.length) {
    const sec = u32(o);
    const frac = u32(o + 4);
    const caplen = u32(o + 8);
    const wireLength = u32(o + 12);
    if (o + RECORD_HEADER + caplen > data.length) break;
    frames.push({
      tsNanos: BigInt(sec) * NANOS_PER_SECOND + BigInt(nano ? frac : frac * 1000),
      wireLength,
      data: Buffer.from(data.subarray(o + RECORD_HEADER, o + RECORD_HEADER + caplen)),
    });
    o += RECORD_HEADER + caplen;
  }
  return { linkType, frames };
}

export function readPcap(file: string): PcapContents {
  return decodePcap(fs.readFileSync(file));
}
