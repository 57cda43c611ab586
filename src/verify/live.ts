// What the verifies of a lab of two balancers share (failover.ts: BGP ECMP,
// vrrp.ts: VRRP): captures opened on several hosts at once, requests from the
// client, and a connection held open across a failure.
import { spawn } from 'node:child_process';
import { startCapture, CaptureSession } from '../capture/capture';
import { DecodedPacket } from '../capture/types';
import { run } from '../util/exec';
import { nsName } from '../lab/names';
import { BalancerName } from '../lab/topology';
import { RequestOutcome } from './facts';
import { curlArgv, curlOutcome } from './judge';

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

/** A connection from the client that sends half a request, then the rest when told; its local port is known once connected. */
export function openHalfRequest(lab: string, vip: string, port: number) {
  const script = [
    "const net = require('net');",
    'const s = net.connect(Number(process.argv[2]), process.argv[1], () => {',
    "  s.write('GET / HTTP/1.1\\r\\nHost: vip\\r\\n'); process.stdout.write('port ' + s.localPort + '\\n');",
    '});',
    "let buf = ''; s.on('data', (d) => { buf += d; }); s.on('close', () => { process.stdout.write('reply ' + JSON.stringify(buf) + '\\n'); process.exit(0); });",
    "s.on('error', (e) => { process.stdout.write('error ' + e.message + '\\n'); process.exit(1); });",
    "process.stdin.on('data', () => s.write('\\r\\n'));",
  ].join('\n');
  const child = spawn('ip', ['netns', 'exec', nsName(lab, 'client'), process.execPath, '-e', script, vip, String(port)], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<void>((resolve) => child.on('close', () => resolve()));
  return {
    async localPort(): Promise<number | undefined> {
      for (let i = 0; i < 200; i++) {
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
