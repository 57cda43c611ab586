// Which interface of this host faces an address. Pure.
// A balancer carries thousands of VIPs as /32 host addresses: the subnets are
// picked out once per interface listing, so a lookup does not walk every VIP.
import { ipv4ToInt } from '../model/ip';
import { NetInterface } from '../kernel/rtnl/rtnl';

interface Subnets {
  /** Addresses with a prefix shorter than /32, with their interface, in listing order. */
  connected: { iface: NetInterface; address: string; prefixLength: number; network: number; size: number }[];
  /** Every address (then every local route's) -> the first interface that holds it. */
  holders: Map<string, NetInterface>;
}

const cache = new WeakMap<readonly NetInterface[], Subnets>();

function subnetsOf(interfaces: readonly NetInterface[]): Subnets {
  let s = cache.get(interfaces);
  if (!s) {
    s = { connected: [], holders: new Map() };
    for (const iface of interfaces) {
      for (const a of iface.addresses) {
        if (a.prefixLength < 32) {
          const size = 2 ** (32 - a.prefixLength);
          s.connected.push({
            iface,
            address: a.address,
            prefixLength: a.prefixLength,
            network: Math.floor(ipv4ToInt(a.address) / size) * size,
            size,
          });
        }
        if (!s.holders.has(a.address)) s.holders.set(a.address, iface);
      }
    }
    // A VIP held as a local route (vipAs route) stays on its interface, as one held as an address does.
    for (const iface of interfaces) for (const r of iface.localRoutes ?? []) if (!s.holders.has(r.address)) s.holders.set(r.address, iface);
    cache.set(interfaces, s);
  }
  return s;
}

/** The connected subnets (addresses shorter than /32) of these interfaces. */
export const connectedAddresses = (interfaces: readonly NetInterface[]) => subnetsOf(interfaces).connected;

/** The first interface that holds `address` itself (as an address, else as a local route). */
export const holderOf = (interfaces: readonly NetInterface[], address: string) => subnetsOf(interfaces).holders.get(address);

/** The interface whose connected subnet holds `address` (not counting /32 host addresses). */
export function interfaceForAddress(
  interfaces: readonly NetInterface[],
  address: string,
): { iface: NetInterface; local: string } | undefined {
  const n = ipv4ToInt(address);
  for (const a of connectedAddresses(interfaces)) {
    if (Math.floor(n / a.size) * a.size === a.network) return { iface: a.iface, local: a.address };
  }
  return undefined;
}
