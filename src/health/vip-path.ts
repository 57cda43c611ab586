// DSR data-path check: probe the VIP *through one real server*, the way a
// client's packets reach it in direct routing.
//
// On the balancer the VIP is a local address, so an ordinary connect() to the
// VIP never leaves the box: the local routing table is consulted before any
// fwmark policy rule (see test/integration/health-probes.test.ts). Instead the
// probe is built by hand and injected on the balancer's interface as an
// Ethernet frame: source MAC = the interface's, destination MAC = that RS's,
// IPv4 source = the balancer's own address on the segment, destination = the
// VIP, and a TCP SYN to the service port (or an ICMP echo). Only that RS gets
// it, and only an RS that holds the VIP (on its loopback) answers: the
// answer (SYN-ACK, RST or echo reply from the VIP) comes back from the RS's
// MAC and is read with libpcap. The balancer's kernel drops that answer (its
// source is one of its own addresses: a martian), so after a SYN-ACK the
// probe sends a RST itself and leaves no half-open connection on the RS.
//
// One capture handle per (namespace, interface) is shared by every probe in
// the process and demultiplexed by our source port (TCP) or echo identifier
// and sequence (ICMP), then checked against the VIP, port and RS MAC.
//
// The handle is the addon's own libpcap capture (native/src/capture.cc), read
// on a 1 ms timer only while a probe waits. It was the `cap` package's, which
// watches the socket with a libuv poll and asserts that the poll never fails:
// when the interface went down, the kernel flagged an error on the packet
// socket and `slbctl run` died of SIGABRT (`Pcap::cb_packets: Assertion
// 'status == 0' failed`), a link flap away from losing every check. Now a
// read error closes the tap, fails the probes that wait on it, and the next
// probe opens a new one (which fails with one sentence while the link is down).
import { NativeCapture, inNetns, interfaceMac, native } from '../util/netns';
import { allocateEchoIdentifier, echoRequest, inetChecksum } from './icmp';
import { CheckResult, Checker } from './types';
import { Done, settleOnce } from './settle';

export interface VipPathTarget {
  /** The balancer's interface on the real servers' segment. */
  interface: string;
  /** The balancer's own IPv4 address on that segment (the probe's source). */
  source: string;
  vip: string;
  /** tcp: the service port. */
  port?: number;
  /** The RS's own address (names the target; the frame goes to its MAC). */
  rsAddress: string;
  /** The RS's MAC, e.g. from the neighbour table (Rtnl.resolveNeighbour). */
  rsMac: string;
  /** The RS's name, for the target text. */
  rsName?: string;
  /** 'tcp' (default): SYN to vip:port; 'icmp': echo request to the VIP. */
  protocol?: 'tcp' | 'icmp';
  /** Network namespace (under /run/netns) of the interface; absent for the process's own. */
  netns?: string;
}

const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;

const ipBytes = (a: string) => Buffer.from(a.split('.').map(Number));
const macBytes = (m: string) => Buffer.from(m.split(':').map((h) => parseInt(h, 16)));
const ipText = (b: Buffer, at: number) => `${b[at]}.${b[at + 1]}.${b[at + 2]}.${b[at + 3]}`;
const macText = (b: Buffer, at: number) => [...b.subarray(at, at + 6)].map((x) => x.toString(16).padStart(2, '0')).join(':');

const TCP_SYN = 0x02;
const TCP_RST = 0x04;
const TCP_ACK = 0x10;

/** Ethernet + IPv4 header around `payload` (checksums filled in). */
function ethIpv4(srcMac: string, dstMac: string, src: string, dst: string, protocol: number, payload: Buffer): Buffer {
  const f = Buffer.alloc(14 + 20 + payload.length);
  macBytes(dstMac).copy(f, 0);
  macBytes(srcMac).copy(f, 6);
  f.writeUInt16BE(0x0800, 12);
  f[14] = 0x45;
  f.writeUInt16BE(20 + payload.length, 16);
  f.writeUInt16BE(Math.floor(Math.random() * 0x10000), 18);
  f.writeUInt16BE(0x4000, 20); // don't fragment
  f[22] = 64;
  f[23] = protocol;
  ipBytes(src).copy(f, 26);
  ipBytes(dst).copy(f, 30);
  f.writeUInt16BE(inetChecksum(f.subarray(14, 34)), 24);
  payload.copy(f, 34);
  return f;
}

