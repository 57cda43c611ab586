// `lab verify` of a lab with two balancers behind BGP ECMP (lab mode dsr --ha
// ecmp): two rounds of captures, judged from the packets.
//  1. Both balancers up: the router's capture shows client flows sent to both
//     balancers' MACs; both real servers answer; each RS sees client -> VIP
//     unchanged and no balancer sees a reply (DSR).
//  2. Failover: a TCP connection is opened and half a request sent; the
//     balancer the router sends it through is failed (`lab fail`); the rest
//     of the request is sent. It must complete, served by the same RS, whose
//     capture shows the same 4-tuple before and after, now arriving from the
//     survivor's MAC; new connections reach both RSs through the survivor.
//     The failed balancer is recovered at the end, as `lab recover` does.
// What differs per provider (namespaces here, VMs in src/vagrant/ecmp.ts) is
// its EcmpLabDriver.
import * as path from 'node:path';
import { DecodedPacket, HostCapture } from '../capture/types';
import { interfaceMac } from '../util/netns';
import { run } from '../util/exec';
import { CLI_ENTRY } from '../util/self';
import { nsName } from '../lab/names';
import { BALANCERS, BalancerName, LabTopology, REAL_SERVERS, addressOf } from '../lab/topology';
import { failBalancer, recoverBalancer, routerFiles, routerNextHops } from '../lab/ha';
import { LabError } from '../lab/errors';
import { Fact, RequestOutcome, Verdict } from './facts';
import { labAddresses, prepareOutputDirectory } from './judge';
import {
  HalfRequest,
  Where,
  answeredFact,
  captureAll,
  keepCaptures,
  isClientSyn,
  newConnectionsFact,
  openHalfRequest,
  requestsFrom,
  sameServerFact,
  servedBy,
  sleep,
  tcp,
} from './live';
import { VerifyReport, captureFilter } from './flow';
import { buildLadder } from '../report/ladder';
import { maglevAgreementFact } from './maglev-agreement';

export type EcmpHost = Where['host'];

/** Captures running on several hosts; stop() ends them and hands back what each saw (its host named by the label asked). */
export interface CaptureRound {
  stop(): Promise<HostCapture[]>;
}

/** How the ECMP verify reaches a provider's two-balancer lab. */
export interface EcmpLabDriver {
  /** The server-side MACs of both balancers and of the router. */
  macs(): Promise<Record<BalancerName | 'router', string>>;
  /** Captures with this filter on the server-side interface of each host (the client's own for the client), live when this resolves. */
  capture(where: readonly { label: string; host: EcmpHost }[], filter: string): Promise<CaptureRound>;
  requests(url: string, k: number): Promise<RequestOutcome[]>;
  openHalfRequest(vip: string, port: number): HalfRequest;
  /** The router BIRD's `show route PREFIX all` (undefined: it did not answer). */
  routerShowRoute(prefix: string): Promise<string | undefined>;
  /** Whether the balancers' controllers run IPVS (no Maglev community on their routes). */
  backendIsIpvs(): Promise<boolean>;
  /**
   * Take b down as `lab fail` does and wait (up to 5 s) until the router's route to the VIP no longer names it;
   * returns both instants on this host's clock (ns since the epoch), withdrawnAt absent when it never went.
   */
  fail(b: BalancerName, vip: string): Promise<{ failedAt: bigint; withdrawnAt?: bigint }>;
  recover(b: BalancerName): Promise<void>;
  /**
   * A function turning this host's clock instant (ns since the epoch) into the clock the captures of `host`
   * count time by: the same in namespaces of one kernel, shifted by each VM's clock offset on VMs (measured when
   * this is called: once the live connection is open).
   */
  captureClock(): Promise<(host: EcmpHost, hereNanos: bigint) => bigint>;
}

const nowNanos = () => BigInt(Date.now()) * 1_000_000n;

/** The netns lab's driver: captures opened from this process in each namespace, the router's BIRD on this host. */
export function netnsEcmpDriver(lab: string, topology: LabTopology): EcmpLabDriver {
  const device = (host: EcmpHost) => (host === 'router' ? 'br0' : 'eth0');
  return {
    macs: async () => ({
      lb: interfaceMac(nsName(lab, 'lb'), 'eth0'),
      lb2: interfaceMac(nsName(lab, 'lb2'), 'eth0'),
      router: interfaceMac(nsName(lab, 'router'), 'br0'),
    }),
    async capture(where, filter) {
      const sessions = await captureAll(
        lab,
        where.map((w): Where => ({ ...w, device: device(w.host) })),
        filter,
      );
      return { stop: async () => sessions.map((s) => s.stop()) };
    },
    requests: (url, k) => requestsFrom(lab, url, k),
    openHalfRequest: (vip, port) => openHalfRequest(lab, vip, port),
    async routerShowRoute(prefix) {
      const r = await run(['birdc', '-s', routerFiles(lab).socket, 'show', 'route', prefix, 'all']);
      return r.code === 0 ? r.stdout : undefined;
    },
    async backendIsIpvs() {
      const status = await run([process.execPath, CLI_ENTRY, 'status'], { netns: nsName(lab, 'lb') });
      return /^backend: ipvs\b/m.test(status.stdout);
    },
    async fail(b, vip) {
      const failedAt = nowNanos();
      await failBalancer(lab, b, () => undefined);
      for (let i = 0; i < 250; i++) {
        if (!(await routerNextHops(lab, vip)).includes(addressOf(topology, b))) return { failedAt, withdrawnAt: nowNanos() };
        await sleep(20);
      }
      return { failedAt };
    },
    recover: (b) => recoverBalancer(lab, topology, b, () => undefined),
    captureClock: async () => (_host, here) => here,
  };
}

