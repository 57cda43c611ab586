// Linux capabilities of this process, read from /proc/self/status: slbctl
// needs CAP_NET_ADMIN to program the kernel, not root as such.
import * as fs from 'node:fs';

export const CAP_NET_ADMIN = 12;
export const CAP_NET_RAW = 13;

export function hasCapability(cap: number): boolean {
  try {
    const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(fs.readFileSync('/proc/self/status', 'utf8'));
    return m ? ((BigInt(`0x${m[1]}`) >> BigInt(cap)) & 1n) === 1n : false;
  } catch {
    return typeof process.getuid === 'function' && process.getuid() === 0;
  }
}
