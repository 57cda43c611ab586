// How a plan changes the ownership record (src/records/ownership.ts). Pure.
// intent: written before the plan runs, listing everything it will add as
// "adding"; after: written once it ran, with what slbctl owns now.
import { OwnedAddress } from '../model/state';
import { BackendName, OwnedAddressEntry, OwnedSysctl, Ownership } from '../records/ownership';
import { Plan } from '../plan/types';
import { backendOf } from '../backends/registry';

const addressKey = (a: OwnedAddress) => `${a.address}@${a.device}`;

/**
 * The addresses of `backend` slbctl owns, seen against what the interfaces
 * hold: an "adding" entry counts only when its address is there (the apply
 * that recorded it was cut short before or after adding it).
 */
export function ownedAddressesOf(
  record: Ownership,
  backend: BackendName,
  present: readonly OwnedAddress[],
  legacy: readonly OwnedAddress[] = [],
): OwnedAddress[] {
  const here = new Set(present.map(addressKey));
  const owned = new Map<string, OwnedAddress>();
  for (const a of record.addresses) {
    if (a.backend !== backend || (a.state === 'adding' && !here.has(addressKey(a)))) continue;
    owned.set(addressKey(a), { address: a.address, device: a.device });
  }
  for (const a of legacy) if (!owned.has(addressKey(a))) owned.set(addressKey(a), { address: a.address, device: a.device });
  return [...owned.values()];
}

/** The VIP routes of `backend` slbctl owns, seen against the routes of slbctl's protocol there (as ownedAddressesOf). */
export function ownedRoutesOf(record: Ownership, backend: BackendName, present: readonly OwnedAddress[]): OwnedAddress[] {
  return ownedAddressesOf({ ...record, addresses: record.routes ?? [] }, backend, present);
}

/** Address entries keyed by backend and address@device, in first-seen order; an owned entry wins over an adding one. */
class AddressBook {
  private readonly entries = new Map<string, OwnedAddressEntry>();

  constructor(initial: readonly OwnedAddressEntry[] = []) {
    for (const a of initial) this.put(a);
  }

  put(entry: OwnedAddressEntry): void {
    const k = `${entry.backend} ${addressKey(entry)}`;
    const had = this.entries.get(k);
    if (!had || had.state === 'adding') this.entries.set(k, entry);
  }

  list(): OwnedAddressEntry[] {
    return [...this.entries.values()];
  }
}

/**
 * A copy whose parts the functions below change in place: the sysctls and
 * IPVS entries deep, the address list shallow (its entries are replaced,
 * never changed). structuredClone of 10,000 VIPs took a third of a weight
 * change's apply.
 */
function copyOf(record: Ownership): Ownership {
  return {
    ...record,
    addresses: [...record.addresses],
    ...(record.routes ? { routes: [...record.routes] } : {}),
    sysctls: record.sysctls.map((x) => ({ ...x })),
    ipvsServices: structuredClone(record.ipvsServices),
  };
}

/** The same record, told without serialising 10,000 addresses (a plan that adds none writes nothing). */
export function sameOwnership(a: Ownership, b: Ownership): boolean {
  const sameAddress = (x: OwnedAddressEntry, i: number) => {
    const y = b.addresses[i];
    return y !== undefined && x.address === y.address && x.device === y.device && x.backend === y.backend && x.state === y.state;
  };
  const sameSysctl = (x: OwnedSysctl, i: number) => {
    const y = b.sysctls[i];
    return y !== undefined && x.key === y.key && x.original === y.original && x.value === y.value;
  };
  const sameRoute = (x: OwnedAddressEntry, i: number) => {
    const y = b.routes?.[i];
    return y !== undefined && x.address === y.address && x.device === y.device && x.backend === y.backend && x.state === y.state;
  };
  return (
    a.addresses.length === b.addresses.length &&
    a.addresses.every(sameAddress) &&
    (a.routes?.length ?? 0) === (b.routes?.length ?? 0) &&
    (a.routes ?? []).every(sameRoute) &&
    a.sysctls.length === b.sysctls.length &&
    a.sysctls.every(sameSysctl) &&
    a.iptablesChain === b.iptablesChain &&
    JSON.stringify(a.ipvsServices) === JSON.stringify(b.ipvsServices)
  );
}

/** The record before the plan runs: what it will add is already listed as "adding". */
export function ownershipIntent(record: Ownership, plan: Plan, backend: BackendName): Ownership {
  const next: Ownership = copyOf(record);
  const book = new AddressBook(next.addresses);
  const routeBook = new AddressBook(next.routes);
  // Addresses the observation counts as owned (an older version's nft set included) are written down first.
  for (const a of plan.observed.kernel.ownedAddresses) book.put({ ...a, backend, state: 'owned' });
  for (const r of plan.observed.kernel.ownedRoutes ?? []) routeBook.put({ ...r, backend, state: 'owned' });
  for (const op of plan.ops) {
    if (op.op === 'add-address') book.put({ address: op.address, device: op.device, backend, state: 'adding' });
    if (op.op === 'add-route') routeBook.put({ address: op.address, device: op.device, backend, state: 'adding' });
    if (op.op === 'set-sysctl') {
      const had = next.sysctls.find((x) => x.key === op.key);
      if (had) had.value = op.to;
      else next.sysctls.push({ key: op.key, original: op.from, value: op.to });
    }
  }
  next.addresses = book.list();
  const routes = routeBook.list();
  if (routes.length > 0) next.routes = routes;
  // What only the backend adds (IPVS services, its iptables chain) is its own to write down.
  backendOf(backend).ownership?.intent(next, plan);
  return next;
}

/** The record once the plan ran: what slbctl owns now. */
export function ownershipAfter(record: Ownership, plan: Plan, backend: BackendName): Ownership {
  const gone = new Set(
    plan.ops.flatMap((o) => (o.op === 'delete-address' || o.op === 'forget-address' ? [`${o.address}@${o.device}`] : [])),
  );
  const book = new AddressBook(record.addresses.filter((a) => a.backend !== backend));
  const mine = [
    ...plan.observed.kernel.ownedAddresses,
    ...plan.ops.flatMap((o) => (o.op === 'add-address' ? [{ address: o.address, device: o.device }] : [])),
  ];
  for (const a of mine) if (!gone.has(addressKey(a))) book.put({ address: a.address, device: a.device, backend, state: 'owned' });
  const addresses = book.list();

  const routesGone = new Set(
    plan.ops.flatMap((o) => (o.op === 'delete-route' || o.op === 'forget-route' ? [`${o.address}@${o.device}`] : [])),
  );
  const routeBook = new AddressBook((record.routes ?? []).filter((a) => a.backend !== backend));
  const myRoutes = [
    ...(plan.observed.kernel.ownedRoutes ?? []),
    ...plan.ops.flatMap((o) => (o.op === 'add-route' ? [{ address: o.address, device: o.device }] : [])),
  ];
  for (const r of myRoutes) if (!routesGone.has(addressKey(r))) routeBook.put({ ...r, backend, state: 'owned' });
  const routes = routeBook.list();

  const released = new Set(plan.desired.releaseSysctls ?? []);
  const sysctls = plan.desired.restoreSysctls
    ? []
    : ownershipIntent(record, { ...plan, ops: plan.ops.filter((o) => o.op === 'set-sysctl') }, backend).sysctls.filter(
        (x) => !released.has(x.key),
      );

  const { routes: _was, ...rest } = copyOf(record);
  const next: Ownership = { ...rest, addresses, ...(routes.length > 0 ? { routes } : {}), sysctls };
  backendOf(backend).ownership?.after(next, plan);
  return next;
}
