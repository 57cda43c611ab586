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
//
// A transaction that changed a few services of many is not written as the
// whole record again (3.5 MB for 10,000 services): a line is appended to a
// journal beside it (FILE.journal), with the generation it goes from and to,
// the services it replaced or added (and where) and the keys it removed. A
// reader takes the record, then each line that goes on from the generation
// it has reached; a torn or foreign line (another namespace that had the same
// inode) ends the journal. Every JOURNAL_LINES lines, or after any other
// write, the record is written whole and the journal removed.
import { Family, KernelState, ServiceState } from '../../model/state';
import { currentNetns, journalFile, readRecord, removeRecord, writeRecordText } from '../../records/netns';
import { appendLine, readText } from '../../records/files';
import * as fs from 'node:fs';
import { familyOf } from './expected';
import { ServiceKeys, serviceKey } from '../../model/types';
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

/** Lines in the journal before the record is written whole again. */
const JOURNAL_LINES = 64;
/** A transaction that changed more services than this writes the record whole. */
const JOURNAL_SERVICES = 64;

const journalOfRecord = (): string => journalFile('nft-applied');

/** The lines the journal of the record in `memo` holds (as this process wrote or read them); undefined: not known. */
let journalLines: number | undefined;

interface JournalLine {
  ns: string;
  from: number;
  to: number;
  /** Services put in, each with its index in the new list (ascending). */
  set: [number, ServiceState][];
  /** Keys of the services taken out (a replaced service is taken out and put in). */
  del: string[];
}

/** `services` after a journal line: those of `del` out, then each of `set` in at its index. */
function replay(
  services: readonly ServiceState[],
  del: ReadonlySet<string>,
  set: readonly (readonly [number, ServiceState])[],
): ServiceState[] {
  const out = del.size > 0 ? services.filter((s) => !del.has(serviceKey(s))) : [...services];
  for (const [i, s] of set) out.splice(i, 0, s);
  return out;
}

function readJournal(base: ServiceState[], from: number): { services: ServiceState[]; generation: number; lines: number } {
  const text = readText(journalOfRecord());
  let services = base;
  let generation = from;
  if (!text) return { services, generation, lines: 0 };
  const lines = text.split('\n');
  let count = 0;
  for (const line of lines) {
    if (!line) continue;
    count++;
    let l: JournalLine;
    try {
      l = JSON.parse(line) as JournalLine;
    } catch {
      break;
    }
    // Another namespace's journal (its inode reused): not this record's.
    if (l.ns !== netnsKey()) break;
    // Lines of an older record (written whole since) do not go on from here.
    if (l.from !== generation) continue;
    services = replay(services, new Set(l.del), l.set);
    generation = l.to;
  }
  return { services, generation, lines: count };
}

