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
import * as path from 'node:path';
import { startCapture } from '../capture/capture';
import { DecodedPacket, HostCapture } from '../capture/types';
import { interfaceMac } from '../util/netns';
import { run } from '../util/exec';
import { CLI_ENTRY } from '../util/self';
import { nsName } from '../lab/names';
import { BALANCERS, BalancerName, LabTopology, REAL_SERVERS, addressOf } from '../lab/topology';
import { failBalancer, recoverBalancer, routerNextHops } from '../lab/ha';
import { LabError } from '../lab/errors';
import { Fact, RequestOutcome, Verdict } from './facts';
import { labAddresses, prepareOutputDirectory } from './judge';
import {
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

export interface FailoverReport extends VerifyReport {
  /**
   * Milliseconds from `lab fail` (link down, controller killed) until the router's route no longer names the
   * failed balancer (ecmp), or until the standby holds the VIP (vrrp); copiedMs: from the live connection's
   * opening until the standby was seen holding its copy (vrrp with sync).
   */
  timings: { routeWithdrawnMs?: number; vipMovedMs?: number; copiedMs?: number };
}

/** The failover verify of an ECMP lab; pcaps into `out` (default ./slbctl-pcaps/LAB/ecmp). */
export async function verifyEcmp(lab: string, topology: LabTopology, k: number, out: string | undefined): Promise<FailoverReport> {
  const outDir = path.resolve(out ?? path.join('slbctl-pcaps', lab, 'ecmp'));
  prepareOutputDirectory(outDir);
  const client = addressOf(topology, 'client');
  const vip = topology.vip;
  const port = topology.servicePort;
  const url = `http://${vip}:${port}/`;
  const filter = captureFilter(port);
  const macOf = (b: BalancerName) => interfaceMac(nsName(lab, b), 'eth0');
  const macs = { lb: macOf('lb'), lb2: macOf('lb2') };
  // The router's capture on its bridge also sees the balancers' frames to the real servers: only the router's own count.
  const routerMac = interfaceMac(nsName(lab, 'router'), 'br0');
  const fromRouter = (p: DecodedPacket) => p.srcMac === routerMac;
  const balancerOfMac = (mac: string | undefined) => BALANCERS.find((b) => macs[b] === mac);
  // Before any flow: the balancers must pick alike (Maglev size and seed, as each announces them to the router).
  // The balancers' backend, as their controllers report it: IPVS (user-mode-linux) tags no Maglev community.
  const status = await run([process.execPath, CLI_ENTRY, 'status'], { netns: nsName(lab, 'lb') });
  const facts: Fact[] = [await maglevAgreementFact(lab, topology, /^backend: ipvs\b/m.test(status.stdout))];
  const pcaps: Record<string, string> = {};
  const keep = (captures: HostCapture[], dir: string) => keepCaptures(captures, dir, pcaps);

  // 1. Both balancers up.
  const bothHosts: Where[] = [
    { label: 'client', host: 'client', device: 'eth0' },
    { label: 'router', host: 'router', device: 'br0' },
    { label: 'lb', host: 'lb', device: 'eth0' },
    { label: 'lb2', host: 'lb2', device: 'eth0' },
    ...REAL_SERVERS.map((h): Where => ({ label: h, host: h, device: 'eth0' })),
  ];
  let sessions = await captureAll(lab, bothHosts, filter);
  let before: RequestOutcome[] = [];
  try {
    before = await requestsFrom(lab, url, k);
  } finally {
    await sleep(300);
  }
  let captures = sessions.map((s) => s.stop());
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
  const failoverHosts: Where[] = [
    { label: 'client', host: 'client', device: 'eth0' },
    { label: 'router', host: 'router', device: 'br0' },
    ...REAL_SERVERS.map((h): Where => ({ label: h, host: h, device: 'eth0' })),
  ];
  sessions = await captureAll(lab, failoverHosts, filter);
  // Which balancer the router sends the live connection to, read from a capture of its SYN (`ip route get` with
  // ports was seen to hash differently from the forwarding path, so the packet itself decides).
  const probe = startCapture({ host: 'router', netns: nsName(lab, 'router'), device: 'br0', filter: `tcp dst port ${port}` });
  let probeOpen = true;
  await sleep(200);
  const live = openHalfRequest(lab, vip, port);
  let carrier: BalancerName | undefined;
  /** Wall-clock nanoseconds of the failure: the captures' clock. */
  let failedAt = 0n;
  let routeWithdrawnMs: number | undefined;
  let finished: { reply?: string; error?: string } = {};
  let after: RequestOutcome[] = [];
  let livePort: number | undefined;
  try {
    livePort = await live.localPort();
    await sleep(300);
    probeOpen = false;
    const syn = probe.stop().packets.find((p) => fromRouter(p) && isClientSyn(p, client, vip, port) && tcp(p)?.srcPort === livePort);
    if (livePort === undefined) throw new LabError('the long-lived connection to the VIP did not open');
    carrier = balancerOfMac(syn?.dstMac);
    if (!carrier)
      throw new LabError(`the router's capture shows the live connection's SYN sent to ${syn?.dstMac ?? 'nobody'}, not a balancer`);
    failedAt = BigInt(Date.now()) * 1_000_000n;
    const started = process.hrtime.bigint();
    await failBalancer(lab, carrier, () => undefined);
    for (let i = 0; i < 250; i++) {
      const hops = await routerNextHops(lab, vip);
      if (!hops.includes(addressOf(topology, carrier))) {
        routeWithdrawnMs = Number(process.hrtime.bigint() - started) / 1e6;
        break;
      }
      await sleep(20);
    }
    finished = await live.finish(10_000);
    after = await requestsFrom(lab, url, k);
    await sleep(300);
  } finally {
    if (probeOpen) probe.stop();
    const stopped = sessions.map((s) => s.stop());
    captures = stopped;
    keep(captures, path.join(outDir, 'failover'));
    if (carrier) await recoverBalancer(lab, topology, carrier, () => undefined);
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
      failedAt,
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
        (p) => p.tsNanos >= failedAt && fromRouter(p) && isClientSyn(p, client, vip, port),
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
