// Control-plane benchmark: 10,000 services x 4 real servers planned and
// applied as one nftables transaction, then one real server's weight changed
// and applied again. Runs inside a network namespace it creates (a dummy
// interface holds the subnets; no packet is sent) and removes it at the end.
// Prints times and ratios measured side by side in this one run.
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { run, runChecked } from '../../src/util/exec';
import { Config, Service } from '../../src/model/types';
import { closeSession, executePlan, openSession, planConfig } from '../../src/engine/engine';
import { renderPlan } from '../../src/kernel/nft/render';
import { withWriteLock } from '../../src/records/lock';
import { formatPlan } from '../../src/plan/format';

const SERVICES = Number(process.env.SLB_BENCH_SERVICES ?? 10000);
const REAL_SERVERS = 4;

function makeConfig(weightOfFirst: number): Config {
  const services: Service[] = [];
  for (let i = 0; i < SERVICES; i++) {
    const vip = `198.18.${Math.floor(i / 250)}.${(i % 250) + 2}`;
    const realServers = Array.from({ length: REAL_SERVERS }, (_, j) => ({
      address: `198.19.${Math.floor(i / 60)}.${(i % 60) * 4 + j + 2}`,
      port: 8080,
      weight: i === 0 && j === 0 ? weightOfFirst : 1,
    }));
    services.push({ name: `svc${i}`, vip, port: 80, protocol: 'tcp', mode: 'fullnat', scheduler: 'wrr', realServers });
  }
  return { backend: 'nft', services };
}

async function timed<T>(fn: () => Promise<T>): Promise<[T, number]> {
  const t0 = performance.now();
  const result = await fn();
  return [result, (performance.now() - t0) / 1000];
}

async function inner(): Promise<void> {
  const rtnl = await openSession('nft');
  try {
    const [plan1, tPlan1] = await timed(() => planConfig(rtnl, makeConfig(1)));
    const script = renderPlan(plan1);
    const [, tApply1] = await timed(() => withWriteLock(0, () => executePlan(rtnl, plan1)));
    const [plan2, tPlan2] = await timed(() => planConfig(rtnl, makeConfig(5)));
    const [, tApply2] = await timed(() => withWriteLock(0, () => executePlan(rtnl, plan2)));
    const script2 = renderPlan(plan2);
    // The kernel's own share: the same first transaction loaded by nft alone.
    await runChecked('flush', ['nft', 'delete', 'table', 'ip', 'slbctl']);
    const [, tNftOnly] = await timed(() => runChecked('nft -f', ['nft', '-f', '-'], { input: script }));
    const f = (s: number) => `${s.toFixed(2)} s`;
    process.stdout.write(
      [
        `services: ${SERVICES} x ${REAL_SERVERS} real servers (fullnat, wrr), one nftables transaction of ${script.split('\n').length - 1} commands`,
        `first plan:   ${f(tPlan1)}  (${plan1.ops.length} operations)`,
        `first apply:  ${f(tApply1)}  (addresses via rtnetlink + nft transaction)`,
        `nft -f alone: ${f(tNftOnly)}  (the same transaction, kernel + nft parser only)`,
        `second plan (one weight 1 -> 5): ${f(tPlan2)}, ${plan2.ops.length} operation: ${formatPlan(plan2.ops)}`,
        `second apply: ${f(tApply2)}  (${script2.split('\n').length - 1} nft commands)`,
        `ratio first apply / nft alone: ${(tApply1 / tNftOnly).toFixed(2)}`,
        `ratio second (plan+apply) / first (plan+apply): ${((tPlan2 + tApply2) / (tPlan1 + tApply1)).toFixed(3)}`,
      ].join('\n') + '\n',
    );
  } finally {
    closeSession(rtnl);
  }
}

async function outer(): Promise<void> {
  const ns = `slbbench-${process.pid}`;
  await runChecked('create bench namespace', ['ip', 'netns', 'add', ns]);
  try {
    await runChecked('veth', ['ip', '-n', ns, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'eth0p']);
    await runChecked('addr', ['ip', '-n', ns, 'addr', 'add', '198.18.0.1/15', 'dev', 'eth0']);
    await runChecked('up', ['ip', '-n', ns, 'link', 'set', 'eth0', 'up']);
    const r = await run([process.execPath, path.join(__dirname, 'control-plane.js')], {
      netns: ns,
      env: { ...process.env, SLB_BENCH_INNER: '1' },
    });
    process.stdout.write(r.stdout);
    process.stderr.write(r.stderr);
    process.exitCode = r.code;
  } finally {
    await run(['ip', 'netns', 'del', ns]);
  }
}

(process.env.SLB_BENCH_INNER ? inner() : outer()).catch((e: unknown) => {
  process.stderr.write(`bench: ${(e as Error).message}\n`);
  process.exitCode = 1;
});
