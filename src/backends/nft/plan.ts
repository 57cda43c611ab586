// The nftables backend's part of a plan: its two tables (ip for the NAT
// modes, netdev for DSR), the ingress hook of each DSR interface, and the
// repairs of every object a hand edit broke (src/kernel/nft/integrity.ts).
import { Family, KernelState } from '../../model/state';
import { NftChange } from '../../kernel/nft/changes';
import { familyOf } from '../../kernel/nft/expected';
import { objectRepairs, tablesToRebuild } from '../../kernel/nft/integrity';
import { DesiredState } from '../../plan/types';
import { PlanHooks } from '../types';

/** The kernel as it will be once the tables being rebuilt are empty again. */
function withoutTables(kernel: KernelState, rebuilt: ReadonlySet<Family>): KernelState {
  if (rebuilt.size === 0) return kernel;
  return {
    ...kernel,
    services: kernel.services.filter((s) => !rebuilt.has(s.nft?.family ?? familyOf(s))),
    ingressDevices: rebuilt.has('netdev') ? [] : kernel.ingressDevices,
    nftTables: Object.fromEntries(Object.entries(kernel.nftTables ?? {}).filter(([f]) => !rebuilt.has(f as Family))),
  };
}

const wantedTables = (desired: DesiredState) => new Set<Family>(desired.services.map(familyOf));
const wantedIngress = (desired: DesiredState) => [...new Set(desired.services.filter((s) => s.mode === 'dsr').map((s) => s.device))].sort();

export const nftPlan: PlanHooks<NftChange> = {
  prepare(desired, observed) {
    const rebuild = tablesToRebuild(desired.services, observed);
    const kernel = withoutTables(observed, new Set(rebuild.keys()));
    const first: NftChange[] = [];
    const tables = wantedTables(desired);
    for (const family of ['ip', 'netdev'] as const)
      if (tables.has(family) && !kernel.tables.includes(family)) first.push({ what: 'create-table', family });
    for (const [family, reasons] of rebuild) first.push({ what: 'rebuild-table', family, reasons });
    for (const device of wantedIngress(desired)) if (!kernel.ingressDevices.includes(device)) first.push({ what: 'add-ingress', device });
    return { kernel, first };
  },

  finish(desired, kernel, touched) {
    const rebuilt = new Set<Family>(desired.services.map(familyOf).filter((f) => !kernel.nftTables?.[f] && kernel.tables.includes(f)));
    const found = objectRepairs(desired.services, kernel, touched, rebuilt);
    // Objects that are not slbctl's go last among the repairs, then ingress hooks no service uses.
    const repairs: NftChange[] = [...found.filter((c) => c.what !== 'delete-object'), ...found.filter((c) => c.what === 'delete-object')];
    const ingress = wantedIngress(desired);
    for (const device of kernel.ingressDevices) if (!ingress.includes(device)) repairs.push({ what: 'delete-ingress', device });
    const tables = wantedTables(desired);
    const last: NftChange[] = [];
    for (const family of ['netdev', 'ip'] as const)
      if (!tables.has(family) && kernel.tables.includes(family)) last.push({ what: 'delete-table', family });
    return { repairs, last };
  },
};
