// What the lab's HTTP benchmarks (l7.ts, dataplane.ts) share: wrk from the
// client namespace, its report, the lab tuning for many short connections
// and tool versions.
import { nsName } from '../../src/lab/netns';
import { run, runChecked, RunResult } from '../../src/util/exec';

/** HTTP keep-alive (wrk's default) and a new connection per request. */
export const KINDS = ['keep-alive', 'close'] as const;
export type Kind = (typeof KINDS)[number];

export interface WrkFigures {
  requests: number;
  requestsPerSecond: number;
  /** Socket errors and non-2xx/3xx answers. */
  errors: number;
}

/** The figures of wrk's report that the benches use. */
export function parseWrk(text: string): WrkFigures {
  const requests = /(\d+) requests in/.exec(text);
  const rate = /Requests\/sec:\s*([\d.]+)/.exec(text);
  if (!requests || !rate) throw new Error(`wrk: no figures in ${JSON.stringify(text.slice(0, 500))}`);
  const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(text);
  const status = /Non-2xx or 3xx responses: (\d+)/.exec(text);
  const errors = (socket ? socket.slice(1).reduce((a, b) => a + Number(b), 0) : 0) + (status ? Number(status[1]) : 0);
  return { requests: Number(requests[1]), requestsPerSecond: Number(rate[1]), errors };
}

/** wrk with one thread. */
export function wrkArgv(url: string, kind: Kind, seconds: number, connections: number): string[] {
  return ['wrk', '-t1', `-c${connections}`, `-d${seconds}s`, ...(kind === 'close' ? ['-H', 'Connection: close'] : []), url];
}

/** wrk with one thread from the lab's client namespace. */
export function runWrk(lab: string, url: string, kind: Kind, seconds: number, connections: number): Promise<RunResult> {
  return runChecked(`wrk ${url}`, wrkArgv(url, kind, seconds, connections), {
    netns: nsName(lab, 'client'),
    timeoutMs: (seconds + 30) * 1000,
  });
}

/** The tuning tuneForManyConnections applies, for the benches' reports. */
export const MANY_CONNECTIONS_TUNING =
  'client and LB namespaces: ip_local_port_range 1024-65535, tcp_tw_reuse=1; LB: nf_conntrack_tcp_timeout_time_wait=1';

/**
 * One client address opening thousands of connections a second would
 * otherwise measure port exhaustion, not the path: the client's and the
 * balancer's ephemeral ports sit in TIME_WAIT for 60 s (and connect() then
 * searches the whole range), and the balancer's conntrack keeps closed
 * connections for 120 s, so full NAT runs out of source ports and drops SYNs.
 * Only the bench's own lab namespaces are changed.
 */
export async function tuneForManyConnections(lab: string): Promise<void> {
  for (const h of ['client', 'lb'] as const)
    for (const setting of MANY_CONNECTIONS_SETTINGS[h])
      await runChecked(`sysctl ${setting}`, ['sysctl', '-qw', setting], { netns: nsName(lab, h) });
}

/** The sysctls of tuneForManyConnections, by lab host (the Vagrant bench applies them in its VMs). */
export const MANY_CONNECTIONS_SETTINGS: Record<'client' | 'lb', readonly string[]> = {
  client: ['net.ipv4.ip_local_port_range=1024 65535', 'net.ipv4.tcp_tw_reuse=1'],
  lb: ['net.ipv4.ip_local_port_range=1024 65535', 'net.ipv4.tcp_tw_reuse=1', 'net.netfilter.nf_conntrack_tcp_timeout_time_wait=1'],
};

/** The first line a tool prints about its version (`haproxy -v`, `nginx -v`: some print it on stderr). */
export async function toolVersion(argv: string[]): Promise<string> {
  const r = await run(argv);
  return `${r.stdout}${r.stderr}`.trim().split('\n')[0] ?? '?';
}
