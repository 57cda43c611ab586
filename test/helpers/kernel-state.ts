// What a test namespace holds, read with the kernel's own tools (ip, nft),
// independently of slbctl's code: the IPv4 addresses of an interface, and
// slbctl's nftables tables with the checks every test makes on them.
import { run, runChecked } from '../../src/util/exec';

/** The IPv4 addresses on `device` in `ns`, as "a.b.c.d/len". */
export async function addressesOn(ns: string, device = 'eth0'): Promise<string[]> {
  const r = await runChecked('ip addr', ['ip', '-n', ns, '-j', '-4', 'addr', 'show', 'dev', device]);
  const links = JSON.parse(r.stdout) as { addr_info?: { local: string; prefixlen: number }[] }[];
  return links.flatMap((l) => (l.addr_info ?? []).map((a) => `${a.local}/${a.prefixlen}`)).sort();
}

/** "family name" of every nftables table in `ns`. */
export async function nftTables(ns: string): Promise<string[]> {
  const r = await runChecked('nft list tables', ['nft', 'list', 'tables'], { netns: ns });
  return r.stdout
    .split('\n')
    .map((l) => l.replace(/^table /, '').trim())
    .filter(Boolean);
}

/** One object of `nft -j` output: {chain: …}, {rule: …}, {map: …} … */
export type NftObject = Partial<Record<string, Record<string, unknown>>>;

/** The JSON objects of slbctl's table of `family`, or [] when there is none. */
export async function listSlbctl(ns: string, family: 'ip' | 'netdev'): Promise<NftObject[]> {
  const r = await run(['nft', '-j', 'list', 'table', family, 'slbctl'], { netns: ns });
  if (r.code !== 0) {
    if (/No such file or directory/.test(r.stderr)) return [];
    throw new Error(`nft -j list table ${family} slbctl: ${r.stderr}`);
  }
  return (JSON.parse(r.stdout) as { nftables: NftObject[] }).nftables;
}

/**
 * Rule problems in one table's listing: a base (hook) chain without exactly
 * one rule, or any chain holding the same rule twice (what a non-atomic or
 * repeated apply would leave).
 */
export function ruleProblems(objects: readonly NftObject[]): string[] {
  const problems: string[] = [];
  const hooks = new Set<string>();
  const rules = new Map<string, string[]>();
  for (const o of objects) {
    const chain = o.chain;
    if (chain) {
      rules.set(String(chain.name), rules.get(String(chain.name)) ?? []);
      if (chain.hook !== undefined) hooks.add(String(chain.name));
    }
    const rule = o.rule;
    if (rule) {
      const list = rules.get(String(rule.chain)) ?? [];
      list.push(JSON.stringify(rule.expr));
      rules.set(String(rule.chain), list);
    }
  }
  for (const h of hooks) {
    const n = rules.get(h)?.length ?? 0;
    if (n !== 1) problems.push(`hook chain ${h} has ${n} rules`);
  }
  for (const [chain, list] of rules) {
    if (new Set(list).size !== list.length) problems.push(`chain ${chain} holds a rule twice`);
  }
  return problems;
}

/** ruleProblems over both of slbctl's tables in `ns`. */
export async function slbctlRuleProblems(ns: string): Promise<string[]> {
  const [ip, netdev] = await Promise.all([listSlbctl(ns, 'ip'), listSlbctl(ns, 'netdev')]);
  return [...ruleProblems(ip).map((p) => `ip: ${p}`), ...ruleProblems(netdev).map((p) => `netdev: ${p}`)];
}

export async function sysctl(ns: string, key: string): Promise<string> {
  const r = await runChecked('sysctl', ['sysctl', '-n', key], { netns: ns });
  return r.stdout.trim();
}
