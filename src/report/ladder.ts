// The packet ladder of one client connection: who sent which packet to whom,
// in what order, from the captures of the client, the balancer and the real
// servers. Pure: captures in, plain data out (the HTML report draws it,
// `lab verify --json` carries it).
//
// A packet captured by its sender and by its receiver is one arrow. The
// frames are matched on what the hop between them leaves alone: addresses,
// ports, flags, sequence and acknowledgement numbers, length and the IPv4
// id (a router on the way changes only the TTL and the MACs). A packet the
// balancer rewrites (NAT) or forwards (DSR) is a new hop, from the balancer.
import { packetBytes } from '../capture/decode';
import { DecodedPacket, HostCapture } from '../capture/types';
import { LabAddresses, PacketRef } from '../verify/facts';

export interface LadderHost {
  name: string;
  /** The host's own address (the balancer's, not the VIP). */
  address: string;
}

export interface LadderArrow {
  /** Position in time order, from 0. */
  index: number;
  from: string;
  to: string;
  /** Nanoseconds after the ladder's first packet: when the sender sent it (its receiver's time when only the receiver captured it). */
  atNanos: number;
  /** Nanoseconds after the first packet when the receiver got it; absent when no capture of the receiver has it. */
  arrivedNanos?: number;
  /** SYN, SYN-ACK, ACK, FIN-ACK, RST, the first line of an HTTP message, TLS, data. */
  what: string;
  /** tcpdump's letters: S, S., ., P., F., R. */
  flags: string;
  /** "address:port" as on the wire between these two hosts. */
  src: string;
  dst: string;
  /** The outer header of an IP-in-IP packet ("172.16.75.83 > 172.16.75.82"). */
  tunnel?: string;
  seq: number;
  ack: number;
  length: number;
  ipId?: number;
  /** client: the connection as the client made it; server: the real-server side when the balancer rewrote it or made its own. */
  leg: 'client' | 'server';
  /** The frames drawn as this arrow: the sender's and the receiver's. */
  packets: PacketRef[];
}

/**
 * How the real-server side relates to the client's connection: same (the RS
 * gets the client's packets unchanged: DSR), rewritten (same sequence
 * numbers, other addresses or ports: kernel NAT), own (a TCP connection of
 * the balancer's own, with its own sequence numbers: an L7 proxy).
 */
export type ServerLegKind = 'same' | 'rewritten' | 'own';

export interface Ladder {
  /** One column each, left to right. */
  hosts: LadderHost[];
  /** The client's connection, "10.8.21.40:44270 > 172.16.75.84:80"; absent when the client captured none. */
  connection?: string;
  server?: { realServer: string; kind: ServerLegKind; tuple: string };
  /** Capture time of the first packet, nanoseconds since the epoch (decimal: a double cannot hold it). */
  startNanos: string;
  arrows: LadderArrow[];
  /** What the ladder shows, in sentences: where the RS connection starts, what the RS sees, where the replies go. */
  notes: string[];
}

export interface LadderInput {
  /** Captures in column order (client, lb, rs1, rs2). */
  captures: HostCapture[];
  addresses: LabAddresses;
}

type Tcp = DecodedPacket & {
  ip: NonNullable<DecodedPacket['ip']>;
  transport: Extract<NonNullable<DecodedPacket['transport']>, { kind: 'tcp' }>;
};

/** One frame of one capture, with its direction at that host. */
interface Observation {
  host: string;
  frame: number;
  p: Tcp;
  direction: 'sent' | 'received';
  key: string;
  tuple: string;
  payload: Buffer;
  ipId?: number;
}

const isTcp = (p: DecodedPacket): p is Tcp => p.ip !== undefined && p.transport?.kind === 'tcp';
const tupleOf = (p: Tcp) => `${p.ip.src}:${p.transport.srcPort} > ${p.ip.dst}:${p.transport.dstPort}`;
const reverse = (p: Tcp) => `${p.ip.dst}:${p.transport.dstPort} > ${p.ip.src}:${p.transport.srcPort}`;
const isSyn = (p: Tcp) => p.transport.flags.syn && !p.transport.flags.ack;

