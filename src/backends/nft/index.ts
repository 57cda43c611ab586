// The nftables backend: slbctl's own tables, changed as one transaction per
// plan, every object compared with what it must be (src/kernel/nft).
import { applyScript, listTable, requireNft } from '../../kernel/nft/client';
import { NftChange } from '../../kernel/nft/changes';
import { observeFromListings } from '../../kernel/nft/observe';
import { renderPlan } from '../../kernel/nft/render';
import { countFor, expireUdpFlows, listFlows } from '../../kernel/conntrack/conntrack';
import { NFT_SCHEDULERS, serviceKey } from '../../model/types';
import { findCommand } from '../../util/exec';
import { Backend, BackendDriver } from '../types';
import { describeNftChange } from './describe';
import { nftPlan } from './plan';

declare module '../../plan/types' {
  interface BackendChanges {
    nft: NftChange;
  }
}

/** One conntrack listing answers the questions about every real server asked within a moment (status, drain). */
let flowCache: { at: number; flows: ReturnType<typeof listFlows> } | undefined;
function recentFlows(): ReturnType<typeof listFlows> {
  if (!flowCache || Date.now() - flowCache.at > 200) flowCache = { at: Date.now(), flows: listFlows() };
  return flowCache.flows;
}

const driver: BackendDriver = {
  async observe() {
    const [ip, netdev] = await Promise.all([listTable('ip'), listTable('netdev')]);
    const { legacyOwnedAddresses, ...kernel } = observeFromListings({ ip, netdev });
    return { kernel, foreign: [], legacyOwnedAddresses };
  },
  preflight() {
    requireNft();
  },
  async execute(plan, log, passFd) {
    const script = renderPlan(plan);
    await applyScript(script, passFd);
    if (script) log(`nftables transaction applied (${script.split('\n').length - 1} commands)`);
  },
  async afterApply(plan, log) {
    // NAT keeps a UDP flow on its real server until conntrack forgets it: a server taken out must lose its flows now.
    for (const op of plan.ops) {
      if (op.op !== 'delete-real-server' || op.service.protocol !== 'udp' || op.service.mode === 'dsr') continue;
      const n = await expireUdpFlows(op.service, op.realServer);
      if (n !== undefined)
        log(`${n} UDP flow${n === 1 ? '' : 's'} to ${op.realServer.address}:${op.realServer.port} of ${serviceKey(op.service)} expired`);
    }
  },
  async connections(service, realServer) {
    // DSR on nftables keeps no state: the balancer cannot see the connections.
    if (service.mode === 'dsr') return { active: 0, inactive: 0, visible: false };
    const flows = await recentFlows();
    return flows ? { ...countFor(flows, service, realServer), visible: true } : { active: 0, inactive: 0, visible: false };
  },
  close() {
    // nft runs once per request: nothing stays open.
  },
};

export const nftBackend: Backend<'nft'> = {
  name: 'nft',
  capabilities: {
    schedulers: NFT_SCHEDULERS,
    persistence: false,
    encapsulations: ['none'],
    dsrNeedsMacs: true,
    title: 'the nftables backend',
  },
  async open() {
    requireNft();
    return driver;
  },
  async tryOpen() {
    return findCommand('nft') ? driver : undefined;
  },
  sysctls(services) {
    const sysctls: Record<string, string> = {};
    if (services.some((s) => s.mode !== 'dsr')) sysctls['net.ipv4.ip_forward'] = '1';
    return sysctls;
  },
  plan: nftPlan,
  describe: describeNftChange,
  script: renderPlan,
};
