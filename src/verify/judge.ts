// What every lab provider's verify shares: curl's outcome per request, the
// safe output directory, and the judgement of the captures. Pure but for the
// directory check.
import { HostCapture } from '../capture/types';
import { Encapsulation, Mode } from '../model/types';
import { LabTopology, REAL_SERVERS, addressOf } from '../lab/topology';
import { LabError } from '../lab/errors';
import { labModeTitle } from '../lab/lb-config';
import { judge, LabAddresses, RequestOutcome, ServiceTypeExpectation, Verdict } from './facts';
import { UnsafePathError, trustedDirectory } from '../util/safe-write';

/** One curl run (`-o - -w '\n%{http_code}'`) turned into a request outcome. */
export function curlOutcome(code: number, stdout: string, stderr: string): RequestOutcome {
  const lines = stdout.trimEnd().split('\n');
  const status = lines.pop() ?? '';
  const body = lines.join('\n');
  const m = /^(\S+) saw client ([0-9.]+):\d+/.exec(body);
  // The static object (the cache check) names only the RS that made it.
  const fromStatic = /^static \S+ from (\S+)$/.exec(body.trim())?.[1];
  if (code !== 0 || status !== '200') return { ok: false, error: stderr.trim().replace(/^curl: /, '') || `HTTP ${status}` };
  const outcome: RequestOutcome = { ok: true };
  if (m?.[1]) outcome.realServer = m[1];
  else if (fromStatic) outcome.realServer = fromStatic;
  if (m?.[2]) outcome.clientSeen = m[2];
  return outcome;
}

/** curl's arguments for one lab request (https: the lab's balancer has a self-signed certificate). */
export function curlArgv(url: string): string[] {
  const insecure = url.startsWith('https:') ? ['-k'] : [];
  return ['curl', '-s', '-S', ...insecure, '--max-time', '2', '--connect-timeout', '2', '-o', '-', '-w', '\n%{http_code}', url];
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

/** The port clients use: the lab serves https on 443, everything else on the service port. */
export function clientPort(topology: LabTopology, protocol: ServiceTypeExpectation['protocol']): number {
  return protocol === 'https' ? 443 : topology.servicePort;
}

/** The lab's addresses and ports as verify judges them. */
export function labAddresses(topology: LabTopology, serviceType?: ServiceTypeExpectation): LabAddresses {
  const realServers: Record<string, string> = {};
  for (const h of REAL_SERVERS) realServers[h] = addressOf(topology, h);
  return {
    client: addressOf(topology, 'client'),
    lb: addressOf(topology, 'lb'),
    vip: topology.vip,
    port: serviceType ? clientPort(topology, serviceType.protocol) : topology.servicePort,
    rsPort: topology.servicePort,
    realServers,
  };
}

/** Judge the captures of the client, the LB and the real servers against the mode's facts. */
export function judgeLab(
  mode: Mode,
  topology: LabTopology,
  captures: HostCapture[],
  requests: RequestOutcome[],
  encapsulation: Encapsulation,
  serviceType?: ServiceTypeExpectation,
): Verdict {
  const byHost = (h: string) => {
    const c = captures.find((x) => x.host === h);
    if (!c) throw new Error(`no capture of ${h}`);
    return c;
  };
  const verdict = judge({
    mode,
    addresses: labAddresses(topology, serviceType),
    client: byHost('client'),
    lb: byHost('lb'),
    realServers: REAL_SERVERS.map(byHost),
    requests,
    expectedRealServers: [...REAL_SERVERS],
    encapsulation,
    ...(serviceType ? { serviceType } : {}),
  });
  return serviceType && mode !== 'dsr' ? { ...verdict, title: labModeTitle(mode, serviceType) } : verdict;
}
