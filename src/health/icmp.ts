// ICMP echo check over a raw socket (the `raw-socket` package). One raw
// socket per network namespace is shared by every IcmpChecker in the process
// (the controller may run hundreds): each checker has its own echo
// identifier and an increasing sequence, and replies are matched to the
// probe waiting for them by identifier, sequence and source address.
import { inNetns } from '../util/netns';
import { CheckResult, Checker } from './types';
import { settleOnce } from './settle';

/** The part of `raw-socket` (no types of its own) used here. */
export interface RawSocket {
  on(event: 'message', listener: (buffer: Buffer, source: string) => void): this;
  on(event: 'error', listener: (error: Error) => void): this;
  on(event: 'close', listener: () => void): this;
  close(): this;
  send(buffer: Buffer, offset: number, length: number, address: string, done: (error: Error | null, bytes: number) => void): this;
}
interface RawSocketModule {
  createSocket(options: { protocol: number; bufferSize?: number }): RawSocket;
}

const ICMP_PROTOCOL = 1;
const ECHO_REPLY = 0;
const DEST_UNREACHABLE = 3;
const ECHO_REQUEST = 8;
const TIME_EXCEEDED = 11;
const PAYLOAD = Buffer.from('slbctl health check icmp echo....', 'ascii');

/** Internet checksum (RFC 1071) over `buf`, starting from a partial sum. */
export function inetChecksum(buf: Buffer, initial = 0): number {
  let sum = initial;
  for (let i = 0; i + 1 < buf.length; i += 2) sum += buf.readUInt16BE(i);
  if (buf.length % 2 === 1) sum += buf[buf.length - 1] << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

/** An ICMP echo request (no IP header): type 8, code 0, checksum, id, seq, payload. */
export function echoRequest(id: number, seq: number, payload: Buffer = PAYLOAD): Buffer {
  const b = Buffer.alloc(8 + payload.length);
  b.writeUInt8(ECHO_REQUEST, 0);
  b.writeUInt16BE(id, 4);
  b.writeUInt16BE(seq, 6);
  payload.copy(b, 8);
  b.writeUInt16BE(inetChecksum(b), 2);
  return b;
}

let nextIdentifier = Math.floor(Math.random() * 0x10000);
/** A fresh 16-bit echo identifier for one checker (wraps after 65536 checkers). */
export function allocateEchoIdentifier(): number {
  nextIdentifier = (nextIdentifier + 1) & 0xffff;
  return nextIdentifier;
}

const UNREACHABLE_CODES: Record<number, string> = {
  0: 'network unreachable',
  1: 'host unreachable',
  3: 'port unreachable',
  9: 'network prohibited',
  10: 'host prohibited',
  13: 'administratively prohibited',
};

/** What an ICMP message read from a raw IPv4 socket says about an echo of ours. */
export type EchoEvent =
  | { kind: 'reply'; id: number; seq: number; from: string }
  | { kind: 'error'; id: number; seq: number; to: string; from: string; detail: string };

const ipv4 = (b: Buffer, at: number) => `${b[at]}.${b[at + 1]}.${b[at + 2]}.${b[at + 3]}`;

/** Parse an IPv4 packet holding ICMP: an echo reply, or an error quoting one of our echo requests. */
export function parseIcmp(packet: Buffer): EchoEvent | undefined {
  if (packet.length < 20 || packet[0] >> 4 !== 4 || packet[9] !== ICMP_PROTOCOL) return undefined;
  const ihl = (packet[0] & 0x0f) * 4;
  if (packet.length < ihl + 8) return undefined;
  const type = packet[ihl];
  const from = ipv4(packet, 12);
  if (type === ECHO_REPLY) return { kind: 'reply', id: packet.readUInt16BE(ihl + 4), seq: packet.readUInt16BE(ihl + 6), from };
  if (type !== DEST_UNREACHABLE && type !== TIME_EXCEEDED) return undefined;
  // The error quotes our request's IP header and at least its first 8 bytes.
  const inner = ihl + 8;
  if (packet.length < inner + 20 || packet[inner] >> 4 !== 4 || packet[inner + 9] !== ICMP_PROTOCOL) return undefined;
  const innerIcmp = inner + (packet[inner] & 0x0f) * 4;
  if (packet.length < innerIcmp + 8 || packet[innerIcmp] !== ECHO_REQUEST) return undefined;
  const code = packet[ihl + 1];
  const detail = type === TIME_EXCEEDED ? 'TTL exceeded in transit' : (UNREACHABLE_CODES[code] ?? `destination unreachable (code ${code})`);
  return {
    kind: 'error',
    id: packet.readUInt16BE(innerIcmp + 4),
    seq: packet.readUInt16BE(innerIcmp + 6),
    to: ipv4(packet, inner + 16),
    from,
    detail,
  };
}

interface Waiter {
  address: string;
  settle(ok: boolean, detail: string): void;
}

/**
 * Every raw socket ever opened stays referenced, so none is garbage
 * collected while libuv may still poll it (native addons' destructors are not
 * trusted here, see src/capture/capture.ts). There is one per namespace.
 */
const keepAlive: RawSocket[] = [];

/** The shared raw ICMP socket of one network namespace and the probes waiting on it. */
class EchoSocket {
  private readonly waiting = new Map<string, Waiter>();
  private constructor(readonly socket: RawSocket) {
    socket.on('message', (buffer) => this.receive(buffer));
    // raw-socket closes the socket after an error: forget it, the next check opens a new one.
    socket.on('error', (e) => this.fail(`raw socket error: ${e.message}`));
    socket.on('close', () => this.fail('raw socket closed'));
  }

  private static readonly open = new Map<string, EchoSocket>();

  static get(netns: string | undefined): EchoSocket {
    const key = netns ?? '';
    let s = EchoSocket.open.get(key);
    if (!s) {
      // raw-socket creates the socket synchronously in its constructor, so it
      // is made inside `netns` and stays there.
      // eslint-disable-next-line @typescript-eslint/no-require-imports -- loaded on first use, not at start-up (see above)
      const raw = require('raw-socket') as RawSocketModule;
      const socket = inNetns(netns, () => raw.createSocket({ protocol: ICMP_PROTOCOL, bufferSize: 65535 }));
      keepAlive.push(socket);
      s = new EchoSocket(socket);
      EchoSocket.open.set(key, s);
    }
    return s;
  }

  /** Close every shared socket (a raw socket keeps the event loop alive); the next check opens a new one. */
  static closeAll(): void {
    for (const s of [...EchoSocket.open.values()]) s.socket.close();
  }

  private fail(detail: string): void {
    for (const [k, s] of EchoSocket.open) if (s === this) EchoSocket.open.delete(k);
    const all = [...this.waiting.values()];
    this.waiting.clear();
    for (const w of all) w.settle(false, detail);
  }

  private receive(packet: Buffer): void {
    const ev = parseIcmp(packet);
    if (!ev) return;
    const key = `${ev.id}:${ev.seq}`;
    const w = this.waiting.get(key);
    if (!w) return;
    if (ev.kind === 'reply' && ev.from === w.address) w.settle(true, 'echo reply');
    else if (ev.kind === 'error' && ev.to === w.address)
      w.settle(false, ev.from === w.address ? ev.detail : `${ev.detail} (from ${ev.from})`);
  }

  /** Send one echo request; `waiter` is settled by a reply, an ICMP error or a send error. Returns a cancel function. */
  echo(id: number, seq: number, waiter: Waiter): () => void {
    const key = `${id}:${seq}`;
    this.waiting.set(key, waiter);
    const packet = echoRequest(id, seq);
    this.socket.send(packet, 0, packet.length, waiter.address, (error) => {
      if (error) waiter.settle(false, sendError(error));
    });
    return () => {
      if (this.waiting.get(key) === waiter) this.waiting.delete(key);
    };
  }
}

/**
 * Close the shared ICMP sockets, failing any probe still waiting. The open
 * raw socket keeps Node's event loop alive, so a process that is done with
 * health checks (a test, the controller shutting down) calls this to exit.
 */
export function closeIcmpSockets(): void {
  EchoSocket.closeAll();
}

function sendError(e: Error): string {
  const m = e.message;
  if (/host.*unreachable/i.test(m)) return 'host unreachable';
  if (/network.*unreachable/i.test(m)) return 'network unreachable';
  return `send failed: ${m}`;
}

export interface IcmpOptions {
  /** Network namespace (under /run/netns) to send from; absent for the process's own. */
  netns?: string;
}

export class IcmpChecker implements Checker {
  readonly kind = 'icmp';
  readonly target: string;
  /** This checker's echo identifier, unique in the process. */
  readonly identifier = allocateEchoIdentifier();
  private seq = 0;

  constructor(
    private readonly address: string,
    private readonly options: IcmpOptions = {},
  ) {
    if (!/^\d{1,3}(\.\d{1,3}){3}$/.test(address) || address.split('.').some((o) => Number(o) > 255)) {
      throw new Error(`icmp health check: ${JSON.stringify(address)} is not an IPv4 address`);
    }
    this.target = `icmp ${address}`;
  }

  check(timeoutMs: number): Promise<CheckResult> {
    this.seq = (this.seq + 1) & 0xffff;
    const seq = this.seq;
    return settleOnce(
      timeoutMs,
      `no echo reply within ${timeoutMs} ms`,
      (done) =>
        EchoSocket.get(this.options.netns).echo(this.identifier, seq, {
          address: this.address,
          settle: (ok, detail) => done(ok, ok ? (ms) => `echo reply in ${ms} ms` : detail),
        }),
      'cannot send ICMP echo',
    );
  }
}
