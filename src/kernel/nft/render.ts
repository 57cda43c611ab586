// Plan -> one nftables transaction (the text `nft -f -` reads). Pure.
// Every change of a plan goes into one batch, so the kernel switches from the
// old ruleset to the new one atomically: packets never see half a change.
// Commands are typed objects (commands.ts), collected per phase and written
// as text last: a table the plan deletes simply drops its commands, and
// objects are removed only after everything that refers to them.
import { serviceKey } from '../../model/types';
import { Family, ServiceState } from '../../model/state';
import { Plan, changesOf } from '../../plan/types';
import { NftChange } from './changes';
import { MEMBERS_SET, SERVICES_MAP, backendsMap, ingressChain, snatChain } from './names';
import { familyOf, memberKey, servicePieces, snatPieces, tablePlumbing, FULLNAT_VIPS } from './expected';
import { dispatchRule, pickChainOf, pickRule } from './rules';
import { slotTotal } from './slots';
import { NftCommand, scriptText } from './commands';

export { HASH_SEED } from './rules';
export { MAX_SLOTS, backendSlots, slotShares } from './slots';

const PHASES = ['rebuild', 'tables', 'chains', 'picks', 'services', 'snat', 'cleanup'] as const;
type Phase = (typeof PHASES)[number];

/**
 * A phase's commands with its elements batched: one delete per map first
 * (an element goes before the chain it jumps to), the other commands in
 * order, then one add per map (the chains its elements jump to exist by
 * then). A cold apply of 10,000 services is a few commands per map, not
 * several per service.
 */
function batched(commands: readonly NftCommand[]): NftCommand[] {
  const deletes = new Map<string, Extract<NftCommand, { object: 'element'; verb: 'delete' }>>();
  const adds = new Map<string, Extract<NftCommand, { object: 'element'; verb: 'add' }>>();
  const rest: NftCommand[] = [];
  for (const c of commands) {
    if (c.object !== 'element') {
      rest.push(c);
      continue;
    }
    const key = `${c.family} ${c.set}`;
    if (c.verb === 'delete') {
      const d = deletes.get(key);
      if (d) d.keys.push(...c.keys);
      else deletes.set(key, { ...c, keys: [...c.keys] });
    } else {
      const a = adds.get(key);
      if (a) a.elements.push(...c.elements);
      else adds.set(key, { ...c, elements: [...c.elements] });
    }
  }
  return [...deletes.values(), ...rest, ...adds.values()];
}

class Transaction {
  private readonly commands = new Map<Phase, NftCommand[]>(PHASES.map((p) => [p, []]));

  emit(phase: Phase, ...commands: NftCommand[]): void {
    const list = this.commands.get(phase);
    if (list) for (const c of commands) list.push(c);
  }

  size(): number {
    let n = 0;
    for (const list of this.commands.values()) n += list.length;
    return n;
  }

  /** The commands in order; a table being deleted takes its contents with it, so nothing else is said about it. */
  list(deleted: ReadonlySet<Family>): NftCommand[] {
    const kept = PHASES.flatMap((p) => batched((this.commands.get(p) ?? []).filter((c) => !deleted.has(c.family))));
    return [...kept, ...[...deleted].map((family): NftCommand => ({ verb: 'delete', object: 'table', family }))];
  }
}

function createTable(family: Family): NftCommand[] {
  const { sets, chains } = tablePlumbing(family, []);
  return [
    { verb: 'add', object: 'table', family },
    ...[...sets].map(([name, s]): NftCommand => ({ verb: 'add', object: s.kind, family, name, declaration: s.declaration })),
    ...[...chains].flatMap(([chain, c]): NftCommand[] => [
      { verb: 'add', object: 'chain', family, chain, ...(c.declaration ? { declaration: c.declaration } : {}) },
      ...c.rules.map((rule): NftCommand => ({ verb: 'add', object: 'rule', family, chain, rule })),
    ]),
  ];
}

/** The kernel as the plan found it, minus the tables being rebuilt (they start empty). */
interface Before {
  service(s: ServiceState): ServiceState | undefined;
  snat(vip: string): { chain: boolean; element?: string };
}

