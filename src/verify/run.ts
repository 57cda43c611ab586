// `lab verify`: capture on the client, the balancer and both real servers at
// once (one process, each capture opened inside its host's namespace), drive
// real HTTP requests from the client with curl, write one pcap per host and
// judge the mode's packet facts.
import * as path from 'node:path';
import { startCapture, writeHostCapture, CaptureSession } from '../capture/capture';
import { HostCapture } from '../capture/types';
import { Encapsulation, Mode } from '../model/types';
import { run } from '../util/exec';
import { LabHostName, LabTopology, REAL_SERVERS, REFERENCE_TOPOLOGY, addressOf, hostOf } from '../lab/topology';
import { nsName, readLabState } from '../lab/netns';
import { requireLabUp } from '../lab/mode';
import { LabError } from '../lab/errors';
import { judge, RequestOutcome, Verdict } from './facts';
import { UnsafePathError, trustedDirectory } from '../util/safe-write';

export interface VerifyOptions {
  lab: string;
  mode: Mode;
  requests: number;
  outDir: string;
  topology: LabTopology;
  encapsulation?: Encapsulation;
}

export interface VerifyReport {
  verdict: Verdict;
  requests: RequestOutcome[];
  pcaps: Record<string, string>;
}

export const CAPTURED_HOSTS: LabHostName[] = ['client', 'lb', ...REAL_SERVERS];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** One curl run (`-o - -w '\n%{http_code}'`) turned into a request outcome. */
export function curlOutcome(code: number, stdout: string, stderr: string): RequestOutcome {
  const lines = stdout.trimEnd().split('\n');
  const status = lines.pop() ?? '';
  const body = lines.join('\n');
  const m = /^(\S+) saw client ([0-9.]+):\d+/.exec(body);
  if (code !== 0 || status !== '200') return { ok: false, error: stderr.trim().replace(/^curl: /, '') || `HTTP ${status}` };
  const outcome: RequestOutcome = { ok: true };
  if (m?.[1]) outcome.realServer = m[1];
  if (m?.[2]) outcome.clientSeen = m[2];
  return outcome;
}

/** curl's arguments for one lab request. */
export function curlArgv(url: string): string[] {
  return ['curl', '-s', '-S', '--max-time', '2', '--connect-timeout', '2', '-o', '-', '-w', '\n%{http_code}', url];
}

/** What the captures filter: the service's packets, and IP-in-IP for tunnelled DSR. */
export function captureFilter(port: number): string {
  return `tcp port ${port} or udp port ${port} or ip proto 4`;
}

/**
 * Run a step that writes under the output directory; a refusal to write
 * through a planted link is a lab operation that failed (exit 5), in its own
 * sentence.
 */
export function writingOutput<T>(step: () => T): T {
  try {
    return step();
  } catch (e) {
    if (e instanceof UnsafePathError) throw new LabError(e.message);
    throw e;
  }
}

/** Make (or check) the directory the pcaps go to, before anything is captured. */
export function prepareOutputDirectory(dir: string): string {
  return writingOutput(() => trustedDirectory(dir));
}

async function request(lab: string, url: string): Promise<RequestOutcome> {
  const r = await run(curlArgv(url), { netns: nsName(lab, 'client'), timeoutMs: 5000 });
  return curlOutcome(r.code, r.stdout, r.stderr);
}

/** Judge the captures of the client, the LB and the real servers against the mode's facts. */
export function judgeLab(mode: Mode, topology: LabTopology, captures: HostCapture[], requests: RequestOutcome[], encapsulation: Encapsulation): Verdict {
  const byHost = (h: string) => {
    const c = captures.find((x) => x.host === h);
    if (!c) throw new Error(`no capture of ${h}`);
    return c;
  };
  const realServers: Record<string, string> = {};
  for (const h of REAL_SERVERS) realServers[h] = addressOf(topology, h);
  return judge({
    mode,
    addresses: { client: addressOf(topology, 'client'), lb: addressOf(topology, 'lb'), vip: topology.vip, port: topology.servicePort, realServers },
    client: byHost('client'),
    lb: byHost('lb'),
    realServers: REAL_SERVERS.map(byHost),
    requests,
    expectedRealServers: [...REAL_SERVERS],
    encapsulation,
  });
}

export async function verifyLab(o: VerifyOptions): Promise<VerifyReport> {
  const port = o.topology.servicePort;
  const filter = captureFilter(port);
  // Checked first: a directory that cannot be written safely fails before a minute of capturing.
  prepareOutputDirectory(o.outDir);
  const sessions: CaptureSession[] = [];
  let captures: HostCapture[] = [];
  const requests: RequestOutcome[] = [];
  try {
    for (const host of CAPTURED_HOSTS) {
      const device = hostOf(o.topology, host).interfaces[0]?.name ?? 'eth0';
      sessions.push(startCapture({ host, netns: nsName(o.lab, host), device, filter }));
    }
    await sleep(200); // the capture sockets are live before the first SYN
    const url = `http://${o.topology.vip}:${port}/`;
    for (let i = 0; i < o.requests; i++) requests.push(await request(o.lab, url));
    await sleep(300); // let the last FIN/ACKs land in every capture
  } finally {
    captures = sessions.map((s) => s.stop());
  }
  const pcaps: Record<string, string> = {};
  for (const c of captures) pcaps[c.host] = writingOutput(() => writeHostCapture(c, o.outDir));
  const verdict = judgeLab(o.mode, o.topology, captures, requests, o.encapsulation ?? 'none');
  return { verdict, requests, pcaps };
}

/** verify against the lab's applied mode (or the one asked for). */
export async function verifyLabMode(lab: string, mode: Mode | undefined, requests: number, out: string | undefined): Promise<VerifyReport> {
  await requireLabUp(lab);
  const state = await readLabState(lab);
  const applied = state?.mode as Mode | undefined;
  const judged = mode ?? applied;
  const encapsulation = state?.encapsulation === 'ipip' && judged === 'dsr' ? 'ipip' : 'none';
  if (!judged) throw new LabError(`no mode is applied in lab "${lab}"; run \`slbctl lab mode MODE --name ${lab}\` or pass --mode`);
  const outDir = path.resolve(out ?? path.join('slbctl-pcaps', lab, judged));
  return verifyLab({ lab, mode: judged, requests, outDir, topology: REFERENCE_TOPOLOGY, encapsulation });
}
