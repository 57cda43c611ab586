// The return path of the L7 transparent proxy (TPROXY). HAProxy connects to
// the real server from the client's own address (`usesrc clientip`, a
// transparent socket); the real server's replies, routed back through the
// balancer, are addressed to the client, not to this host. Three pieces make
// the kernel hand them to HAProxy's socket:
//   - in slbctl's own nft table, a packet that belongs to a transparent
//     socket of this host gets a mark (`socket transparent 1`): only those,
//     so a kernel-NAT service's replies on the same port are untouched.
//     Where nftables has no `ip` family (Debian's user-mode-linux kernel) or
//     nft is not installed, the same mark comes from slbctl's own iptables
//     chain SLBCTL-L7 in the mangle table (`-m socket --transparent`),
//     jumped to once from PREROUTING;
//   - a policy rule sends that mark to a table of its own;
//   - in that table, every address is local (`local 0.0.0.0/0 dev lo`).
// The mark, table and rule priority are slbctl's (constants below); each
// piece is slbctl's by those values, and only those are ever removed.
import { Rtnl } from '../../kernel/rtnl/rtnl';
import { applyScript } from '../../kernel/nft/client';
import { iptablesBinary } from '../../kernel/iptables/snat';
import { EXIT, PreflightError } from '../../util/errors';
import { findCommand, run, runChecked } from '../../util/exec';

/** "SL7" */
export const TPROXY_MARK = 0x534c37;
export const TPROXY_TABLE = 7437;
export const TPROXY_RULE_PRIORITY = 7437;
export const TPROXY_NFT_TABLE = 'slbctl_l7';
export const TPROXY_IPTABLES_CHAIN = 'SLBCTL-L7';

export interface ReturnPathState {
  /** The mark on packets of transparent sockets: slbctl's nft table, or its iptables chain where nftables cannot. */
  nft: boolean;
  rule: boolean;
  route: boolean;
}

const MARK_HEX = `0x${TPROXY_MARK.toString(16).padStart(8, '0')}`;

export const complete = (s: ReturnPathState) => s.nft && s.rule && s.route;
export const absent = (s: ReturnPathState) => !s.nft && !s.rule && !s.route;

const nftScript = (withRule: boolean) =>
  [
    // add first, so the delete finds it: the table is rebuilt whole (only slbctl's own table).
    `add table ip ${TPROXY_NFT_TABLE}`,
    `delete table ip ${TPROXY_NFT_TABLE}`,
    ...(withRule
      ? [
          `table ip ${TPROXY_NFT_TABLE} {`,
          '  chain prerouting {',
          '    type filter hook prerouting priority mangle; policy accept;',
          `    meta l4proto tcp socket transparent 1 meta mark set ${MARK_HEX} accept`,
          '  }',
          '}',
        ]
      : []),
    '',
  ].join('\n');

async function loIndex(rtnl: Rtnl): Promise<number> {
  const lo = (await rtnl.interfaces()).find((i) => i.name === 'lo');
  return lo?.index ?? 1;
}

/** slbctl's iptables chain as `iptables -t mangle -S` shows it: the chain, its one rule, the jumps to it. */
export interface IptablesMark {
  chain: boolean;
  rule: boolean;
  jumps: number;
}

// As `iptables -S` prints it back (hex without leading zeros), so observe finds what add wrote.
const IPTABLES_RULE = `-A ${TPROXY_IPTABLES_CHAIN} -p tcp -m socket --transparent -j MARK --set-xmark 0x${TPROXY_MARK.toString(16)}/0xffffffff`;

export function parseMangleListing(text: string): IptablesMark {
  const lines = text.split('\n');
  return {
    chain: lines.includes(`-N ${TPROXY_IPTABLES_CHAIN}`),
    rule: lines.includes(IPTABLES_RULE),
    jumps: lines.filter((l) => l === `-A PREROUTING -j ${TPROXY_IPTABLES_CHAIN}`).length,
  };
}

async function readIptablesMark(): Promise<IptablesMark> {
  const iptables = iptablesBinary();
  const none = { chain: false, rule: false, jumps: 0 };
  if (!iptables) return none;
  const r = await run([iptables, '-t', 'mangle', '-S']);
  return r.code === 0 ? parseMangleListing(r.stdout) : none;
}

async function hasNftTable(): Promise<boolean> {
  if (!findCommand('nft')) return false;
  const listed = await run(['nft', 'list', 'table', 'ip', TPROXY_NFT_TABLE]);
  return listed.code === 0 && /socket transparent 1 meta mark set/.test(listed.stdout);
}

/** The mark's two possible homes, as they are: slbctl's nft table and its iptables chain. */
interface MarkPieces {
  nftTable: boolean;
  iptables: IptablesMark;
}

/** The return path in one look: its state, and where the mark lives (what add and remove act on). */
async function look(rtnl: Rtnl): Promise<{ state: ReturnPathState; mark: MarkPieces }> {
  const mark = { nftTable: await hasNftTable(), iptables: await readIptablesMark() };
  return {
    state: {
      nft: mark.nftTable || (mark.iptables.rule && mark.iptables.jumps === 1),
      rule: (await rtnl.fwmarkRules(TPROXY_MARK, TPROXY_TABLE)).includes(TPROXY_RULE_PRIORITY),
      route: await rtnl.hasLocalDefaultRoute(TPROXY_TABLE),
    },
    mark,
  };
}

