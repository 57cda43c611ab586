// Live capture with libpcap (`cap`) on one lab host. The pcap socket is
// opened inside the host's network namespace (inNetns), so one process can
// capture on the client, the balancer and the real servers at once.
import * as path from 'node:path';
import { Cap } from 'cap';
import { inNetns, interfaceMac } from '../util/netns';
import { decodeFrame } from './decode';
import { writePcap } from './pcap';
import { HostCapture, LinkType, RawFrame } from './types';

export interface CaptureOptions {
  host: string;
  netns?: string;
  device: string;
  /** pcap-filter expression; empty for everything. */
  filter?: string;
  /** libpcap's ring buffer in bytes. */
  bufferBytes?: number;
}

export interface CaptureSession {
  readonly host: string;
  /** Close the capture and return what it saw, decoded. Give traffic a moment to land first. */
  stop(): HostCapture;
}

const LINK_TYPES: readonly LinkType[] = ['ETHERNET', 'RAW', 'LINUX_SLL'];

/**
 * Every Cap ever opened stays referenced here. cap 0.2.1's native destructor
 * emits an async-hooks destroy event; run from a garbage-collection callback
 * that crashes Node 20 (SIGSEGV in AsyncWrap::EmitDestroy, seen with gdb in
 * the integration tests). A closed Cap holds no libpcap resources, so keeping
 * the small wrapper alive is cheap; a capture is a short, bounded activity.
 */
const keepAlive: Cap[] = [];

/**
 * `cap` hands over no capture timestamp, so frames are stamped when the event
 * loop receives them (immediate mode keeps that within the loop's latency):
 * good for ordering on one host, not for microsecond comparisons across hosts.
 */
const clockBase = { wall: Date.now() * 1000, mono: process.hrtime.bigint() };
const nowMicros = () => clockBase.wall + Number((process.hrtime.bigint() - clockBase.mono) / 1000n);

export function startCapture(o: CaptureOptions): CaptureSession {
  const where = `capture on ${o.host}${o.netns ? ` (netns ${o.netns})` : ''} device ${o.device}`;
  const cap = new Cap();
  keepAlive.push(cap);
  const buffer = Buffer.alloc(65535);
  let mac: string;
  let linkName: string;
  try {
    mac = interfaceMac(o.netns, o.device);
    linkName = inNetns(o.netns, () => cap.open(o.device, o.filter ?? '', o.bufferBytes ?? 4 * 1024 * 1024, buffer));
  } catch (e) {
    throw new Error(`${where}: ${(e as Error).message}`);
  }
  const linkType = LINK_TYPES.find((l) => linkName === l || linkName === `LINKTYPE_${l}`);
  if (!linkType) {
    cap.close();
    throw new Error(`${where}: unsupported link type ${linkName}`);
  }
  const frames: RawFrame[] = [];
  cap.on('packet', (nbytes: number) => {
    frames.push({ tsMicros: nowMicros(), wireLength: nbytes, data: Buffer.from(buffer.subarray(0, nbytes)) });
  });
  let stopped = false;
  return {
    host: o.host,
    stop(): HostCapture {
      if (!stopped) {
        stopped = true;
        cap.close();
      }
      return { host: o.host, device: o.device, mac, linkType, frames, packets: frames.map((f) => decodeFrame(f, linkType)) };
    },
  };
}

/** Write `<dir>/<host>.pcap` and remember its path on the capture. */
export function writeHostCapture(c: HostCapture, dir: string): string {
  const file = path.join(dir, `${c.host}.pcap`);
  writePcap(file, c.linkType, c.frames);
  c.pcapPath = file;
  return file;
}
