// The return path of the L7 transparent proxy (TPROXY). HAProxy connects to
// the real server from the client's own address (`usesrc clientip`, a
// transparent socket); the real server's replies, routed back through the
// balancer, are addressed to the client, not to this host. Three pieces make
// the kernel hand them to HAProxy's socket:
//   - in slbctl's own nft table, a packet that belongs to a transparent
//     socket of this host gets a mark (`socket transparent 1`): only those,
//     so a kernel-NAT service's replies on the same port are untouched;
//   - a policy rule sends that mark to a table of its own;
//   - in that table, every address is local (`local 0.0.0.0/0 dev lo`).
// The mark, table and rule priority are slbctl's (constants below); each
// piece is slbctl's by those values, and only those are ever removed.
import { Rtnl } from '../../kernel/rtnl/rtnl';
import { applyScript, requireNft } from '../../kernel/nft/client';
import { run } from '../../util/exec';

/** "SL7" */
export const TPROXY_MARK = 0x534c37;
export const TPROXY_TABLE = 7437;
export const TPROXY_RULE_PRIORITY = 7437;
export const TPROXY_NFT_TABLE = 'slbctl_l7';

export interface ReturnPathState {
  nft: boolean;
  rule: boolean;
  route: boolean;
}

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
          `    meta l4proto tcp socket transparent 1 meta mark set 0x${TPROXY_MARK.toString(16).padStart(8, '0')} accept`,
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

export async function observeReturnPath(rtnl: Rtnl): Promise<ReturnPathState> {
  const listed = await run(['nft', 'list', 'table', 'ip', TPROXY_NFT_TABLE]);
  return {
    nft: listed.code === 0 && /socket transparent 1 meta mark set/.test(listed.stdout),
    rule: (await rtnl.fwmarkRules(TPROXY_MARK, TPROXY_TABLE)).includes(TPROXY_RULE_PRIORITY),
    route: await rtnl.hasLocalDefaultRoute(TPROXY_TABLE),
  };
}

/**
 * The pieces that are missing are added; the state as it was comes back (to
 * undo). The rule goes first and is removed last: while any piece is there,
 * the rule is, and the engine's cheap look (the rules alone) finds it after
 * a crash halfway.
 */
export async function addReturnPath(rtnl: Rtnl): Promise<ReturnPathState> {
  requireNft();
  const was = await observeReturnPath(rtnl);
  if (!was.rule) await rtnl.addFwmarkRule(TPROXY_RULE_PRIORITY, TPROXY_MARK, TPROXY_TABLE);
  if (!was.route) await rtnl.addLocalDefaultRoute(TPROXY_TABLE, await loIndex(rtnl));
  if (!was.nft) await applyScript(nftScript(true));
  return was;
}

/** slbctl's pieces that are there are removed (the rule last); the state as it was comes back (to undo). */
export async function removeReturnPath(rtnl: Rtnl): Promise<ReturnPathState> {
  const was = await observeReturnPath(rtnl);
  if (was.nft) await applyScript(nftScript(false));
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
