// What the verifies of a lab of two balancers share (failover.ts: BGP ECMP,
// vrrp.ts: VRRP): captures opened on several hosts at once, requests from the
// client, and a connection held open across a failure.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { startCapture, writeHostCapture, CaptureSession } from '../capture/capture';
import { DecodedPacket, HostCapture } from '../capture/types';
import { run } from '../util/exec';
import { nsName } from '../lab/names';
import { BalancerName, REAL_SERVERS } from '../lab/topology';
import { Fact, RequestOutcome } from './facts';
import { curlArgv, curlOutcome, writingOutput } from './judge';

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface Where {
  label: string;
  host: 'client' | 'router' | BalancerName | 'rs1' | 'rs2';
  device: string;
}

/** A capture on each host, live before the caller's first packet. */
export async function captureAll(lab: string, where: readonly Where[], filter: string): Promise<CaptureSession[]> {
  const sessions = where.map((w) => startCapture({ host: w.label, netns: nsName(lab, w.host), device: w.device, filter }));
  await sleep(200);
  return sessions;
}

/** Write each capture's pcap into `dir`, and name it in `pcaps` as "DIR-BASENAME/HOST". */
export function keepCaptures(captures: readonly HostCapture[], dir: string, pcaps: Record<string, string>): void {
  fs.mkdirSync(dir, { recursive: true });
  for (const c of captures) {
    writingOutput(() => writeHostCapture(c, dir));
    pcaps[`${path.basename(dir)}/${c.host}`] = c.pcapPath ?? '';
  }
}

/** One curl from the lab's client. */
export async function request(lab: string, url: string): Promise<RequestOutcome> {
  const r = await run(curlArgv(url), { netns: nsName(lab, 'client'), timeoutMs: 5000 });
  return curlOutcome(r.code, r.stdout, r.stderr);
}

/** k curls from the lab's client, one after the other. */
export async function requestsFrom(lab: string, url: string, k: number): Promise<RequestOutcome[]> {
  const out: RequestOutcome[] = [];
  for (let i = 0; i < k; i++) out.push(await request(lab, url));
  return out;
}

/**
 * The client's side of a connection held across a failure, run by node on the client (argv: VIP PORT): sends half
 * a request, prints its local port, sends the rest when a line comes on stdin, prints the reply.
 */
export const HALF_REQUEST_SCRIPT = [
  "const net = require('net');",
  'const s = net.connect(Number(process.argv[2]), process.argv[1], () => {',
  "  s.write('GET / HTTP/1.1\\r\\nHost: vip\\r\\n'); process.stdout.write('port ' + s.localPort + '\\n');",
  '});',
  "let buf = ''; s.on('data', (d) => { buf += d; }); s.on('close', () => { process.stdout.write('reply ' + JSON.stringify(buf) + '\\n'); process.exit(0); });",
  "s.on('error', (e) => { process.stdout.write('error ' + e.message + '\\n'); process.exit(1); });",
  "process.stdin.on('data', () => s.write('\\r\\n'));",
].join('\n');

export interface HalfRequest {
  localPort(): Promise<number | undefined>;
  finish(timeoutMs: number): Promise<{ reply?: string; error?: string }>;
  kill(): void;
}