/** A TCP segment with `flags`; a SYN carries an MSS option. Checksum over the pseudo-header. */
export function tcpSegment(src: string, dst: string, sport: number, dport: number, seq: number, flags: number): Buffer {
  const syn = (flags & TCP_SYN) !== 0;
  const t = Buffer.alloc(syn ? 24 : 20);
  t.writeUInt16BE(sport, 0);
  t.writeUInt16BE(dport, 2);
  t.writeUInt32BE(seq >>> 0, 4);
  t[12] = (t.length / 4) << 4;
  t[13] = flags;
  t.writeUInt16BE(syn ? 64240 : 0, 14);
  if (syn) t.writeUInt32BE(0x020405b4, 20); // MSS 1460
  const pseudo = Buffer.concat([ipBytes(src), ipBytes(dst), Buffer.from([0, 6, t.length >> 8, t.length & 0xff])]);
  t.writeUInt16BE(inetChecksum(Buffer.concat([pseudo, t])), 16);
  return t;
}

/** What the capture saw, decoded as far as the probes need. */
interface Answer {
  srcMac: string;
  src: string;
  dst: string;
  tcp?: { sport: number; dport: number; seq: number; ack: number; flags: number };
  echoReply?: { id: number; seq: number };
}

function decode(f: Buffer): Answer | undefined {
  if (f.length < 34 || f.readUInt16BE(12) !== 0x0800 || f[14] >> 4 !== 4) return undefined;
  const l4 = 14 + (f[14] & 0x0f) * 4;
  const a: Answer = { srcMac: macText(f, 6), src: ipText(f, 26), dst: ipText(f, 30) };
  if (f[23] === 6 && f.length >= l4 + 14) {
    a.tcp = {
      sport: f.readUInt16BE(l4),
      dport: f.readUInt16BE(l4 + 2),
      seq: f.readUInt32BE(l4 + 4),
      ack: f.readUInt32BE(l4 + 8),
      flags: f[l4 + 13],
    };
  } else if (f[23] === 1 && f.length >= l4 + 8 && f[l4] === 0) {
    a.echoReply = { id: f.readUInt16BE(l4 + 4), seq: f.readUInt16BE(l4 + 6) };
  } else return undefined;
  return a;
}

/** Returns true when the answer was for this probe (it is then forgotten). */
type Matcher = (a: Answer) => boolean;

/**
 * Only answers can match: SYN-ACKs, RSTs and echo replies sent to the
 * interface's MAC. Not libpcap's `inbound`: with it the first matching frame
 * after open() was never delivered (libpcap 1.10.3, Debian 12), so the first
 * probe of every process failed.
 */
const filterFor = (mac: string) =>
  `ether dst ${mac} and ip and ((tcp and tcp[tcpflags] & (tcp-syn|tcp-rst) != 0) or (icmp and icmp[icmptype] == icmp-echoreply))`;

/**
 * The kernel ring for the shared capture. Immediate mode makes libpcap use
 * TPACKET_V2: fixed frames sized for the 65535-byte snap length, about 68 KiB
 * each. A 1 MiB ring held 16 answers and dropped the rest of a burst of 50
 * simultaneous probes; 32 MiB holds about 480.
 */
const RING_BYTES = 32 * 1024 * 1024;

/** How often the tap is read while a probe waits (an answer waits at most this long in the ring). */
const READ_EVERY_MS = 1;

/** What a probe waits for: `match` true ends the wait; `fail` is called when the tap breaks first. */
interface Waiter {
  match: Matcher;
  fail: (why: string) => void;
}

class InterfaceTap {
  private static readonly taps = new Map<string, InterfaceTap>();
  private static readonly failed = new Map<string, { error: string; until: number }>();
  private readonly waiting = new Map<string, Waiter>();
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  private constructor(
    private readonly key: string,
    private readonly capture: NativeCapture,
    readonly mac: string,
    private readonly where: string,
  ) {}

