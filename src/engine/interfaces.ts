// Which interface of this host faces an address. Pure.
import { inSubnet } from '../model/ip';
import { NetInterface } from '../kernel/rtnl/rtnl';

/** The interface whose connected subnet holds `address` (not counting /32 host addresses). */
export function interfaceForAddress(
  interfaces: readonly NetInterface[],
  address: string,
): { iface: NetInterface; local: string } | undefined {
  for (const iface of interfaces) {
    for (const a of iface.addresses) {
      if (a.prefixLength < 32 && inSubnet(address, a.address, a.prefixLength)) return { iface, local: a.address };
    }
  }
  return undefined;
}
