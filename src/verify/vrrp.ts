// `lab verify` of a VRRP pair (lab mode fullnat|transparent --ha vrrp): two
// rounds of captures, judged from the packets.
//  1. Both balancers up: the router sends every client SYN to the master's
//     MAC; both real servers answer; each RS sees the mode's source (full NAT:
//     the pair's floating address; transparent: the client) and sends its
//     replies to the master's MAC.
//  2. Failover: a TCP connection is opened through the master and half a
//     request sent; once the standby holds a copy of it (conntrackd's external
//     cache), the master fails (`lab fail`) and the rest of the request is
//     sent. It must complete, served by the same RS, whose capture shows the
//     same 4-tuple before and after, now arriving from the survivor's MAC;
//     new connections reach both RSs through the survivor. With --no-sync the
//     standby has no copy and the connection is reported lost.
//     The failed balancer comes back at the end, as the standby.
import * as path from 'node:path';
import { DecodedPacket, HostCapture } from '../capture/types';
import { Mode } from '../model/types';
import { run } from '../util/exec';
import { interfaceMac } from '../util/netns';
import { runDir } from '../util/rundir';
import { identityOf } from '../records/netns';
import { conntrackdFiles } from '../ha/conntrackd';
import { nsName } from '../lab/names';
import { BALANCERS, BalancerName, LabHostName, LabTopology, REAL_SERVERS, addressOf } from '../lab/topology';
import { failBalancer, recoverBalancer, vipHolders, vrrpStateOf } from '../lab/ha';
import { LabError } from '../lab/errors';
import { Fact, RequestOutcome, Verdict } from './facts';
import { labAddresses, prepareOutputDirectory } from './judge';
import { captureFilter } from './flow';
import { buildLadder } from '../report/ladder';
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
import type { FailoverReport } from './failover';
import type { LabSyncEngine } from '../lab/lb-config';

/** How long the standby's copy is waited for: IPVS's master flushes a lone connection every 2 s. */
const COPY_WAIT_MS: Record<LabSyncEngine, number> = { conntrackd: 5_000, ipvs: 10_000 };

/** Where the standby's copy of a connection is looked for, per sync engine. */
const COPY_PLACE: Record<LabSyncEngine, string> = {
  conntrackd: "conntrackd's external cache",
  ipvs: 'the IPVS connection table (ipvsadm -Lnc)',
};

/** Whether the standby holds a copy of the client's connection from this port (conntrackd's external cache, or IPVS's table). */
async function standbyHasCopy(
  lab: string,
  standby: BalancerName,
  client: string,
  clientPort: number,
  engine: LabSyncEngine,
): Promise<boolean> {
  const ns = nsName(lab, standby);
  if (engine === 'ipvs') {
    const r = await run(['ipvsadm', '-L', '-n', '-c'], { netns: ns });
    return r.code === 0 && r.stdout.split('\n').some((line) => line.split(/\s+/).includes(`${client}:${clientPort}`));
  }
  const conf = conntrackdFiles(runDir('conntrackd', `net-${identityOf(ns).inode}`)).conf;
  const r = await run(['conntrackd', '-C', conf, '-e'], { netns: ns });
  return r.code === 0 && new RegExp(`sport=${clientPort}\\b`).test(r.stdout);
}

