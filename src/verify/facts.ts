// Judge the packet facts of a forwarding mode (shared/reference/slb-modes.md)
// from the captures of the client, the balancer and the real servers. Pure.
import { DecodedPacket, HostCapture } from '../capture/types';
import { Encapsulation, Mode } from '../model/types';

export interface LabAddresses {
  client: string;
  lb: string;
  vip: string;
  /** The service port the client connects to. */
  port: number;
  /** The port the real servers listen on (an https service on 443 talks HTTP to them on 80); `port` when absent. */
  rsPort?: number;
  /** Real server host name -> address. */
  realServers: Record<string, string>;
}

export interface RequestOutcome {
  ok: boolean;
  /** Which real server answered, from the response body. */
  realServer?: string;
  /** The client address the real server reported seeing. */
  clientSeen?: string;
  error?: string;
  /** A GET of the static object (the cache check), not of the page that names its client. */
  static?: boolean;
}

/** What the verify expects beyond the mode: the service type, and whether the L7 reverse proxy caches. */
export interface ServiceTypeExpectation {
  /** tcp: L4 (the kernel forwards); http, https: L7 (the balancer proxies). */
  protocol: 'tcp' | 'http' | 'https';
  cache: boolean;
  /** The static object requested more than once for the cache check. */
  staticPath?: string;
}

/** One captured frame: the host's capture and the frame's number in its pcap (1-based, as Wireshark numbers them). */
export interface PacketRef {
  host: string;
  frame: number;
}

export interface Fact {
  fact: string;
  expected: string;
  seen: string;
  pass: boolean;
  /** Why it failed, in words. */
  why?: string;
  /** Frames that prove (or disprove) the fact, the first ones of each capture; absent when no frame does. */
  packets?: PacketRef[];
}

export interface Verdict {
  mode: Mode;
  /** How the mode is named in the verdict ("L7 reverse proxy (http)"); the mode's own title when absent. */
  title?: string;
  pass: boolean;
  facts: Fact[];
}

export interface VerifyInput {
  mode: Mode;
  addresses: LabAddresses;
  client: HostCapture;
  lb: HostCapture;
  realServers: HostCapture[];
  requests: RequestOutcome[];
  /** Real servers expected to receive connections (weight > 0). */
  expectedRealServers: string[];
  /** Source hash sends one client to one real server only. */
  oneServerOnly?: boolean;
  /** dsr: ipip when the balancer tunnels to the real servers (IPVS tunnel mode). */
  encapsulation?: Encapsulation;
  /** L4 or L7, judged from when and how the balancer opens the RS-side connection; absent: not judged. */
  serviceType?: ServiceTypeExpectation;
}

type Tcp = DecodedPacket & {
  ip: NonNullable<DecodedPacket['ip']>;
  transport: { kind: 'tcp'; srcPort: number; dstPort: number; flags: { syn: boolean; ack: boolean }; seq: number; payloadLength: number };
};

/** The port the real servers listen on. */
const rsPortOf = (a: LabAddresses) => a.rsPort ?? a.port;

function tcpPackets(c: HostCapture, port: number): Tcp[] {
  return c.packets.filter(
    (p): p is Tcp => p.ip !== undefined && p.transport?.kind === 'tcp' && (p.transport.srcPort === port || p.transport.dstPort === port),
  );
}

const isSyn = (p: Tcp) => p.transport.flags.syn && !p.transport.flags.ack;
const list = (xs: Iterable<string>) => [...new Set(xs)].sort().join(', ') || 'none';

/** At most this many frames per capture back a fact: enough to cover the first connections, which the report draws. */
const REFS_PER_CAPTURE = 24;
const frameIndexes = new WeakMap<HostCapture, Map<DecodedPacket, number>>();

/** The pcap frame numbers of these packets of one capture, in capture order. */
function refs(c: HostCapture, packets: readonly DecodedPacket[]): PacketRef[] {
  let index = frameIndexes.get(c);
  if (!index) {
    index = new Map(c.packets.map((p, i) => [p, i]));
    frameIndexes.set(c, index);
  }
  const numbers = packets.map((p) => index.get(p)).filter((i): i is number => i !== undefined);
  return [...new Set(numbers)]
    .sort((x, y) => x - y)
    .slice(0, REFS_PER_CAPTURE)
    .map((i) => ({ host: c.host, frame: i + 1 }));
}

function fact(name: string, expected: string, seen: string, pass: boolean, why: string, packets: PacketRef[] = []): Fact {
  const f: Fact = pass ? { fact: name, expected, seen, pass } : { fact: name, expected, seen, pass, why };
  return packets.length ? { ...f, packets } : f;
}

