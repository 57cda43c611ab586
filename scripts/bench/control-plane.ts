// Control-plane benchmark: 10,000 services x 4 real servers planned and
// applied as one nftables transaction (anchor: `nft -f` of the same ruleset),
// a plan with nothing to change and one real server's weight changed and
// applied (anchor: the same with slbctl's tables listed, as every plan did
// before the record of the applied state). Runs inside a network namespace it
// creates (a veth holds the subnets; no packet is sent) and removes it at the
// end. Prints times and ratios measured side by side in this one run.
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { run, runChecked } from '../../src/util/exec';
import { Config, Service } from '../../src/model/types';
import { closeSession, executePlan, openSession, planConfig } from '../../src/engine/engine';
import { renderPlan } from '../../src/kernel/nft/render';
import { withWriteLock } from '../../src/records/lock';
import { formatPlan } from '../../src/plan/format';
import { listingCount } from '../../src/kernel/nft/client';
import { identityOf, removeRecordsOf } from '../../src/records/netns';

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
    services.push({
      name: `svc${i}`,
      vip,
      port: 80,
      protocol: 'tcp',
      mode: 'fullnat',
      scheduler: 'wrr',
      realServers,
      vipAlreadyPresent: 'allow',
    });
  }
  return { backend: 'nft', services };
}

async function timed<T>(fn: () => Promise<T>): Promise<[T, number]> {
  const t0 = performance.now();
  const result = await fn();
  return [result, (performance.now() - t0) / 1000];
}

const commandsOf = (script: string) => script.split('\n').length - 1;

async function inner(): Promise<void> {
  const rtnl = await openSession('nft');
  const planApply = async (weight: number, fromRecord = true) => {
    const plan = await planConfig(rtnl, makeConfig(weight), { fromRecord });
    await withWriteLock(0, () => executePlan(rtnl, plan));
    return plan;
  };
  // The anchor of each plan: the same plan with the tables listed (what every plan did before the record), fromRecord: false.
  try {
    const [cold, tCold] = await timed(() => planApply(1));
    const script = renderPlan(cold);
    let listed = listingCount();
    const [same, tSame] = await timed(() => planConfig(rtnl, makeConfig(1), { fromRecord: true }));
    const sameListed = listingCount() - listed;
    const [sameListing, tSameListing] = await timed(() => planConfig(rtnl, makeConfig(1), { fromRecord: false }));
    listed = listingCount();
    const [weight, tWeight] = await timed(() => planApply(5));
    const weightListed = listingCount() - listed;
    const [, tWeightListing] = await timed(() => planApply(1, false));
    // The kernel's own share: the same first transaction loaded by nft alone, into an empty namespace's table.
    await runChecked('delete table', ['nft', 'delete', 'table', 'ip', 'slbctl']);
    const [, tNft] = await timed(() => runChecked('nft -f', ['nft', '-f', '-'], { input: script }));
    const f = (x: number) => (x < 1 ? `${(x * 1000).toFixed(1)} ms` : `${x.toFixed(2)} s`);
    const r = (a: number, b: number) => (a / b).toFixed(3);
    process.stdout.write(
      [
        `services: ${SERVICES} x ${REAL_SERVERS} real servers (fullnat, wrr)`,
        `figure                                   time        anchor                                time        ratio`,
        `cold plan+apply (${commandsOf(script)} nft commands)  ${f(tCold).padEnd(10)}  nft -f of the same ruleset alone      ${f(tNft).padEnd(10)}  ${r(tCold, tNft)}`,
        `no-change plan (${same.ops.length} ops, ${sameListed} listings)    ${f(tSame).padEnd(10)}  the same plan, tables listed (${sameListing.ops.length} ops)  ${f(tSameListing).padEnd(10)}  ${r(tSame, tSameListing)}`,
        `one weight plan+apply (${weight.ops.length} op, ${weightListed} listings, ${commandsOf(renderPlan(weight))} nft commands, 1 nft -f)  ${f(tWeight)}  the same, tables listed  ${f(tWeightListing)}  ${r(tWeight, tWeightListing)}`,
        `one weight change: ${formatPlan(weight.ops).trim()}`,
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
    // Its records (ownership, the nftables record) go with it: a later namespace may get the same inode.
    try {
      removeRecordsOf(identityOf(ns));
    } finally {
      await run(['ip', 'netns', 'del', ns]);
    }
  }
}

(process.env.SLB_BENCH_INNER ? inner() : outer()).catch((e: unknown) => {
  process.stderr.write(`bench: ${(e as Error).message}\n`);
  process.exitCode = 1;
});
