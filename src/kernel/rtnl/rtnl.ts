// Links, addresses and neighbours through rtnetlink (the `netlink` package).
// The socket is opened in the calling process's network namespace; slbctl is
// run inside the balancer's namespace, so this sees that host's view.
import * as dgram from 'node:dgram';
import * as fs from 'node:fs';
import { KernelError } from '../../util/errors';
import { createRtNetlink, RtNetlinkSocket } from 'netlink';
import { native } from '../../util/netns';
import { messages } from '../netlink';
import { LocalRoute, RTM_DELROUTE, RTM_GETROUTE, RTM_NEWROUTE, RTMSG_DUMP_INET, decodeLocalRoute, encodeLocalRoute } from './routes';

export type { LocalRoute };

export interface InterfaceAddress {
  address: string;
  prefixLength: number;
  label?: string;
}

export interface NetInterface {
  index: number;
  name: string;
  mac?: string;
  up: boolean;
  addresses: InterfaceAddress[];
  /** Local /32 routes in table local on this interface that no address made (VIPs held as routes); absent: none. */
  localRoutes?: LocalRoute[];
}

const AF_INET = 2;
/** include/uapi/linux/rtnetlink.h: RTM_NEWNEIGH, RTM_DELNEIGH, RTM_GETNEIGH. */
const RTM_NEWNEIGH = 28;
const RTM_GETNEIGH = 30;

function ipv4FromBuffer(b: Buffer | undefined): string | undefined {
  return b && b.length === 4 ? Array.from(b).join('.') : undefined;
}

function ipv4ToBuffer(address: string): Buffer {
  return Buffer.from(address.split('.').map(Number));
}

function macFromBuffer(b: Buffer | undefined): string | undefined {
  if (!b || b.length !== 6) return undefined;
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join(':');
}

/** include/uapi/linux/rtnetlink.h and if_addr.h: the address messages and attributes interfaces() reads. */
const RTM_NEWADDR = 20;
const RTM_GETADDR = 22;
const NLM_F_DUMP = 0x300;
const IFA_ADDRESS = 1;
const IFA_LOCAL = 2;
const IFA_LABEL = 3;
/** struct ifaddrmsg { family AF_INET, prefixlen, flags, scope, index 0 }: every IPv4 address. */
const IFADDRMSG_INET = Buffer.from([AF_INET, 0, 0, 0, 0, 0, 0, 0]);

/** One RTM_NEWADDR payload (ifaddrmsg, then attributes): its interface and address (IFA_LOCAL, else IFA_ADDRESS). */
export function decodeAddress(data: Buffer): { index: number; entry: InterfaceAddress } | undefined {
  if (data.length < 8 || data[0] !== AF_INET) return undefined;
  const prefixLength = data[1] ?? 32;
  const index = data.readUInt32LE(4);
  let local: string | undefined;
  let peer: string | undefined;
  let label: string | undefined;
  for (let at = 8; at + 4 <= data.length;) {
    const len = data.readUInt16LE(at);
    const type = data.readUInt16LE(at + 2) & 0x3fff;
    if (len < 4 || at + len > data.length) break;
    if ((type === IFA_LOCAL || type === IFA_ADDRESS) && len === 8) {
      const text = `${data[at + 4]}.${data[at + 5]}.${data[at + 6]}.${data[at + 7]}`;
      if (type === IFA_LOCAL) local = text;
      else peer = text;
    } else if (type === IFA_LABEL && len > 4) {
      const end = data.indexOf(0, at + 4);
      label = data.toString('utf8', at + 4, end < 0 || end > at + len ? at + len : end);
    }
    at += (len + 3) & ~3;
  }
  const address = local ?? peer;
  if (!address) return undefined;
  const entry: InterfaceAddress = { address, prefixLength };
  if (label) entry.label = label;
  return { index, entry };
}

