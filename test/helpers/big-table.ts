// Which of the crash test's two configs slbctl's nftables table holds: all of
// one, or a mix (what a transaction that was not atomic would leave).
import { BigConfig } from './many-services';
import { NftObject, ruleProblems } from './kernel-state';

type Elem = [{ concat: [string, string, number] }, unknown];
interface Member {
  elem: { val: { concat: [string, string, number, string, number] }; comment?: string };
}

/** "tcp . VIP . PORT" of every service in the listing, and the weights of real server 172.16.75.82. */
function contents(objects: readonly NftObject[]): { keys: string[]; weights: Set<string>; emptyChains: number } {
  const keys: string[] = [];
  const weights = new Set<string>();
  const rules = new Map<string, number>();
  for (const o of objects) {
    if (o.map?.name === 'services') for (const e of (o.map.elem ?? []) as Elem[]) keys.push(e[0].concat.join(' . '));
    if (o.set?.name === 'members') {
      for (const m of (o.set.elem ?? []) as Member[]) if (m.elem.val.concat[3] === '172.16.75.82') weights.add(m.elem.comment ?? '');
    }
    if (o.chain && String(o.chain.name).startsWith('svc_')) rules.set(String(o.chain.name), rules.get(String(o.chain.name)) ?? 0);
    if (o.rule && String(o.rule.chain).startsWith('svc_')) rules.set(String(o.rule.chain), (rules.get(String(o.rule.chain)) ?? 0) + 1);
  }
  return { keys: keys.sort(), weights, emptyChains: [...rules.values()].filter((n) => n !== 1).length };
}

/** 'x' or 'y' when the table is exactly that config's, else what is mixed. */
export function whichConfig(objects: readonly NftObject[], x: BigConfig, y: BigConfig): string {
  const c = contents(objects);
  const problems = ruleProblems(objects);
  const matches = (cfg: BigConfig) => {
    const want = [...cfg.serviceKeys].sort();
    return (
      c.keys.length === want.length && c.keys.every((k, i) => k === want[i]) && c.weights.size === 1 && c.weights.has(`w=${cfg.weight}`)
    );
  };
  if (problems.length === 0 && c.emptyChains === 0) {
    if (matches(x)) return 'x';
    if (matches(y)) return 'y';
  }
  return `mixed: ${c.keys.length} services, weights ${[...c.weights].join('/')}, ${c.emptyChains} service chains without exactly one rule, ${problems.slice(0, 3).join('; ')}`;
}
