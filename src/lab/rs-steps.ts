// The real servers' side of each mode, as data: one list of steps (argument
// arrays) that every lab provider runs with its own runner: `ip netns exec`
// in the netns lab (and inside user-mode-linux), ssh on the VMs. Each list
// first undoes whatever another mode set, so modes can follow one another.
import { Encapsulation, Mode } from '../model/types';
import { LabHostName, LabTopology, addressOf, hostOf } from './topology';

export interface Step {
  argv: string[];
  /** A step that may fail (undoing what may not be there); `note` says what it did when it did not. */
  mayFail?: boolean;
  note?: string;
}

/** Where a real server sits, as its provider sees it. */
export interface RealServerPlace {
  /** The interface facing the balancer. */
  device: string;
  /**
   * How replies reach the client network when they do not go through the
   * balancer: the host's default route via the router (namespaces), or a
   * route to the client network alone (VMs, whose default route is their
   * management NIC).
   */
  clientRoute: 'default' | 'client-net';
  /** Whether the step may load the ipip module (a VM may; a namespace cannot). */
  canLoadModules: boolean;
}

const sysctl = (key: string, value: string): Step => ({ argv: ['sysctl', '-qw', `${key}=${value}`] });

function routerOf(topology: LabTopology): string {
  const router = hostOf(topology, 'router')
    .interfaces.find((i) => i.segment === 'server-net')
    ?.cidr.split('/')[0];
  if (!router) throw new Error('lab topology: the router has no server-net address');
  return router;
}

/** The steps that put one real server into a mode, and what they amount to, in words. Pure. */
export function realServerSteps(
  mode: Mode,
  topology: LabTopology,
  encapsulation: Encapsulation,
  place: RealServerPlace,
  /** The balancer's address as the real servers see it: lb's own, or the pair's floating address under VRRP. */
  lb: string = addressOf(topology, 'lb'),
): { reset: Step[]; own: Step[]; words: string } {
  const dev = place.device;
  const router = routerOf(topology);
  const lbWords = lb === addressOf(topology, 'lb') ? "the LB's own address" : "the balancers' floating address";
  const reset: Step[] = [
    // The VIP goes first, before ARP is relaxed again, so the RS never answers ARP for it.
    { argv: ['ip', 'addr', 'del', `${topology.vip}/32`, 'dev', 'lo'], mayFail: true, note: 'VIP off lo' },
    ...['all', dev].flatMap((s) => [sysctl(`net.ipv4.conf.${s}.arp_ignore`, '0'), sysctl(`net.ipv4.conf.${s}.arp_announce`, '0')]),
    // tunl0 exists only where the ipip module is loaded; down is its resting state.
    { argv: ['ip', 'link', 'set', 'tunl0', 'down'], mayFail: true },
  ];
  if (place.clientRoute === 'default') {
    reset.push({ argv: ['ip', 'route', 'del', topology.clientNet], mayFail: true, note: `route ${topology.clientNet} removed` });
    reset.push({ argv: ['ip', 'route', 'replace', 'default', 'via', router] });
  } else {
    reset.push({ argv: ['ip', 'route', 'replace', topology.clientNet, 'via', router, 'dev', dev] });
  }
  const own: Step[] = [];
  let words: string;
  if (mode === 'transparent') {
    // The RS sees the client's own address, so its reply must go back through the balancer (which undoes the DNAT).
    own.push({
      argv: ['ip', 'route', 'replace', topology.clientNet, 'via', lb, ...(place.clientRoute === 'client-net' ? ['dev', dev] : [])],
    });
    words = `route ${topology.clientNet} via ${lb} (${lbWords})`;
  } else if (mode === 'dsr') {
    // The RS must accept packets addressed to the VIP, but only the LB may own it on the segment: arp_ignore=1
    // answers ARP only for addresses on the receiving interface (not lo), arp_announce=2 never uses the VIP as
    // ARP source. Set before the VIP appears.
    own.push(
      ...['all', dev].flatMap((s) => [sysctl(`net.ipv4.conf.${s}.arp_ignore`, '1'), sysctl(`net.ipv4.conf.${s}.arp_announce`, '2')]),
    );
    own.push({ argv: ['ip', 'addr', 'add', `${topology.vip}/32`, 'dev', 'lo'] });
    words = `VIP ${topology.vip}/32 on lo, arp_ignore=1 arp_announce=2 (all, ${dev}); replies from the VIP via the router ${router}`;
    if (encapsulation === 'ipip') {
      // The client's packet arrives wrapped in IP-in-IP from the LB and is unwrapped on tunl0; its source (the
      // client) is routed back via the LB-facing interface, so reverse-path filtering must not drop it there.
      if (place.canLoadModules) own.push({ argv: ['modprobe', 'ipip'] });
      own.push({ argv: ['ip', 'link', 'set', 'tunl0', 'up'] });
      own.push(...['all', 'tunl0', dev].map((s) => sysctl(`net.ipv4.conf.${s}.rp_filter`, '0')));
      words += '; tunl0 up (IP-in-IP from the LB is unwrapped there), rp_filter=0';
    }
  } else {
    words = `nothing more (the RS answers ${lbWords} ${lb})`;
  }
  return { reset, own, words };
}

/** Two lines for a real server once its steps ran: what the reset undid (`resetDone`: which reset steps succeeded), and what the mode set. */
export function describeRealServer(
  h: LabHostName,
  topology: LabTopology,
  steps: { reset: Step[]; words: string },
  resetDone: readonly boolean[],
  place: RealServerPlace,
): string[] {
  const undone = steps.reset.flatMap((s, i) => (s.note && resetDone[i] ? [s.note] : []));
  const route = place.clientRoute === 'default' ? `default via ${routerOf(topology)}` : `${topology.clientNet} via the router`;
  return [`${h}: reset (${undone.length ? `${undone.join(', ')}, ` : ''}arp_ignore=0 arp_announce=0, ${route})`, `${h}: ${steps.words}`];
}
