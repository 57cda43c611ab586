// Classic libpcap files (what tcpdump -w writes): Wireshark and tshark read them.
import * as fs from 'node:fs';
import { LinkType, RawFrame } from './types';

const LINKTYPES: Record<LinkType, number> = { ETHERNET: 1, RAW: 101, LINUX_SLL: 113 };
const MAGIC_MICRO = 0xa1b2c3d4;
const MAGIC_NANO = 0xa1b23c4d;
const SNAPLEN = 65535;

export function encodePcap(linkType: LinkType, frames: readonly RawFrame[]): Buffer {
  const header = Buffer.alloc(24);
  header.writeUInt32LE(MAGIC_MICRO, 0);
  header.writeUInt16LE(2, 4);
  header.writeUInt16LE(4, 6);
  header.writeInt32LE(0, 8);
  header.writeUInt32LE(0, 12);
  header.writeUInt32LE(SNAPLEN, 16);
  header.writeUInt32LE(LINKTYPES[linkType], 20);
  const parts: Buffer[] = [header];
  for (const f of frames) {
    const record = Buffer.alloc(16);
    record.writeUInt32LE(Math.floor(f.tsMicros / 1e6), 0);
    record.writeUInt32LE(Math.floor(f.tsMicros % 1e6), 4);
    record.writeUInt32LE(f.data.length, 8);
    record.writeUInt32LE(Math.max(f.wireLength, f.data.length), 12);
    parts.push(record, f.data);
  }
  return Buffer.concat(parts);
}

export function writePcap(file: string, linkType: LinkType, frames: readonly RawFrame[]): void {
  fs.writeFileSync(file, encodePcap(linkType, frames));
}

export function decodePcap(data: Buffer): { linkType: LinkType | number; frames: RawFrame[] } {
  if (data.length < 24) throw new Error('pcap: file shorter than its header');
  const magicLE = data.readUInt32LE(0);
  const magicBE = data.readUInt32BE(0);
  const little = magicLE === MAGIC_MICRO || magicLE === MAGIC_NANO;
  if (!little && magicBE !== MAGIC_MICRO && magicBE !== MAGIC_NANO) throw new Error('pcap: not a pcap file (bad magic)');
  const nano = (little ? magicLE : magicBE) === MAGIC_NANO;
  const u32 = (o: number) => (little ? data.readUInt32LE(o) : data.readUInt32BE(o));
  const network = u32(20);
  const linkType = (Object.keys(LINKTYPES) as LinkType[]).find((k) => LINKTYPES[k] === network) ?? network;
  const frames: RawFrame[] = [];
  let o = 24;
  while (o + 16 <= data.length) {
    const sec = u32(o);
    const frac = u32(o + 4);
    const caplen = u32(o + 8);
    const wireLength = u32(o + 12);
    if (o + 16 + caplen > data.length) break;
    frames.push({ tsMicros: sec * 1e6 + (nano ? Math.floor(frac / 1000) : frac), wireLength, data: Buffer.from(data.subarray(o + 16, o + 16 + caplen)) });
    o += 16 + caplen;
  }
  return { linkType, frames };
}

export function readPcap(file: string): { linkType: LinkType | number; frames: RawFrame[] } {
  return decodePcap(fs.readFileSync(file));
}