/** A connection from the client that sends half a request, then the rest when told; its local port is known once connected. */
export function openHalfRequest(lab: string, vip: string, port: number): HalfRequest {
  const child = spawn('ip', ['netns', 'exec', nsName(lab, 'client'), process.execPath, '-e', HALF_REQUEST_SCRIPT, vip, String(port)], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  return halfRequestOf(child);
}

/** The HalfRequest of a process running HALF_REQUEST_SCRIPT (here, or on a VM through ssh). */
export function halfRequestOf(child: ChildProcessWithoutNullStreams, connectTimeoutMs = 5000): HalfRequest {
  let output = '';
  child.stdout.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<void>((resolve) => child.on('close', () => resolve()));
  return {
    async localPort(): Promise<number | undefined> {
      for (let i = 0; i < connectTimeoutMs / 25; i++) {
        const m = /port (\d+)/.exec(output);
        if (m) return Number(m[1]);
        if (/error/.test(output)) return undefined;
        await sleep(25);
      }
      return undefined;
    },
    async finish(timeoutMs: number): Promise<{ reply?: string; error?: string }> {
      child.stdin.write('go\n');
      await Promise.race([exited, sleep(timeoutMs)]);
      child.kill();
      const reply = /reply (".*")/.exec(output)?.[1];
      if (reply) return { reply: JSON.parse(reply) as string };
      return { error: /error (.*)/.exec(output)?.[1] ?? `no reply within ${timeoutMs / 1000} s` };
    },
    kill(): void {
      child.kill();
    },
  };
}

export const tcp = (p: DecodedPacket) => (p.transport?.kind === 'tcp' ? p.transport : undefined);
export const isClientSyn = (p: DecodedPacket, client: string, vip: string, port: number) =>
  p.ip?.src === client && p.ip.dst === vip && tcp(p)?.dstPort === port && tcp(p)?.flags.syn === true && tcp(p)?.flags.ack === false;

/** The real server named in an answer's body ("rs1 ..."), as the lab's servers write it. */
export const servedBy = (reply: string | undefined): string | undefined => /^(rs\d)\b/.exec(reply?.split('\r\n\r\n')[1] ?? '')?.[1];

/** Every one of the k requests answered, by both real servers. */
export function answeredFact(outcomes: readonly RequestOutcome[], k: number): Fact {
  const ok = outcomes.filter((o) => o.ok);
  const served = new Set(ok.map((o) => o.realServer));
  return {
    fact: 'every request answered, by both real servers',
    expected: `${k} answers from ${REAL_SERVERS.join(' and ')}`,
    seen: `${ok.length} answers from ${[...served].join(', ') || 'none'}`,
    pass: ok.length === k && REAL_SERVERS.every((h) => served.has(h)),
  };
}

/**
 * The live connection at its real server (`packets`: its packets there): before the failure it came from the
 * failed balancer's MAC only, after it from the survivor's only.
 */
export function sameServerFact(o: {
  packets: readonly DecodedPacket[];
  failedAt: bigint;
  expected: string;
  failed: string;
  failedMac: string | undefined;
  survivor: string;
  survivorMac: string;
  nameOfMac: (mac: string | undefined) => string;
  /** Whether the connection was found at all (its RS and ports known). */
  found: boolean;
}): Fact {
  const before = o.packets.filter((p) => p.tsNanos < o.failedAt);
  const after = o.packets.filter((p) => p.tsNanos >= o.failedAt);
  const macs = (ps: DecodedPacket[]) => [...new Set(ps.map((p) => o.nameOfMac(p.srcMac)))].join(', ') || 'none';
  return {
    fact: 'the same real server gets the connection before and after, now through the survivor',
    expected: `${o.expected}: before from ${o.failed}, after from ${o.survivor}`,
    seen: `${before.length} packets before (from ${macs(before)}), ${after.length} after (from ${macs(after)})`,
    pass:
      o.found &&
      o.failedMac !== undefined &&
      before.length > 0 &&
      after.length > 0 &&
      before.every((p) => p.srcMac === o.failedMac) &&
      after.every((p) => p.srcMac === o.survivorMac),
  };
}

/** New connections after the failure: k answers from both real servers, and no client SYN (`routerSyns`, seen leaving the router after it) sent to the failed balancer. */
export function newConnectionsFact(o: {
  after: readonly RequestOutcome[];
  k: number;
  routerSyns: readonly DecodedPacket[];
  failed: string;
  failedMac: string | undefined;
  survivor: string;
}): Fact {
  const ok = o.after.filter((r) => r.ok);
  const served = new Set(ok.map((r) => r.realServer));
  const toFailed = o.routerSyns.filter((p) => o.failedMac !== undefined && p.dstMac === o.failedMac).length;
  return {
    fact: 'new connections after the failure reach both real servers through the survivor',
    expected: `${o.k} answers from ${REAL_SERVERS.join(' and ')}, no SYN sent to ${o.failed}`,
    seen: `${ok.length} answers from ${[...served].join(', ') || 'none'}; SYNs to ${o.survivor}: ${o.routerSyns.length - toFailed}, to ${o.failed}: ${toFailed}`,
    pass: ok.length === o.k && REAL_SERVERS.every((h) => served.has(h)) && toFailed === 0,
  };
}