/** Requests reach the service and every expected real server gets connections. */
function commonFacts(v: VerifyInput): Fact[] {
  const { addresses: a } = v;
  const facts: Fact[] = [];
  const ok = v.requests.filter((r) => r.ok).length;
  facts.push(
    fact(
      'client requests answered',
      `${v.requests.length}/${v.requests.length}`,
      `${ok}/${v.requests.length}`,
      ok === v.requests.length && ok > 0,
      `${v.requests.length - ok} request(s) failed${v.requests.find((r) => !r.ok)?.error ? `: ${v.requests.find((r) => !r.ok)?.error}` : ''}`,
    ),
  );
  const clientPackets = tcpPackets(v.client, a.port);
  const clientPeers = clientPackets.map((p) => (p.ip.src === a.client ? p.ip.dst : p.ip.src));
  facts.push(
    fact(
      'client talks only to the VIP',
      a.vip,
      list(clientPeers),
      clientPeers.length > 0 && clientPeers.every((x) => x === a.vip),
      clientPeers.length === 0
        ? 'the client capture has no packets of the service'
        : 'the client exchanged packets with another address than the VIP',
      refs(v.client, clientPackets),
    ),
  );
  const got = v.realServers.map((c) => ({ host: c.host, syns: tcpPackets(c, rsPortOf(a)).filter(isSyn).length }));
  const seen = got.map((g) => `${g.host}: ${g.syns}`).join(', ');
  const synRefs = v.realServers.flatMap((c) => refs(c, tcpPackets(c, rsPortOf(a)).filter(isSyn)));
  if (v.oneServerOnly) {
    const hit = got.filter((g) => g.syns > 0).length;
    facts.push(
      fact(
        'real servers that got connections',
        'exactly one (source hash)',
        seen,
        hit === 1,
        `${hit} real servers got connections`,
        synRefs,
      ),
    );
  } else {
    const missing = v.expectedRealServers.filter((h) => !got.some((g) => g.host === h && g.syns > 0));
    facts.push(
      fact(
        'real servers that got connections',
        list(v.expectedRealServers),
        seen,
        missing.length === 0,
        `no connection reached ${missing.join(', ')}`,
        synRefs,
      ),
    );
  }
  return facts;
}

/** What the real servers saw as source and destination of the client's connections. */
function realServerViewFacts(v: VerifyInput, expectSource: string, expectDestination: (rsAddress: string) => string): Fact[] {
  const sources: string[] = [];
  const wrongDst: string[] = [];
  const dsts: string[] = [];
  const synRefs: PacketRef[] = [];
  for (const c of v.realServers) {
    const own = v.addresses.realServers[c.host] ?? '?';
    const syns = tcpPackets(c, rsPortOf(v.addresses)).filter(isSyn);
    synRefs.push(...refs(c, syns));
    for (const p of syns) {
      const dst = `${p.ip.dst}:${p.transport.dstPort}`;
      sources.push(p.ip.src);
      dsts.push(dst);
      if (dst !== expectDestination(own) && !wrongDst.includes(`${c.host} got ${dst}`)) wrongDst.push(`${c.host} got ${dst}`);
    }
  }
  const srcOk = sources.length > 0 && sources.every((s) => s === expectSource);
  return [
    fact(
      'real servers see source',
      expectSource,
      list(sources),
      srcOk,
      sources.length === 0 ? 'no connection reached a real server' : `real servers saw ${list(sources)} as the connection source`,
      synRefs,
    ),
    fact(
      'real servers see destination',
      expectDestination('<own address>').replace('<own address>:', 'own address:'),
      list(dsts),
      sources.length > 0 && wrongDst.length === 0,
      sources.length === 0 ? 'no connection reached a real server' : wrongDst.join('; '),
      synRefs,
    ),
  ];
}

/** Replies of each real server that answered, as seen in the LB's capture (addressed to the LB's MAC). */
function repliesThroughLb(v: VerifyInput, replyDestination: string): Fact {
  const { addresses: a } = v;
  const rsPort = rsPortOf(a);
  const repliesOf = (c: HostCapture) =>
    tcpPackets(c, rsPort).filter((p) => p.transport.srcPort === rsPort && p.ip.dst === replyDestination);
  const answered = v.realServers.filter((c) => repliesOf(c).length > 0);
  const atLb = tcpPackets(v.lb, rsPort).filter(
    (p) => p.transport.srcPort === rsPort && p.ip.dst === replyDestination && (!p.dstMac || p.dstMac === v.lb.mac),
  );
  const perRs = answered.map((c) => `${c.host}: ${atLb.filter((p) => p.ip.src === a.realServers[c.host]).length}`);
  const missing = answered.filter((c) => !atLb.some((p) => p.ip.src === a.realServers[c.host])).map((c) => c.host);
  return fact(
    "real servers' replies come back through the LB",
    `every answering RS's replies to ${replyDestination} reach the LB`,
    perRs.join(', ') || 'no RS answered',
    answered.length > 0 && missing.length === 0,
    answered.length === 0
      ? 'no real server sent a reply'
      : `replies of ${missing.join(', ')} did not reach the LB: their route back does not go through it`,
    [...v.realServers.flatMap((c) => refs(c, repliesOf(c))), ...refs(v.lb, atLb)],
  );
}

