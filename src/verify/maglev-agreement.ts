// Do the balancers behind ECMP agree on Maglev? Each balancer's BIRD tags its
// VIP route with the BGP large community (its AS, table size, seed) of every
// mh service on the VIP (src/ha/bird.ts). The router learns one route per
// balancer, so its BIRD shows, side by side, what each balancer uses: two
// balancers with different sizes or seeds send one flow to different real
// servers, which breaks a connection whenever the router's hash moves it.
import { routeCommunities } from '../ha/bird';
import { BALANCERS, LabTopology } from '../lab/topology';
import { Fact } from './facts';

/** The large communities of each BGP route to one prefix in `birdc show route PREFIX all`, by the protocol that learned it. */
export function communitiesByProtocol(text: string): Map<string, string[]> {
  return new Map([...routeCommunities(text)].map(([proto, routes]) => [proto, [...routes.values()].flat().sort()]));
}

/** "(65001,1021,1307)" -> "size 1021 seed 1307". */
const words = (c: string[]) => c.map((x) => x.replace(/^\((\d+),(\d+),(\d+)\)$/, 'size $2 seed $3')).join(' and ') || 'no Maglev community';

/**
 * The fact: the router holds the VIP from every balancer, each route with the same Maglev communities. On IPVS
 * (`ipvs`) the table is the kernel's own (a size fixed when it was built, no seed): no balancer tags the route,
 * and the routes must agree on having none. `showRoute`: the router's `birdc show route VIP/32 all` (undefined:
 * its BIRD did not answer).
 */
export function maglevAgreementFact(showRoute: string | undefined, topology: LabTopology, ipvs = false): Fact {
  const vip = topology.vip;
  const seen = showRoute !== undefined ? communitiesByProtocol(showRoute) : new Map<string, string[]>();
  const [first, ...others] = BALANCERS;
  const of = (b: string) => seen.get(b);
  const missing = BALANCERS.filter((b) => of(b) === undefined);
  const differing = others.filter((b) => (of(b) ?? []).join() !== (of(first) ?? []).join());
  const empty = BALANCERS.filter((b) => of(b)?.length === 0);
  const why = missing.length
    ? `the router has no route to ${vip} from ${missing.join(' and ')}, so it cannot compare their Maglev settings`
    : differing.length
      ? `${differing.map((b) => `${b} announces ${vip} with Maglev ${words(of(b) ?? [])}`).join('; ')}, but ${first} uses ${words(of(first) ?? [])}: they send one flow to different real servers`
      : `no balancer tags ${vip} with a Maglev community (is the service's scheduler mh on nftables?)`;
  const pass = missing.length === 0 && differing.length === 0 && (ipvs || empty.length === 0);
  return {
    fact: `every balancer announces ${vip} with the same Maglev table size and seed`,
    expected: ipvs
      ? `the router's BIRD holds ${vip}/32 from ${BALANCERS.join(' and ')}, neither tagged: IPVS mh, the kernel's table on both`
      : `the router's BIRD holds ${vip}/32 from ${BALANCERS.join(' and ')} with equal BGP large communities (AS, size, seed)`,
    seen: BALANCERS.map((b) => `${b}: ${of(b) === undefined ? 'no route' : of(b)?.join(' ') || 'no community'}`).join(', '),
    pass,
    ...(pass ? {} : { why }),
  };
}