/** The services slbctl's tables held at `generation`, when slbctl recorded them at exactly that generation. */
export function appliedAt(generation: number): ServiceState[] | undefined {
  if (memo && memo.netns === netnsKey() && memo.generation === generation) return memo.services;
  const r = readRecord('nft-applied');
  if (!r || typeof r.generation !== 'number' || r.layout !== LAYOUT || !Array.isArray(r.services)) return undefined;
  const j = readJournal(r.services as ServiceState[], r.generation);
  if (j.generation !== generation) return undefined;
  memo = { netns: netnsKey(), generation, services: j.services };
  journalLines = j.lines;
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
  // Already plain: one this process recorded, or one read from the record (the same object stays, for journalLine).
  if (texts.has(s) || !('counters' in s || 'backendKeys' in s || 'nft' in s)) return s;
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

/**
 * The journal line from the record in `memo` to `plain`, when `plain` is the
 * next generation's and differs in a few services; undefined otherwise.
 */
function journalLine(generation: number, plain: readonly ServiceState[]): string | undefined {
  if (!memo || memo.netns !== netnsKey() || generation !== nextGeneration(memo.generation)) return undefined;
  if (journalLines === undefined || journalLines >= JOURNAL_LINES) return undefined;
  const before = memo.services;
  const set: [number, ServiceState][] = [];
  let gone: ServiceState[];
  if (before.length === plain.length) {
    // The same services in the same places, a few replaced: compared place by place.
    gone = [];
    for (let i = 0; i < plain.length; i++) {
      if (plain[i] === before[i]) continue;
      set.push([i, plain[i]]);
      gone.push(before[i]);
      if (set.length > JOURNAL_SERVICES) return undefined;
    }
  } else {
    const was = new Set(before);
    for (let i = 0; i < plain.length; i++) {
      if (was.has(plain[i])) continue;
      set.push([i, plain[i]]);
      if (set.length > JOURNAL_SERVICES) return undefined;
    }
    const now = new Set(plain);
    gone = before.filter((s) => !now.has(s));
  }
  if (gone.length > JOURNAL_SERVICES) return undefined;
  const del = gone.map((s) => serviceKey(s));
  // The line must give exactly this list (a config that moved services about does not: written whole). Place by
  // place it does: every replaced service goes by its key (keys are unique) and its successor comes in at its place.
  if (before.length !== plain.length) {
    const replayed = replay(before, new Set(del), set);
    if (replayed.length !== plain.length || replayed.some((s, i) => s !== plain[i])) return undefined;
  }
  return `{"ns":${JSON.stringify(netnsKey())},"from":${memo.generation},"to":${generation},"set":[${set.map(([i, s]) => `[${i},${textOf(s)}]`).join(',')}],"del":${JSON.stringify(del)}}`;
}

/** Record that at `generation` slbctl's tables hold exactly `services`. */
export function recordApplied(generation: number, services: readonly ServiceState[]): void {
  const plain = services.map(plainOf);
  const line = journalLine(generation, plain);
  if (line !== undefined && journalLines !== undefined) {
    appendLine(journalOfRecord(), line);
    journalLines++;
  } else {
    writeRecordText('nft-applied', `"generation":${generation},"layout":${LAYOUT},"services":[${plain.map(textOf).join(',')}]`);
    fs.rmSync(journalOfRecord(), { force: true });
    journalLines = 0;
  }
  memo = { netns: netnsKey(), generation, services: plain };
}

export function forgetApplied(): void {
  memo = undefined;
  journalLines = undefined;
  removeRecord('nft-applied');
}

const keysOf = new WeakMap<RecordedService, string[]>();

/** The record's keys, from the last record's by the places that differ (a plan reads the touched services by key). */
const recordKeys = new ServiceKeys();

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
  const touched: ServiceState[] = [];
  const keys = touching ? recordKeys.of(services) : [];
  const observed = services.map((s, i) => {
    if (touching && !touching.has(keys[i])) return s;
    const r = new RecordedService(s) as unknown as ServiceState;
    touched.push(r);
    return r;
  });
  const { tables, ingressDevices } = plumbingOf(services);
  const kernel: KernelState = {
    services: observed,
    ownedAddresses: [],
    tables,
    ingressDevices,
    nftGeneration: generation,
    nftRecorded: true,
  };
  if (touching) kernel.touched = touched;
  return kernel;
}

/** The tables and DSR devices of a record's services, worked out once per record (a record is never changed). */
const plumbing = new WeakMap<readonly ServiceState[], { tables: Family[]; ingressDevices: string[] }>();

function plumbingOf(services: readonly ServiceState[]): { tables: Family[]; ingressDevices: string[] } {
  let p = plumbing.get(services);
  if (!p) {
    p = {
      tables: (['ip', 'netdev'] as const satisfies readonly Family[]).filter((f) => services.some((s) => familyOf(s) === f)),
      ingressDevices: [...new Set(services.filter((s) => s.mode === 'dsr').map((s) => s.device))].sort(),
    };
    plumbing.set(services, p);
  }
  return { tables: [...p.tables], ingressDevices: [...p.ingressDevices] };
}