/** dsr: how the client's packets reach the RS: MAC rewrite only, or wrapped in IP-in-IP by the LB. */
function encapsulationFact(v: VerifyInput): Fact {
  const syns = v.realServers.flatMap((c) =>
    tcpPackets(c, v.addresses.port)
      .filter(isSyn)
      .map((p) => ({ host: c.host, p })),
  );
  const seen = list(syns.map(({ p }) => (p.outer ? `ipip ${p.outer.src} -> ${p.outer.dst}` : 'plain')));
  const synRefs = v.realServers.flatMap((c) =>
    refs(
      c,
      syns.filter((s) => s.host === c.host).map((s) => s.p),
    ),
  );
  if (v.encapsulation === 'ipip') {
    const wrong = syns.filter(({ host, p }) => !p.outer || p.outer.src !== v.addresses.lb || p.outer.dst !== v.addresses.realServers[host]);
    return fact(
      'client packets reach the RSs in IP-in-IP from the LB',
      `ipip ${v.addresses.lb} -> <RS>`,
      seen,
      syns.length > 0 && wrong.length === 0,
      syns.length === 0 ? 'no connection reached a real server' : `${wrong.length} connection(s) arrived without the LB's IP-in-IP header`,
      synRefs,
    );
  }
  const wrapped = syns.filter(({ p }) => p.outer);
  return fact(
    'client packets reach the RSs unencapsulated (MAC rewrite only)',
    'plain',
    seen,
    syns.length > 0 && wrapped.length === 0,
    syns.length === 0
      ? 'no connection reached a real server'
      : 'packets arrived in an IP-in-IP tunnel: this is tunnel mode, not direct routing',
    synRefs,
  );
}

export function judge(v: VerifyInput): Verdict {
  const a = v.addresses;
  const facts = commonFacts(v);
  if (v.mode === 'fullnat') {
    facts.push(...realServerViewFacts(v, a.lb, (own) => `${own}:${rsPortOf(a)}`));
    facts.push(repliesThroughLb(v, a.lb));
    const sawClient = (c: HostCapture) => tcpPackets(c, rsPortOf(a)).filter((p) => p.ip.src === a.client || p.ip.dst === a.client);
    const leaked = v.realServers.filter((c) => sawClient(c).length > 0).map((c) => c.host);
    // Proof of absence: the packets the RSs did see (or, failing, the ones with the client's address).
    const proof = v.realServers.flatMap((c) => refs(c, leaked.length ? sawClient(c) : tcpPackets(c, rsPortOf(a))));
    facts.push(
      fact(
        'real servers never see the client address',
        'never',
        leaked.length ? `seen by ${leaked.join(', ')}` : 'never',
        leaked.length === 0,
        `${leaked.join(', ')} saw ${a.client}`,
        proof,
      ),
    );
  } else if (v.mode === 'transparent') {
    facts.push(...realServerViewFacts(v, a.client, (own) => `${own}:${rsPortOf(a)}`));
    facts.push(repliesThroughLb(v, a.client));
  } else {
    facts.push(...realServerViewFacts(v, a.client, () => `${a.vip}:${a.port}`));
    const directOf = (c: HostCapture) =>
      tcpPackets(c, a.port).filter(
        (p) => p.transport.srcPort === a.port && p.ip.src === a.vip && p.ip.dst === a.client && p.dstMac !== v.lb.mac,
      );
    const direct = v.realServers.map((c) => ({ host: c.host, n: directOf(c).length, syns: tcpPackets(c, a.port).filter(isSyn).length }));
    const silent = direct.filter((d) => d.syns > 0 && d.n === 0).map((d) => d.host);
    facts.push(
      fact(
        'real servers reply from the VIP straight to the client',
        `${a.vip}:${a.port} -> ${a.client}, not via the LB`,
        direct.map((d) => `${d.host}: ${d.n}`).join(', '),
        direct.some((d) => d.n > 0) && silent.length === 0,
        silent.length
          ? `${silent.join(', ')} got connections but sent no reply from the VIP (VIP missing on its loopback?)`
          : 'no real server replied from the VIP',
        v.realServers.flatMap((c) => refs(c, directOf(c))),
      ),
    );
    facts.push(encapsulationFact(v));
    const atLb = tcpPackets(v.lb, a.port).filter((p) => p.transport.srcPort === a.port && p.ip.dst === a.client);
    facts.push(
      fact(
        'the LB sees no reply',
        '0 reply packets at the LB',
        `${atLb.length} reply packets`,
        atLb.length === 0,
        'replies crossed the balancer: this is not direct server return',
        // Failing: the replies at the LB; holding: the replies the client got, none of which the LB saw.
        atLb.length
          ? refs(v.lb, atLb)
          : refs(
              v.client,
              tcpPackets(v.client, a.port).filter((p) => p.ip.src === a.vip),
            ),
      ),
    );
  }
  if (v.serviceType && v.mode !== 'dsr') facts.push(...serviceTypeFacts(v, v.serviceType));
  return { mode: v.mode, pass: facts.every((f) => f.pass), facts };
}

