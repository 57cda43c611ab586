// Netlink attributes declared once as tables of (name, id, type); encode and
// decode are both derived from the table, so the two directions cannot
// disagree on a type (moby/ipvs once wrote the weight as 32 bits and read it
// as 16). Pure: no sockets here.
import { CmdAttr, DaemonAttr, DestAttr, InfoAttr, StatsAttr, SvcAttr } from './constants';

export type AttrType = 'u8' | 'u16' | 'u32' | 'u64' | 'be16' | 'be32' | 'string' | 'binary' | 'flags' | Table;

export interface AttrSpec {
  name: string;
  id: number;
  type: AttrType;
}
export type Table = readonly AttrSpec[];

/** A decoded attribute set: name -> value (nested tables decode to nested objects). */
export type AttrValue = number | bigint | string | Buffer | { flags: number; mask: number } | Attrs;
export interface Attrs {
  [name: string]: AttrValue | undefined;
}

export const STATS: Table = [
  { name: 'conns', id: StatsAttr.CONNS, type: 'u32' },
  { name: 'inpkts', id: StatsAttr.INPKTS, type: 'u32' },
  { name: 'outpkts', id: StatsAttr.OUTPKTS, type: 'u32' },
  { name: 'inbytes', id: StatsAttr.INBYTES, type: 'u64' },
  { name: 'outbytes', id: StatsAttr.OUTBYTES, type: 'u64' },
  { name: 'cps', id: StatsAttr.CPS, type: 'u32' },
  { name: 'inpps', id: StatsAttr.INPPS, type: 'u32' },
  { name: 'outpps', id: StatsAttr.OUTPPS, type: 'u32' },
  { name: 'inbps', id: StatsAttr.INBPS, type: 'u32' },
  { name: 'outbps', id: StatsAttr.OUTBPS, type: 'u32' },
];

export const STATS64: Table = STATS.map((s) => ({ ...s, type: 'u64' as const }));

export const SERVICE: Table = [
  { name: 'af', id: SvcAttr.AF, type: 'u16' },
  { name: 'protocol', id: SvcAttr.PROTOCOL, type: 'u16' },
  { name: 'addr', id: SvcAttr.ADDR, type: 'binary' },
  { name: 'port', id: SvcAttr.PORT, type: 'be16' },
  { name: 'fwmark', id: SvcAttr.FWMARK, type: 'u32' },
  { name: 'schedName', id: SvcAttr.SCHED_NAME, type: 'string' },
  { name: 'flags', id: SvcAttr.FLAGS, type: 'flags' },
  { name: 'timeout', id: SvcAttr.TIMEOUT, type: 'u32' },
  { name: 'netmask', id: SvcAttr.NETMASK, type: 'be32' },
  { name: 'stats', id: SvcAttr.STATS, type: STATS },
  { name: 'peName', id: SvcAttr.PE_NAME, type: 'string' },
  { name: 'stats64', id: SvcAttr.STATS64, type: STATS64 },
];

export const DEST: Table = [
  { name: 'addr', id: DestAttr.ADDR, type: 'binary' },
  { name: 'port', id: DestAttr.PORT, type: 'be16' },
  { name: 'fwdMethod', id: DestAttr.FWD_METHOD, type: 'u32' },
  { name: 'weight', id: DestAttr.WEIGHT, type: 'u32' },
  { name: 'upperThreshold', id: DestAttr.U_THRESH, type: 'u32' },
  { name: 'lowerThreshold', id: DestAttr.L_THRESH, type: 'u32' },
  { name: 'activeConns', id: DestAttr.ACTIVE_CONNS, type: 'u32' },
  { name: 'inactiveConns', id: DestAttr.INACT_CONNS, type: 'u32' },
  { name: 'persistConns', id: DestAttr.PERSIST_CONNS, type: 'u32' },
  { name: 'stats', id: DestAttr.STATS, type: STATS },
  { name: 'addrFamily', id: DestAttr.ADDR_FAMILY, type: 'u16' },
  { name: 'stats64', id: DestAttr.STATS64, type: STATS64 },
  { name: 'tunType', id: DestAttr.TUN_TYPE, type: 'u8' },
  { name: 'tunPort', id: DestAttr.TUN_PORT, type: 'be16' },
  { name: 'tunFlags', id: DestAttr.TUN_FLAGS, type: 'u16' },
];

// ip_vs_daemon_policy: the port is a host-order u16 (nla_get_u16), unlike the
// service and destination ports; the IPv4 group is an in_addr (network order).
export const DAEMON: Table = [
  { name: 'state', id: DaemonAttr.STATE, type: 'u32' },
  { name: 'mcastIfn', id: DaemonAttr.MCAST_IFN, type: 'string' },
  { name: 'syncId', id: DaemonAttr.SYNC_ID, type: 'u32' },
  { name: 'syncMaxlen', id: DaemonAttr.SYNC_MAXLEN, type: 'u16' },
  { name: 'mcastGroup', id: DaemonAttr.MCAST_GROUP, type: 'binary' },
  { name: 'mcastGroup6', id: DaemonAttr.MCAST_GROUP6, type: 'binary' },
  { name: 'mcastPort', id: DaemonAttr.MCAST_PORT, type: 'u16' },
  { name: 'mcastTtl', id: DaemonAttr.MCAST_TTL, type: 'u8' },
];

