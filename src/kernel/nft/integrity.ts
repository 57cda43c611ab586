// Drift of slbctl's nftables tables beyond services and real servers: every
// object slbctl owns is compared with what it must be (expected.ts), and what
// a hand edit broke becomes a repair in the plan. Pure.
//
// - a set or map missing or of the wrong type: the table is rebuilt (rules
//   that used it are gone with it; conntrack keeps live connections' NAT);
// - a hook chain missing, hooked differently, or with other rules: repaired;
// - a service whose map element, chain, rule or backend slots differ from its
//   settings: its pieces are rewritten;
// - a VIP's source-NAT chain or fullnat_vips element that differs: rewritten;
// - a chain, set or map slbctl does not make: deleted (it is slbctl's table).
import { Family, KernelState, ServiceState } from '../../model/state';
import { serviceKey } from '../../model/types';
import { NftChange } from './changes';
import { FULLNAT_VIPS_MAP, SERVICES_MAP, snatChain } from './names';
import { familyOf, servicePieces, snatPieces, tablePlumbing } from './expected';
import { ChainInfo, TableInventory } from './inventory';
import { ruleFingerprint } from './rules';
import { parseChainName } from './observe';

const fingerprintOf = (r: { expr: unknown[]; comment?: string }) => ruleFingerprint(r.expr, r.comment);

/** Families whose table must be built anew because a set or map is missing or was changed. */
export function tablesToRebuild(desired: readonly ServiceState[], kernel: KernelState): Map<Family, string[]> {
  const rebuild = new Map<Family, string[]>();
  for (const family of new Set(desired.map(familyOf))) {
    const t = kernel.nftTables?.[family];
    if (!t) continue;
    const reasons: string[] = [];
    for (const [name, want] of tablePlumbing(family, []).sets) {
      const have = t.sets.get(name);
      if (!have) reasons.push(`${want.kind} ${name} missing`);
      else if (have.type !== want.type) reasons.push(`${want.kind} ${name} is "${have.type}", not "${want.type}"`);
    }
    if (reasons.length > 0) rebuild.set(family, reasons);
  }
  return rebuild;
}

function chainRuleReasons(
  name: string,
  have: ChainInfo,
  want: { hook?: string; rules: { expr: unknown[]; comment?: string }[] },
): string[] {
  const reasons: string[] = [];
  if (want.hook && have.hook !== want.hook)
    reasons.push(`chain ${name} is ${have.hook ? `hooked as "${have.hook}"` : 'not a hook'}, not "${want.hook}"`);
  const haveRules = have.rules.map((r) => r.fingerprint);
  const wantRules = want.rules.map(fingerprintOf);
  if (haveRules.length !== wantRules.length)
    reasons.push(`chain ${name} has ${haveRules.length} rule${haveRules.length === 1 ? '' : 's'}, not ${wantRules.length}`);
  else if (haveRules.some((f, i) => f !== wantRules[i])) reasons.push(`a rule of chain ${name} was changed`);
  return reasons;
}

/** What differs between a service's pieces in the kernel and what its settings make. */
export function serviceDamage(want: ServiceState, have: ServiceState): string[] {
  const p = have.nft;
  if (!p) return [];
  const expected = servicePieces(want);
  const reasons: string[] = [];
  if (p.map === undefined) reasons.push(`${SERVICES_MAP} element missing`);
  else if (p.map !== expected.map.value) reasons.push(`${SERVICES_MAP} element is "${p.map}", not "${expected.map.value}"`);
  if (!p.chain) reasons.push(`chain ${expected.chain} missing`);
  else if (p.rules.length !== 1) reasons.push(`chain ${expected.chain} has ${p.rules.length} rules, not 1`);
  else if (p.rules[0] !== fingerprintOf(expected.rule)) reasons.push(`the rule of chain ${expected.chain} was changed`);
  const slots = new Map(expected.backends.map((b) => [b.key, b.value]));
  const missing = [...slots.keys()].filter((k) => !(k in p.backends));
  const extra = Object.keys(p.backends).filter((k) => !slots.has(k));
  const altered = [...slots].filter(([k, v]) => k in p.backends && p.backends[k] !== v).map(([k]) => k);
  const slotList = (keys: string[]) => keys.map((k) => k.split(' . ')[2]).join(', ');
  if (missing.length) reasons.push(`backend slot${missing.length === 1 ? '' : 's'} ${slotList(missing)} missing`);
  if (extra.length) reasons.push(`backend slot${extra.length === 1 ? '' : 's'} ${slotList(extra)} not slbctl's`);
  if (altered.length) reasons.push(`backend slot${altered.length === 1 ? '' : 's'} ${slotList(altered)} changed`);
  return reasons;
}

/**
 * Repairs of everything but whole tables. `touched`: services the plan
 * already rewrites (they need no repair of their own). `kernel` is without
 * the families being rebuilt.
 */