  /** Read every frame waiting in the ring and hand each answer to the probe it is for. */
  drain(): void {
    if (this.closed) return;
    let frames;
    try {
      frames = this.capture.read();
    } catch (e) {
      this.break(`the capture on ${this.where} failed (${(e as Error).message}); the next check opens it again`);
      return;
    }
    for (const f of frames) {
      const a = decode(f.data);
      if (!a) continue;
      const key = a.tcp ? `tcp:${a.tcp.dport}` : a.echoReply ? `icmp:${a.echoReply.id}:${a.echoReply.seq}` : '';
      const w = this.waiting.get(key);
      if (w?.match(a)) this.waiting.delete(key);
    }
    if (this.waiting.size === 0) this.stopReading();
  }

  private startReading(): void {
    if (this.timer || this.closed) return;
    this.timer = setInterval(() => this.drain(), READ_EVERY_MS);
    // A probe's own timeout keeps the process up while it waits; the tap alone must not.
    this.timer.unref();
  }

  private stopReading(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Close, forget this tap (the next probe opens a new one) and fail every probe waiting on it. */
  private break(why: string): void {
    this.close();
    if (InterfaceTap.taps.get(this.key) === this) InterfaceTap.taps.delete(this.key);
    const waiters = [...this.waiting.values()];
    this.waiting.clear();
    for (const w of waiters) w.fail(why);
  }

  private close(): void {
    this.closed = true;
    this.stopReading();
    this.capture.close();
  }

  /** The shared tap on `netns`/`ifname`, opened on first use. Throws why it cannot be opened. */
  static get(netns: string | undefined, ifname: string): InterfaceTap {
    const key = `${netns ?? ''}/${ifname}`;
    const tap = InterfaceTap.taps.get(key);
    if (tap) return tap;
    // A failed open is not retried for a while (a link that is down fails every check the same way).
    const failed = InterfaceTap.failed.get(key);
    if (failed && failed.until > Date.now()) throw new Error(failed.error);
    const where = `${ifname}${netns ? ` (netns ${netns})` : ''}`;
    try {
      const t = inNetns(netns, () => {
        const mac = interfaceMac(undefined, ifname);
        const capture = new (native().Capture)(ifname, filterFor(mac), RING_BYTES);
        if (capture.linkType !== 1) {
          capture.close();
          throw new Error(`link type ${capture.linkType}, not Ethernet`);
        }
        return new InterfaceTap(key, capture, mac, where);
      });
      InterfaceTap.taps.set(key, t);
      return t;
    } catch (e) {
      const error = `cannot capture on ${where}: ${(e as Error).message}`;
      InterfaceTap.failed.set(key, { error, until: Date.now() + 1000 });
      throw new Error(error);
    }
  }

  /** The tap open on `netns`/`ifname`, if any. */
  static peek(netns: string | undefined, ifname: string): InterfaceTap | undefined {
    return InterfaceTap.taps.get(`${netns ?? ''}/${ifname}`);
  }

  static closeAll(): void {
    for (const t of InterfaceTap.taps.values()) {
      t.close();
      t.waiting.clear();
    }
    InterfaceTap.taps.clear();
  }

  /** A TCP source port no probe on this tap is waiting on (61000-65535: above Linux's default ephemeral range). */
  freePort(): number {
    for (;;) {
      const p = 61000 + Math.floor(Math.random() * 4536);
      if (!this.waiting.has(`tcp:${p}`)) return p;
    }
  }

  /** Inject `frame` and wait for an answer `key` that `match` accepts (`fail`: the tap broke first); returns a cancel function. */
  send(frame: Buffer, key: string, match: Matcher, fail: (why: string) => void): () => void {
    if (this.closed) throw new Error('capture closed');
    const w: Waiter = { match, fail };
    this.waiting.set(key, w);
    try {
      this.capture.inject(frame);
    } catch (e) {
      this.waiting.delete(key);
      // The link is down, or the interface gone: this tap is of no more use.
      this.break(`cannot send on ${this.where}: ${(e as Error).message}`);
      throw e;
    }
    this.startReading();
    return () => {
      if (this.waiting.get(key) === w) this.waiting.delete(key);
      if (this.waiting.size === 0) this.stopReading();
    };
  }

  inject(frame: Buffer): void {
    if (this.closed) return;
    try {
      this.capture.inject(frame);
    } catch {
      // The RST after a SYN-ACK: the RS drops its half-open connection by itself in time.
    }
  }
}

/** Close the shared capture handles (their read timers are unref'd and stopped); the next check opens a new one. */
export function closeVipPathCaptures(): void {
  InterfaceTap.closeAll();
}

export class VipPathChecker implements Checker {
  readonly kind: 'tcp-vip' | 'icmp-vip';
  readonly target: string;
  private readonly via: string;
  private readonly identifier = allocateEchoIdentifier();
  private seq = 0;

