// Source NAT beside IPVS for fullnat, through iptables: for kernels where
// nftables has no NAT (Debian's user-mode-linux kernel is one). slbctl owns
// one chain in the nat table, SLBCTL-SNAT, jumped to from POSTROUTING, and
// rewrites it whole with iptables-restore --noflush (atomic per table); it
// touches no other chain or rule. Connections are matched by IPVS's own view
// (-m ipvs --vaddr/--vport, direction ORIGINAL), which needs
// net.ipv4.vs.conntrack=1 so IPVS keeps conntrack entries that NAT can use.
import { findCommand, run, runChecked } from '../../util/exec';

export const SNAT_CHAIN = 'SLBCTL-SNAT';

export interface SnatRule {
  protocol: 'tcp' | 'udp';
  vip: string;
  port: number;
  snatAddress: string;
}

/** iptables-legacy where it exists: the nft-based iptables needs nftables NAT, which such kernels lack. */
export function iptablesBinary(): string {
  const binary = findCommand('iptables-legacy') ?? findCommand('iptables');
  if (!binary) throw new Error('iptables: not found; fullnat on IPVS needs it for source NAT (apt-get install iptables)');
  return binary;
}

export function restoreScript(rules: readonly SnatRule[]): string {
  const lines = ['*nat', `:${SNAT_CHAIN} - [0:0]`];
  for (const r of [...rules].sort((a, b) => `${a.vip}:${a.port}`.localeCompare(`${b.vip}:${b.port}`))) {
    lines.push(`-A ${SNAT_CHAIN} -p ${r.protocol} -m ipvs --vaddr ${r.vip}/32 --vport ${r.port} --vdir ORIGINAL -j SNAT --to-source ${r.snatAddress}`);
  }
  lines.push('COMMIT');
  return `${lines.join('\n')}\n`;
}

/** Make SLBCTL-SNAT hold exactly these rules; with none, remove the chain and its jump. */
export async function applySnat(rules: readonly SnatRule[]): Promise<void> {
  const iptables = iptablesBinary();
  // iptables-legacy -> iptables-legacy-restore, iptables -> iptables-restore
  const restore = iptables.replace(/iptables(-legacy)?$/, (_m, legacy: string | undefined) => `iptables${legacy ?? ''}-restore`);
  const hasJump = (await run([iptables, '-t', 'nat', '-C', 'POSTROUTING', '-j', SNAT_CHAIN])).code === 0;
  const hasChain = (await run([iptables, '-t', 'nat', '-S', SNAT_CHAIN])).code === 0;
  if (rules.length === 0) {
    if (hasJump) await runChecked('iptables: remove the jump to SLBCTL-SNAT', [iptables, '-t', 'nat', '-D', 'POSTROUTING', '-j', SNAT_CHAIN]);
    if (hasChain) {
      await runChecked('iptables: flush SLBCTL-SNAT', [iptables, '-t', 'nat', '-F', SNAT_CHAIN]);
      await runChecked('iptables: delete SLBCTL-SNAT', [iptables, '-t', 'nat', '-X', SNAT_CHAIN]);
    }
    return;
  }
  await runChecked('iptables-restore: SLBCTL-SNAT', [restore, '--noflush'], { input: restoreScript(rules) });
  if (!hasJump) await runChecked('iptables: jump to SLBCTL-SNAT', [iptables, '-t', 'nat', '-A', 'POSTROUTING', '-j', SNAT_CHAIN]);
}

/** The rules SLBCTL-SNAT holds now (empty when the chain does not exist). */
export async function readSnat(): Promise<SnatRule[]> {
  const r = await run([iptablesBinary(), '-t', 'nat', '-S', SNAT_CHAIN]);
  if (r.code !== 0) return [];
  const rules: SnatRule[] = [];
  for (const line of r.stdout.split('\n')) {
    // iptables prints a /32 vaddr without its prefix length.
    const m = /-p (tcp|udp) .*--vaddr ([0-9.]+)(?:\/32)? --vport (\d+).*--to-source ([0-9.]+)/.exec(line);
    if (m) rules.push({ protocol: m[1] as 'tcp' | 'udp', vip: m[2] as string, port: Number(m[3]), snatAddress: m[4] as string });
  }
  return rules;
}
