// IPv4 helpers for validation and subnet arithmetic. Pure.

/**
 * Dotted-quad text as its 32-bit number, or -1 when it is not one (four
 * parts 0-255, no leading zeros). One pass over the characters: a config of
 * 10,000 services has 50,000 addresses to check.
 */
function parseIPv4(text: string): number {
  let n = 0;
  let part = 0;
  let digits = 0;
  let dots = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 46) {
      if (digits === 0 || dots === 3) return -1;
      n = n * 256 + part;
      part = 0;
      digits = 0;
      dots++;
      continue;
    }
    if (c < 48 || c > 57 || (digits > 0 && part === 0)) return -1;
    part = part * 10 + (c - 48);
    digits++;
    if (part > 255) return -1;
  }
  return dots === 3 && digits > 0 ? n * 256 + part : -1;
}

export function isIPv4(text: string): boolean {
  return parseIPv4(text) >= 0;
}

export function ipv4ToInt(text: string): number {
  const n = parseIPv4(text);
  return n >= 0 ? n : text.split('.').reduce((acc, p) => acc * 256 + Number(p), 0);
}

export function intToIpv4(n: number): string {
  return [24, 16, 8, 0].map((shift) => Math.floor(n / 2 ** shift) % 256).join('.');
}

/** Does `address` lie in `network/prefixLength`? */
export function inSubnet(address: string, network: string, prefixLength: number): boolean {
  if (prefixLength === 0) return true;
  const size = 2 ** (32 - prefixLength);
  return Math.floor(ipv4ToInt(address) / size) === Math.floor(ipv4ToInt(network) / size);
}

export function isMac(text: string): boolean {
  return /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i.test(text);
}

/** A netmask: ones then zeros, e.g. 255.255.255.0. */
export function isNetmask(text: string): boolean {
  if (!isIPv4(text)) return false;
  const bits = ipv4ToInt(text).toString(2).padStart(32, '0');
  return /^1*0*$/.test(bits);
}

/**
 * Why an address can be neither a VIP nor a real server, or undefined when it
 * is an ordinary unicast address. These hold on every host; the network and
 * broadcast addresses of a connected subnet need the host's own addresses and
 * are refused when the config is resolved against it (src/engine/vip-checks.ts).
 */
export function nonUnicastReason(text: string): string | undefined {
  const n = ipv4ToInt(text);
  const first = Math.floor(n / 2 ** 24);
  if (n === 0) return 'the unspecified address (0.0.0.0), which means "any address", not one host';
  // Checked before 240/4, which holds it: it has a meaning of its own.
  if (n === 2 ** 32 - 1) return 'the limited broadcast address (255.255.255.255): it reaches every host on the segment, not one';
  if (first === 127) return 'a loopback address (127.0.0.0/8): it never leaves the host that has it';
  if (first >= 224 && first <= 239) return 'a multicast address (224.0.0.0/4): it names a group of receivers, not one host';
  if (first >= 240) return 'a reserved address (240.0.0.0/4): it is not routed as unicast';
  return undefined;
}