export interface NeighbourEntry {
  ifindex: number;
  /** The kernel's NUD state names that are set, e.g. ["reachable"]. */
  states: string[];
  mac?: string;
}

/** rtnetlink refused a request (exit 4). */
export class RtnlError extends KernelError {
  constructor(what: string, cause: unknown) {
    super(`rtnetlink: ${what}: ${cause instanceof Error ? cause.message.replace(/^Request rejected: /, '') : String(cause)}`);
  }
}

/** The messages of one type in a dump, decoded and grouped by the interface index each names (undecodable ones skipped). */
function byLinkIndex<T>(
  messages: readonly { type: number; data: Buffer }[],
  type: number,
  decode: (data: Buffer) => { index: number; item: T } | undefined,
): Map<number, T[]> {
  const out = new Map<number, T[]>();
  for (const m of messages) {
    if (m.type !== type) continue;
    const d = decode(m.data);
    if (!d) continue;
    let list = out.get(d.index);
    if (!list) out.set(d.index, (list = []));
    list.push(d.item);
  }
  return out;
}

const THREAD_NETNS = '/proc/thread-self/ns/net';

/** The namespace an Rtnl was opened in: its inode, and a descriptor to enter it by. */
interface Home {
  inode: number;
  fd: number;
}

function homeHere(): Home | undefined {
  try {
    const fd = fs.openSync(THREAD_NETNS, fs.constants.O_RDONLY);
    return { inode: fs.fstatSync(fd).ino, fd };
  } catch {
    return undefined;
  }
}

/**
 * The local routes of table local, asked of the kernel for that table alone
 * (the addon's strictly checked dump, native/src/addon.cc), as messages; undefined
 * where the addon or the kernel cannot, and the caller dumps every route.
 */
function strictLocalRoutes(home: Home | undefined): { type: number; data: Buffer }[] | undefined {
  if (!home) return undefined;
  let raw: Buffer | undefined;
  try {
    const n = native();
    // The addon's socket is opened in the calling thread's namespace: the Rtnl's own, entered if the caller is elsewhere.
    if (fs.statSync(THREAD_NETNS).ino === home.inode) raw = n.dumpLocalRoutes?.();
    else {
      const saved = n.enterNetns(`/proc/self/fd/${home.fd}`);
      try {
        raw = n.dumpLocalRoutes?.();
      } finally {
        n.leaveNetns(saved);
      }
    }
  } catch {
    return undefined;
  }
  return raw && messages(raw);
}

/**
 * Whether any link, IPv4 address or IPv4 route of the namespace changed since
 * the last dump of interfaces(): a socket of the kernel's change
 * notifications (the addon's, opened with the Rtnl so in its namespace),
 * asked synchronously. To be sure that every change made before the question
 * has been heard, the addon asks the kernel one small thing on the same
 * socket; the answer comes after every notification queued before it, and an
 * overflow counts as a change. 10,000 VIP addresses are then dumped and
 * parsed only when something changed (8 ms a plan, measured), not at every
 * plan of the controller.
 */
class InterfaceWatch {
  private constructor(private fd: number) {}

  static open(): InterfaceWatch | undefined {
    try {
      const fd = native().rtWatchOpen?.();
      return fd === undefined ? undefined : new InterfaceWatch(fd);
    } catch {
      return undefined;
    }
  }

  /** Before a dump: changes from now on count against it. */
  dumping(): void {
    if (this.fd >= 0) native().rtWatchChanged?.(this.fd, false);
  }

  /** Whether nothing changed since dumping(). */
  unchanged(): boolean {
    if (this.fd < 0) return false;
    return native().rtWatchChanged?.(this.fd, true) === false;
  }

  close(): void {
    if (this.fd >= 0) native().closeFd?.(this.fd);
    this.fd = -1;
  }
}

