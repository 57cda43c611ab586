// Judge the packet facts of a forwarding mode (shared/reference/slb-modes.md)
// from the captures of the client, the balancer and the real servers. Pure.
import { DecodedPacket, HostCapture } from '../capture/types';
import { Encapsulation, Mode } from '../model/types';

export interface LabAddresses {
  client: string;
  lb: string;
  vip: string;
  port: number;
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
}

export interface Fact {
  fact: string;
  expected: string;
  seen: string;
  pass: boolean;
  /** Why it failed, in words. */
  why?: string;
}

export interface Verdict {
  mode: Mode;
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
}

type Tcp = DecodedPacket & {
  ip: NonNullable<DecodedPacket['ip']>;
  transport: { kind: 'tcp'; srcPort: number; dstPort: number; flags: { syn: boolean; ack: boolean }; payloadLength: number };
};

function tcpPackets(c: HostCapture, port: number): Tcp[] {
  return c.packets.filter(
    (p): p is Tcp => p.ip !== undefined && p.transport?.kind === 'tcp' && (p.transport.srcPort === port || p.transport.dstPort === port),
  );
}

const isSyn = (p: Tcp) => p.transport.flags.syn && !p.transport.flags.ack;
const list = (xs: Iterable<string>) => [...new Set(xs)].sort().join(', ') || 'none';

function fact(name: string, expected: string, seen: string, pass: boolean, why: string): Fact {
  return pass ? { fact: name, expected, seen, pass } : { fact: name, expected, seen, pass, why };
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
  const clientPeers = tcpPackets(v.client, a.port).map((p) => (p.ip.src === a.client ? p.ip.dst : p.ip.src));
  facts.push(
    fact(
      'client talks only to the VIP',
      a.vip,
      list(clientPeers),
      clientPeers.length > 0 && clientPeers.every((x) => x === a.vip),
      clientPeers.length === 0
        ? 'the client capture has no packets of the service'
        : 'the client exchanged packets with another address than the VIP',
    ),
  );
  const got = v.realServers.map((c) => ({ host: c.host, syns: tcpPackets(c, a.port).filter(isSyn).length }));
  const seen = got.map((g) => `${g.host}: ${g.syns}`).join(', ');
  if (v.oneServerOnly) {
    const hit = got.filter((g) => g.syns > 0).length;
    facts.push(
      fact('real servers that got connections', 'exactly one (source hash)', seen, hit === 1, `${hit} real servers got connections`),
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
  for (const c of v.realServers) {
    const own = v.addresses.realServers[c.host] ?? '?';
    for (const p of tcpPackets(c, v.addresses.port).filter(isSyn)) {
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
    ),
    fact(
      'real servers see destination',
      expectDestination('<own address>').replace('<own address>:', 'own address:'),
      list(dsts),
      sources.length > 0 && wrongDst.length === 0,
      sources.length === 0 ? 'no connection reached a real server' : wrongDst.join('; '),
    ),
  ];
}

/** Replies of each real server that answered, as seen in the LB's capture (addressed to the LB's MAC). */
function repliesThroughLb(v: VerifyInput, replyDestination: string): Fact {
  const { addresses: a } = v;
  const answered = v.realServers.filter((c) =>
    tcpPackets(c, a.port).some((p) => p.transport.srcPort === a.port && p.ip.dst === replyDestination),
  );
  const atLb = tcpPackets(v.lb, a.port).filter(
    (p) => p.transport.srcPort === a.port && p.ip.dst === replyDestination && (!p.dstMac || p.dstMac === v.lb.mac),
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
  if (v.encapsulation === 'ipip') {
    const wrong = syns.filter(({ host, p }) => !p.outer || p.outer.src !== v.addresses.lb || p.outer.dst !== v.addresses.realServers[host]);
    return fact(
      'client packets reach the RSs in IP-in-IP from the LB',
      `ipip ${v.addresses.lb} -> <RS>`,
      seen,
      syns.length > 0 && wrong.length === 0,
      syns.length === 0 ? 'no connection reached a real server' : `${wrong.length} connection(s) arrived without the LB's IP-in-IP header`,
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
  );
}

export function judge(v: VerifyInput): Verdict {
  const a = v.addresses;
  const facts = commonFacts(v);
  if (v.mode === 'fullnat') {
    facts.push(...realServerViewFacts(v, a.lb, (own) => `${own}:${a.port}`));
    facts.push(repliesThroughLb(v, a.lb));
    const leaked = v.realServers
      .filter((c) => tcpPackets(c, a.port).some((p) => p.ip.src === a.client || p.ip.dst === a.client))
      .map((c) => c.host);
    facts.push(
      fact(
        'real servers never see the client address',
        'never',
        leaked.length ? `seen by ${leaked.join(', ')}` : 'never',
        leaked.length === 0,
        `${leaked.join(', ')} saw ${a.client}`,
      ),
    );
  } else if (v.mode === 'transparent') {
    facts.push(...realServerViewFacts(v, a.client, (own) => `${own}:${a.port}`));
    facts.push(repliesThroughLb(v, a.client));
  } else {
    facts.push(...realServerViewFacts(v, a.client, () => `${a.vip}:${a.port}`));
    const direct = v.realServers.map((c) => ({
      host: c.host,
      n: tcpPackets(c, a.port).filter(
        (p) => p.transport.srcPort === a.port && p.ip.src === a.vip && p.ip.dst === a.client && p.dstMac !== v.lb.mac,
      ).length,
      syns: tcpPackets(c, a.port).filter(isSyn).length,
    }));
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
      ),
    );
  }
  return { mode: v.mode, pass: facts.every((f) => f.pass), facts };
}