function contents(family: Family, s: ServiceState): NftCommand[] {
  const p = servicePieces(s);
  const out: NftCommand[] = [];
  if (p.backends.length > 0) out.push({ verb: 'add', object: 'element', family, set: backendsMap(s.protocol), elements: p.backends });
  if (p.members.length > 0) out.push({ verb: 'add', object: 'element', family, set: MEMBERS_SET, elements: p.members });
  return out;
}

/** Remove exactly the contents the kernel holds for a service (its backend slots and member elements). */
function removeContents(family: Family, o: ServiceState): NftCommand[] {
  const out: NftCommand[] = [];
  const keys = o.backendKeys ?? [];
  if (keys.length > 0) out.push({ verb: 'delete', object: 'element', family, set: backendsMap(o.protocol), keys });
  if (o.realServers.length > 0)
    out.push({ verb: 'delete', object: 'element', family, set: MEMBERS_SET, keys: o.realServers.map((r) => memberKey(o, r)) });
  return out;
}

const familyHeld = (o: ServiceState): Family => o.nft?.family ?? familyOf(o);
const flushAndDelete = (family: Family, chain: string): NftCommand[] => [
  { verb: 'flush', object: 'chain', family, chain },
  { verb: 'delete', object: 'chain', family, chain },
];

function addService(s: ServiceState): NftCommand[] {
  const family = familyOf(s);
  const p = servicePieces(s);
  return [
    { verb: 'add', object: 'chain', family, chain: p.chain },
    ...contents(family, s),
    { verb: 'add', object: 'rule', family, chain: p.chain, rule: p.rule },
    { verb: 'add', object: 'element', family, set: SERVICES_MAP, elements: [p.map] },
  ];
}

function deleteService(o: ServiceState): NftCommand[] {
  const family = familyHeld(o);
  const p = servicePieces(o);
  const out: NftCommand[] = [];
  // Only what is there: deleting an absent element or chain would fail the whole transaction.
  if (!o.nft || o.nft.map !== undefined) out.push({ verb: 'delete', object: 'element', family, set: SERVICES_MAP, keys: [p.map.key] });
  if (!o.nft || o.nft.chain) out.push(...flushAndDelete(family, p.chain));
  return [...out, ...removeContents(family, o)];
}

/** Rewrite a service in place: its old contents out, the new ones in, its chain's rule and map element made right. */
function rewriteService(s: ServiceState, o: ServiceState | undefined): NftCommand[] {
  const family = familyOf(s);
  const p = servicePieces(s);
  const out = o ? removeContents(family, o) : [];
  const chainThere = o ? !o.nft || o.nft.chain : false;
  out.push({ verb: chainThere ? 'flush' : 'add', object: 'chain', family, chain: p.chain });
  out.push(...contents(family, s), { verb: 'add', object: 'rule', family, chain: p.chain, rule: p.rule });
  const element = o ? (o.nft ? o.nft.map : p.map.value) : undefined;
  if (element !== p.map.value) {
    if (element !== undefined) out.push({ verb: 'delete', object: 'element', family, set: SERVICES_MAP, keys: [p.map.key] });
    out.push({ verb: 'add', object: 'element', family, set: SERVICES_MAP, elements: [p.map] });
  }
  return out;
}

/** Make the source-NAT chain of one VIP and its fullnat_vips element what the services after the plan need. */
function snatCommands(vip: string, after: readonly ServiceState[], before: Before): NftCommand[] {
  const want = snatPieces(vip, after);
  const have = before.snat(vip);
  const chain = snatChain(vip);
  const family = 'ip';
  const out: NftCommand[] = [];
  if (!want) {
    if (have.element !== undefined) out.push({ verb: 'delete', object: 'element', family, set: FULLNAT_VIPS, keys: [vip] });
    if (have.chain) out.push(...flushAndDelete(family, chain));
    return out;
  }
  out.push({ verb: have.chain ? 'flush' : 'add', object: 'chain', family, chain });
  out.push(...want.rules.map((rule): NftCommand => ({ verb: 'add', object: 'rule', family, chain, rule })));
  if (have.element !== want.element) {
    if (have.element !== undefined) out.push({ verb: 'delete', object: 'element', family, set: FULLNAT_VIPS, keys: [vip] });
    out.push({ verb: 'add', object: 'element', family, set: FULLNAT_VIPS, elements: [{ key: vip, value: want.element }] });
  }
  return out;
}

