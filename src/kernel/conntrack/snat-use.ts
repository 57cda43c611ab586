// How full each source-NAT address of the fullnat services is: the tracked
// flows whose replies go to it, against the ports it has. Pure.
// A flow through full NAT is unique by its reply (real server address and
// port, source address and port), so each source address has its port range
// once per real server: that is its capacity. Closed connections count until
// conntrack forgets them (TIME_WAIT: 120 s unless `conntrack.tcpTimeWait`).
import { ServiceState } from '../../model/state';
import { realServerKey, serviceKey, snatPortRange } from '../../model/types';
import { Flow } from './conntrack';

export interface SnatUse {
  address: string;
  /** The services that source-NAT to it. */
  services: string[];
  /** Tracked flows that use it (established, closing and TIME_WAIT alike). */
  used: number;
  /** Its port range times the real servers it reaches. */
  capacity: number;
  /** used / capacity. */
  ratio: number;
}

/** The share of a source address's ports past which the controller warns. */
export const SNAT_WARN_RATIO = 0.8;

/** Each source address of the fullnat services, with its use; in the order the services name them. */
export function snatUse(services: readonly ServiceState[], flows: readonly Flow[]): SnatUse[] {
  const byAddress = new Map<string, { services: string[]; targets: Set<string>; ports: number; vips: Set<string> }>();
  for (const s of services) {
    if (s.mode !== 'fullnat' || !s.snatAddress) continue;
    const range = snatPortRange(s.snatPorts);
    for (const address of s.snatPool ?? [s.snatAddress]) {
      let a = byAddress.get(address);
      if (!a) byAddress.set(address, (a = { services: [], targets: new Set(), ports: 0, vips: new Set() }));
      a.services.push(serviceKey(s));
      a.vips.add(`${s.protocol} ${s.vip}:${s.port}`);
      for (const r of s.realServers) a.targets.add(realServerKey(r));
      a.ports = Math.max(a.ports, range.high - range.low + 1);
    }
  }
  const used = new Map<string, number>();
  for (const f of flows) {
    const a = byAddress.get(f.replyDst);
    if (a?.vips.has(`${f.protocol} ${f.origDst}:${f.origDport}`)) used.set(f.replyDst, (used.get(f.replyDst) ?? 0) + 1);
  }
  return [...byAddress].map(([address, a]) => {
    const capacity = a.ports * a.targets.size;
    const n = used.get(address) ?? 0;
    return { address, services: a.services, used: n, capacity, ratio: capacity > 0 ? n / capacity : 0 };
  });
}
