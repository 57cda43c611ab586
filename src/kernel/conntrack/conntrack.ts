// The balancer's connection-tracking entries for the real servers of
// nftables services, through the conntrack tool (argument arrays only):
// counted for drain and status, deleted to stop UDP datagrams going to a
// dead server. One listing serves every service.
import { RealServerState, ServiceState } from '../../model/state';
import { Protocol } from '../../model/types';
import { findCommand, run } from '../../util/exec';

export interface Flow {
  protocol: Protocol;
  /** TCP state; UDP has none. */
  state?: string;
  origDst: string;
  origDport: number;
  replySrc: string;
  replySport: number;
  /** Where the reply goes: the client, or with full NAT the source address the flow was given. */
  replyDst: string;
}

export type Counts = { active: number; inactive: number };

/** Parse `conntrack -L` lines: the first src/dst/sport/dport group is the original direction, the second the reply. */
export function parseFlows(text: string): Flow[] {
  const flows: Flow[] = [];
  for (const line of text.split('\n')) {
    const m = /^(tcp|udp)\s+\d+\s+\d+\s+(?:([A-Z_]+)\s+)?(.*)$/.exec(line.trim());
    if (!m) continue;
    const fields = [...m[3].matchAll(/\b(src|dst|sport|dport)=(\S+)/g)].map((x) => [x[1], x[2]] as [string, string]);
    const dst = fields.filter(([k]) => k === 'dst');
    const src = fields.filter(([k]) => k === 'src');
    const dport = fields.filter(([k]) => k === 'dport');
    const sport = fields.filter(([k]) => k === 'sport');
    if (dst.length < 2 || src.length < 2 || dport.length < 2 || sport.length < 2) continue;
    flows.push({
      protocol: m[1] as Protocol,
      ...(m[2] ? { state: m[2] } : {}),
      origDst: dst[0][1],
      origDport: Number(dport[0][1]),
      replySrc: src[1][1],
      replySport: Number(sport[1][1]),
      replyDst: dst[1][1],
    });
  }
  return flows;
}

/** Every tracked TCP and UDP flow, or undefined when the conntrack tool is missing. */
export async function listFlows(): Promise<Flow[] | undefined> {
  if (!findCommand('conntrack')) return undefined;
  const out: Flow[] = [];
  for (const p of ['tcp', 'udp']) {
    const res = await run(['conntrack', '-L', '-p', p]);
    if (res.code !== 0) return undefined;
    out.push(...parseFlows(res.stdout));
  }
  return out;
}

/** TCP: established flows are active, the others (closing, time-wait) inactive; UDP flows are all active. */
export function countFor(
  flows: readonly Flow[],
  s: Pick<ServiceState, 'protocol' | 'vip' | 'port'>,
  r: Pick<RealServerState, 'address' | 'port'>,
): Counts {
  let active = 0;
  let inactive = 0;
  for (const f of flows) {
    if (f.protocol !== s.protocol || f.origDst !== s.vip || f.origDport !== s.port || f.replySrc !== r.address || f.replySport !== r.port)
      continue;
    if (f.protocol === 'udp' || f.state === 'ESTABLISHED') active++;
    else inactive++;
  }
  return { active, inactive };
}

/** Delete the flows of one real server of a service; the number deleted, or undefined when the conntrack tool is missing. */
export async function expireUdpFlows(s: ServiceState, r: RealServerState): Promise<number | undefined> {
  if (!findCommand('conntrack')) return undefined;
  const res = await run([
    'conntrack',
    '-D',
    '-p',
    s.protocol,
    '--orig-dst',
    s.vip,
    '--orig-port-dst',
    String(s.port),
    '--reply-src',
    r.address,
    '--reply-port-src',
    String(r.port),
  ]);
  const m = /(\d+) flow entries have been deleted/.exec(res.stderr);
  return m ? Number(m[1]) : 0;
}