export const COMMAND: Table = [
  { name: 'service', id: CmdAttr.SERVICE, type: SERVICE },
  { name: 'dest', id: CmdAttr.DEST, type: DEST },
  { name: 'daemon', id: CmdAttr.DAEMON, type: DAEMON },
  { name: 'timeoutTcp', id: CmdAttr.TIMEOUT_TCP, type: 'u32' },
  { name: 'timeoutTcpFin', id: CmdAttr.TIMEOUT_TCP_FIN, type: 'u32' },
  { name: 'timeoutUdp', id: CmdAttr.TIMEOUT_UDP, type: 'u32' },
];

export const INFO: Table = [
  { name: 'version', id: InfoAttr.VERSION, type: 'u32' },
  { name: 'connTabSize', id: InfoAttr.CONN_TAB_SIZE, type: 'u32' },
];

const NLA_F_NESTED = 0x8000;
const align4 = (n: number) => (n + 3) & ~3;

function encodeValue(type: AttrType, value: AttrValue): Buffer {
  if (Array.isArray(type)) return encode(type as Table, value as Attrs);
  switch (type) {
    case 'u8':
      return Buffer.from([Number(value) & 0xff]);
    case 'u16': {
      const b = Buffer.alloc(2);
      b.writeUInt16LE(Number(value));
      return b;
    }
    case 'u32': {
      const b = Buffer.alloc(4);
      b.writeUInt32LE(Number(value) >>> 0);
      return b;
    }
    case 'u64': {
      const b = Buffer.alloc(8);
      b.writeBigUInt64LE(BigInt(value as number | bigint));
      return b;
    }
    case 'be16': {
      const b = Buffer.alloc(2);
      b.writeUInt16BE(Number(value));
      return b;
    }
    case 'be32': {
      const b = Buffer.alloc(4);
      b.writeUInt32BE(Number(value) >>> 0);
      return b;
    }
    case 'string':
      return Buffer.from(`${typeof value === 'string' ? value : JSON.stringify(value)}\0`);
    case 'binary':
      return Buffer.from(value as Buffer);
    case 'flags': {
      const f = value as { flags: number; mask: number };
      const b = Buffer.alloc(8);
      b.writeUInt32LE(f.flags >>> 0, 0);
      b.writeUInt32LE(f.mask >>> 0, 4);
      return b;
    }
  }
  throw new Error(`ipvs codec: unknown attribute type ${JSON.stringify(type)}`);
}

/** Attributes in table order (the kernel does not care; fixtures do). */
export function encode(table: Table, attrs: Attrs): Buffer {
  const parts: Buffer[] = [];
  for (const spec of table) {
    const value = attrs[spec.name];
    if (value === undefined) continue;
    const payload = encodeValue(spec.type, value);
    const header = Buffer.alloc(4);
    header.writeUInt16LE(4 + payload.length, 0);
    header.writeUInt16LE(spec.id | (Array.isArray(spec.type) ? NLA_F_NESTED : 0), 2);
    parts.push(header, payload, Buffer.alloc(align4(payload.length) - payload.length));
  }
  return Buffer.concat(parts);
}

function decodeValue(type: AttrType, b: Buffer): AttrValue | undefined {
  if (Array.isArray(type)) return decode(type as Table, b);
  const need = { u8: 1, u16: 2, u32: 4, u64: 8, be16: 2, be32: 4, flags: 8 } as Record<string, number>;
  const n = need[type as string];
  if (n !== undefined && b.length < n) return undefined;
  switch (type) {
    case 'u8':
      return b.readUInt8(0);
    case 'u16':
      return b.readUInt16LE(0);
    case 'u32':
      return b.readUInt32LE(0);
    case 'u64':
      return b.readBigUInt64LE(0);
    case 'be16':
      return b.readUInt16BE(0);
    case 'be32':
      return b.readUInt32BE(0);
    case 'string': {
      const end = b.indexOf(0);
      return b.toString('utf8', 0, end < 0 ? b.length : end);
    }
    case 'binary':
      return Buffer.from(b);
    case 'flags':
      return { flags: b.readUInt32LE(0), mask: b.readUInt32LE(4) };
  }
  return undefined;
}

/** Decode attributes by the table; unknown ids and malformed lengths are skipped, never thrown on. */
export function decode(table: Table, buf: Buffer): Attrs {
  const out: Attrs = {};
  let o = 0;
  while (o + 4 <= buf.length) {
    const len = buf.readUInt16LE(o);
    const id = buf.readUInt16LE(o + 2) & 0x3fff;
    if (len < 4 || o + len > buf.length) break;
    const spec = table.find((s) => s.id === id);
    if (spec) {
      const value = decodeValue(spec.type, buf.subarray(o + 4, o + len));
      if (value !== undefined) out[spec.name] = value;
    }
    o += align4(len);
  }
  return out;
}
