// What slbctl added outside its own nftables tables, per network namespace:
// VIP addresses, sysctls it changed (with the value it found), IPVS services
// (IPVS keeps no annotations) and the iptables source-NAT chain.
//
// Crash safety comes from intent: before an apply adds anything, the record
// already lists it as "adding"; once the apply is done, "owned". A later
// apply, run or destroy resolves an "adding" entry by looking: present means
// slbctl added it (the planner only ever adds what is absent), absent means
// it never got there. Removal updates the record only after the object is
// gone, so a crash in between leaves an owned entry for an absent object,
// which the next plan forgets. Nothing slbctl adds is ever unrecorded.
import * as fs from 'node:fs';
import { Encapsulation, Mode, Protocol, Scheduler } from '../model/types';
import { OwnedAddress } from '../model/state';
import { runDir } from '../util/rundir';
import { BackendName } from '../backends/names';
import { fileIdentity, readJson, removeLeftovers } from './files';
import { readRecord, recordFile, removeRecord, writeRecord, currentNetns } from './netns';

export type EntryState = 'adding' | 'owned';

export type { BackendName };

export interface OwnedAddressEntry extends OwnedAddress {
  /** The backend whose services needed it: destroying one backend leaves the other's VIPs. */
  backend: BackendName;
  state: EntryState;
}

export interface OwnedSysctl {
  key: string;
  /** The value slbctl found before it first changed the key ('' when unreadable). */
  original: string;
  /** The value slbctl set. */
  value: string;
}

export interface OwnedIpvsService {
  protocol: Protocol;
  vip: string;
  port: number;
  name: string;
  mode: Mode;
  scheduler: Scheduler;
  device: string;
  snatAddress?: string;
  encapsulation?: Encapsulation;
  state: EntryState;
}

export interface Ownership {
  addresses: OwnedAddressEntry[];
  /** VIPs held as local routes (vipAs route), each slbctl's own (protocol 245); absent: none. */
  routes?: OwnedAddressEntry[];
  sysctls: OwnedSysctl[];
  ipvsServices: OwnedIpvsService[];
  /** The iptables source-NAT chain beside IPVS (SLBCTL-SNAT), when slbctl created or is creating it. */
  iptablesChain?: EntryState;
}

export const EMPTY_OWNERSHIP: Ownership = { addresses: [], sysctls: [], ipvsServices: [] };

function list<T>(v: unknown, ok: (x: Record<string, unknown>) => boolean): T[] {
  return Array.isArray(v) ? (v.filter((x) => typeof x === 'object' && x !== null && ok(x as Record<string, unknown>)) as T[]) : [];
}

const isState = (v: unknown) => v === 'adding' || v === 'owned';

function parse(data: Record<string, unknown>): Ownership {
  const isEntry = (x: Record<string, unknown>) =>
    typeof x.address === 'string' && typeof x.device === 'string' && isState(x.state) && (x.backend === 'nft' || x.backend === 'ipvs');
  const o: Ownership = {
    addresses: list<OwnedAddressEntry>(data.addresses, isEntry),
    sysctls: list<OwnedSysctl>(
      data.sysctls,
      (x) => typeof x.key === 'string' && typeof x.original === 'string' && typeof x.value === 'string',
    ),
    ipvsServices: list<OwnedIpvsService>(
      data.ipvsServices,
      (x) => typeof x.vip === 'string' && typeof x.port === 'number' && typeof x.protocol === 'string' && isState(x.state),
    ),
  };
  if (isState(data.iptablesChain)) o.iptablesChain = data.iptablesChain;
  const routes = list<OwnedAddressEntry>(data.routes, isEntry);
  if (routes.length > 0) o.routes = routes;
  return o;
}

/**
 * The IPVS ownership file of slbctl before records carried the namespace's
 * cookie (/run/slbctl/ipvs/net-INODE.json): read once, so that an upgrade
 * does not turn slbctl's own IPVS services into foreign ones.
 */
function legacyIpvsFile(): string {
  return runDir('ipvs', `net-${currentNetns().inode}.json`);
}

function readLegacy(): Ownership | undefined {
  const r = readJson(legacyIpvsFile());
  if (r.kind !== 'ok' || typeof r.data !== 'object' || r.data === null) return undefined;
  const d = r.data as { services?: unknown; addresses?: unknown };
  return {
    addresses: list<OwnedAddress>(d.addresses, (x) => typeof x.address === 'string').map((a) => ({
      ...a,
      backend: 'ipvs' as const,
      state: 'owned' as const,
    })),
    sysctls: [],
    ipvsServices: list<Omit<OwnedIpvsService, 'state'>>(d.services, (x) => typeof x.vip === 'string').map((s) => ({
      ...s,
      state: 'owned' as const,
    })),
  };
}

/** The record this process read last, by its file's identity then (another process may replace it: then it is read again). */
let lastRead: { file: string; stat: string; record: Ownership } | undefined;

/** Frozen, as it is shared by every reader until the file changes (the planner copies what it changes: engine/ownership.ts). */
function frozen(o: Ownership): Ownership {
  for (const list of [o.addresses, o.routes ?? [], o.sysctls, o.ipvsServices]) {
    for (const x of list) Object.freeze(x);
    Object.freeze(list);
  }
  return Object.freeze(o);
}

/**
 * slbctl's ownership record of this namespace. A plan of 10,000 VIPs reads
 * 10,000 entries: a file unchanged since this process read it (same inode,
 * size and mtime; writers replace it by rename) is not parsed again.
 */
export function readOwnership(): Ownership {
  const file = recordFile('ownership');
  const stat = fileIdentity(file);
  if (stat !== undefined && lastRead?.file === file && lastRead.stat === stat) return lastRead.record;
  const data = readRecord('ownership');
  if (data) {
    const record = frozen(parse(data));
    // The identity read before the file: if it was replaced in between, the next read parses it again.
    if (stat !== undefined) lastRead = { file, stat, record };
    return record;
  }
  return readLegacy() ?? { addresses: [], sysctls: [], ipvsServices: [] };
}

/** hasIntent of frozen records (readOwnership's, shared until the file changes): 10,000 entries are looked at once. */
const intentOf = new WeakMap<Ownership, boolean>();

/** Whether an apply that was cut short left entries it had not confirmed yet. */
export function hasIntent(o: Ownership): boolean {
  const known = intentOf.get(o);
  if (known !== undefined) return known;
  const intent = anyIntent(o);
  if (Object.isFrozen(o)) intentOf.set(o, intent);
  return intent;
}

function anyIntent(o: Ownership): boolean {
  return (
    o.addresses.some((a) => a.state === 'adding') ||
    (o.routes ?? []).some((a) => a.state === 'adding') ||
    o.ipvsServices.some((s) => s.state === 'adding') ||
    o.iptablesChain === 'adding'
  );
}

/** Remove what writers of the record killed mid-write left (see removeLeftovers); for plans that write nothing. */
export function sweepOwnershipLeftovers(): void {
  removeLeftovers(recordFile('ownership'));
}

export function writeOwnership(o: Ownership): void {
  const empty = o.addresses.length === 0 && !o.routes?.length && o.sysctls.length === 0 && o.ipvsServices.length === 0 && !o.iptablesChain;
  if (empty) removeRecord('ownership');
  else {
    const { routes, ...rest } = o;
    // No routes: the record as before vipAs existed.
    writeRecord('ownership', routes?.length ? { ...o } : rest);
  }
  fs.rmSync(legacyIpvsFile(), { force: true });
}