/** The interfaces as last dumped, frozen: callers share them until something changes. */
function frozen(interfaces: NetInterface[]): NetInterface[] {
  for (const i of interfaces) {
    for (const a of i.addresses) Object.freeze(a);
    Object.freeze(i.addresses);
    if (i.localRoutes) {
      for (const r of i.localRoutes) Object.freeze(r);
      Object.freeze(i.localRoutes);
    }
    Object.freeze(i);
  }
  return Object.freeze(interfaces) as NetInterface[];
}

export class Rtnl {
  /** One request at a time: the netlink socket cannot tell interleaved dump replies apart (the controller and its probes share it). */
  private queue: Promise<unknown> = Promise.resolve();

  /** Opened with the request socket, so in the same namespace whatever thread calls interfaces() later. */
  private watch: InterfaceWatch | undefined;
  private last: NetInterface[] | undefined;

  private readonly home = homeHere();

  private constructor(private readonly sock: RtNetlinkSocket) {
    // No notifications (an addon without them): every interfaces() dumps, as before.
    this.watch = InterfaceWatch.open();
  }

  private serial<T>(fn: (socket: RtNetlinkSocket) => Promise<T>): Promise<T> {
    const next = this.queue.then(() => fn(this.sock));
    this.queue = next.catch(() => undefined);
    return next;
  }

  /**
   * `send` for each item, up to `window` requests in flight at once (each
   * has its own sequence number and answer). Resolves with the items the
   * kernel took; `error` is the first refusal, after which nothing more is
   * sent.
   */
  private async windowed<T>(
    items: readonly T[],
    window: number,
    send: (socket: RtNetlinkSocket, item: T) => Promise<void>,
    what: (item: T) => string,
  ): Promise<{ added: T[]; error?: RtnlError }> {
    const added: T[] = [];
    let error: RtnlError | undefined;
    await this.serial(async (socket) => {
      for (let i = 0; i < items.length && !error; i += window) {
        const batch = items.slice(i, i + window);
        const results = await Promise.allSettled(batch.map((item) => send(socket, item)));
        results.forEach((r, j) => {
          const item = batch[j];
          if (r.status === 'fulfilled') added.push(item);
          else error ??= new RtnlError(what(item), r.reason);
        });
      }
    });
    return error ? { added, error } : { added };
  }

  static open(): Rtnl {
    return new Rtnl(createRtNetlink());
  }

  close(): void {
    this.sock.socket.close();
    this.watch?.close();
    this.watch = undefined;
    if (this.home) fs.closeSync(this.home.fd);
  }

  /**
   * Call `changed` whenever a link, an IPv4 address or a neighbour entry of
   * this namespace changes (rtnetlink's multicast groups),
   * and when the socket fails (events may have been lost). A separate socket:
   * the request socket's replies must not be mixed with notifications.
   */
  static watchInterfaces(changed: (what: 'interfaces' | 'neighbours') => void): { close(): void } {
    const sock = createRtNetlink();
    // The raw socket's events: the message type says what changed, no need to parse the rest.
    sock.socket.on('message', (messages) => {
      for (const m of messages) changed(m.type >= RTM_NEWNEIGH && m.type <= RTM_GETNEIGH ? 'neighbours' : 'interfaces');
    });
    for (const event of ['invalid', 'truncatedMessage', 'error'] as const)
      sock.socket.on(event, () => {
        changed('interfaces');
        changed('neighbours');
      });
    sock.addMembership('LINK');
    sock.addMembership('IPV4_IFADDR');
    sock.addMembership('NEIGH');
    // Notifications alone must not keep the process alive.
    sock.socket.unref();
    return { close: () => sock.socket.close() };
  }

  /**
   * Every link with its IPv4 addresses and slbctl's kind of local routes.
   * From the second call on, the last dump when the kernel reported no change
   * since (the same frozen array: callers must not change it).
   */
  async interfaces(): Promise<NetInterface[]> {
    if (this.last && this.watch?.unchanged()) return this.last;
    this.last = undefined;
    // Joined before the dump, so a change during it shows at the next call.
    this.watch?.dumping();
    this.last = frozen(await this.dump());
    return this.last;
  }

