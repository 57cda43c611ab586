// Source NAT beside IPVS for fullnat, through iptables: for kernels where
// nftables has no NAT (Debian's user-mode-linux kernel is one). slbctl owns
// one chain in the nat table, SLBCTL-SNAT, jumped to once from POSTROUTING,
// and rewrites it whole with iptables-restore --noflush (atomic per table);
// it touches no other chain or rule. Connections are matched by IPVS's own
// view (-m ipvs --vaddr/--vport, direction ORIGINAL), which needs
// net.ipv4.vs.conntrack=1 so IPVS keeps conntrack entries that NAT can use.
import { findCommand, run, runChecked } from '../../util/exec';
import { EXIT, PreflightError } from '../../util/errors';
import { Protocol } from '../../model/types';

export const SNAT_CHAIN = 'SLBCTL-SNAT';

export interface SnatRule {
  protocol: Protocol;
  vip: string;
  port: number;
  snatAddress: string;
}

/** The chain and its jump as iptables has them now. */
export interface SnatObserved {
  chain: boolean;
  /** How many POSTROUTING rules jump to the chain (exactly one when in order). */
  jumps: number;
  rules: SnatRule[];
  /** Rules in the chain that slbctl does not write (added by hand). */
  foreign: number;
}

export const NO_SNAT: SnatObserved = { chain: false, jumps: 0, rules: [], foreign: 0 };

const byTarget = (a: SnatRule, b: SnatRule) => `${a.vip}:${a.port}/${a.protocol}`.localeCompare(`${b.vip}:${b.port}/${b.protocol}`);

/** The rules the fullnat services need, in the order they are written. */
export function snatRulesOf(
  services: readonly { mode: string; protocol: Protocol; vip: string; port: number; snatAddress?: string }[],
): SnatRule[] {
  return services
    .filter((s) => s.mode === 'fullnat' && s.snatAddress)
    .map((s) => ({ protocol: s.protocol, vip: s.vip, port: s.port, snatAddress: s.snatAddress as string }))
    .sort(byTarget);
}

/** Does iptables hold exactly these rules (and, with none, no chain and no jump)? */
export function snatMatches(have: SnatObserved, want: readonly SnatRule[]): boolean {
  if (want.length === 0) return !have.chain && have.jumps === 0;
  return have.chain && have.jumps === 1 && have.foreign === 0 && JSON.stringify([...have.rules].sort(byTarget)) === JSON.stringify(want);
}

/** What a set-snat op changes, for the plan. */
export function describeSnatChange(have: SnatObserved, want: readonly SnatRule[]): string[] {
  const reasons: string[] = [];
  if (want.length === 0) {
    if (have.chain) reasons.push(`chain ${SNAT_CHAIN} removed`);
    if (have.jumps > 0) reasons.push(`${have.jumps} jump${have.jumps === 1 ? '' : 's'} from POSTROUTING removed`);
    return reasons;
  }
  if (!have.chain) reasons.push(`chain ${SNAT_CHAIN} created`);
  if (have.jumps !== 1) reasons.push(`${have.jumps} jumps from POSTROUTING -> 1`);
  if (have.foreign > 0) reasons.push(`${have.foreign} rule${have.foreign === 1 ? '' : 's'} not slbctl's removed`);
  const text = (r: SnatRule) => `${r.protocol}/${r.vip}:${r.port} -> ${r.snatAddress}`;
  const had = new Set(have.rules.map(text));
  const wanted = new Set(want.map(text));
  for (const r of want) if (!had.has(text(r))) reasons.push(`+ ${text(r)}`);
  for (const r of have.rules) if (!wanted.has(text(r))) reasons.push(`- ${text(r)}`);
  return reasons;
}

/** iptables-legacy where it exists: the nft-based iptables needs nftables NAT, which such kernels lack. */
export function iptablesBinary(): string | undefined {
  return findCommand('iptables-legacy') ?? findCommand('iptables');
}

function requireIptables(): string {
  const binary = iptablesBinary();
  if (!binary)
    throw new PreflightError(
      'iptables: not installed; fullnat on IPVS needs it for source NAT (apt-get install iptables, or run `npm run setup`)',
    );
  return binary;
}