/**
 * The services of a list by key, indexed only as far as a lookup needs: a
 * plan from the record that changes one service of 10,000 looks up one.
 * (A record holds each key once.)
 */
class LazyIndex {
  private readonly seen = new Map<string, ServiceState>();
  private next = 0;

  constructor(private readonly services: readonly ServiceState[]) {}

  get(key: string): ServiceState | undefined {
    while (!this.seen.has(key) && this.next < this.services.length) {
      const s = this.services[this.next++];
      this.seen.set(serviceKey(s), s);
    }
    return this.seen.get(key);
  }
}

function beforeOf(plan: Plan, rebuilt: ReadonlySet<Family>): Before {
  const kernel = plan.observed.kernel;
  const ip = rebuilt.has('ip') ? undefined : kernel.nftTables?.ip;
  if (kernel.nftRecorded && rebuilt.size === 0) {
    // Tables as slbctl recorded them: a VIP has its source-NAT chain and element exactly when a full-NAT service is on it.
    const index = new LazyIndex(kernel.services);
    const fullnat = new Map<string, boolean>();
    const hasFullnat = (vip: string) => {
      let found = fullnat.get(vip);
      if (found === undefined) fullnat.set(vip, (found = kernel.services.some((s) => s.mode === 'fullnat' && s.vip === vip)));
      return found;
    };
    return {
      service: (s) => index.get(serviceKey(s)),
      snat: (vip) => (hasFullnat(vip) ? { chain: true, element: `jump ${snatChain(vip)}` } : { chain: false }),
    };
  }
  const programmed = new Map(kernel.services.filter((s) => !rebuilt.has(familyHeld(s))).map((s) => [serviceKey(s), s]));
  if (kernel.nftRecorded) {
    const fullnat = new Set(kernel.services.filter((s) => s.mode === 'fullnat').map((s) => s.vip));
    return {
      service: (s) => programmed.get(serviceKey(s)),
      snat: (vip) => (fullnat.has(vip) ? { chain: true, element: `jump ${snatChain(vip)}` } : { chain: false }),
    };
  }
  return {
    service: (s) => programmed.get(serviceKey(s)),
    snat: (vip) => {
      const element = ip?.sets.get(FULLNAT_VIPS)?.elements.get(vip)?.value;
      return { chain: ip?.chains.has(snatChain(vip)) ?? false, ...(element !== undefined ? { element } : {}) };
    },
  };
}

/** Each service's pick chain, by object: services a plan did not touch are the same objects plan after plan. */
const picked = new WeakMap<ServiceState, string | null>();

function pickOf(s: ServiceState): string | undefined {
  let name = picked.get(s);
  if (name === undefined) {
    name = pickChainOf(s, slotTotal(s)) ?? null;
    picked.set(s, name);
  }
  return name ?? undefined;
}

type FamilyOf = (s: ServiceState) => Family;

/** The pick chains of the last list counted, per way of telling a service's family. */
const lastCounts = new Map<FamilyOf, { services: readonly ServiceState[]; counts: Map<string, number> }>();

/**
 * How many services of a list jump to each pick chain ("family pick_chain").
 * A list of the same length as the last one counted (the next plan's record,
 * the desired state beside it) is counted from it by the places where the
 * two differ: a plan that changes one service of 10,000 looks at one.
 */
function pickCounts(services: readonly ServiceState[], family: FamilyOf): Map<string, number> {
  const last = lastCounts.get(family);
  if (last?.services === services) return last.counts;
  const keyOf = (s: ServiceState) => {
    const name = pickOf(s);
    return name === undefined ? undefined : `${family(s)} ${name}`;
  };
  const add = (counts: Map<string, number>, key: string | undefined, n: number) => {
    if (key !== undefined) counts.set(key, (counts.get(key) ?? 0) + n);
  };
  let counts: Map<string, number> | undefined;
  if (last && last.services.length === services.length) {
    counts = new Map(last.counts);
    let differ = 0;
    for (let i = 0; i < services.length && counts; i++) {
      if (services[i] === last.services[i]) continue;
      if (++differ > 256) counts = undefined;
      else {
        add(counts, keyOf(last.services[i]), -1);
        add(counts, keyOf(services[i]), 1);
      }
    }
  }
  if (!counts) {
    counts = new Map();
    for (const s of services) add(counts, keyOf(s), 1);
  }
  lastCounts.set(family, { services, counts });
  return counts;
}

