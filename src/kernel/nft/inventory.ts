// `nft -j list table …` -> every object of one of slbctl's tables, as plain
// comparable data: chains (with their hook and rules), sets and maps (with
// their type and elements). Pure. The expected inventory (expected.ts) has
// the same shape, so drift is a comparison of two of these.
import { Family } from '../../model/state';
import { TABLE } from './names';
import { ruleFingerprint } from './rules';

type Json = unknown;

export interface RuleInfo {
  /** ruleFingerprint of the rule's expression and comment. */
  fingerprint: string;
  comment?: string;
  /** The listing's raw expression (counters are read from it). */
  expr: Json[];
}

export interface ChainInfo {
  /** "type nat hook prerouting priority -100 policy accept" for a base chain; undefined for a regular one. */
  hook?: string;
  rules: RuleInfo[];
}

export interface SetInfo {
  /** "set TYPE" or "map TYPE : DATA" */
  type: string;
  /** element key text ("tcp . 172.16.75.84 . 80") -> its value text (maps) and comment. */
  elements: Map<string, { value?: string; comment?: string }>;
}

export interface TableInventory {
  family: Family;
  chains: Map<string, ChainInfo>;
  sets: Map<string, SetInfo>;
}

export function obj(v: Json): Record<string, Json> | undefined {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, Json>) : undefined;
}

export function arr(v: Json): Json[] {
  return Array.isArray(v) ? v : [];
}

/** A key or value of an element as text: concatenations joined with " . ", verdicts as "jump CHAIN". */
export function valueText(v: Json): string {
  const o = obj(v);
  if (o) {
    if (Array.isArray(o.concat)) return o.concat.map(valueText).join(' . ');
    for (const verdict of ['jump', 'goto'] as const) {
      const target = obj(o[verdict])?.target;
      if (typeof target === 'string') return `${verdict} ${target}`;
    }
    return JSON.stringify(v);
  }
  return String(v);
}

function typeText(set: Record<string, Json>): string {
  const t = (v: Json) => (Array.isArray(v) ? v.map(String).join(' . ') : String(v));
  return set.map !== undefined ? `map ${t(set.type)} : ${t(set.map)}` : `set ${t(set.type)}`;
}

function readElements(set: Record<string, Json>): SetInfo['elements'] {
  const elements: SetInfo['elements'] = new Map();
  for (const e of arr(set.elem)) {
    // A map element is [key, value]; a key with a comment is {elem: {val, comment}}.
    const pair = Array.isArray(e) ? e : [e];
    const wrapped = obj(obj(pair[0])?.elem);
    const key = valueText(wrapped ? wrapped.val : pair[0]);
    const info: { value?: string; comment?: string } = {};
    if (pair.length > 1) info.value = valueText(pair[1]);
    if (wrapped && typeof wrapped.comment === 'string') info.comment = wrapped.comment;
    elements.set(key, info);
  }
  return elements;
}

export function inventoryFromListing(family: Family, listing: Json): TableInventory {
  const inv: TableInventory = { family, chains: new Map(), sets: new Map() };
  const rules: Record<string, Json>[] = [];
  for (const item of arr(obj(listing)?.nftables)) {
    const o = obj(item) ?? {};
    const set = obj(o.set) ?? obj(o.map);
    if (set && set.table === TABLE && typeof set.name === 'string')
      inv.sets.set(set.name, { type: typeText(set), elements: readElements(set) });
    const chain = obj(o.chain);
    if (chain && chain.table === TABLE && typeof chain.name === 'string') {
      const info: ChainInfo = { rules: [] };
      if (typeof chain.hook === 'string')
        info.hook = `type ${String(chain.type)} hook ${chain.hook} priority ${String(chain.prio)} policy ${String(chain.policy)}`;
      inv.chains.set(chain.name, info);
    }
    const rule = obj(o.rule);
    if (rule && rule.table === TABLE) rules.push(rule);
  }
  // Rules are listed after all chains.
  for (const rule of rules) {
    const chain = inv.chains.get(String(rule.chain));
    if (!chain) continue;
    const comment = typeof rule.comment === 'string' ? rule.comment : undefined;
    const expr = arr(rule.expr);
    chain.rules.push({ fingerprint: ruleFingerprint(expr, comment), expr, ...(comment !== undefined ? { comment } : {}) });
  }
  return inv;
}
