// Typed access to the native addon: run synchronous code inside a named
// network namespace (for the calling thread only), and read MACs there.
import * as path from 'node:path';

interface NativeAddon {
  enterNetns(path: string): number;
  leaveNetns(savedFd: number): void;
  netnsInode(): number;
  interfaceMac(ifname: string): string;
}

const ADDON_PATH = path.join(__dirname, '..', '..', '..', 'native', 'build', 'Release', 'slbctl_native.node');
let addon: NativeAddon | undefined;

function native(): NativeAddon {
  if (!addon) {
    try {
      addon = require(ADDON_PATH) as NativeAddon;
    } catch (e) {
      throw new Error(`the native addon is not built (${ADDON_PATH}): run \`npm run setup\` (${(e as Error).message.split('\n')[0]})`);
    }
  }
  return addon;
}

/**
 * Run `fn` with the calling thread inside /run/netns/<name> and always come
 * back. Synchronous only: an await inside would let other code run in the
 * wrong namespace. Sockets opened inside stay in that namespace.
 */
export function inNetns<T>(name: string | undefined, fn: () => T): T {
  if (name === undefined) return fn();
  if (!/^[A-Za-z0-9_.-]+$/.test(name)) throw new Error(`bad network namespace name ${JSON.stringify(name)}`);
  const n = native();
  const saved = n.enterNetns(`/run/netns/${name}`);
  try {
    return fn();
  } finally {
    n.leaveNetns(saved);
  }
}

export function interfaceMac(netns: string | undefined, ifname: string): string {
  return inNetns(netns, () => native().interfaceMac(ifname));
}

export function netnsInode(): number {
  return native().netnsInode();
}