class PickSet {
  constructor(
    private readonly services: readonly ServiceState[],
    private readonly family: FamilyOf,
  ) {}

  has(key: string): boolean {
    return (pickCounts(this.services, this.family).get(key) ?? 0) > 0;
  }
}

/**
 * The pick chains of a plan: each one a service jumps to is added once, unless
 * the table already has it; one that only changed or deleted services used is
 * deleted last, unless a service still jumps to it.
 */
class Picks {
  private readonly added = new Set<string>();
  private readonly leaving = new Set<string>();
  private recorded: PickSet | undefined;
  private wanted: PickSet | undefined;

  constructor(
    private readonly plan: Plan,
    private readonly tx: Transaction,
    private readonly rebuilt: ReadonlySet<Family>,
  ) {}

  private existed(family: Family, name: string): boolean {
    if (this.rebuilt.has(family)) return false;
    const kernel = this.plan.observed.kernel;
    if (!kernel.nftRecorded) return kernel.nftTables?.[family]?.chains.has(name) ?? false;
    this.recorded ??= new PickSet(kernel.services, familyHeld);
    return this.recorded.has(`${family} ${name}`);
  }

  /** Before a service's rule jumps to its pick chain. */
  need(s: ServiceState): void {
    const family = familyOf(s);
    const total = slotTotal(s);
    const name = pickChainOf(s, total);
    if (name === undefined || this.added.has(`${family} ${name}`) || this.existed(family, name)) return;
    this.added.add(`${family} ${name}`);
    this.tx.emit(
      'picks',
      { verb: 'add', object: 'chain', family, chain: name },
      { verb: 'add', object: 'rule', family, chain: name, rule: pickRule(s, total) },
    );
  }

  /** A service as the kernel holds it is changed or deleted: its pick chain may be left without users. */
  left(o: ServiceState | undefined): void {
    const name = o ? pickOf(o) : undefined;
    if (o && name !== undefined) this.leaving.add(`${familyHeld(o)} ${name}`);
  }

  /**
   * Pick chains no desired service jumps to, deleted after the rules that
   * jumped to them changed: those of the services the plan changes (a plan
   * from the record), or every one the listing shows (the drift check
   * deletes those no rule jumps to itself: `deletedByRepair`).
   */
  finish(deletedByRepair: ReadonlySet<string>): void {
    const kernel = this.plan.observed.kernel;
    const candidates = new Set(this.leaving);
    if (!kernel.nftRecorded)
      for (const family of ['ip', 'netdev'] as const)
        for (const name of kernel.nftTables?.[family]?.chains.keys() ?? [])
          if (name.startsWith('pick_')) candidates.add(`${family} ${name}`);
    if (candidates.size === 0) return;
    this.wanted ??= new PickSet(this.plan.desired.services, familyOf);
    for (const key of [...candidates].sort()) {
      if (this.wanted.has(key) || this.added.has(key) || deletedByRepair.has(key)) continue;
      const [family, chain] = key.split(' ') as [Family, string];
      if (!this.rebuilt.has(family) && this.existed(family, chain)) this.tx.emit('cleanup', ...flushAndDelete(family, chain));
    }
  }
}

