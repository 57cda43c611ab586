// The balancer's connection-tracking entries for one real server of an
// nftables service, through the conntrack tool (argument arrays only):
// counted for drain, deleted to stop UDP datagrams going to a dead server.
import { RealServerState, ServiceState } from '../model/state';
import { findCommand, run } from '../util/exec';

function filter(s: ServiceState, r: RealServerState): string[] {
  return ['-p', s.protocol, '--orig-dst', s.vip, '--orig-port-dst', String(s.port), '--reply-src', r.address, '--reply-port-src', String(r.port)];
}

/** Delete the entries; the number deleted, or undefined when the conntrack tool is missing. */
export async function expireUdpFlows(s: ServiceState, r: RealServerState): Promise<number | undefined> {
  if (!findCommand('conntrack')) return undefined;
  const res = await run(['conntrack', '-D', ...filter(s, r)]);
  const m = /(\d+) flow entries have been deleted/.exec(res.stderr);
  return m ? Number(m[1]) : 0;
}

/** TCP: established entries are active, the others (closing, time-wait) inactive; UDP entries are all active. */
export async function countFlows(s: ServiceState, r: RealServerState): Promise<{ active: number; inactive: number } | undefined> {
  if (!findCommand('conntrack')) return undefined;
  const res = await run(['conntrack', '-L', ...filter(s, r)]);
  if (res.code !== 0) return undefined;
  let active = 0;
  let inactive = 0;
  for (const line of res.stdout.split('\n')) {
    if (!line.trim()) continue;
    if (s.protocol === 'udp' || /\bESTABLISHED\b/.test(line)) active++;
    else inactive++;
  }
  return { active, inactive };
}