export function restoreScript(rules: readonly SnatRule[]): string {
  const lines = ['*nat', `:${SNAT_CHAIN} - [0:0]`];
  for (const r of [...rules].sort(byTarget)) {
    lines.push(
      `-A ${SNAT_CHAIN} -p ${r.protocol} -m ipvs --vaddr ${r.vip}/32 --vport ${r.port} --vdir ORIGINAL -j SNAT --to-source ${r.snatAddress}`,
    );
  }
  lines.push('COMMIT');
  return `${lines.join('\n')}\n`;
}

/** Parse `iptables -t nat -S`: the chain, the jumps to it, and its rules. */
export function parseNatListing(text: string): SnatObserved {
  const seen: SnatObserved = { chain: false, jumps: 0, rules: [], foreign: 0 };
  for (const line of text.split('\n')) {
    if (line === `-N ${SNAT_CHAIN}`) seen.chain = true;
    else if (line === `-A POSTROUTING -j ${SNAT_CHAIN}`) seen.jumps++;
    else if (line.startsWith(`-A ${SNAT_CHAIN} `)) {
      // iptables prints a /32 vaddr without its prefix length.
      const m = /^-A \S+ -p (tcp|udp) -m ipvs --vaddr ([0-9.]+)(?:\/32)? --vport (\d+) --vdir ORIGINAL -j SNAT --to-source ([0-9.]+)$/.exec(
        line,
      );
      if (m) seen.rules.push({ protocol: m[1] as Protocol, vip: m[2], port: Number(m[3]), snatAddress: m[4] });
      else seen.foreign++;
    }
  }
  return seen;
}

/** Reading and rewriting the chain: iptables here, an in-memory double in tests. */
export interface SnatIo {
  read(): Promise<SnatObserved>;
  apply(have: SnatObserved, rules: readonly SnatRule[]): Promise<void>;
}

/** The chain through iptables; `passFd` (the write lock) is inherited by each iptables run. */
export function iptablesSnat(passFd?: number): SnatIo {
  return { read: () => readSnat(passFd), apply: (have, rules) => applySnat(have, rules, passFd) };
}

/** The chain as it is; with no iptables installed there is none. */
export async function readSnat(passFd?: number): Promise<SnatObserved> {
  const iptables = iptablesBinary();
  if (!iptables) return { ...NO_SNAT };
  const r = await run([iptables, '-t', 'nat', '-S'], passFd === undefined ? {} : { passFd });
  // A kernel without the nat table has no chain of slbctl's either.
  if (r.code !== 0) return { ...NO_SNAT };
  return parseNatListing(r.stdout);
}

/** Make SLBCTL-SNAT hold exactly these rules with one jump to it; with none, remove the chain and every jump. */
export async function applySnat(have: SnatObserved, rules: readonly SnatRule[], passFd?: number): Promise<void> {
  const iptables = requireIptables();
  const restore = iptables.replace(/iptables(-legacy)?$/, (_m, legacy: string | undefined) => `iptables${legacy ?? ''}-restore`);
  const opts = { exitCode: EXIT.kernel, ...(passFd === undefined ? {} : { passFd }) };
  // A refusal is the kernel's (exit 4), not a lab step's.
  const step = (what: string, argv: string[], input?: string) =>
    runChecked(`iptables: ${what}`, argv, input === undefined ? opts : { ...opts, input });
  if (rules.length === 0) {
    for (let i = 0; i < have.jumps; i++)
      await step(`remove the jump to ${SNAT_CHAIN}`, [iptables, '-t', 'nat', '-D', 'POSTROUTING', '-j', SNAT_CHAIN]);
    if (have.chain) {
      await step(`flush ${SNAT_CHAIN}`, [iptables, '-t', 'nat', '-F', SNAT_CHAIN]);
      await step(`delete ${SNAT_CHAIN}`, [iptables, '-t', 'nat', '-X', SNAT_CHAIN]);
    }
    return;
  }
  await step(`restore ${SNAT_CHAIN}`, [restore, '--noflush'], restoreScript(rules));
  for (let i = 1; i < have.jumps; i++)
    await step(`remove a second jump to ${SNAT_CHAIN}`, [iptables, '-t', 'nat', '-D', 'POSTROUTING', '-j', SNAT_CHAIN]);
  if (have.jumps === 0) await step(`jump to ${SNAT_CHAIN}`, [iptables, '-t', 'nat', '-A', 'POSTROUTING', '-j', SNAT_CHAIN]);
}