/** The nftables commands of a plan, in the order they must run; none when the plan has no nftables work. */
export function planCommands(plan: Plan): NftCommand[] {
  const tx = new Transaction();
  const rebuilt = new Set(changesOf(plan.ops, 'nft').flatMap((c) => (c.what === 'rebuild-table' ? [c.family] : [])));
  const before = beforeOf(plan, rebuilt);
  const picks = new Picks(plan, tx, rebuilt);
  const deleted = new Set<Family>();
  const snatVips = new Set<string>();
  const rewritten = new Set<string>();
  const dsrDevices = [...new Set(plan.desired.services.filter((s) => s.mode === 'dsr').map((s) => s.device))];
  const noteSnat = (s: ServiceState) => {
    if (s.mode === 'fullnat') snatVips.add(s.vip);
  };
  const rewrite = (s: ServiceState) => {
    const key = serviceKey(s);
    if (rewritten.has(key)) return;
    rewritten.add(key);
    const was = before.service(s);
    picks.need(s);
    picks.left(was);
    tx.emit('services', ...rewriteService(s, was));
  };

  const change = (c: NftChange) => {
    switch (c.what) {
      case 'rebuild-table':
        tx.emit('rebuild', { verb: 'delete', object: 'table', family: c.family }, ...createTable(c.family));
        if (c.family === 'ip') for (const s of plan.desired.services) noteSnat(s);
        break;
      case 'create-table':
        tx.emit('tables', ...createTable(c.family));
        break;
      case 'delete-table':
        deleted.add(c.family);
        break;
      case 'add-ingress': {
        const chain = ingressChain(c.device);
        const declaration = tablePlumbing('netdev', [c.device]).chains.get(chain)?.declaration ?? '';
        tx.emit(
          'chains',
          { verb: 'add', object: 'chain', family: 'netdev', chain, declaration },
          { verb: 'add', object: 'rule', family: 'netdev', chain, rule: dispatchRule('netdev') },
        );
        break;
      }
      case 'delete-ingress':
        tx.emit('cleanup', ...flushAndDelete('netdev', ingressChain(c.device)));
        break;
      case 'repair-chain': {
        const want = tablePlumbing(c.family, dsrDevices, plan.desired.services).chains.get(c.chain);
        const have = plan.observed.kernel.nftTables?.[c.family]?.chains.get(c.chain);
        if (!want) break;
        const family = c.family;
        const chain = c.chain;
        // A base chain cannot be re-hooked in place: one hooked otherwise goes, and is made anew.
        if (have && have.hook !== want.hook) tx.emit('chains', ...flushAndDelete(family, chain));
        if (have && have.hook === want.hook) tx.emit('chains', { verb: 'flush', object: 'chain', family, chain });
        else
          tx.emit('chains', {
            verb: 'add',
            object: 'chain',
            family,
            chain,
            ...(want.declaration ? { declaration: want.declaration } : {}),
          });
        tx.emit('chains', ...want.rules.map((rule): NftCommand => ({ verb: 'add', object: 'rule', family, chain, rule })));
        break;
      }
      case 'delete-object':
        if (c.object === 'chain') tx.emit('cleanup', ...flushAndDelete(c.family, c.name));
        else tx.emit('cleanup', { verb: 'delete', object: c.object, family: c.family, name: c.name });
        break;
      case 'repair-service':
        // Its source NAT is not among its pieces: a damaged one is a repair-snat of its own.
        rewrite(c.after);
        break;
      case 'repair-snat':
        snatVips.add(c.vip);
        break;
    }
  };

  for (const op of plan.ops) {
    switch (op.op) {
      case 'backend':
        // Only this backend's changes are nftables work.
        if (op.backend === 'nft') change(op.change);
        break;
      case 'add-service':
        picks.need(op.service);
        tx.emit('services', ...addService(op.service));
        noteSnat(op.service);
        break;
      case 'delete-service':
        picks.left(op.service);
        tx.emit('services', ...deleteService(op.service));
        noteSnat(op.service);
        break;
      case 'update-service':
        if (familyHeld(op.before) !== familyOf(op.after)) {
          picks.need(op.after);
          picks.left(op.before);
          tx.emit('services', ...deleteService(op.before), ...addService(op.after));
        } else rewrite(op.after);
        noteSnat(op.before);
        noteSnat(op.after);
        break;
      case 'add-real-server':
      case 'update-real-server':
      case 'delete-real-server':
        rewrite(op.service);
        break;
      case 'set-sysctl':
      case 'add-address':
      case 'delete-address':
      case 'forget-address':
        break; // not nftables
    }
  }
  for (const vip of [...snatVips].sort()) tx.emit('snat', ...snatCommands(vip, plan.desired.services, before));
  const deletedByRepair = new Set(
    changesOf(plan.ops, 'nft').flatMap((c) => (c.what === 'delete-object' && c.object === 'chain' ? [`${c.family} ${c.name}`] : [])),
  );
  if (tx.size() > 0) picks.finish(deletedByRepair);
  return tx.list(deleted);
}

/** The nftables script for a plan; empty when the plan has no nftables work. */
export function renderPlan(plan: Plan): string {
  return scriptText(planCommands(plan));
}