export function objectRepairs(
  desired: readonly ServiceState[],
  kernel: KernelState,
  touched: ReadonlySet<string>,
  skip: ReadonlySet<Family>,
): NftChange[] {
  // Tables known from slbctl's record (applied.ts), not listed: there is nothing to compare, so nothing to repair.
  if (kernel.nftRecorded && !kernel.nftTables) return [];
  // A VIP whose services the plan changes gets its source NAT rewritten anyway.
  const touchedVips = new Set([...desired, ...kernel.services].filter((s) => touched.has(serviceKey(s))).map((s) => s.vip));
  const ops: NftChange[] = [];
  const observed = new Map(kernel.services.map((s) => [serviceKey(s), s]));
  for (const s of desired) {
    const key = serviceKey(s);
    const have = observed.get(key);
    if (!have || touched.has(key) || skip.has(familyOf(s)) || familyOf(have) !== familyOf(s)) continue;
    const reasons = serviceDamage(s, have);
    if (reasons.length > 0) ops.push({ what: 'repair-service', before: have, after: s, reasons });
  }
  const dsrDevices = [...new Set(desired.filter((s) => s.mode === 'dsr').map((s) => s.device))];
  for (const family of ['ip', 'netdev'] as const) {
    const t = kernel.nftTables?.[family];
    if (!t || skip.has(family) || !desired.some((s) => familyOf(s) === family)) continue;
    const plumbing = tablePlumbing(family, dsrDevices, desired);
    for (const [name, want] of plumbing.chains) {
      const have = t.chains.get(name);
      // A missing ingress chain is added by the plan's add-ingress; a missing pick chain with the service that jumps to it.
      if (!have && (family === 'netdev' || name.startsWith('pick_'))) continue;
      const reasons = have ? chainRuleReasons(name, have, want) : [`chain ${name} missing`];
      if (reasons.length > 0) ops.push({ what: 'repair-chain', family, chain: name, reasons });
    }
    if (family === 'ip') ops.push(...snatRepairs(desired, t).filter((o) => o.what !== 'repair-snat' || !touchedVips.has(o.vip)));
    for (const [name, set] of t.sets)
      if (!plumbing.sets.has(name)) ops.push({ what: 'delete-object', family, object: set.type.startsWith('map ') ? 'map' : 'set', name });
    const jumpedTo = jumpTargets(t);
    for (const name of t.chains.keys()) {
      // svc_ chains of a well-formed name are services (observe.ts); snat_ chains are checked above. A pick
      // chain that a rule still jumps to goes with the change of that rule's service (render.ts).
      const known =
        plumbing.chains.has(name) ||
        /^ingress_/.test(name) ||
        parseChainName(name) !== undefined ||
        /^snat_\d+_\d+_\d+_\d+$/.test(name) ||
        (name.startsWith('pick_') && jumpedTo.has(name));
      if (!known) ops.push({ what: 'delete-object', family, object: 'chain', name });
    }
  }
  return ops;
}

/** The chains some rule of the table jumps to. */
export function jumpTargets(t: TableInventory): Set<string> {
  const targets = new Set<string>();
  for (const chain of t.chains.values())
    for (const rule of chain.rules)
      for (const x of rule.expr) {
        const target = (x as { jump?: { target?: unknown } } | null)?.jump?.target;
        if (typeof target === 'string') targets.add(target);
      }
  return targets;
}

function snatRepairs(desired: readonly ServiceState[], t: TableInventory): NftChange[] {
  const ops: NftChange[] = [];
  const elements = t.sets.get(FULLNAT_VIPS_MAP)?.elements ?? new Map<string, { value?: string }>();
  const vips = new Set<string>(desired.filter((s) => s.mode === 'fullnat').map((s) => s.vip));
  for (const name of t.chains.keys()) {
    const m = /^snat_(\d+)_(\d+)_(\d+)_(\d+)$/.exec(name);
    if (m) vips.add(`${m[1]}.${m[2]}.${m[3]}.${m[4]}`);
  }
  for (const vip of elements.keys()) vips.add(vip);
  for (const vip of [...vips].sort()) {
    const want = snatPieces(vip, desired);
    const chainName = snatChain(vip);
    const chain = t.chains.get(chainName);
    const element = elements.get(vip)?.value;
    const reasons: string[] = [];
    if (!want) {
      if (chain) reasons.push(`chain ${chainName} is not needed`);
      if (element !== undefined) reasons.push(`${FULLNAT_VIPS_MAP} element ${vip} is not needed`);
    } else {
      if (!chain) reasons.push(`chain ${chainName} missing`);
      else reasons.push(...chainRuleReasons(chainName, chain, { rules: want.rules }));
      if (element === undefined) reasons.push(`${FULLNAT_VIPS_MAP} element ${vip} missing`);
      else if (element !== want.element) reasons.push(`${FULLNAT_VIPS_MAP} element ${vip} is "${element}", not "${want.element}"`);
    }
    if (reasons.length > 0) ops.push({ what: 'repair-snat', vip, reasons });
  }
  return ops;
}
