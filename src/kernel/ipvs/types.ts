// IPVS objects as slbctl sees them, and the converters to and from the wire
// attributes, which hold the kernel's quirks (16-byte address unions, ports
// in network order, flags with a mask).
import { AF_INET, AF_INET6, FwdMethod, IPPROTO_TCP, IPPROTO_UDP, TunnelType } from './constants';
import { Attrs } from './codec';

export type IpvsProtocol = 'tcp' | 'udp';
export type Forwarding = 'masq' | 'local' | 'tunnel' | 'route' | 'bypass';

export interface IpvsStats {
  conns: bigint;
  inpkts: bigint;
  outpkts: bigint;
  inbytes: bigint;
  outbytes: bigint;
}

export interface IpvsService {
  protocol: IpvsProtocol;
  address: string;
  port: number;
  scheduler: string;
  /** IP_VS_SVC_F_* bits (persistent, one-packet, scheduler flags). */
  flags: number;
  /** Persistence timeout in seconds (with the persistent flag). */
  timeout: number;
  /** Persistence netmask, e.g. "255.255.255.255". */
  netmask: string;
  stats?: IpvsStats;
}

export interface IpvsDestination {
  address: string;
  port: number;
  forwarding: Forwarding;
  weight: number;
  upperThreshold: number;
  lowerThreshold: number;
  /** tunnel forwarding only. */
  tunnelType?: 'ipip' | 'gue' | 'gre';
  activeConnections?: number;
  inactiveConnections?: number;
  persistentConnections?: number;
  stats?: IpvsStats;
}

const FORWARDING: Record<Forwarding, number> = {
  masq: FwdMethod.MASQ,
  local: FwdMethod.LOCALNODE,
  tunnel: FwdMethod.TUNNEL,
  route: FwdMethod.DROUTE,
  bypass: FwdMethod.BYPASS,
};
const TUNNELS = { ipip: TunnelType.IPIP, gue: TunnelType.GUE, gre: TunnelType.GRE } as const;
const PROTOCOLS: Record<IpvsProtocol, number> = { tcp: IPPROTO_TCP, udp: IPPROTO_UDP };

/** union nf_inet_addr: 16 bytes, an IPv4 address in the first 4. */
export function addressToWire(address: string): Buffer {
  const b = Buffer.alloc(16);
  address.split('.').forEach((p, i) => {
    b[i] = Number(p);
  });
  return b;
}

export function addressFromWire(b: Buffer | undefined, af: number): string {
  if (!b || b.length < 4) return '';
  if (af === AF_INET6) {
    const groups: string[] = [];
    for (let i = 0; i < 16; i += 2) groups.push(b.readUInt16BE(i).toString(16));
    return groups.join(':');
  }
  return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`;
}

const netmaskToWire = (m: string) => m.split('.').reduce((acc, p) => acc * 256 + Number(p), 0);
const netmaskFromWire = (n: number) => [24, 16, 8, 0].map((s) => Math.floor(n / 2 ** s) % 256).join('.');

/** The attributes that identify a service (all a delete or a dest operation needs). */
export function serviceKeyToWire(s: Pick<IpvsService, 'protocol' | 'address' | 'port'>): Attrs {
  return { af: AF_INET, protocol: PROTOCOLS[s.protocol], addr: addressToWire(s.address), port: s.port };
}

export function serviceToWire(s: IpvsService): Attrs {
  // The kernel wants flags with a mask of the bits being set: all of them here.
  return {
    ...serviceKeyToWire(s),
    schedName: s.scheduler,
    flags: { flags: s.flags, mask: 0xffffffff },
    timeout: s.timeout,
    netmask: netmaskToWire(s.netmask),
  };
}

function statsFromWire(a: Attrs | undefined): IpvsStats | undefined {
  if (!a) return undefined;
  const n = (k: string) => BigInt((a[k] as number | bigint | undefined) ?? 0);
  return { conns: n('conns'), inpkts: n('inpkts'), outpkts: n('outpkts'), inbytes: n('inbytes'), outbytes: n('outbytes') };
}

export function serviceFromWire(a: Attrs): IpvsService | undefined {
  const protocol = (Object.keys(PROTOCOLS) as IpvsProtocol[]).find((p) => PROTOCOLS[p] === a.protocol);
  if (!protocol || a.af !== AF_INET || a.fwmark) return undefined; // slbctl manages IPv4 VIP:port services only
  const s: IpvsService = {
    protocol,
    address: addressFromWire(a.addr as Buffer | undefined, AF_INET),
    port: Number(a.port ?? 0),
    scheduler: typeof a.schedName === 'string' ? a.schedName : '',
    flags: (a.flags as { flags: number } | undefined)?.flags ?? 0,
    timeout: Number(a.timeout ?? 0),
    netmask: netmaskFromWire(Number(a.netmask ?? 0xffffffff)),
  };
  const stats = statsFromWire((a.stats64 ?? a.stats) as Attrs | undefined);
  if (stats) s.stats = stats;
  return s;
}

export function destinationToWire(d: IpvsDestination): Attrs {
  const a: Attrs = {
    addr: addressToWire(d.address),
    port: d.port,
    fwdMethod: FORWARDING[d.forwarding],
    weight: d.weight,
    upperThreshold: d.upperThreshold,
    lowerThreshold: d.lowerThreshold,
    addrFamily: AF_INET,
  };
  if (d.forwarding === 'tunnel') a.tunType = TUNNELS[d.tunnelType ?? 'ipip'];
  return a;
}

export function destinationKeyToWire(d: Pick<IpvsDestination, 'address' | 'port'>): Attrs {
  return { addr: addressToWire(d.address), port: d.port, addrFamily: AF_INET };
}

export function destinationFromWire(a: Attrs): IpvsDestination {
  const method = Number(a.fwdMethod ?? 0) & 0x7;
  const forwarding = (Object.keys(FORWARDING) as Forwarding[]).find((f) => FORWARDING[f] === method) ?? 'masq';
  const d: IpvsDestination = {
    address: addressFromWire(a.addr as Buffer | undefined, Number(a.addrFamily ?? AF_INET)),
    port: Number(a.port ?? 0),
    forwarding,
    weight: Number(a.weight ?? 0),
    upperThreshold: Number(a.upperThreshold ?? 0),
    lowerThreshold: Number(a.lowerThreshold ?? 0),
    activeConnections: Number(a.activeConns ?? 0),
    inactiveConnections: Number(a.inactiveConns ?? 0),
    persistentConnections: Number(a.persistConns ?? 0),
  };
  if (forwarding === 'tunnel')
    d.tunnelType = (Object.keys(TUNNELS) as (keyof typeof TUNNELS)[]).find((t) => TUNNELS[t] === a.tunType) ?? 'ipip';
  const stats = statsFromWire((a.stats64 ?? a.stats) as Attrs | undefined);
  if (stats) d.stats = stats;
  return d;
}
