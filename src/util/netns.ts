// Typed access to the native addon (native/): run synchronous code with the
// calling thread inside a named network namespace, read MACs there, and the
// libpcap capture handle (src/capture/capture.ts uses it).
//
// Why: `lab verify` captures on the client, the balancer and every real
// server at once from this one process. A socket stays in the namespace it
// was created in, so entering a host's namespace just long enough to open its
// pcap socket, then coming back, gives one live capture per host without a
// tcpdump child each. setns(CLONE_NEWNET) changes only the calling thread and
// is allowed in a multithreaded process (unlike user namespaces), so Node's
// worker threads and libuv's pool are unaffected.
import * as path from 'node:path';

/** One frame as the addon's Capture.read() returns it: libpcap's record header and a copy of the bytes. */
export interface NativeFrame {
  /** Kernel receive (or transmit) time: seconds and nanoseconds of CLOCK_REALTIME. */
  tsSec: number;
  tsNsec: number;
  caplen: number;
  /** Length on the wire (>= caplen). */
  wirelen: number;
  data: Buffer;
}

/** A live libpcap handle (native/src/capture.cc); its socket stays in the namespace it was opened in. */
export interface NativeCapture {
  /** libpcap's DLT number (1 Ethernet, 113 Linux cooked …). */
  readonly linkType: number;
  /** The frames waiting now, oldest first, at most `max` (default 4096); [] when none. Never blocks. */
  read(max?: number): NativeFrame[];
  /** Send one whole link-layer frame out of the interface (pcap_inject); throws libpcap's error. */
  inject(frame: Buffer): void;
  /** Idempotent; also safe on a handle whose open failed. */
  close(): void;
}

interface NativeAddon {
  /** Opens and activates in the calling thread's namespace: promiscuous, immediate, snap length 65535, nanosecond timestamps, nonblocking. */
  Capture: new (device: string, filter: string, bufferBytes: number) => NativeCapture;
  enterNetns(path: string): number;
  leaveNetns(savedFd: number): void;
  netnsInode(): number;
  interfaceMac(ifname: string): string;
  netnsCookie(): string | undefined;
  tryLock(path: string): number;
  unlock(fd: number): void;
  sealedInput(content: string): number;
  /** table local's local routes not made for an address, as raw netlink messages, dumped with strict checking; undefined: the kernel has none. */
  dumpLocalRoutes?(): Buffer | undefined;
  /** A nonblocking socket of rtnetlink's link, IPv4 address and route notifications, in the calling thread's namespace. */
  rtWatchOpen?(): number;
  /** Whether a notification came (or some were lost) since the last call; ask: after a round trip that every earlier one precedes. */
  rtWatchChanged?(fd: number, ask: boolean): boolean;
  closeFd?(fd: number): void;
  /** An nfnetlink socket in the calling thread's namespace. */
  nfnlOpen?(): number;
  /** Send a batch and read the kernel's answers (NLMSG_ERROR messages) to sequence numbers first..last. */
  nfnlBatch?(fd: number, batch: Buffer, first: number, last: number): Buffer;
  /**
   * An nftables script (or a listing, in JSON) run through libnftables on the thread pool, in the network
   * namespace of the calling thread at the call. Absent from an addon built before it (src/kernel/nft/executor.ts).
   */
  nftRun?(script: string, json: boolean, dryRun: boolean): Promise<{ ok: boolean; output: string; error: string }>;
}

// dist/src/util/netns.js -> the repository root.
const ADDON_PATH = path.join(__dirname, '..', '..', '..', 'native', 'build', 'Release', 'slbctl_native.node');
let addon: NativeAddon | undefined;

export function native(): NativeAddon {
  if (!addon) {
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports -- loaded on first use, not at start-up (see above)
      addon = require(ADDON_PATH) as NativeAddon;
    } catch (e) {
      const why = (e as Error).message.split('\n')[0];
      throw new Error(`the native addon is not built (${ADDON_PATH}): run \`npm run build\` (${why})`);
    }
  }
  return addon;
}

/**
 * Run `fn` with the calling thread inside /run/netns/<name> and always come
 * back, even when `fn` throws. Synchronous only: an await inside would let
 * other code run in the wrong namespace, and a socket whose syscall is
 * deferred (most of node:net) would be created after we left. An undefined
 * name runs `fn` in the current namespace.
 */
export function inNetns<T>(name: string | undefined, fn: () => T): T {
  if (name === undefined) return fn();
  // A name, not a path: nothing outside /run/netns can be entered by accident.
  if (!/^[A-Za-z0-9_.-]+$/.test(name) || name === '.' || name === '..') {
    throw new Error(`bad network namespace name ${JSON.stringify(name)}`);
  }
  const n = native();
  const saved = n.enterNetns(`/run/netns/${name}`);
  try {
    return fn();
  } finally {
    n.leaveNetns(saved);
  }
}

/** MAC of `ifname` as seen in namespace `netns` (undefined: the current one). */
export function interfaceMac(netns: string | undefined, ifname: string): string {
  return inNetns(netns, () => native().interfaceMac(ifname));
}

/** Inode of the calling thread's network namespace: equal inodes, same namespace. */
export function netnsInode(): number {
  return native().netnsInode();
}

/**
 * The kernel's cookie of the calling thread's network namespace: unlike the
 * inode, never reused while the machine runs. Undefined on kernels before
 * 5.14, which have none.
 */
export function netnsCookie(): string | undefined {
  return native().netnsCookie();
}