  private async dump(): Promise<NetInterface[]> {
    const [links, addresses, routes] = await this.serial(
      async (socket) =>
        [
          await socket.getLinks(),
          // Raw, decoded below: the package's generic decoder took 180 ms for a balancer's 10,000 VIPs.
          (await socket.socket.request(RTM_GETADDR, IFADDRMSG_INET, { flags: NLM_F_DUMP }))[0],
          // The VIPs held as local routes are part of what an interface holds (a plan and its memo read them here).
          strictLocalRoutes(this.home) ?? (await socket.socket.request(RTM_GETROUTE, RTMSG_DUMP_INET, { flags: NLM_F_DUMP }))[0],
        ] as const,
    );
    const routesByIndex = byLinkIndex(routes, RTM_NEWROUTE, (data) => {
      const r = decodeLocalRoute(data);
      return r && { index: r.index, item: r.route };
    });
    const byIndex = byLinkIndex(addresses, RTM_NEWADDR, (data) => {
      const a = decodeAddress(data);
      return a && { index: a.index, item: a.entry };
    });
    return links.map((link) => {
      const index = link.data.index ?? 0;
      const result: NetInterface = {
        index,
        name: link.attrs.ifname ?? `if${index}`,
        up: Boolean(link.data.flags?.up),
        addresses: byIndex.get(index) ?? [],
      };
      const mac = macFromBuffer(link.attrs.address);
      if (mac) result.mac = mac;
      const local = routesByIndex.get(index);
      if (local) result.localRoutes = local;
      return result;
    });
  }

  async addAddress(ifindex: number, address: string, prefixLength: number): Promise<void> {
    const raw = ipv4ToBuffer(address);
    try {
      await this.serial((socket) =>
        socket.newAddress(
          { family: AF_INET, prefixlen: prefixLength, index: ifindex, scope: 0 },
          { local: raw, address: raw },
          // NLM_F_CREATE | NLM_F_EXCL: fail rather than silently adopt an address slbctl did not add.
          { flags: 0x400 | 0x200 },
        ),
      );
    } catch (e) {
      throw new RtnlError(`add address ${address}/${prefixLength} to interface ${ifindex}`, e);
    }
  }

  /**
   * Add many addresses, up to `window` requests in flight at once (each has
   * its own sequence number and answer): 10,000 VIPs one round trip at a time
   * are seconds of waiting. Resolves with those added; `error` is the first
   * refusal, after which no more are sent.
   */
  async addAddresses<T extends { ifindex: number; address: string; prefixLength: number }>(
    items: readonly T[],
    window = 128,
  ): Promise<{ added: T[]; error?: RtnlError }> {
    return this.windowed(
      items,
      window,
      async (socket, item) => {
        const raw = ipv4ToBuffer(item.address);
        await socket.newAddress(
          { family: AF_INET, prefixlen: item.prefixLength, index: item.ifindex, scope: 0 },
          { local: raw, address: raw },
          // NLM_F_CREATE | NLM_F_EXCL, as addAddress.
          { flags: 0x400 | 0x200 },
        );
      },
      (item) => `add address ${item.address}/${item.prefixLength} to interface ${item.ifindex}`,
    );
  }

  async deleteAddress(ifindex: number, address: string, prefixLength: number): Promise<void> {
    const raw = ipv4ToBuffer(address);
    try {
      await this.serial((socket) =>
        socket.delAddress({ family: AF_INET, prefixlen: prefixLength, index: ifindex }, { local: raw, address: raw }),
      );
    } catch (e) {
      throw new RtnlError(`delete address ${address}/${prefixLength} from interface ${ifindex}`, e);
    }
  }

