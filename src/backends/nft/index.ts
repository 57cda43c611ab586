// The nftables backend: slbctl's own tables, changed as one transaction per
// plan, every object compared with what it must be (src/kernel/nft).
import { applyCommands, listTable, requireNft } from '../../kernel/nft/client';
import { readGeneration } from '../../kernel/nft/generation';
import { appliedAt, forgetApplied, kernelFromApplied, nextGeneration, recordApplied } from '../../kernel/nft/applied';
import { NftChange } from '../../kernel/nft/changes';
import { observeFromListings } from '../../kernel/nft/observe';
import { planCommands, renderPlan } from '../../kernel/nft/render';
import { countFor, expireUdpFlows, listFlows } from '../../kernel/conntrack/conntrack';
import { NFT_SCHEDULERS, serviceKey } from '../../model/types';
import { findCommand } from '../../util/exec';
import { Backend, BackendDriver } from '../types';
import { Plan } from '../../plan/types';
import { describeNftChange } from './describe';
import { nftPlan } from './plan';

declare module '../../plan/types' {
  interface BackendChanges {
    nft: NftChange;
  }
}

/** Operations that change slbctl's nftables tables (the rest are addresses, sysctls and the L7 engine). */
const NOT_NFT: ReadonlySet<string> = new Set(['set-sysctl', 'add-address', 'delete-address', 'forget-address', 'l7']);
const isNftWork = (op: Plan['ops'][number]) => !NOT_NFT.has(op.op);

/** One conntrack listing answers the questions about every real server asked within a moment (status, drain). */
let flowCache: { at: number; flows: ReturnType<typeof listFlows> } | undefined;
function recentFlows(): ReturnType<typeof listFlows> {
  if (!flowCache || Date.now() - flowCache.at > 200) flowCache = { at: Date.now(), flows: listFlows() };
  return flowCache.flows;
}

const driver: BackendDriver = {
  async observe(_ownership, o = {}) {
    // The generation first: unmoved since slbctl recorded its tables, they are read from the record, not listed.
    const generation = await readGeneration().catch(() => undefined);
    const recorded = generation === undefined || !o.fromRecord ? undefined : appliedAt(generation);
    if (generation !== undefined && recorded)
      return { kernel: kernelFromApplied(recorded, generation, o.touching), foreign: [], legacyOwnedAddresses: [] };
    const [ip, netdev] = await Promise.all([listTable('ip'), listTable('netdev')]);
    const { legacyOwnedAddresses, ...kernel } = observeFromListings({ ip, netdev });
    // Trusted only if nothing committed while the tables were listed.
    if (generation !== undefined && (await readGeneration().catch(() => undefined)) === generation) kernel.nftGeneration = generation;
    return { kernel, foreign: [], legacyOwnedAddresses };
  },
  async stamp() {
    const generation = await readGeneration().catch(() => undefined);
    return generation === undefined ? undefined : `nft generation ${generation}`;
  },
  recordAt(stamp) {
    const m = /^nft generation (\d+)$/.exec(stamp);
    return m ? appliedAt(Number(m[1])) : undefined;
  },
  planned(plan) {
    // Listed at a steady generation and nothing to change: the tables are the desired state, recorded as such.
    const generation = plan.observed.kernel.nftGeneration;
    if (generation === undefined || plan.observed.kernel.nftRecorded || plan.ops.some(isNftWork)) return;
    try {
      recordApplied(generation, plan.desired.services);
    } catch {
      // No record: the next plan lists the tables, as it would have.
    }
  },
  preflight() {
    requireNft();
  },
  async execute(plan, log, passFd) {
    const commands = planCommands(plan);
    if (commands.length === 0) return;
    const before = plan.observed.kernel.nftGeneration;
    const how = await applyCommands(commands, before, passFd);
    log(`nftables transaction applied (${commands.length} commands${how === 'nfnetlink' ? ', as one nfnetlink batch' : ''})`);
    // Recorded only if this transaction is the one commit since the tables were observed: then they are the desired
    // state. Another commit in between (anyone's) leaves no record, and the next plan lists the tables.
    const after = await readGeneration().catch(() => undefined);
    try {
      if (before !== undefined && after === nextGeneration(before)) recordApplied(after, plan.desired.services);
      else forgetApplied();
    } catch (e) {
      // The transaction is in: a record that cannot be written must not undo it. An old record is of an older generation.
      log(`the record of the nftables tables was not written (${(e as Error).message}); the next plan lists the tables`);
    }
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
    snatPool: true,
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
