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