  /**
   * Add slbctl's local routes for many VIPs (`local VIP/32 dev IFACE table
   * local proto 245`), `window` requests in flight as addAddresses. NLM_F_CREATE
   * without NLM_F_EXCL: the route must sit beside the kernel's local route of
   * an address of the same value (a switch from vipAs address to route adds
   * the route before the address goes); the kernel still refuses a second
   * copy of slbctl's own route (EEXIST).
   */
  async addLocalRoutes<T extends { ifindex: number; address: string }>(
    items: readonly T[],
    window = 128,
  ): Promise<{ added: T[]; error?: RtnlError }> {
    return this.windowed(
      items,
      window,
      async (socket, item) => {
        await socket.socket.request(RTM_NEWROUTE, encodeLocalRoute(item.address, item.ifindex), { flags: 0x400 });
      },
      (item) => `add route local ${item.address}/32 dev ${item.ifindex} table local`,
    );
  }

  /** Delete slbctl's local route for `address` (its protocol in the request: never the kernel's route of an address, nor a foreign one). */
  async deleteLocalRoute(ifindex: number, address: string): Promise<void> {
    try {
      await this.serial((socket) => socket.socket.request(RTM_DELROUTE, encodeLocalRoute(address, ifindex)));
    } catch (e) {
      throw new RtnlError(`delete route local ${address}/32 dev ${ifindex} table local`, e);
    }
  }

  /** The IPv4 policy rules that send packets with this fwmark to a table (`ip rule ... fwmark M lookup T`), by priority. */
  async fwmarkRules(fwmark: number, table: number): Promise<number[]> {
    try {
      const rules = await this.serial((socket) => socket.getRules({ family: AF_INET }));
      return rules.filter((r) => r.attrs.fwmark === fwmark && (r.attrs.table ?? r.data.table) === table).map((r) => r.attrs.priority ?? 0);
    } catch (e) {
      throw new RtnlError('list policy rules', e);
    }
  }

  async addFwmarkRule(priority: number, fwmark: number, table: number): Promise<void> {
    try {
      await this.serial((socket) =>
        socket.newRule(
          { family: AF_INET, action: 'toTbl', table: table < 256 ? table : 0 },
          { priority, fwmark, fwmask: 0xffffffff, table },
          { flags: 0x400 | 0x200 },
        ),
      );
    } catch (e) {
      throw new RtnlError(`add rule priority ${priority} fwmark ${fwmark} lookup ${table}`, e);
    }
  }

  async deleteFwmarkRule(priority: number, fwmark: number, table: number): Promise<void> {
    try {
      await this.serial((socket) =>
        socket.delRule(
          { family: AF_INET, action: 'toTbl', table: table < 256 ? table : 0 },
          { priority, fwmark, fwmask: 0xffffffff, table },
        ),
      );
    } catch (e) {
      throw new RtnlError(`delete rule priority ${priority} fwmark ${fwmark} lookup ${table}`, e);
    }
  }

  /** Does `table` hold `local 0.0.0.0/0 dev lo` (every address counts as this host's: the TPROXY return path)? */
  async hasLocalDefaultRoute(table: number): Promise<boolean> {
    try {
      const routes = await this.serial((socket) => socket.getRoutes({ family: AF_INET }));
      // The type arrives as the enum's name or its number (RTN_LOCAL, 2).
      const isLocal = (type: unknown) => type === 'LOCAL' || type === 2;
      return routes.some((r) => (r.attrs.table ?? r.data.table) === table && r.data.dstLen === 0 && isLocal(r.data.type));
    } catch (e) {
      throw new RtnlError('list routes', e);
    }
  }

  private localDefaultRoute(table: number, loIndex: number) {
    return [
      { family: AF_INET, dstLen: 0, table: table < 256 ? table : 0, protocol: 'STATIC', scope: 'HOST', type: 'LOCAL' },
      { table, oif: loIndex },
    ] as const;
  }

  async addLocalDefaultRoute(table: number, loIndex: number): Promise<void> {
    const [data, attrs] = this.localDefaultRoute(table, loIndex);
    try {
      await this.serial((socket) => socket.newRoute({ ...data }, { ...attrs }, { flags: 0x400 | 0x200 }));
    } catch (e) {
      throw new RtnlError(`add route local 0.0.0.0/0 dev lo table ${table}`, e);
    }
  }

