// IPv4 helpers for validation and subnet arithmetic. Pure.

export function isIPv4(text: string): boolean {
  const parts = text.split('.');
  if (parts.length !== 4) return false;
  return parts.every((p) => /^(0|[1-9][0-9]{0,2})$/.test(p) && Number(p) <= 255);
}

export function ipv4ToInt(text: string): number {
  return text.split('.').reduce((acc, p) => acc * 256 + Number(p), 0);
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