  constructor(private readonly t: VipPathTarget) {
    const protocol = t.protocol ?? 'tcp';
    for (const [what, v] of [
      ['source', t.source],
      ['vip', t.vip],
      ['rsAddress', t.rsAddress],
    ] as const) {
      if (!IPV4.test(v)) throw new Error(`vip-path health check: ${what} ${JSON.stringify(v)} is not an IPv4 address`);
    }
    if (!MAC.test(t.rsMac)) throw new Error(`vip-path health check: rsMac ${JSON.stringify(t.rsMac)} is not a MAC like aa:bb:cc:dd:ee:ff`);
    if (protocol === 'tcp' && (t.port === undefined || !Number.isInteger(t.port) || t.port < 1 || t.port > 65535)) {
      throw new Error(`vip-path health check: port ${JSON.stringify(t.port)} is not a port number (1-65535)`);
    }
    if (!t.interface) throw new Error('vip-path health check: no interface');
    this.kind = protocol === 'tcp' ? 'tcp-vip' : 'icmp-vip';
    this.via = `via ${t.rsName ? `${t.rsName} ` : ''}${t.rsAddress} (${t.rsMac})`;
    this.target = protocol === 'tcp' ? `tcp ${t.vip}:${t.port} ${this.via}` : `icmp ${t.vip} ${this.via}`;
  }

  check(timeoutMs: number): Promise<CheckResult> {
    return settleOnce(
      timeoutMs,
      `no answer from the VIP ${this.via} within ${timeoutMs} ms`,
      (done) => {
        const tap = InterfaceTap.get(this.t.netns, this.t.interface);
        return this.kind === 'tcp-vip' ? this.sendSyn(tap, done) : this.sendEcho(tap, done);
      },
      'cannot probe',
      () => InterfaceTap.peek(this.t.netns, this.t.interface)?.drain(),
    );
  }

  /** An answer must come from the VIP to our source, and from the RS's MAC. */
  private fromRs(a: Answer): boolean {
    return a.src === this.t.vip && a.dst === this.t.source && a.srcMac === this.t.rsMac;
  }

  private sendSyn(tap: InterfaceTap, done: Done): () => void {
    const { source, vip } = this.t;
    const port = this.t.port as number;
    const sport = tap.freePort();
    const isn = Math.floor(Math.random() * 0x100000000);
    const syn = ethIpv4(tap.mac, this.t.rsMac, source, vip, 6, tcpSegment(source, vip, sport, port, isn, TCP_SYN));
    return tap.send(
      syn,
      `tcp:${sport}`,
      (a) => {
        const tcp = a.tcp;
        if (!tcp || !this.fromRs(a) || tcp.sport !== port || tcp.ack !== (isn + 1) >>> 0) return false;
        if ((tcp.flags & TCP_RST) !== 0) {
          done(false, `port closed: RST from the VIP ${this.via}`);
          return true;
        }
        if ((tcp.flags & (TCP_SYN | TCP_ACK)) !== (TCP_SYN | TCP_ACK)) return false;
        // Our kernel drops the SYN-ACK (its source is a local address), so reset the RS's half-open connection ourselves.
        tap.inject(ethIpv4(tap.mac, this.t.rsMac, source, vip, 6, tcpSegment(source, vip, sport, port, isn + 1, TCP_RST)));
        done(true, (ms) => `SYN-ACK from the VIP ${this.via} in ${ms} ms`);
        return true;
      },
      (why) => done(false, why),
    );
  }

  private sendEcho(tap: InterfaceTap, done: Done): () => void {
    this.seq = (this.seq + 1) & 0xffff;
    const seq = this.seq;
    const frame = ethIpv4(tap.mac, this.t.rsMac, this.t.source, this.t.vip, 1, echoRequest(this.identifier, seq));
    return tap.send(
      frame,
      `icmp:${this.identifier}:${seq}`,
      (a) => {
        if (!this.fromRs(a)) return false;
        done(true, (ms) => `echo reply from the VIP ${this.via} in ${ms} ms`);
        return true;
      },
      (why) => done(false, why),
    );
  }
}