function flagLetters(p: Tcp): string {
  const f = p.transport.flags;
  return `${f.fin ? 'F' : ''}${f.syn ? 'S' : ''}${f.rst ? 'R' : ''}${f.psh ? 'P' : ''}${f.ack ? '.' : ''}` || 'none';
}

/**
 * The capture's own MAC: the one recorded at capture time; for a pcap read
 * back, the address in most frames (every frame on an interface was sent by
 * it or to it, but for the few a bridge floods), and on a tie (all frames
 * between two hosts) the one that sends from the host's own addresses.
 */
export function captureMac(c: HostCapture, own: ReadonlySet<string>): string {
  if (c.mac) return c.mac;
  const counts = new Map<string, number>();
  const add = (m: string | undefined, n: number) => {
    if (m !== undefined) counts.set(m, (counts.get(m) ?? 0) + n);
  };
  for (const p of c.packets) {
    for (const m of new Set([p.srcMac, p.dstMac])) add(m, 2);
    const src = (p.outer ?? p.ip)?.src;
    if (src !== undefined && own.has(src)) add(p.srcMac, 1);
  }
  return [...counts].sort((a, b) => b[1] - a[1])[0]?.[0] ?? '';
}

/** What the packet is, in the words of a flow graph. */
function describe(p: Tcp, payload: Buffer): string {
  const f = p.transport.flags;
  if (f.rst) return 'RST';
  if (f.syn) return f.ack ? 'SYN-ACK' : 'SYN';
  if (p.transport.payloadLength > 0) {
    const firstLine = payload.subarray(0, 120).toString('latin1').split('\r\n')[0] ?? '';
    if (/^(HTTP\/\d|[A-Z]+ \S+ HTTP\/\d)/.test(firstLine)) return firstLine.slice(0, 60);
    if (payload[0] !== undefined && payload[0] >= 0x14 && payload[0] <= 0x17) return `TLS ${p.transport.payloadLength} B`;
    return `data ${p.transport.payloadLength} B`;
  }
  return f.fin ? 'FIN-ACK' : 'ACK';
}

function observe(c: HostCapture, own: ReadonlySet<string>, mac: string): Observation[] {
  const out: Observation[] = [];
  c.packets.forEach((p, i) => {
    if (!isTcp(p)) return;
    let direction: Observation['direction'] | undefined;
    if (p.srcMac !== undefined && mac) direction = p.srcMac === mac ? 'sent' : p.dstMac === mac ? 'received' : undefined;
    else direction = own.has((p.outer ?? p.ip).src) ? 'sent' : 'received';
    if (!direction) return; // flooded by the bridge to a host it was not for
    const frame = c.frames[i];
    const bytes = frame ? packetBytes(frame, c.linkType) : { payload: Buffer.alloc(0) };
    const t = p.transport;
    const tunnel = p.outer ? `${p.outer.src}>${p.outer.dst}|` : '';
    const key = `${tunnel}${tupleOf(p)}|${flagLetters(p)}|${t.seq}|${t.ack}|${t.payloadLength}|${bytes.ipId ?? ''}`;
    const o: Observation = { host: c.host, frame: i + 1, p, direction, key, tuple: tupleOf(p), payload: bytes.payload };
    if (bytes.ipId !== undefined) o.ipId = bytes.ipId;
    out.push(o);
  });
  return out;
}

