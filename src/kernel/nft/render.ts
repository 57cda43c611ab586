// Plan -> one nftables transaction (the text `nft -f -` reads). Pure.
// Every change of a plan goes into one batch, so the kernel switches from the
// old ruleset to the new one atomically: packets never see half a change.
// Lines are collected per phase and per table, and written last: a table the
// plan deletes simply drops its lines, and objects are removed only after
// everything that refers to them.
import { serviceKey } from '../../model/types';
import { Family, ServiceState } from '../../model/state';
import { Plan } from '../../plan/types';
import { MEMBERS_SET, SERVICES_MAP, TABLE, backendsMap, ingressChain, snatChain } from './names';
import { familyOf, memberKey, servicePieces, snatPieces, tablePlumbing, FULLNAT_VIPS } from './expected';
import { dispatchRule, ruleText } from './rules';

export { HASH_SEED } from './rules';
export { MAX_SLOTS, backendSlots, slotShares } from './slots';

const PHASES = ['rebuild', 'tables', 'chains', 'services', 'snat', 'cleanup'] as const;
type Phase = (typeof PHASES)[number];

class Transaction {
  private readonly lines = new Map<Phase, { family: Family; line: string }[]>(PHASES.map((p) => [p, []]));

  emit(phase: Phase, family: Family, ...lines: string[]): void {
    this.lines.get(phase)?.push(...lines.map((line) => ({ family, line })));
  }

  /** The script; a table being deleted takes its contents with it, so nothing else is said about it. */
  text(deleted: ReadonlySet<Family>): string {
    const kept = PHASES.flatMap((p) => (this.lines.get(p) ?? []).filter((l) => !deleted.has(l.family)).map((l) => l.line));
    kept.push(...[...deleted].map((f) => `delete table ${f} ${TABLE}`));
    return kept.length > 0 ? `${kept.join('\n')}\n` : '';
  }
}

function createTable(family: Family): string[] {
  const { sets, chains } = tablePlumbing(family, []);
  return [
    `add table ${family} ${TABLE}`,
    ...[...sets].map(([name, s]) => `add ${s.kind} ${family} ${TABLE} ${name} ${s.declaration}`),
    ...[...chains].flatMap(([name, c]) => [`add chain ${family} ${TABLE} ${name} ${c.declaration ?? ''}`, ...c.rules.map((r) => `add rule ${family} ${TABLE} ${name} ${ruleText(r)}`)]),
  ];
}

/** The kernel as the plan found it, minus the tables being rebuilt (they start empty). */
interface Before {
  service(s: ServiceState): ServiceState | undefined;
  snat(vip: string): { chain: boolean; element?: string };
}

function contentLines(family: Family, s: ServiceState): string[] {
  const p = servicePieces(s);
  const lines: string[] = [];
  if (p.backends.length > 0) lines.push(`add element ${family} ${TABLE} ${backendsMap(s.protocol)} { ${p.backends.map((b) => `${b.key} : ${b.value}`).join(', ')} }`);
  if (p.members.length > 0) lines.push(`add element ${family} ${TABLE} ${MEMBERS_SET} { ${p.members.map((m) => `${m.key} comment "${m.comment}"`).join(', ')} }`);
  return lines;
}

/** Remove exactly the contents the kernel holds for a service (its backend slots and member elements). */
function removeLines(family: Family, o: ServiceState): string[] {
  const lines: string[] = [];
  const keys = o.backendKeys ?? [];
  if (keys.length > 0) lines.push(`delete element ${family} ${TABLE} ${backendsMap(o.protocol)} { ${keys.join(', ')} }`);
  if (o.realServers.length > 0) lines.push(`delete element ${family} ${TABLE} ${MEMBERS_SET} { ${o.realServers.map((r) => memberKey(o, r)).join(', ')} }`);
  return lines;
}

const familyHeld = (o: ServiceState): Family => o.nft?.family ?? familyOf(o);

