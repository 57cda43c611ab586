// Live capture with libpcap (`cap`) on one lab host. The pcap socket is
// opened inside the host's network namespace (inNetns) and stays there, so
// one process captures on the client, the balancer and the real servers at
// once, all delivered on the main thread's event loop.
import * as path from 'node:path';
import type { Cap } from 'cap';
import { inNetns, interfaceMac } from '../util/netns';
import { decodeFrame } from './decode';
import { writePcap } from './pcap';
import { HostCapture, LinkType, RawFrame } from './types';

export interface CaptureOptions {
  /** Lab host name: names the capture and its pcap file. */
  host: string;
  /** Network namespace (under /run/netns) to capture in; absent for the current one. */
  netns?: string;
  device: string;
  /** pcap-filter expression; absent or empty for everything. */
  filter?: string;
  /** Size of libpcap's kernel ring buffer in bytes (default 4 MiB). */
  bufferBytes?: number;
}

export interface CaptureSession {
  readonly host: string;
  /**
   * Close the capture and return what it saw, decoded. Frames still queued
   * in the kernel when this runs are lost: cap only reads them when the event
   * loop polls, so the caller waits a little (a few hundred ms) after the
   * last packet it cares about, and lets the loop run, before stopping.
   */
  stop(): HostCapture;
}

/** cap's link type names, including its spelling for Linux cooked captures. */
const LINK_TYPES = new Map<string, LinkType>([
  ['ETHERNET', 'ETHERNET'],
  ['RAW', 'RAW'],
  ['LINUX_SLL', 'LINUX_SLL'],
  ['LINKTYPE_LINUX_SLL', 'LINUX_SLL'],
]);

/**
 * Every Cap ever created stays referenced here, so none is ever garbage
 * collected. cap 0.2.1's native destructor is unsafe: its close() stops the
 * libuv poll handle but never uv_close()s it (and after a failed open() it
 * touches a poll handle that was never initialised), and it emits an
 * async-hooks destroy from inside a GC callback, which crashed Node 20 with
 * SIGSEGV in the integration tests. A closed Cap holds no libpcap resources,
 * so keeping the small wrapper is cheap; captures are few and short.
 */
const keepAlive: Cap[] = [];

/**
 * cap hands over no capture timestamp, so frames are stamped when the event
 * loop receives them (cap turns on libpcap's immediate mode, so that is
 * within the loop's latency). One wall-clock reading anchors a monotonic
 * clock: microsecond resolution, ordered, immune to clock steps. Good for
 * ordering on one host and for rough comparison across hosts captured by
 * this process; not a hardware timestamp.
 */
const clockBase = { wallMicros: Date.now() * 1000, mono: process.hrtime.bigint() };
const nowMicros = () => clockBase.wallMicros + Number((process.hrtime.bigint() - clockBase.mono) / 1000n);

export function startCapture(o: CaptureOptions): CaptureSession {
  const where = `capture on ${o.host}${o.netns ? ` (netns ${o.netns})` : ''} device ${o.device}`;
  // Loaded here, not at import: slbctl also runs where cap's addon was built
  // for another Node ABI (the Vagrant lab's VMs run Debian's node), and only
  // capturing needs it.
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- loaded on first use, not at start-up (see above)
  const { Cap: CapClass } = require('cap') as typeof import('cap');
  const cap = new CapClass();
  keepAlive.push(cap);
  // One pcap record at a time is copied here by cap before each 'packet' event.
  const buffer = Buffer.alloc(65535);
  let opened: { mac: string; linkName: string };
  try {
    opened = inNetns(o.netns, () => ({
      // The "any" pseudo-device has no MAC of its own.
      mac: o.device === 'any' ? '' : interfaceMac(undefined, o.device),
      // After a failed open() cap must not be closed (see keepAlive).
      linkName: cap.open(o.device, o.filter ?? '', o.bufferBytes ?? 4 * 1024 * 1024, buffer),
    }));
  } catch (e) {
    throw new Error(`${where}: ${(e as Error).message}`);
  }
  const { mac, linkName } = opened;
  const linkType = LINK_TYPES.get(linkName);
  if (!linkType) {
    cap.close();
    throw new Error(`${where}: unsupported link type ${linkName}`);
  }
  const frames: RawFrame[] = [];
  cap.on('packet', (nbytes: number) => {
    // The buffer is overwritten by the next packet: copy the bytes out. cap
    // reports only the captured length, so the wire length is that too.
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
      return { host: o.host, device: o.device, mac, linkType, frames: [...frames], packets: frames.map((f) => decodeFrame(f, linkType)) };
    },
  };
}

/** Write `<dir>/<host>.pcap`, remember its path on the capture, and return it. */
export function writeHostCapture(c: HostCapture, dir: string): string {
  const file = path.join(dir, `${c.host}.pcap`);
  writePcap(file, c.linkType, c.frames);
  c.pcapPath = file;
  return file;
}