/** One client connection as the balancer's capture shows it, with the RS-side connection opened for it. */
interface ConnectionView {
  clientPort: number;
  clientIsn: number;
  /** Kernel timestamps (ns) in the balancer's capture: one socket, one clock. */
  synAckAt?: bigint;
  requestAt?: bigint;
  rs?: { at: bigint; isn: number; srcPort: number; dst: string };
  /** The balancer's frames behind the times above: the client's SYN, the SYN-ACK, the request, the RS-side SYN. */
  packets: Tcp[];
}

/**
 * The client's connections at the balancer, in order, each with the first
 * RS-side SYN that follows it before the next client connection (the lab's
 * requests are made one after the other).
 */
function connectionsAtLb(v: VerifyInput): ConnectionView[] {
  const a = v.addresses;
  const rsAddresses = new Set(Object.values(a.realServers));
  const packets = v.lb.packets.filter((p): p is Tcp => p.ip !== undefined && p.transport?.kind === 'tcp');
  const clientSyns: Tcp[] = [];
  for (const p of packets)
    if (
      isSyn(p) &&
      p.ip.dst === a.vip &&
      p.transport.dstPort === a.port &&
      !clientSyns.some((s) => s.transport.srcPort === p.transport.srcPort)
    )
      clientSyns.push(p);
  return clientSyns.map((syn, i) => {
    const from = syn.tsNanos;
    const until = clientSyns[i + 1]?.tsNanos;
    const inWindow = (p: Tcp) => p.tsNanos >= from && (until === undefined || p.tsNanos < until);
    const cport = syn.transport.srcPort;
    const synAck = packets.find(
      (p) =>
        inWindow(p) &&
        p.ip.src === a.vip &&
        p.transport.srcPort === a.port &&
        p.transport.dstPort === cport &&
        p.transport.flags.syn &&
        p.transport.flags.ack,
    );
    const request = packets.find(
      (p) => inWindow(p) && p.ip.dst === a.vip && p.transport.srcPort === cport && p.transport.payloadLength > 0,
    );
    const rsSyn = packets.find((p) => inWindow(p) && isSyn(p) && rsAddresses.has(p.ip.dst) && p.transport.dstPort === rsPortOf(a));
    const view: ConnectionView = {
      clientPort: cport,
      clientIsn: syn.transport.seq,
      packets: [syn, synAck, request, rsSyn].filter((p): p is Tcp => p !== undefined),
    };
    if (synAck) view.synAckAt = synAck.tsNanos;
    if (request) view.requestAt = request.tsNanos;
    if (rsSyn) view.rs = { at: rsSyn.tsNanos, isn: rsSyn.transport.seq, srcPort: rsSyn.transport.srcPort, dst: rsSyn.ip.dst };
    return view;
  });
}

const micros = (ns: bigint) => `${(Number(ns) / 1000).toFixed(0)} µs`;

/**
 * L4 against L7, from the balancer's own capture: an L4 balancer forwards the
 * client's SYN (the RS's SYN is the client's, same initial sequence number,
 * before any payload); an L7 balancer answers the SYN itself, and opens a
 * connection of its own to a real server only once the request has arrived.
 */