export async function observeReturnPath(rtnl: Rtnl): Promise<ReturnPathState> {
  return (await look(rtnl)).state;
}

const iptablesStep = (what: string, argv: string[], input?: string) =>
  runChecked(`iptables: ${what}`, argv, input === undefined ? { exitCode: EXIT.kernel } : { exitCode: EXIT.kernel, input });

/** Remove `count` jumps from PREROUTING to slbctl's chain (iptables -D takes one at a time). */
async function removeJumps(iptables: string, count: number): Promise<void> {
  for (let i = 0; i < count; i++)
    await iptablesStep(`remove a jump to ${TPROXY_IPTABLES_CHAIN}`, [
      iptables,
      '-t',
      'mangle',
      '-D',
      'PREROUTING',
      '-j',
      TPROXY_IPTABLES_CHAIN,
    ]);
}

/** The mark through slbctl's iptables chain: rewritten whole (iptables-restore --noflush), one jump from PREROUTING. */
async function addIptablesMark(have: IptablesMark): Promise<void> {
  const iptables = iptablesBinary();
  if (!iptables)
    throw new PreflightError(
      'L7 transparent: neither nft nor iptables is installed, and its return path needs one of them (apt-get install nftables, or run `npm run setup`)',
    );
  const restore = iptables.replace(/iptables(-legacy)?$/, (_m, legacy: string | undefined) => `iptables${legacy ?? ''}-restore`);
  await iptablesStep(
    `restore ${TPROXY_IPTABLES_CHAIN}`,
    [restore, '--noflush'],
    `*mangle\n:${TPROXY_IPTABLES_CHAIN} - [0:0]\n${IPTABLES_RULE}\nCOMMIT\n`,
  );
  await removeJumps(iptables, have.jumps - 1);
  if (have.jumps === 0)
    await iptablesStep(`jump to ${TPROXY_IPTABLES_CHAIN}`, [iptables, '-t', 'mangle', '-A', 'PREROUTING', '-j', TPROXY_IPTABLES_CHAIN]);
}

async function removeIptablesMark(have: IptablesMark): Promise<void> {
  const iptables = iptablesBinary();
  if (!iptables) return;
  await removeJumps(iptables, have.jumps);
  if (have.chain) {
    await iptablesStep(`flush ${TPROXY_IPTABLES_CHAIN}`, [iptables, '-t', 'mangle', '-F', TPROXY_IPTABLES_CHAIN]);
    await iptablesStep(`delete ${TPROXY_IPTABLES_CHAIN}`, [iptables, '-t', 'mangle', '-X', TPROXY_IPTABLES_CHAIN]);
  }
}

/** nft where it can (installed, with the ip family); iptables where it cannot. */
async function addMark(iptables: IptablesMark): Promise<void> {
  if (findCommand('nft')) {
    try {
      await applyScript(nftScript(true));
      return;
    } catch (e) {
      // The kernel's nftables lacks the ip family: the transaction was refused whole, nothing is left of it.
      if (!(e instanceof Error && /Operation not supported/.test(e.message))) throw e;
    }
  }
  await addIptablesMark(iptables);
}

/**
 * The pieces that are missing are added; the state as it was comes back (to
 * undo). The rule goes first and is removed last: while any piece is there,
 * the rule is, and the engine's cheap look (the rules alone) finds it after
 * a crash halfway.
 */
export async function addReturnPath(rtnl: Rtnl): Promise<ReturnPathState> {
  const { state: was, mark } = await look(rtnl);
  if (!was.rule) await rtnl.addFwmarkRule(TPROXY_RULE_PRIORITY, TPROXY_MARK, TPROXY_TABLE);
  if (!was.route) await rtnl.addLocalDefaultRoute(TPROXY_TABLE, await loIndex(rtnl));
  if (!was.nft) await addMark(mark.iptables);
  return was;
}

/** slbctl's pieces that are there are removed (the rule last); the state as it was comes back (to undo). */
export async function removeReturnPath(rtnl: Rtnl): Promise<ReturnPathState> {
  const { state: was, mark } = await look(rtnl);
  if (mark.nftTable) await applyScript(nftScript(false));
  await removeIptablesMark(mark.iptables);
  if (was.route) await rtnl.deleteLocalDefaultRoute(TPROXY_TABLE, await loIndex(rtnl));
  if (was.rule) await rtnl.deleteFwmarkRule(TPROXY_RULE_PRIORITY, TPROXY_MARK, TPROXY_TABLE);
  return was;
}

/** Put the pieces back as they were (undo of add or remove). */
export async function restoreReturnPath(rtnl: Rtnl, to: ReturnPathState): Promise<void> {
  const now = await observeReturnPath(rtnl);
  if (absent(to)) {
    await removeReturnPath(rtnl);
    return;
  }
  if (complete(to) && !complete(now)) await addReturnPath(rtnl);
}