/** The failover verify of a VRRP pair; pcaps into `out` (default ./slbctl-pcaps/LAB/vrrp). */
export async function verifyVrrp(
  lab: string,
  topology: LabTopology,
  mode: Mode,
  /** What copies connections to the standby (engine), and whether it runs (sync false: --no-sync). */
  pair: { engine: LabSyncEngine; sync: boolean },
  k: number,
  out: string | undefined,
): Promise<FailoverReport> {
  const sync = pair.sync ? pair.engine : undefined;
  // What keeps the survivor from picking up a connection it has no copy of.
  const lostGuard = pair.engine === 'ipvs' ? 'net.ipv4.vs.sloppy_tcp=0' : 'conntrack.tcpLoose: false';
  const outDir = path.resolve(out ?? path.join('slbctl-pcaps', lab, 'vrrp'));
  prepareOutputDirectory(outDir);
  const client = addressOf(topology, 'client');
  const { vip, servicePort: port, floatingAddress: floating } = topology;
  const url = `http://${vip}:${port}/`;
  const filter = captureFilter(port);
  const macs = { lb: interfaceMac(nsName(lab, 'lb'), 'eth0'), lb2: interfaceMac(nsName(lab, 'lb2'), 'eth0') };
  const routerMac = interfaceMac(nsName(lab, 'router'), 'br0');
  const fromRouter = (p: DecodedPacket) => p.srcMac === routerMac;
  const nameOfMac = (mac: string | undefined) => BALANCERS.find((b) => macs[b] === mac) ?? (mac === routerMac ? 'router' : (mac ?? '?'));
  const holders = await vipHolders(lab, topology);
  const master = holders.length === 1 ? holders[0] : undefined;
  if (!master) throw new LabError(`lab "${lab}": the VIP is held by ${holders.join(' and ') || 'neither balancer'}, not by one master`);
  const standby = BALANCERS.find((b) => b !== master) as BalancerName;
  // The source a real server sees: the floating address (full NAT) or the client itself (transparent).
  const rsSource = mode === 'fullnat' ? floating : client;
  const facts: Fact[] = [];
  const pcaps: Record<string, string> = {};
  const keep = (captures: HostCapture[], dir: string) => keepCaptures(captures, dir, pcaps);
  const toRs = (p: DecodedPacket, rs: string) => p.ip?.src === rsSource && p.ip.dst === rs && tcp(p)?.dstPort === port;
  const fromRs = (p: DecodedPacket, rs: string) => p.ip?.src === rs && p.ip.dst === rsSource && tcp(p)?.srcPort === port;
  const hosts: Where[] = [
    { label: 'client', host: 'client', device: 'eth0' },
    { label: 'router', host: 'router', device: 'br0' },
    ...REAL_SERVERS.map((h): Where => ({ label: h, host: h, device: 'eth0' })),
  ];

  // 1. Both balancers up.
  let sessions = await captureAll(
    lab,
    [...hosts, { label: 'lb', host: 'lb', device: 'eth0' }, { label: 'lb2', host: 'lb2', device: 'eth0' }],
    filter,
  );
  let before: RequestOutcome[] = [];
  try {
    before = await requestsFrom(lab, url, k);
  } finally {
    await sleep(300);
  }
  let captures = sessions.map((s) => s.stop());
  keep(captures, path.join(outDir, 'both-up'));
  const cap = (host: string) => captures.find((c) => c.host === host)?.packets ?? [];
  const ladder = buildLadder({
    captures: ['client', master, ...REAL_SERVERS].flatMap((h) => captures.filter((c) => c.host === h)),
    addresses: { ...labAddresses(topology), lb: mode === 'fullnat' ? floating : addressOf(topology, master) },
  });
  const routerSyns = cap('router').filter((p) => fromRouter(p) && isClientSyn(p, client, vip, port));
  const synsTo = (b: BalancerName) => routerSyns.filter((p) => p.dstMac === macs[b]).length;
  facts.push({
    fact: `the router sends every client connection to the master (${master}), none to the standby`,
    expected: `${k} client SYNs to ${vip}:${port} leave the router for ${master} (${macs[master]})`,
    seen: `${master}: ${synsTo(master)}, ${standby}: ${synsTo(standby)}`,
    pass: synsTo(master) >= k && synsTo(standby) === 0,
    why: 'both balancers answer ARP for the VIP (two masters), or the router still has the old master in its ARP cache',
  });
  facts.push(answeredFact(before, k));
  const syns = REAL_SERVERS.map((h) => cap(h).filter((p) => toRs(p, addressOf(topology, h)) && tcp(p)?.flags.syn === true).length);
  const clientSeen = [...new Set(before.filter((o) => o.ok).map((o) => o.clientSeen ?? '?'))];
  facts.push({
    fact:
      mode === 'fullnat'
        ? `each real server sees the pair's floating address ${floating} as source, never the client`
        : `each real server sees the client's own address ${client} as source`,
    expected: `SYNs ${rsSource} -> RS:${port} on ${REAL_SERVERS.join(' and ')}; the servers report ${rsSource}`,
    seen: `${REAL_SERVERS.map((h, i) => `${h}: ${syns[i]}`).join(', ')}; reported ${clientSeen.join(', ') || 'nothing'}`,
    pass: syns.every((n) => n > 0) && clientSeen.length === 1 && clientSeen[0] === rsSource,
  });
  const replies = REAL_SERVERS.flatMap((h) => cap(h).filter((p) => fromRs(p, addressOf(topology, h))));
  const replyMacs = [...new Set(replies.map((p) => nameOfMac(p.dstMac)))];
  facts.push({
    fact: `the real servers' replies go back through the master (${master})`,
    expected: `every reply RS:${port} -> ${rsSource} sent to ${master}'s MAC`,
    seen: `${replies.length} replies, to ${replyMacs.join(', ') || 'nobody'}`,
    pass: replies.length > 0 && replyMacs.join() === master,
    why: 'a reply that bypasses the balancer reaches the client with the wrong source: the real servers route it elsewhere',
  });

  // 2. Failover of the master while a connection is open.
  sessions = await captureAll(lab, hosts, filter);
  const live = openHalfRequest(lab, vip, port);
  let failedAt = 0n;
  let vipMovedMs: number | undefined;
  let copied = false;
  let copiedMs: number | undefined;
  let finished: { reply?: string; error?: string } = {};
  let after: RequestOutcome[] = [];
  let livePort: number | undefined;
  let survivorState: string | undefined;
  try {
    livePort = await live.localPort();
    if (livePort === undefined) throw new LabError('the long-lived connection to the VIP did not open');
    if (sync) {
      // IPVS's master thread sends a lone connection at its 2 s flush timer, not at once: up to 10 s for a slow guest.
      const opened = Date.now();
      const deadline = opened + COPY_WAIT_MS[sync];
      while (!copied && Date.now() < deadline) {
        copied = await standbyHasCopy(lab, standby, client, livePort, sync);
        if (!copied) await sleep(50);
      }
      if (copied) copiedMs = Date.now() - opened;
    } else await sleep(500);
    failedAt = BigInt(Date.now()) * 1_000_000n;
    const started = process.hrtime.bigint();
    await failBalancer(lab, master, () => undefined);
    for (let i = 0; i < 250; i++) {
      if ((await vipHolders(lab, topology)).includes(standby)) {
        vipMovedMs = Number(process.hrtime.bigint() - started) / 1e6;
        break;
      }
      await sleep(20);
    }
    survivorState = await vrrpStateOf(lab, standby);
    finished = await live.finish(10_000);
    after = await requestsFrom(lab, url, k);
    await sleep(300);
  } finally {
    live.kill();
    captures = sessions.map((s) => s.stop());
    keep(captures, path.join(outDir, 'failover'));
    if (failedAt > 0n) await recoverBalancer(lab, topology, master, () => undefined);
  }
  if (sync)
    facts.push({
      fact: `before the failure the standby (${standby}) holds a copy of the open connection`,
      expected: `${COPY_PLACE[sync]} on ${standby} has the flow from ${client}:${livePort ?? '?'}`,
      seen: copied ? `copied (seen ${copiedMs ?? '?'} ms after it opened)` : `not there after ${COPY_WAIT_MS[sync] / 1000} s`,
      pass: copied,
      why:
        sync === 'ipvs'
          ? "the IPVS sync daemons do not reach each other (multicast on the sync interface, sync id): see `slbctl status` on both and the controllers' logs in the lab's state dir"
          : "conntrackd does not reach its peer: see the controllers' logs in the lab's state dir",
    });
  facts.push({
    fact: `the standby (${standby}) takes the VIP when the master fails`,
    expected: `${standby} MASTER, holding ${vip}`,
    seen: `${standby} ${survivorState ?? 'in no VRRP state'}${vipMovedMs !== undefined ? `, VIP after ${vipMovedMs.toFixed(0)} ms` : ', VIP not moved in 5 s'}`,
    pass: survivorState === 'MASTER' && vipMovedMs !== undefined,
  });
  // The live connection's RS: the one that answered it, else (a lost connection) the one its SYN reached before the failure.
  const synBefore = (h: LabHostName) =>
    (captures.find((c) => c.host === h)?.packets ?? []).some(
      (p) => toRs(p, addressOf(topology, h)) && tcp(p)?.flags.syn === true && p.tsNanos < failedAt,
    );
  const answeredBy = servedBy(finished.reply);
  const liveRs = REAL_SERVERS.find((h) => h === answeredBy) ?? REAL_SERVERS.find(synBefore);
  facts.push({
    fact: `a connection opened before ${master} failed completes after it`,
    expected: 'the rest of the request is answered',
    seen: finished.reply ? `answered by ${answeredBy ?? '?'}` : `lost: ${finished.error ?? 'no answer'}`,
    pass: finished.reply !== undefined && answeredBy !== undefined,
    why:
      sync === 'ipvs'
        ? 'the survivor had the IPVS copy but did not forward with it; on IPVS the pair needs conntrack.tcpLoose on (with it off the survivor was seen sending the real server nothing for such a flow)'
        : sync
          ? 'the survivor had no usable state for it: conntrackd did not commit the copy to its kernel'
          : `without state sync (--no-sync) the survivor has no state for the connection, and does not pick it up mid-stream (${lostGuard}): the client gets a reset`,
  });
  const rsAddress = liveRs ? addressOf(topology, liveRs) : undefined;
  const rsPackets = captures.find((c) => c.host === liveRs)?.packets ?? [];
  // The live connection at its RS: the only one before the failure (full NAT: its source port is the balancer's).
  const firstSyn = rsPackets.find(
    (p) => rsAddress !== undefined && toRs(p, rsAddress) && tcp(p)?.flags.syn === true && p.tsNanos < failedAt,
  );
  const rsSidePort = tcp(firstSyn ?? ({} as DecodedPacket))?.srcPort;
  const isLive = (p: DecodedPacket) => rsAddress !== undefined && toRs(p, rsAddress) && tcp(p)?.srcPort === rsSidePort;
  facts.push(
    sameServerFact({
      packets: rsPackets.filter(isLive),
      failedAt,
      expected: `${rsSource}:${rsSidePort ?? '?'} -> ${liveRs ?? 'its RS'}:${port}`,
      failed: master,
      failedMac: macs[master],
      survivor: standby,
      survivorMac: macs[standby],
      nameOfMac,
      found: rsSidePort !== undefined,
    }),
  );
  facts.push(
    newConnectionsFact({
      after,
      k,
      routerSyns: (captures.find((c) => c.host === 'router')?.packets ?? []).filter(
        (p) => p.tsNanos >= failedAt && fromRouter(p) && isClientSyn(p, client, vip, port),
      ),
      failed: master,
      failedMac: macs[master],
      survivor: standby,
    }),
  );
  const verdict: Verdict = {
    mode,
    title: `${mode} on a VRRP pair${sync === 'ipvs' ? ', IPVS sync daemons' : sync ? ', conntrackd sync' : ', no state sync'} (failover)`,
    pass: facts.every((f) => f.pass),
    facts,
  };
  return {
    verdict,
    requests: [...before, ...after],
    pcaps,
    ladder,
    timings: { ...(vipMovedMs !== undefined ? { vipMovedMs } : {}), ...(copiedMs !== undefined ? { copiedMs } : {}) },
  };
}