function serviceTypeFacts(v: VerifyInput, t: ServiceTypeExpectation): Fact[] {
  const conns = connectionsAtLb(v);
  const withRs = conns.filter((c) => c.rs);
  const none = 'no client connection reached a real server through the balancer';
  const proof = refs(
    v.lb,
    conns.flatMap((c) => c.packets),
  );
  const facts: Fact[] = [];
  if (t.protocol === 'tcp') {
    const early = withRs.filter((c) => c.rs && (c.requestAt === undefined || c.rs.at < c.requestAt));
    const sameIsn = withRs.filter((c) => c.rs?.isn === c.clientIsn);
    facts.push(
      fact(
        "L4: each RS's SYN is the client's SYN forwarded, before any request byte",
        `${withRs.length}/${withRs.length} before the request, with the client's initial sequence number`,
        `${early.length} before the request, ${sameIsn.length} with the client's ISN, of ${withRs.length}`,
        withRs.length > 0 && early.length === withRs.length && sameIsn.length === withRs.length,
        withRs.length === 0
          ? none
          : 'the RS-side connection starts after the request or with a sequence number of its own: the balancer proxies (L7), it does not forward',
        proof,
      ),
    );
    return facts;
  }
  const answered = conns.filter((c) => c.synAckAt !== undefined && (c.rs === undefined || c.synAckAt < c.rs.at));
  facts.push(
    fact(
      "L7: the balancer answers the client's SYN itself (SYN-ACK from the VIP) before any RS is contacted",
      `${conns.length}/${conns.length}`,
      `${answered.length}/${conns.length}`,
      conns.length > 0 && answered.length === conns.length,
      conns.length === 0
        ? 'no client connection at the balancer'
        : 'a SYN-ACK came only after the RS-side SYN: the client SYN was forwarded (L4)',
      proof,
    ),
  );
  const afterRequest = withRs.filter((c) => c.requestAt !== undefined && c.rs && c.rs.at > c.requestAt);
  const gaps = afterRequest.map((c) => (c.rs && c.requestAt !== undefined ? c.rs.at - c.requestAt : 0n)).sort((x, y) => (x < y ? -1 : 1));
  facts.push(
    fact(
      "L7: every RS-side SYN comes after the client's HTTP request reached the balancer",
      `${withRs.length}/${withRs.length} after the request`,
      `${afterRequest.length}/${withRs.length}${gaps.length ? ` (request to RS SYN: ${micros(gaps[0] ?? 0n)} to ${micros(gaps[gaps.length - 1] ?? 0n)})` : ''}`,
      withRs.length > 0 && afterRequest.length === withRs.length,
      withRs.length === 0 ? none : 'an RS-side connection started before the request arrived: the connection was forwarded (L4)',
      proof,
    ),
  );
  const ownIsn = withRs.filter((c) => c.rs && c.rs.isn !== c.clientIsn);
  const source = v.mode === 'fullnat' ? v.addresses.lb : v.addresses.client;
  facts.push(
    fact(
      'L7: the RS-side connection is a TCP connection of its own',
      `${withRs.length}/${withRs.length} with their own initial sequence number, from ${source}`,
      `${ownIsn.length}/${withRs.length}`,
      withRs.length > 0 && ownIsn.length === withRs.length,
      withRs.length === 0 ? none : "an RS-side SYN carried the client's sequence number: the kernel forwarded it (L4)",
      proof,
    ),
  );
  if (t.cache) facts.push(cacheFact(v, t.staticPath ?? '/static/'));
  return facts;
}

/** With a cache, a static object requested again is answered by the balancer: its GET reaches a real server once. */
function cacheFact(v: VerifyInput, staticPath: string): Fact {
  const asked = v.requests.filter((r) => r.static);
  const answered = asked.filter((r) => r.ok).length;
  const needle = Buffer.from(`GET ${staticPath} `);
  const gets = (c: HostCapture) => c.packets.filter((_, i) => c.frames[i]?.data.includes(needle));
  const atRs = v.realServers.map((c) => ({ host: c.host, n: gets(c).length }));
  const reached = atRs.reduce((n, x) => n + x.n, 0);
  return fact(
    'L7 cache: a repeated GET of a static object is answered by the balancer (no packet of it at any RS)',
    `${asked.length} GETs of ${staticPath} answered, 1 of them at a real server`,
    `${answered} answered, ${reached} at real servers (${atRs.map((x) => `${x.host}: ${x.n}`).join(', ')})`,
    asked.length > 1 && answered === asked.length && reached === 1,
    asked.length < 2
      ? 'the static object was not requested twice'
      : reached > 1
        ? 'every GET of the static object reached a real server: the balancer has no cache (or did not keep it)'
        : `only ${answered} of ${asked.length} GETs were answered`,
    v.realServers.flatMap((c) => refs(c, gets(c))),
  );
}
