// Real server k of bench:checks: 250 addresses a /24 in 198.19.0.0/16 (RFC 2544 benchmarking space), .1 to .250.
export function rsAddress(k: number): string {
  return `198.19.${Math.floor(k / 250)}.${(k % 250) + 1}`;
}