export interface FailoverReport extends VerifyReport {
  /**
   * Milliseconds from `lab fail` (link down, controller killed) until the router's route no longer names the
   * failed balancer (ecmp), or until the standby holds the VIP (vrrp); copiedMs: from the live connection's
   * opening until the standby was seen holding its copy (vrrp with sync).
   */
  timings: { routeWithdrawnMs?: number; vipMovedMs?: number; copiedMs?: number };
}

/** The failover verify of the netns ECMP lab; pcaps into `out` (default ./slbctl-pcaps/LAB/ecmp). */
export function verifyEcmp(lab: string, topology: LabTopology, k: number, out: string | undefined): Promise<FailoverReport> {
  return verifyEcmpWith(netnsEcmpDriver(lab, topology), lab, topology, k, out);
}

/** The failover verify of an ECMP lab through its provider's driver. */
export async function verifyEcmpWith(
  driver: EcmpLabDriver,
  lab: string,
  topology: LabTopology,
  k: number,
  out: string | undefined,
): Promise<FailoverReport> {
  const outDir = path.resolve(out ?? path.join('slbctl-pcaps', lab, 'ecmp'));
  prepareOutputDirectory(outDir);
  const client = addressOf(topology, 'client');
  const vip = topology.vip;
  const port = topology.servicePort;
  const url = `http://${vip}:${port}/`;
  const filter = captureFilter(port);
  const macs = await driver.macs();
  // The router's capture on its server-side interface may also see the balancers' frames to the real servers: only the router's own count.
  const fromRouter = (p: DecodedPacket) => p.srcMac === macs.router;
  const balancerOfMac = (mac: string | undefined) => BALANCERS.find((b) => macs[b] === mac);
  // Before any flow: the balancers must pick alike (Maglev size and seed, as each announces them to the router).
  // The balancers' backend, as their controllers report it: IPVS (user-mode-linux, VMs) tags no Maglev community.
  const facts: Fact[] = [maglevAgreementFact(await driver.routerShowRoute(`${vip}/32`), topology, await driver.backendIsIpvs())];
  const pcaps: Record<string, string> = {};
  const keep = (captures: HostCapture[], dir: string) => keepCaptures(captures, dir, pcaps);

  // 1. Both balancers up.
  const hostsOf = (hosts: readonly EcmpHost[]) => hosts.map((host) => ({ label: host, host }));
  let round = await driver.capture(hostsOf(['client', 'router', 'lb', 'lb2', 'rs1', 'rs2']), filter);
  let before: RequestOutcome[] = [];
  let captures: HostCapture[];
  try {
    before = await driver.requests(url, k);
  } finally {
    await sleep(300);
    captures = await round.stop();
  }
  keep(captures, path.join(outDir, 'both-up'));
  const cap = (host: string) => captures.find((c) => c.host === host);
  const routerSyns = (cap('router')?.packets ?? []).filter((p) => fromRouter(p) && isClientSyn(p, client, vip, port));
  // The picture: the client's first connection, through the balancer the router sent it to.
  const firstBalancer = balancerOfMac(routerSyns[0]?.dstMac) ?? 'lb';
  const ladder = buildLadder({
    captures: ['client', firstBalancer, ...REAL_SERVERS].flatMap((h) => captures.filter((c) => c.host === h)),
    addresses: { ...labAddresses(topology), lb: addressOf(topology, firstBalancer) },
  });
  const byBalancer = new Map(BALANCERS.map((b) => [b, routerSyns.filter((p) => p.dstMac === macs[b]).length]));
  facts.push({
    fact: 'with both balancers up, the router sends flows to both (ECMP)',
    expected: `client SYNs to ${vip}:${port} leave the router for lb (${macs.lb}) and lb2 (${macs.lb2})`,
    seen: BALANCERS.map((b) => `${b}: ${byBalancer.get(b) ?? 0}`).join(', '),
    pass: BALANCERS.every((b) => (byBalancer.get(b) ?? 0) > 0),
    why: 'a balancer got no flow: its route is not in the router, or the hash sent every flow one way (try more --requests)',
  });
  facts.push(answeredFact(before, k));
  const rsSeen = REAL_SERVERS.map((h) => (cap(h)?.packets ?? []).filter((p) => isClientSyn(p, client, vip, port)).length);
  facts.push({
    fact: 'each real server sees client -> VIP unchanged (DSR)',
    expected: `SYNs ${client} -> ${vip}:${port} on ${REAL_SERVERS.join(' and ')}`,
    seen: REAL_SERVERS.map((h, i) => `${h}: ${rsSeen[i]}`).join(', '),
    pass: rsSeen.every((n) => n > 0),
  });
  const replies = BALANCERS.map(
    (b) => (cap(b)?.packets ?? []).filter((p) => p.ip?.src === vip && p.ip.dst === client && tcp(p)?.srcPort === port).length,
  );
  facts.push({
    fact: 'no balancer sees a reply (the real servers answer straight to the client)',
    expected: `no packet ${vip}:${port} -> ${client} on lb or lb2`,
    seen: BALANCERS.map((b, i) => `${b}: ${replies[i]}`).join(', '),
    pass: replies.every((n) => n === 0),
  });

  // 2. Failover of the balancer that carries a live connection.
  round = await driver.capture(hostsOf(['client', 'router', 'rs1', 'rs2']), filter);
  // Which balancer the router sends the live connection to, read from a capture of its SYN (`ip route get` with
  // ports was seen to hash differently from the forwarding path, so the packet itself decides).
  const probe = await driver.capture([{ label: 'probe', host: 'router' }], `tcp dst port ${port}`);
  let probeOpen = true;
  const live = driver.openHalfRequest(vip, port);
  let carrier: BalancerName | undefined;
  /** The split between before and after the failure, on each capture's clock: halfway from `lab fail` to the rest of the request. */
  let splitAt: (host: EcmpHost) => bigint = () => 0n;
  let routeWithdrawnMs: number | undefined;
  let finished: { reply?: string; error?: string } = {};
  let after: RequestOutcome[] = [];
  let livePort: number | undefined;
  try {
    livePort = await live.localPort();
    await sleep(300);
    probeOpen = false;
    const syn = (await probe.stop())
      .flatMap((c) => c.packets)
      .find((p) => fromRouter(p) && isClientSyn(p, client, vip, port) && tcp(p)?.srcPort === livePort);
    if (livePort === undefined) throw new LabError('the long-lived connection to the VIP did not open');
    carrier = balancerOfMac(syn?.dstMac);
    if (!carrier)
      throw new LabError(`the router's capture shows the live connection's SYN sent to ${syn?.dstMac ?? 'nobody'}, not a balancer`);
    const clock = await driver.captureClock();
    const { failedAt, withdrawnAt } = await driver.fail(carrier, vip);
    if (withdrawnAt !== undefined) routeWithdrawnMs = Number(withdrawnAt - failedAt) / 1e6;
    const resumedAt = nowNanos();
    const split = failedAt + (resumedAt - failedAt) / 2n;
    splitAt = (host) => clock(host, split);
    finished = await live.finish(10_000);
    after = await driver.requests(url, k);
    await sleep(300);
  } finally {
    if (probeOpen) await probe.stop();
    live.kill();
    captures = await round.stop();
    keep(captures, path.join(outDir, 'failover'));
    if (carrier) await driver.recover(carrier);
  }
  const survivor = BALANCERS.find((b) => b !== carrier) as BalancerName;
  const liveRs = servedBy(finished.reply);
  facts.push({
    fact: `a connection opened before ${carrier ?? 'the carrying balancer'} failed completes after it`,
    expected: 'the rest of the request is answered',
    seen: finished.reply ? `answered by ${liveRs ?? '?'}` : (finished.error ?? 'no answer'),
    pass: finished.reply !== undefined && liveRs !== undefined,
    why: 'the flow lost its server when the router moved it: the survivor hashed it elsewhere, or the route never moved',
  });
  const isLive = (p: DecodedPacket) => p.ip?.src === client && p.ip.dst === vip && tcp(p)?.srcPort === livePort && tcp(p)?.dstPort === port;
  const rsCapture = captures.find((c) => c.host === liveRs);
  facts.push(
    sameServerFact({
      packets: (rsCapture?.packets ?? []).filter(isLive),
      failedAt: splitAt(liveRs === 'rs2' ? 'rs2' : 'rs1'),
      expected: `${client}:${livePort ?? '?'} -> ${vip}:${port} at ${liveRs ?? 'its RS'}`,
      failed: carrier ?? '?',
      failedMac: carrier ? macs[carrier] : undefined,
      survivor,
      survivorMac: macs[survivor],
      nameOfMac: (mac) => balancerOfMac(mac) ?? mac ?? '?',
      found: true,
    }),
  );
  facts.push(
    newConnectionsFact({
      after,
      k,
      routerSyns: (captures.find((c) => c.host === 'router')?.packets ?? []).filter(
        (p) => p.tsNanos >= splitAt('router') && fromRouter(p) && isClientSyn(p, client, vip, port),
      ),
      failed: carrier ?? 'the failed balancer',
      failedMac: carrier ? macs[carrier] : undefined,
      survivor,
    }),
  );
  const verdict: Verdict = {
    mode: 'dsr',
    title: 'dsr on two balancers, BGP ECMP (failover)',
    pass: facts.every((f) => f.pass),
    facts,
  };
  return {
    verdict,
    requests: [...before, ...after],
    pcaps,
    ladder,
    timings: routeWithdrawnMs !== undefined ? { routeWithdrawnMs } : {},
  };
}
