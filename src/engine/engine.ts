// The one path to the kernel: observe -> plan -> execute (with rollback).
// apply, destroy and (later) the controller all go through here.
import { Config } from '../model/types';
import { OwnedAddress } from '../model/state';
import { Rtnl } from '../kernel/rtnl/rtnl';
import { readSysctl, writeSysctl } from '../kernel/rtnl/sysctl';
import { applyScript, listTable, requireNft } from '../kernel/nft/client';
import { observeFromListings } from '../kernel/nft/observe';
import { renderPlan } from '../kernel/nft/render';
import { plan as makePlan } from '../plan/planner';
import { DesiredState, ObservedState, Op, Plan } from '../plan/types';
import { resolveConfig } from './resolve';

export type Backend = 'nft';

export class PreflightError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PreflightError';
  }
}

/** Checks that must pass before slbctl reads or touches the kernel. */
export function preflight(backend: Config['backend']): Backend {
  if (typeof process.getuid === 'function' && process.getuid() !== 0) {
    throw new PreflightError('slbctl needs root (CAP_NET_ADMIN) to read and program the kernel; run it as root or with sudo');
  }
  if (backend === 'ipvs') {
    throw new PreflightError('the IPVS backend is not available in this version; use backend "nft" (or "auto")');
  }
  requireNft();
  return 'nft';
}

export async function observe(rtnl: Rtnl, sysctlKeys: string[]): Promise<ObservedState> {
  const [ip, netdev] = await Promise.all([listTable('ip'), listTable('netdev')]);
  const kernel = observeFromListings({ ip, netdev });
  const interfaces = await rtnl.interfaces();
  const addresses: OwnedAddress[] = interfaces.flatMap((i) => i.addresses.map((a) => ({ address: a.address, device: i.name })));
  const sysctls: Record<string, string> = {};
  for (const key of sysctlKeys) sysctls[key] = readSysctl(key);
  return { kernel, addresses, sysctls };
}

/** Resolve the config against this host and plan against what the kernel holds. */
export async function planConfig(rtnl: Rtnl, config: Config): Promise<Plan> {
  const interfaces = await rtnl.interfaces();
  const macs = new Map<string, string>();
  for (const s of config.services) {
    if (s.mode !== 'dsr') continue;
    for (const r of s.realServers) {
      if (macs.has(r.address)) continue;
      const n = await rtnl.resolveNeighbour(r.address);
      if (n) macs.set(r.address, n.mac);
    }
  }
  const desired = resolveConfig(config, { interfaces, macOf: (a) => macs.get(a) });
  const observed = await observe(rtnl, Object.keys(desired.sysctls));
  return makePlan(desired, observed);
}

/** Plan the removal of everything slbctl owns. */
export async function planDestroy(rtnl: Rtnl): Promise<Plan> {
  const desired: DesiredState = { services: [], addresses: [], sysctls: {} };
  return makePlan(desired, await observe(rtnl, []));
}

export interface ExecuteResult {
  nftScript: string;
}

/**
 * Execute a plan. nftables changes are one transaction; sysctls and addresses
 * are not transactional, so they go first and are undone if the transaction
 * fails: the kernel is left as it was.
 */
export async function executePlan(rtnl: Rtnl, plan: Plan, log: (line: string) => void = () => undefined): Promise<ExecuteResult> {
  const nftScript = renderPlan(plan);
  const undo: { what: string; run: () => Promise<void> | void }[] = [];
  let indexes: Map<string, number> | undefined;
  const ifindex = async (device: string) => {
    indexes ??= new Map((await rtnl.interfaces()).map((i) => [i.name, i.index]));
    const index = indexes.get(device);
    if (index === undefined) throw new Error(`interface ${device} disappeared`);
    return index;
  };
  const opsOf = <K extends Op['op']>(kind: K) => plan.ops.filter((o): o is Extract<Op, { op: K }> => o.op === kind);
  try {
    for (const op of opsOf('set-sysctl')) {
      writeSysctl(op.key, op.to);
      undo.push({ what: `sysctl ${op.key}=${op.from}`, run: () => { if (op.from) writeSysctl(op.key, op.from); } });
      log(`sysctl ${op.key}=${op.to}`);
    }
    for (const op of opsOf('add-address')) {
      const index = await ifindex(op.device);
      await rtnl.addAddress(index, op.address, 32);
      undo.push({ what: `remove address ${op.address}`, run: () => rtnl.deleteAddress(index, op.address, 32) });
      log(`address ${op.address}/32 added to ${op.device}`);
    }
    await applyScript(nftScript);
    if (nftScript) log(`nftables transaction applied (${nftScript.split('\n').length - 1} commands)`);
  } catch (e) {
    for (const step of undo.reverse()) {
      try {
        await step.run();
      } catch (undoError) {
        log(`rollback: ${step.what} failed: ${(undoError as Error).message}`);
      }
    }
    throw e;
  }
  for (const op of opsOf('delete-address')) {
    await rtnl.deleteAddress(await ifindex(op.device), op.address, 32);
    log(`address ${op.address}/32 removed from ${op.device}`);
  }
  return { nftScript };
}
