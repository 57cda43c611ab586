// The local routes that hold VIPs (vipAs: route, "AnyIP"): `local VIP/32 dev
// IFACE table local proto 245`. Encoded and decoded here by hand, as
// decodeAddress does: the netlink package's generic route decoder is slow for
// 10,000 routes, and its newRoute/delRoute do not let many requests be in
// flight on one socket.
// ABI: include/uapi/linux/rtnetlink.h (struct rtmsg, RTA_*, RTN_*, RTPROT_*).

import { attribute } from '../netlink';
export const RTM_NEWROUTE = 24;
export const RTM_DELROUTE = 25;
export const RTM_GETROUTE = 26;

const AF_INET = 2;
/** RT_TABLE_LOCAL: the table the kernel keeps this host's own addresses in. */
export const TABLE_LOCAL = 255;
/** RTN_LOCAL: a route that says "this address is this host's". */
const RTN_LOCAL = 2;
/** RT_SCOPE_HOST */
const SCOPE_HOST = 254;
/** RTPROT_KERNEL: the local route the kernel adds for every interface address. */
export const PROTOCOL_KERNEL = 2;
/**
 * slbctl's own route protocol, so that its VIP routes are recognisably its
 * own (`ip route show table local proto 245`). 245 is in no kernel header and
 * in no iproute2 rt_protos (0-4 are the kernel's, 8-18, 42, 99 and 186-192
 * are routing daemons').
 */
export const PROTOCOL_SLBCTL = 245;

const RTA_DST = 1;
const RTA_OIF = 4;
const RTA_TABLE = 15;

/** A local /32 route in table local, other than one the kernel made for an address. */
export interface LocalRoute {
  address: string;
  /** The route's protocol number (245: slbctl's). */
  protocol: number;
}

/** struct rtmsg { family, dst_len, src_len, tos, table, protocol, scope, type, flags u32 }: 12 bytes. */
const RTMSG_LENGTH = 12;

/** A dump request of every IPv4 route (the kernel filters by table only with strict checking: decodeLocalRoute filters). */
export const RTMSG_DUMP_INET = Buffer.from([AF_INET, 0, 0, 0, TABLE_LOCAL, 0, 0, 0, 0, 0, 0, 0]);

const u32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n, 0);
  return b;
};

/**
 * The RTM_NEWROUTE / RTM_DELROUTE payload of slbctl's route for `address` on
 * interface `ifindex`. The protocol matters on delete too: the kernel then
 * removes only a route of that protocol, never the one it made for an
 * address of the same value.
 */
export function encodeLocalRoute(address: string, ifindex: number): Buffer {
  const head = Buffer.from([AF_INET, 32, 0, 0, TABLE_LOCAL, PROTOCOL_SLBCTL, SCOPE_HOST, RTN_LOCAL, 0, 0, 0, 0]);
  const dst = Buffer.from(address.split('.').map(Number));
  return Buffer.concat([head, attribute(RTA_DST, dst), attribute(RTA_OIF, u32(ifindex)), attribute(RTA_TABLE, u32(TABLE_LOCAL))]);
}

/**
 * One RTM_NEWROUTE payload of a dump: a local /32 route of table local and
 * its interface, or undefined for any other route (the kernel's routes for
 * interface addresses included: those are what `ip addr` shows).
 */
export function decodeLocalRoute(data: Buffer): { index: number; route: LocalRoute } | undefined {
  // Cheap refusals first: a balancer with 10,000 address VIPs has 10,000 kernel local routes.
  if (data.length < RTMSG_LENGTH || data[0] !== AF_INET || data[1] !== 32 || data[7] !== RTN_LOCAL) return undefined;
  const protocol = data[5] ?? 0;
  if (protocol === PROTOCOL_KERNEL) return undefined;
  let table = data[4] ?? 0;
  let address: string | undefined;
  let index = 0;
  for (let at = RTMSG_LENGTH; at + 4 <= data.length;) {
    const len = data.readUInt16LE(at);
    const type = data.readUInt16LE(at + 2) & 0x3fff;
    if (len < 4 || at + len > data.length) break;
    if (type === RTA_DST && len === 8) address = `${data[at + 4]}.${data[at + 5]}.${data[at + 6]}.${data[at + 7]}`;
    else if (type === RTA_OIF && len === 8) index = data.readUInt32LE(at + 4);
    else if (type === RTA_TABLE && len === 8) table = data.readUInt32LE(at + 4);
    at += (len + 3) & ~3;
  }
  if (table !== TABLE_LOCAL || !address || index === 0) return undefined;
  return { index, route: { address, protocol } };
}