  async deleteLocalDefaultRoute(table: number, loIndex: number): Promise<void> {
    const [data, attrs] = this.localDefaultRoute(table, loIndex);
    try {
      await this.serial((socket) => socket.delRoute({ ...data }, { ...attrs }));
    } catch (e) {
      throw new RtnlError(`delete route local 0.0.0.0/0 dev lo table ${table}`, e);
    }
  }

  /** The link-layer address the kernel has for `address`, if resolved. */
  async neighbour(address: string): Promise<{ mac: string; ifindex: number } | undefined> {
    const entries = await this.serial((socket) => socket.getNeighbors({ family: AF_INET }));
    for (const n of entries) {
      if (ipv4FromBuffer(n.attrs.dst) !== address) continue;
      const state = n.data.state ?? {};
      if (state.failed || state.incomplete) continue;
      const mac = macFromBuffer(n.attrs.lladdr);
      if (mac) return { mac, ifindex: n.data.ifindex ?? 0 };
    }
    return undefined;
  }

  /** Every entry the kernel has for `address`, on any interface, with its state names (reachable, stale, incomplete …). */
  async neighbourEntries(address: string): Promise<NeighbourEntry[]> {
    const entries = await this.serial((socket) => socket.getNeighbors({ family: AF_INET }));
    return entries.flatMap((n) => {
      if (ipv4FromBuffer(n.attrs.dst) !== address) return [];
      const states = Object.entries(n.data.state ?? {})
        .filter(([k, v]) => v === true && k !== '__unknown')
        .map(([k]) => k);
      const entry: NeighbourEntry = { ifindex: n.data.ifindex ?? 0, states };
      const mac = macFromBuffer(n.attrs.lladdr);
      if (mac) entry.mac = mac;
      return [entry];
    });
  }

  /**
   * Make the kernel ARP for `address` out of interface `ifindex` now, as it
   * would before sending there (RTM_NEWNEIGH with NTF_USE): no route or
   * datagram needed, and the reply lands in the neighbour table.
   */
  async solicitNeighbour(ifindex: number, address: string): Promise<void> {
    try {
      // NLM_F_CREATE: the entry may not exist yet.
      await this.serial((socket) =>
        socket.newNeighbor({ family: AF_INET, ifindex, flags: { use: true } }, { dst: ipv4ToBuffer(address) }, { flags: 0x400 }),
      );
    } catch (e) {
      throw new RtnlError(`ARP request for ${address} on interface ${ifindex}`, e);
    }
  }

  async deleteNeighbour(ifindex: number, address: string): Promise<void> {
    try {
      await this.serial((socket) => socket.delNeighbor({ family: AF_INET, ifindex }, { dst: ipv4ToBuffer(address) }));
    } catch (e) {
      throw new RtnlError(`delete neighbour ${address} on interface ${ifindex}`, e);
    }
  }

  /**
   * Resolve a neighbour's MAC: look it up, and if the kernel has none yet,
   * make the kernel ARP for it by sending one datagram to the discard port
   * (the RS may drop it; the ARP exchange is what we need).
   */
  async resolveNeighbour(address: string, timeoutMs = 2000): Promise<{ mac: string; ifindex: number } | undefined> {
    const deadline = Date.now() + timeoutMs;
    let poked = false;
    for (;;) {
      const found = await this.neighbour(address);
      if (found) return found;
      if (Date.now() > deadline) return undefined;
      if (!poked) {
        poked = true;
        await new Promise<void>((resolve) => {
          const s = dgram.createSocket('udp4');
          s.on('error', () => {
            s.close();
            resolve();
          });
          s.send(Buffer.alloc(0), 9, address, () => {
            s.close();
            resolve();
          });
        });
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}