/** The client's first connection to the VIP, and the real-server side opened for it. */
function chooseConnection(all: Observation[], a: LabAddresses) {
  const rsAddresses = new Set(Object.values(a.realServers));
  const rsPort = a.rsPort ?? a.port;
  const clientSyns = all.filter(
    (o) => o.host === 'client' && o.direction === 'sent' && isSyn(o.p) && o.p.ip.dst === a.vip && o.p.transport.dstPort === a.port,
  );
  const syn = clientSyns[0];
  if (!syn) return undefined;
  const from = syn.p.tsNanos;
  const until = clientSyns.find((o) => o.p.transport.srcPort !== syn.p.transport.srcPort)?.p.tsNanos;
  const inWindow = (o: Observation) => o.p.tsNanos >= from && (until === undefined || o.p.tsNanos < until);
  const request = all.find((o) => o.host === 'client' && o.tuple === syn.tuple && o.p.transport.payloadLength > 0);
  const rsSyns = all.filter((o) => inWindow(o) && isSyn(o.p) && rsAddresses.has(o.p.ip.dst) && o.p.transport.dstPort === rsPort);
  const isn = syn.p.transport.seq;
  const rewritten = rsSyns.find((o) => o.p.transport.seq === isn);
  const own = rewritten ? undefined : rsSyns.find((o) => request !== undefined && o.p.tsNanos > request.p.tsNanos);
  const rsSyn = rewritten ?? own;
  const hostOf = (address: string) => Object.entries(a.realServers).find(([, x]) => x === address)?.[0];
  let server: Ladder['server'];
  if (rsSyn) server = { realServer: hostOf(rsSyn.p.ip.dst) ?? rsSyn.p.ip.dst, kind: rewritten ? 'rewritten' : 'own', tuple: rsSyn.tuple };
  else {
    // DSR: a real server receives the client's SYN as the client sent it.
    const same = all.find((o) => o.key === syn.key && o.direction === 'received' && a.realServers[o.host] !== undefined);
    if (same) server = { realServer: same.host, kind: 'same', tuple: syn.tuple };
  }
  return { syn, inWindow, server };
}

/** Pair each sent frame with the same packet received on another host; what stays single is drawn from one capture. */
function hops(obs: Observation[], macHost: Map<string, string>, hostOfAddress: (x: string) => string | undefined) {
  const received = obs.filter((o) => o.direction === 'received');
  const used = new Set<Observation>();
  const pairs: { sent?: Observation; received?: Observation; from: string; to: string }[] = [];
  for (const s of obs.filter((o) => o.direction === 'sent')) {
    const nextHop = s.p.dstMac !== undefined ? macHost.get(s.p.dstMac) : undefined;
    const r = received.find(
      (o) =>
        !used.has(o) &&
        o.key === s.key &&
        o.host !== s.host &&
        // Same segment: the receiver is the frame's destination; through the router: the frame came from no captured host.
        (s.p.dstMac === undefined || (nextHop !== undefined ? o.host === nextHop : o.p.srcMac === undefined || !macHost.has(o.p.srcMac))),
    );
    if (r) used.add(r);
    const to = r?.host ?? nextHop ?? hostOfAddress((s.p.outer ?? s.p.ip).dst) ?? '?';
    pairs.push(r ? { sent: s, received: r, from: s.host, to } : { sent: s, from: s.host, to });
  }
  for (const r of received.filter((o) => !used.has(o))) {
    const from = (r.p.srcMac !== undefined ? macHost.get(r.p.srcMac) : undefined) ?? hostOfAddress((r.p.outer ?? r.p.ip).src) ?? '?';
    pairs.push({ received: r, from, to: r.host });
  }
  return pairs;
}