function addService(s: ServiceState): string[] {
  const family = familyOf(s);
  const p = servicePieces(s);
  return [
    `add chain ${family} ${TABLE} ${p.chain}`,
    ...contentLines(family, s),
    `add rule ${family} ${TABLE} ${p.chain} ${ruleText(p.rule)}`,
    `add element ${family} ${TABLE} ${SERVICES_MAP} { ${p.map.key} : ${p.map.value} }`,
  ];
}

function deleteService(o: ServiceState): string[] {
  const family = familyHeld(o);
  const p = servicePieces(o);
  const lines: string[] = [];
  // Only what is there: deleting an absent element or chain would fail the whole transaction.
  if (!o.nft || o.nft.map !== undefined) lines.push(`delete element ${family} ${TABLE} ${SERVICES_MAP} { ${p.map.key} }`);
  if (!o.nft || o.nft.chain) lines.push(`flush chain ${family} ${TABLE} ${p.chain}`, `delete chain ${family} ${TABLE} ${p.chain}`);
  return [...lines, ...removeLines(family, o)];
}

/** Rewrite a service in place: its old contents out, the new ones in, its chain's rule and map element made right. */
function rewriteService(s: ServiceState, o: ServiceState | undefined): string[] {
  const family = familyOf(s);
  const p = servicePieces(s);
  const lines = o ? removeLines(family, o) : [];
  const chainThere = o ? !o.nft || o.nft.chain : false;
  lines.push(chainThere ? `flush chain ${family} ${TABLE} ${p.chain}` : `add chain ${family} ${TABLE} ${p.chain}`);
  lines.push(...contentLines(family, s), `add rule ${family} ${TABLE} ${p.chain} ${ruleText(p.rule)}`);
  const element = o ? (o.nft ? o.nft.map : p.map.value) : undefined;
  if (element !== p.map.value) {
    if (element !== undefined) lines.push(`delete element ${family} ${TABLE} ${SERVICES_MAP} { ${p.map.key} }`);
    lines.push(`add element ${family} ${TABLE} ${SERVICES_MAP} { ${p.map.key} : ${p.map.value} }`);
  }
  return lines;
}

/** Make the source-NAT chain of one VIP and its fullnat_vips element what the services after the plan need. */
function snatLines(vip: string, after: readonly ServiceState[], before: Before): string[] {
  const want = snatPieces(vip, after);
  const have = before.snat(vip);
  const chain = snatChain(vip);
  const lines: string[] = [];
  if (!want) {
    if (have.element !== undefined) lines.push(`delete element ip ${TABLE} ${FULLNAT_VIPS} { ${vip} }`);
    if (have.chain) lines.push(`flush chain ip ${TABLE} ${chain}`, `delete chain ip ${TABLE} ${chain}`);
    return lines;
  }
  lines.push(have.chain ? `flush chain ip ${TABLE} ${chain}` : `add chain ip ${TABLE} ${chain}`);
  lines.push(...want.rules.map((r) => `add rule ip ${TABLE} ${chain} ${ruleText(r)}`));
  if (have.element !== want.element) {
    if (have.element !== undefined) lines.push(`delete element ip ${TABLE} ${FULLNAT_VIPS} { ${vip} }`);
    lines.push(`add element ip ${TABLE} ${FULLNAT_VIPS} { ${vip} : ${want.element} }`);
  }
  return lines;
}

function beforeOf(plan: Plan, rebuilt: ReadonlySet<Family>): Before {
  const programmed = new Map(plan.observed.kernel.services.filter((s) => !rebuilt.has(familyHeld(s))).map((s) => [serviceKey(s), s]));
  const ip = rebuilt.has('ip') ? undefined : plan.observed.kernel.nftTables?.ip;
  return {
    service: (s) => programmed.get(serviceKey(s)),
    snat: (vip) => {
      const element = ip?.sets.get(FULLNAT_VIPS)?.elements.get(vip)?.value;
      return { chain: ip?.chains.has(snatChain(vip)) ?? false, ...(element !== undefined ? { element } : {}) };
    },
  };
}

