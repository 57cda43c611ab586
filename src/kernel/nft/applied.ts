// slbctl's record of what its nftables tables hold, and at which ruleset
// generation (generation.ts) that was true. While the generation has not
// moved, nothing in the namespace committed an nftables change, so the tables
// are still exactly that: a plan can start from the record instead of
// listing tens of thousands of objects. Any doubt means no record: the
// generation moved (anyone changed any table), the record is of another
// generation, or the kernel cannot say its generation; then the tables are
// listed as before.
//
// A record is written only when it is known true: after slbctl's own
// transaction when the generation moved by exactly that one commit since the
// tables were observed, or after a plan that found nothing to change in
// tables listed at a generation that did not move while they were listed.
import { Family, KernelState, ServiceState } from '../../model/state';
import { currentNetns, readRecord, removeRecord, writeRecordText } from '../../records/netns';
import { familyOf } from './expected';
import { serviceKey } from '../../model/types';
import { backendKey, backendSlots } from './slots';

interface Applied {
  netns: string;
  generation: number;
  services: ServiceState[];
}

/** The last record read or written by this process (the controller plans every second: it reads the file once). */
let memo: Applied | undefined;

const netnsKey = () => `${currentNetns().inode}/${currentNetns().cookie ?? ''}`;

/** The generation after `g`: the kernel skips 0 when its 32-bit counter wraps. */
export const nextGeneration = (g: number): number => (g >= 0xffffffff ? 1 : g + 1);

/**
 * The shape of the tables a record stands for. A record is the services, not
 * the objects: tables made by a slbctl that laid services out otherwise (2:
 * pick chains, src/kernel/nft/names.ts; 3: source NAT without `random`,
 * src/kernel/nft/rules.ts snatRule) must be listed and rewritten once, so a
 * record of another layout is no record.
 */
const LAYOUT = 3;

/** The services slbctl's tables held at `generation`, when slbctl recorded them at exactly that generation. */
export function appliedAt(generation: number): ServiceState[] | undefined {
  if (memo && memo.netns === netnsKey() && memo.generation === generation) return memo.services;
  const r = readRecord('nft-applied');
  if (!r || r.generation !== generation || r.layout !== LAYOUT || !Array.isArray(r.services)) return undefined;
  memo = { netns: netnsKey(), generation, services: r.services as ServiceState[] };
  return memo.services;
}

/**
 * The JSON of each service this process recorded. A plan that changes a few
 * of 10,000 services keeps the others' objects from the record, so writing
 * the record again serialises only the changed ones. (Nothing changes a
 * service object after it is made: resolving and reading back make new ones.)
 */
const texts = new WeakMap<ServiceState, string>();

const plainOf = (s: ServiceState): ServiceState => {
  if (texts.has(s)) return s;
  const { counters: _c, backendKeys: _b, nft: _n, ...plain } = s;
  return plain;
};

function textOf(s: ServiceState): string {
  let text = texts.get(s);
  if (text === undefined) {
    text = JSON.stringify(s);
    texts.set(s, text);
  }
  return text;
}

/** Record that at `generation` slbctl's tables hold exactly `services`. */
export function recordApplied(generation: number, services: readonly ServiceState[]): void {
  const plain = services.map(plainOf);
  writeRecordText('nft-applied', `"generation":${generation},"layout":${LAYOUT},"services":[${plain.map(textOf).join(',')}]`);
  memo = { netns: netnsKey(), generation, services: plain };
}

export function forgetApplied(): void {
  memo = undefined;
  removeRecord('nft-applied');
}

const keysOf = new WeakMap<RecordedService, string[]>();

/**
 * A recorded service as a plan sees it, its backend map keys worked out when
 * asked (a getter on the class, not defineProperty on each of 10,000 copies,
 * which left them slow to read everywhere after).
 */
class RecordedService {
  constructor(s: ServiceState) {
    Object.assign(this, s);
  }

  get backendKeys(): string[] {
    let keys = keysOf.get(this);
    if (!keys) {
      const s = this as unknown as ServiceState;
      keys = backendSlots(s).slots.map((x) => backendKey(s, x));
      keysOf.set(this, keys);
    }
    return keys;
  }
}

/**
 * The kernel state the record stands for, in the shape observe.ts gives.
 * Backend map keys (what a change must delete) are worked out only for the
 * services a plan touches. No inventory: nothing can differ from what
 * slbctl made, so there is nothing to repair.
 */
export function kernelFromApplied(
  services: readonly ServiceState[],
  generation: number,
  /** The keys of the services a plan diffs (the others are left plain: nothing asks their backend keys). */
  touching?: ReadonlySet<string>,
): KernelState {
  // Object.assign gave it every field of the service: it is one, with backendKeys on its class.
  const observed = services.map((s) =>
    !touching || touching.has(serviceKey(s)) ? (new RecordedService(s) as unknown as ServiceState) : s,
  );
  const tables = (['ip', 'netdev'] as const satisfies readonly Family[]).filter((f) => services.some((s) => familyOf(s) === f));
  const ingressDevices = [...new Set(services.filter((s) => s.mode === 'dsr').map((s) => s.device))].sort();
  return { services: observed, ownedAddresses: [], tables, ingressDevices, nftGeneration: generation, nftRecorded: true };
}
