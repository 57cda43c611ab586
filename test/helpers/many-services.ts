// Large nftables configs for the crash test: VIPs numbered from 172.16.80.1
// upwards (250 a /24, skipping .0 and .251-.255), four ports each, fullnat
// and transparent alternating, all on eth0 of the test's balancer namespace
// (`interface: eth0`, so no subnet is needed for them). Two configs made from
// overlapping VIP ranges add and remove each other's VIPs; the shared ones
// differ in a weight, so the transaction between them touches every service.

export const PORTS_PER_VIP = 4;

export function vipOf(index: number): string {
  return `172.16.${80 + Math.floor(index / 250)}.${1 + (index % 250)}`;
}

export interface BigConfig {
  /** The VIPs of the config, in order. */
  vips: string[];
  /** "tcp . VIP . PORT" of every service (the keys of slbctl's services map). */
  serviceKeys: string[];
  /** The weight of real server 172.16.75.82 in every service (tells the two configs' shared services apart). */
  weight: number;
  json: string;
}

/** VIPs number `from` .. `to - 1`, four services each. */
export function bigConfig(from: number, to: number, weight: number): BigConfig {
  const vips: string[] = [];
  const serviceKeys: string[] = [];
  const services: unknown[] = [];
  for (let i = from; i < to; i++) {
    const vip = vipOf(i);
    vips.push(vip);
    for (let p = 0; p < PORTS_PER_VIP; p++) {
      const port = 1000 + p;
      serviceKeys.push(`tcp . ${vip} . ${port}`);
      services.push({
        name: `s${i}-${p}`,
        vip,
        port,
        interface: 'eth0',
        mode: (i + p) % 2 === 0 ? 'transparent' : 'fullnat',
        realServers: [
          { address: '172.16.75.82', port: 80, weight },
          { address: '172.16.75.85', port: 80, weight: 1 },
        ],
      });
    }
  }
  return { vips, serviceKeys, weight, json: `${JSON.stringify({ backend: 'nft', services })}\n` };
}
