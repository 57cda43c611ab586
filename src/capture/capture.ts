// Live capture on one lab host with slbctl's own libpcap handle (native/,
// src/util/netns.ts). The pcap socket is opened inside the host's network
// namespace (inNetns) and stays there, so one process captures on the
// client, the balancer and the real servers at once.
//
// Every frame keeps the kernel's own timestamp, in nanoseconds of
// CLOCK_REALTIME, taken when the kernel received (or sent) it: one clock for
// all namespaces of the host, so captures of different lab hosts can be
// ordered against each other, and unaffected by how late Node reads them.
// Reading is nonblocking: a short timer drains libpcap's ring buffer into
// memory, and stop() drains it once more, so what the kernel queued before
// stop() is never lost.
import * as path from 'node:path';
import { NativeCapture, NativeFrame, inNetns, interfaceMac, native } from '../util/netns';
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
   * Read what the kernel has queued, close the capture and return everything
   * it saw, decoded. Packets still in flight (a FIN the peer has yet to
   * send) are not there yet: a caller that wants them waits for them first.
   * Throws (once, after closing) when reading failed while capturing, e.g.
   * because the interface went away: a partial capture is no evidence.
   */
  stop(): HostCapture;
}

/** libpcap's DLT numbers slbctl decodes (DLT_RAW is 12 on Linux, 14 on OpenBSD; LINKTYPE_RAW is 101). */
const LINK_TYPES = new Map<number, LinkType>([
  [1, 'ETHERNET'],
  [12, 'RAW'],
  [14, 'RAW'],
  [101, 'RAW'],
  [113, 'LINUX_SLL'],
]);

/**
 * How often the ring buffer is drained. The timestamps are the kernel's, so
 * this only bounds how long frames wait in the ring (4 MiB by default: tens
 * of thousands of lab frames) and how much work one turn of the loop does.
 */
const POLL_MS = 5;
const READ_BATCH = 4096;

const NANOS_PER_SECOND = 1_000_000_000n;

function rawFrame(f: NativeFrame): RawFrame {
  return { tsNanos: BigInt(f.tsSec) * NANOS_PER_SECOND + BigInt(f.tsNsec), wireLength: f.wirelen, data: f.data };
}

export function startCapture(o: CaptureOptions): CaptureSession {
  const where = `capture on ${o.host}${o.netns ? ` (netns ${o.netns})` : ''} device ${o.device}`;
  let handle: NativeCapture;
  let mac: string;
  try {
    const addon = native();
    ({ handle, mac } = inNetns(o.netns, () => ({
      // The "any" pseudo-device has no MAC of its own.
      mac: o.device === 'any' ? '' : interfaceMac(undefined, o.device),
      handle: new addon.Capture(o.device, o.filter ?? '', o.bufferBytes ?? 4 * 1024 * 1024),
    })));
  } catch (e) {
    throw new Error(`${where}: ${(e as Error).message}`);
  }
  const linkType = LINK_TYPES.get(handle.linkType);
  if (!linkType) {
    handle.close();
    throw new Error(`${where}: unsupported link type ${handle.linkType}`);
  }
  const frames: RawFrame[] = [];
  let failure: Error | undefined;
  // A batch shorter than asked for means the ring was empty when it was read.
  const drain = () => {
    let batch: NativeFrame[];
    do {
      batch = handle.read(READ_BATCH);
      for (const f of batch) frames.push(rawFrame(f));
    } while (batch.length === READ_BATCH);
  };
  const poll = setInterval(() => {
    try {
      drain();
    } catch (e) {
      failure = new Error(`${where}: ${(e as Error).message}`);
      clearInterval(poll);
    }
  }, POLL_MS);
  // The capture never keeps the process alive on its own.
  poll.unref();
  let stopped = false;
  return {
    host: o.host,
    stop(): HostCapture {
      if (!stopped) {
        stopped = true;
        clearInterval(poll);
        try {
          if (!failure) drain();
        } catch (e) {
          failure = new Error(`${where}: ${(e as Error).message}`);
        } finally {
          handle.close();
        }
        if (failure) throw failure;
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