export function buildLadder(input: LadderInput): Ladder {
  const a = input.addresses;
  // The balancer's column: lb, or lb2 when a lab of two balancers drew the connection lb2 carried.
  const balancer = input.captures.find((c) => c.host === 'lb' || c.host === 'lb2')?.host ?? 'lb';
  const hosts: LadderHost[] = input.captures.map((c) => ({
    name: c.host,
    address: c.host === 'client' ? a.client : c.host === balancer ? a.lb : (a.realServers[c.host] ?? ''),
  }));
  // The VIP is the balancer's, and a DSR real server's too (on its loopback).
  const ownAddresses = (host: string) =>
    new Set([...hosts.filter((h) => h.name === host).map((h) => h.address), ...(host === 'client' ? [] : [a.vip])]);
  const hostOfAddress = (x: string) => (x === a.vip ? balancer : hosts.find((h) => h.address === x)?.name);
  const macs = new Map(input.captures.map((c) => [c.host, captureMac(c, ownAddresses(c.host))]));
  const macHost = new Map([...macs].filter(([, m]) => m !== '').map(([h, m]) => [m, h]));
  const all = input.captures.flatMap((c) => observe(c, ownAddresses(c.host), macs.get(c.host) ?? ''));
  const chosen = chooseConnection(all, a);
  if (!chosen) return { hosts, startNanos: '0', arrows: [], notes: ['the client captured no connection to the VIP'] };
  const { syn, inWindow, server } = chosen;
  const clientLeg = new Set([syn.tuple, reverse(syn.p)]);
  const serverLeg = new Set<string>();
  if (server && server.kind !== 'same') {
    const rsSyn = all.find((o) => o.tuple === server.tuple && isSyn(o.p));
    if (rsSyn) [rsSyn.tuple, reverse(rsSyn.p)].forEach((t) => serverLeg.add(t));
  }
  const mine = all.filter((o) => inWindow(o) && (clientLeg.has(o.tuple) || serverLeg.has(o.tuple)));
  const start = syn.p.tsNanos;
  const rel = (o: Observation) => Number(o.p.tsNanos - start);
  const arrows = hops(mine, macHost, hostOfAddress)
    .map(({ sent, received, from, to }) => {
      const o = (sent ?? received) as Observation;
      const t = o.p.transport;
      const arrow: LadderArrow = {
        index: 0,
        from,
        to,
        atNanos: rel(o),
        what: describe(o.p, o.payload),
        flags: flagLetters(o.p),
        src: `${o.p.ip.src}:${t.srcPort}`,
        dst: `${o.p.ip.dst}:${t.dstPort}`,
        seq: t.seq,
        ack: t.ack,
        length: t.payloadLength,
        leg: clientLeg.has(o.tuple) ? 'client' : 'server',
        packets: [sent, received].filter((x): x is Observation => x !== undefined).map((x) => ({ host: x.host, frame: x.frame })),
      };
      if (sent && received) arrow.arrivedNanos = rel(received);
      if (o.p.outer) arrow.tunnel = `${o.p.outer.src} > ${o.p.outer.dst}`;
      if (o.ipId !== undefined) arrow.ipId = o.ipId;
      return arrow;
    })
    .sort((x, y) => x.atNanos - y.atNanos || (x.arrivedNanos ?? x.atNanos) - (y.arrivedNanos ?? y.atNanos))
    .map((arrow, index) => ({ ...arrow, index }));
  const ladder: Ladder = { hosts, connection: syn.tuple, startNanos: start.toString(), arrows, notes: [] };
  if (server) ladder.server = server;
  ladder.notes = notesOf(ladder, a);
  return ladder;
}

const row = (x: LadderArrow | undefined) => (x ? `#${x.index + 1}` : '?');

/** The differences between the modes, read off the ladder. */
function notesOf(l: Ladder, a: LabAddresses): string[] {
  const notes: string[] = [];
  const rs = l.server?.realServer;
  if (!l.server || !rs) return ['no packet of this connection reached a real server'];
  const request = l.arrows.find((x) => x.from === 'client' && x.length > 0);
  const rsSyn = l.arrows.find((x) => x.to === rs && x.what === 'SYN');
  if (l.server.kind === 'own')
    notes.push(
      `The balancer opens its own connection to ${rs} (${rsSyn?.src ?? '?'}, its own sequence numbers) only after the client's request reached it: request ${row(request)}, RS SYN ${row(rsSyn)}.`,
    );
  else if (l.server.kind === 'rewritten')
    notes.push(
      `The client's SYN is forwarded to ${rs} before any request byte (${row(rsSyn)}), rewritten to ${rsSyn?.src ?? '?'} > ${rsSyn?.dst ?? '?'} with the client's sequence number.`,
    );
  else notes.push(`The client's packets reach ${rs} unchanged (${rsSyn?.src ?? '?'} > ${rsSyn?.dst ?? '?'}, ${row(rsSyn)}).`);
  if (rsSyn) {
    const source = rsSyn.src.split(':')[0];
    const who = source === a.client ? "the client's own address" : source === a.lb ? "the balancer's address" : 'an address';
    notes.push(`${rs} sees the connection from ${who} ${source}.`);
  }
  const replies = l.arrows.filter((x) => x.from === rs);
  if (replies.length && replies.every((x) => x.to === 'client'))
    notes.push(`${rs}'s replies go straight to the client (${row(replies[0])}): the balancer sees none of them.`);
  else if (replies.length && replies.every((x) => x.to === 'lb'))
    notes.push(`${rs}'s replies come back through the balancer (${row(replies[0])}).`);
  return notes;
}
