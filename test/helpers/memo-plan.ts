// Run as `node memo-plan.js` inside a network namespace with eth0 on
// 198.18.0.1/15: applies a small config, then for each kind of change plans
// it twice on the same kernel, with the memo of the last plan (narrowed: only
// the changed services) and without it (every service), applies it and plans
// it once more; then edits the host by hand (a VIP deleted, a sysctl
// changed, slbctl's table edited) and plans. Prints one JSON line per step.
import { Config, Service } from '../../src/model/types';
import { ConfigPlan, KernelSession, closeSession, executePlan, openSession, planConfig } from '../../src/engine/engine';
import { withWriteLock } from '../../src/records/lock';
import { formatPlan } from '../../src/plan/format';
import { renderPlan } from '../../src/kernel/nft/render';
import { closeGenerationSocket } from '../../src/kernel/nft/generation';
import { runChecked } from '../../src/util/exec';
import { writeSysctl } from '../../src/kernel/rtnl/sysctl';

function service(i: number, over: Partial<Service> = {}): Service {
  return {
    name: `svc${i}`,
    vip: `198.18.0.${Math.floor(i / 2) + 2}`,
    port: 80 + (i % 2),
    protocol: 'tcp',
    mode: i % 3 === 2 ? 'transparent' : 'fullnat',
    scheduler: 'wrr',
    vipAlreadyPresent: 'allow',
    realServers: [0, 1, 2].map((j) => ({ address: `198.19.${i}.${j + 2}`, port: 8080, weight: 1 })),
    ...over,
  };
}

const base = (): Config => ({ backend: 'nft', services: Array.from({ length: 8 }, (_, i) => service(i)) });
const edit = (f: (services: Service[]) => Service[]): Config => ({ ...base(), services: f(base().services) });

export const CHANGES: Record<string, () => Config> = {
  weight: () =>
    edit((l) => l.map((s, i) => (i === 3 ? { ...s, realServers: s.realServers.map((r, j) => (j === 0 ? { ...r, weight: 5 } : r)) } : s))),
  'add a real server': () =>
    edit((l) =>
      l.map((s, i) => (i === 4 ? { ...s, realServers: [...s.realServers, { address: '198.19.9.9', port: 8080, weight: 2 }] } : s)),
    ),
  'remove a real server': () => edit((l) => l.map((s, i) => (i === 5 ? { ...s, realServers: s.realServers.slice(1) } : s))),
  'add a service on a new VIP': () => edit((l) => [...l, service(20)]),
  'add a service on a VIP in use': () => edit((l) => [...l, service(0, { name: 'extra', port: 8443 })]),
  'remove a service whose VIP another keeps': () => edit((l) => l.filter((_, i) => i !== 6)),
  'remove both services of a VIP': () => edit((l) => l.filter((_, i) => i !== 6 && i !== 7)),
  'change a VIP': () => edit((l) => l.map((s, i) => (i === 1 ? { ...s, vip: '198.18.0.50' } : s))),
  'change a mode': () => edit((l) => l.map((s, i) => (i === 0 ? { ...s, mode: 'transparent' as const } : s))),
};

const out = (line: Record<string, unknown>) => process.stdout.write(`${JSON.stringify(line)}\n`);
const apply = (k: KernelSession, plan: ConfigPlan) => withWriteLock(0, () => executePlan(k, plan));

async function planApply(k: KernelSession, config: Config): Promise<ConfigPlan> {
  const plan = await planConfig(k, config, { fromRecord: true });
  await apply(k, plan);
  return plan;
}

/** Back to the base config, and its memo made by a plan with nothing to change. */
async function settle(k: KernelSession): Promise<string | undefined> {
  await planApply(k, base());
  await planConfig(k, base(), { fromRecord: true });
  return (await planConfig(k, base(), { fromRecord: true })).memo;
}

async function main(): Promise<void> {
  const k = await openSession('nft');
  try {
    out({ step: 'settled', memo: await settle(k) });
    for (const [kind, make] of Object.entries(CHANGES)) {
      const narrow = await planConfig(k, make(), { fromRecord: true });
      const full = await planConfig(k, make(), { fromRecord: true, memo: false });
      await apply(k, narrow);
      const again = await planConfig(k, make(), { fromRecord: true });
      out({
        step: 'change',
        kind,
        memo: narrow.memo,
        ops: narrow.ops.length,
        narrow: formatPlan(narrow.ops),
        full: formatPlan(full.ops),
        sameScript: renderPlan(narrow) === renderPlan(full),
        again: { memo: again.memo, ops: again.ops.length },
      });
      await settle(k);
    }
    const bad = await planConfig(
      k,
      edit((l) => l.map((s, i) => (i === 2 ? { ...s, vip: '198.18.0.0' } : s))),
      {
        fromRecord: true,
      },
    ).then(
      () => '',
      (e: unknown) => (e as Error).message,
    );
    out({ step: 'bad', error: bad });
    await settle(k);
    await runChecked('delete a VIP by hand', ['ip', 'addr', 'del', '198.18.0.3/32', 'dev', 'eth0']);
    const vip = await planConfig(k, base(), { fromRecord: true });
    out({ step: 'vip deleted', memo: vip.memo, plan: formatPlan(vip.ops) });
    await settle(k);
    writeSysctl('net.ipv4.ip_forward', '0');
    const sysctl = await planConfig(k, base(), { fromRecord: true });
    out({ step: 'sysctl', memo: sysctl.memo, plan: formatPlan(sysctl.ops) });
    await settle(k);
    await runChecked('hand edit', ['nft', 'delete', 'element', 'ip', 'slbctl', 'backends_tcp', '{ 198.18.0.3 . 80 . 1 }']);
    const nft = await planConfig(k, base(), { fromRecord: true });
    out({ step: 'nft edit', memo: nft.memo, plan: formatPlan(nft.ops) });
    await settle(k);
    // The same weight change against a table edited by hand: the memo does not narrow it, the edit is repaired too.
    await runChecked('hand edit', ['nft', 'delete', 'element', 'ip', 'slbctl', 'backends_tcp', '{ 198.18.0.3 . 80 . 1 }']);
    const both = await planConfig(k, CHANGES.weight(), { fromRecord: true });
    out({ step: 'nft edit and weight', memo: both.memo, plan: formatPlan(both.ops) });
  } finally {
    closeSession(k);
    closeGenerationSocket();
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`memo-plan: ${(e as Error).message}\n`);
  process.exitCode = 1;
});