/** The nftables script for a plan; empty when the plan has no nftables work. */
export function renderPlan(plan: Plan): string {
  const tx = new Transaction();
  const rebuilt = new Set(plan.ops.flatMap((o) => (o.op === 'rebuild-table' ? [o.family] : [])));
  const before = beforeOf(plan, rebuilt);
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
    tx.emit('services', familyOf(s), ...rewriteService(s, before.service(s)));
  };

  for (const op of plan.ops) {
    switch (op.op) {
      case 'rebuild-table':
        tx.emit('rebuild', op.family, `delete table ${op.family} ${TABLE}`, ...createTable(op.family));
        if (op.family === 'ip') for (const s of plan.desired.services) noteSnat(s);
        break;
      case 'create-table': tx.emit('tables', op.family, ...createTable(op.family)); break;
      case 'delete-table': deleted.add(op.family); break;
      case 'add-ingress': {
        const chain = tablePlumbing('netdev', [op.device]).chains.get(ingressChain(op.device));
        tx.emit('chains', 'netdev', `add chain netdev ${TABLE} ${ingressChain(op.device)} ${chain?.declaration ?? ''}`, `add rule netdev ${TABLE} ${ingressChain(op.device)} ${ruleText(dispatchRule('netdev'))}`);
        break;
      }
      case 'delete-ingress': tx.emit('cleanup', 'netdev', `flush chain netdev ${TABLE} ${ingressChain(op.device)}`, `delete chain netdev ${TABLE} ${ingressChain(op.device)}`); break;
      case 'repair-chain': {
        const want = tablePlumbing(op.family, dsrDevices).chains.get(op.chain);
        const have = plan.observed.kernel.nftTables?.[op.family]?.chains.get(op.chain);
        if (!want) break;
        const lines: string[] = [];
        if (have && have.hook !== want.hook) lines.push(`flush chain ${op.family} ${TABLE} ${op.chain}`, `delete chain ${op.family} ${TABLE} ${op.chain}`);
        if (have && have.hook === want.hook) lines.push(`flush chain ${op.family} ${TABLE} ${op.chain}`);
        else lines.push(`add chain ${op.family} ${TABLE} ${op.chain} ${want.declaration ?? ''}`);
        lines.push(...want.rules.map((r) => `add rule ${op.family} ${TABLE} ${op.chain} ${ruleText(r)}`));
        tx.emit('chains', op.family, ...lines);
        break;
      }
      case 'delete-object':
        if (op.kind === 'chain') tx.emit('cleanup', op.family, `flush chain ${op.family} ${TABLE} ${op.name}`, `delete chain ${op.family} ${TABLE} ${op.name}`);
        else tx.emit('cleanup', op.family, `delete ${op.kind} ${op.family} ${TABLE} ${op.name}`);
        break;
      case 'add-service': tx.emit('services', familyOf(op.service), ...addService(op.service)); noteSnat(op.service); break;
      case 'delete-service': tx.emit('services', familyHeld(op.service), ...deleteService(op.service)); noteSnat(op.service); break;
      case 'update-service':
        if (familyHeld(op.before) !== familyOf(op.after)) {
          tx.emit('services', familyHeld(op.before), ...deleteService(op.before));
          tx.emit('services', familyOf(op.after), ...addService(op.after));
        } else rewrite(op.after);
        noteSnat(op.before);
        noteSnat(op.after);
        break;
      case 'repair-service': rewrite(op.after); noteSnat(op.after); break;
      case 'repair-snat': snatVips.add(op.vip); break;
      case 'add-real-server': case 'update-real-server': case 'delete-real-server': rewrite(op.service); break;
      case 'set-sysctl': case 'add-address': case 'delete-address': case 'forget-address': case 'set-snat': break; // not nftables
    }
  }
  for (const vip of [...snatVips].sort()) tx.emit('snat', 'ip', ...snatLines(vip, plan.desired.services, before));
  return tx.text(deleted);
}
