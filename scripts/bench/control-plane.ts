// Control-plane benchmark: 10,000 services x 4 real servers planned and
// applied as one nftables transaction (anchor: `nft -f` of the same ruleset),
// a plan with nothing to change and one real server's weight changed and
// applied (anchor: the same with slbctl's tables listed, as every plan did
// before the record of the applied state), `slbctl plan` as a command
// (anchor: a bare node start-up), and `slbctl run` left idle with these
// services (anchor: the CPU a resync took when it listed the tables) and
// repairing a hand edit (anchor: one listed plan). Runs inside a network
// namespace it creates (a veth holds the subnets; no packet is sent) and
// removes it at the end. Prints times and ratios measured side by side in
// this one run. SLB_BENCH_SERVICES and SLB_BENCH_IDLE_S (60) scale it.
// Last, the cold apply with the VIPs as local routes (vipAs: route) beside
// the same with addresses, each against its kernel anchors (`nft -f` of the
// same ruleset plus `ip -batch` of the same VIP addresses or routes), and
// each one's destroy, medians of SLB_BENCH_VIP_ROUNDS (3) rounds;
// SLB_BENCH_ONLY=vip-forms runs that part alone; SLB_BENCH_ONLY=weight the
// weight change alone (the memo's figures and the executors').
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawn } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { run, runChecked } from '../../src/util/exec';
import { Config, Service } from '../../src/model/types';
import { closeSession, executePlan, openSession, planConfig, planDestroy } from '../../src/engine/engine';
import { renderPlan } from '../../src/kernel/nft/render';
import { withWriteLock } from '../../src/records/lock';
import { formatPlan } from '../../src/plan/format';
import { applyScript, listingCount } from '../../src/kernel/nft/client';
import { currentNetns, identityOf, removeRecord, removeRecordsOf } from '../../src/records/netns';
import { CLI_ENTRY } from '../../src/util/self';

const SERVICES = Number(process.env.SLB_BENCH_SERVICES ?? 10000);
const REAL_SERVERS = 4;
const IDLE_S = Number(process.env.SLB_BENCH_IDLE_S ?? 60);
const VIP_ROUNDS = Number(process.env.SLB_BENCH_VIP_ROUNDS ?? 3);

function makeConfig(weightOfFirst: number, vipAs: 'address' | 'route' = 'address'): Config {
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
  return { backend: 'nft', services, ...(vipAs === 'route' ? { vipAs } : {}) };
}

/**
 * `base` with the first real server of the first service at `weight`, every
 * other service the same object: a change as it reaches the planner from
 * `slbctl run` (health, drains and reloads keep the objects of services they
 * did not change; src/controller/effective.ts).
 */
function withWeight(base: Config, weight: number): Config {
  const [first, ...rest] = base.services;
  const [rs, ...others] = first.realServers;
  return { ...base, services: [{ ...first, realServers: [{ ...rs, weight }, ...others] }, ...rest] };
}

async function timed<T>(fn: () => Promise<T>): Promise<[T, number]> {
  const t0 = performance.now();
  const result = await fn();
  return [result, (performance.now() - t0) / 1000];
}

const commandsOf = (script: string) => script.split('\n').length - 1;

/** CPU seconds (user + system) a process has used, from /proc. */
function cpuSeconds(pid: number): number {
  const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
  // utime and stime are fields 14 and 15 of stat; after "pid (comm) " they are the 12th and 13th.
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;

/** Wall time of a command, the median of three runs. */
async function commandTime(argv: string[], before: () => void = () => undefined): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < 3; i++) {
    before();
    const [r, t] = await timed(() => run(argv));
    if (r.code !== 0) throw new Error(`${argv.join(' ')}: ${r.stderr.trim()}`);
    times.push(t);
  }
  return median(times);
}

/**
 * The memo of the last plan (src/engine/plan-memo.ts), each figure the median
 * of three, beside the same plan without it (memo: false) in this run: a plan
 * with nothing to change, and one weight changed and applied. Leaves the
 * kernel with weight 1 everywhere, as it found it.
 */
async function memoFigures(k: Awaited<ReturnType<typeof openSession>>) {
  // Made once, outside the timed parts (building 10,000 services is the benchmark's own work, 40-80 ms).
  const one = makeConfig(1);
  const five = withWeight(one, 5);
  const sameMemo: number[] = [];
  const sameFull: number[] = [];
  let ops = -1;
  let sameHow = '';
  for (let i = 0; i < 3; i++) {
    sameFull.push((await timed(() => planConfig(k, one, { fromRecord: true, memo: false })))[1]);
    // The first plan with the memo on makes it (a whole plan); the timed one uses it.
    await planConfig(k, one, { fromRecord: true });
    const [p, t] = await timed(() => planConfig(k, one, { fromRecord: true }));
    ops = p.ops.length;
    sameHow = p.memo ?? 'full';
    sameMemo.push(t);
  }
  const weight = {
    memo: [] as number[],
    full: [] as number[],
    plan: [] as number[],
    planFull: [] as number[],
    ops: -1,
    commands: 0,
    nftCheck: 0,
    how: '',
  };
  // The nft process alone, on the same script (checked, not committed): what a transaction through nft costs at least.
  await planConfig(k, one, { fromRecord: true });
  const script = renderPlan(await planConfig(k, five, { fromRecord: true }));
  weight.nftCheck = (await timed(() => runChecked('nft -c', ['nft', '-c', '-f', '-'], { input: script })))[1];
  // The anchor first: the same change planned without the memo (every service resolved and diffed), and back.
  for (let i = 0; i < 3; i++) {
    for (const [to, timedOne] of [
      [five, true],
      [one, false],
    ] as const) {
      const [[, tPlanFull], tFull] = await timed(async () => {
        const planned = await timed(() => planConfig(k, to, { fromRecord: true, memo: false }));
        await withWriteLock(0, () => executePlan(k, planned[0]));
        return planned;
      });
      if (!timedOne) continue;
      weight.full.push(tFull);
      weight.planFull.push(tPlanFull);
    }
  }
  // Then with the memo, one change after another as `slbctl run` makes them: the weight to 5 timed, back to 1.
  await planConfig(k, one, { fromRecord: true });
  for (let i = 0; i < 7; i++) {
    const [[p, tPlan], tAll] = await timed(async () => {
      const planned = await timed(() => planConfig(k, five, { fromRecord: true }));
      await withWriteLock(0, () => executePlan(k, planned[0]));
      return planned;
    });
    weight.memo.push(tAll);
    weight.plan.push(tPlan);
    weight.ops = p.ops.length;
    weight.how = p.memo ?? 'full';
    weight.commands = commandsOf(renderPlan(p));
    await withWriteLock(0, async () => executePlan(k, await planConfig(k, one, { fromRecord: true })));
  }
  return {
    same: { memo: median(sameMemo), full: median(sameFull), ops, how: sameHow },
    weight: {
      memo: median(weight.memo),
      full: median(weight.full),
      plan: median(weight.plan),
      planFull: median(weight.planFull),
      ops: weight.ops,
      commands: weight.commands,
      nftCheck: weight.nftCheck,
      how: weight.how,
    },
  };
}

/**
 * The two nftables executors side by side (src/kernel/nft/executor.ts): libnftables in this process and the
 * nft program (SLBCTL_NFT_EXEC=process), alternated round by round. A one-weight plan+apply with the memo and
 * the bare transaction of its script (medians of three), then a cold apply of the whole table after deleting
 * it by hand (the VIP addresses stay, so its plan is the nftables part only) and the bare transaction of the
 * cold script (one each: two seconds of kernel work apiece). Leaves weight 1 everywhere, as it found it.
 */
async function executorFigures(k: Awaited<ReturnType<typeof openSession>>, coldScript: string) {
  const one = makeConfig(1);
  const five = withWeight(one, 5);
  const names = ['libnftables', 'process'] as const;
  type Name = (typeof names)[number] | 'nfnetlink';
  type Times = Record<(typeof names)[number], number[]>;
  const weight: Times = { libnftables: [], process: [] };
  const direct: number[] = [];
  const bare: Times = { libnftables: [], process: [] };
  const cold: Times = { libnftables: [], process: [] };
  const coldBare: Times = { libnftables: [], process: [] };
  // libnftables: SLBCTL_NFT_DIRECT=0 (no nfnetlink batch of slbctl's own); process: the nft program.
  const using = async <T>(name: Name, fn: () => Promise<T>): Promise<T> => {
    if (name === 'process') process.env.SLBCTL_NFT_EXEC = 'process';
    if (name === 'libnftables') process.env.SLBCTL_NFT_DIRECT = '0';
    try {
      return await fn();
    } finally {
      delete process.env.SLBCTL_NFT_EXEC;
      delete process.env.SLBCTL_NFT_DIRECT;
    }
  };
  const planApply = async (config: Config) => {
    const plan = await planConfig(k, config, { fromRecord: true });
    await withWriteLock(0, () => executePlan(k, plan));
    return plan;
  };
  await planApply(one);
  const toFive = renderPlan(await planConfig(k, five, { fromRecord: true }));
  await planApply(five);
  const toOne = renderPlan(await planConfig(k, one, { fromRecord: true }));
  await planApply(one);
  for (let i = 0; i < 3; i++)
    for (const name of names)
      await using(name, async () => {
        await planConfig(k, one, { fromRecord: true });
        weight[name].push((await timed(() => planApply(five)))[1]);
        await planApply(one);
        bare[name].push((await timed(() => applyScript(toFive)))[1]);
        bare[name].push((await timed(() => applyScript(toOne)))[1]);
      });
  // slbctl's own batch (the default), one change after another; the bare scripts above left the record behind,
  // so a listed plan records the tables again first.
  await planApply(one);
  await planConfig(k, one, { fromRecord: true });
  for (let i = 0; i < 7; i++) {
    direct.push((await timed(() => planApply(five)))[1]);
    await planApply(one);
  }
  const dropTables = () => runChecked('delete table', ['nft', 'delete', 'table', 'ip', 'slbctl']);
  for (const name of names)
    await using(name, async () => {
      await dropTables();
      cold[name].push((await timed(() => planApply(one)))[1]);
      await dropTables();
      coldBare[name].push((await timed(() => applyScript(coldScript)))[1]);
    });
  // The bare cold script leaves the table without slbctl's record of it: one listed plan records it again.
  await planApply(one);
  const m = (t: Times) => ({ libnftables: median(t.libnftables), process: median(t.process) });
  return { weight: m(weight), direct: median(direct), bare: m(bare), cold: m(cold), coldBare: m(coldBare), commands: commandsOf(toFive) };
}

function executorLines(x: Awaited<ReturnType<typeof executorFigures>>, f: (s: number) => string): string[] {
  const row = (label: string, t: { libnftables: number; process: number }) =>
    `${label}  ${f(t.libnftables).padEnd(10)}  the same through the nft program  ${f(t.process).padEnd(10)}  ${(t.libnftables / t.process).toFixed(3)}`;
  return [
    `one weight change, plan+apply as one nfnetlink batch (the default)  ${f(x.direct).padEnd(10)}  the same through libnftables  ${f(x.weight.libnftables).padEnd(10)}  ${(x.direct / x.weight.libnftables).toFixed(3)}   (goal: 50 ms)`,
    row('executor libnftables: one weight plan+apply, memo', x.weight),
    row(`executor libnftables: the weight script alone (${x.commands} commands)`, x.bare),
    row('executor libnftables: cold plan+apply, table deleted (VIPs kept)', x.cold),
    row('executor libnftables: the cold script alone', x.coldBare),
  ];
}

/**
 * `slbctl run` on the config: its CPU share over IDLE_S seconds once settled,
 * and how long a hand edit (a backend slot deleted) takes to be repaired.
 */
async function controllerFigures(file: string): Promise<{ idleShare: number; repair: number; resync: number }> {
  const resync = 1;
  const child = spawn(
    process.execPath,
    [CLI_ENTRY, 'run', '-f', file, '--metrics', 'off', '--log-format', 'json', '--resync', `${resync}s`],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  const lines: string[] = [];
  let buffered = '';
  child.stdout.on('data', (d: Buffer) => {
    buffered += d.toString();
    const parts = buffered.split('\n');
    buffered = parts.pop() ?? '';
    lines.push(...parts);
  });
  child.stderr.on('data', (d: Buffer) => lines.push(d.toString()));
  const waitFor = async (re: RegExp, what: string) => {
    for (const end = Date.now() + 600_000; !lines.some((l) => re.test(l)); await new Promise((r) => setTimeout(r, 20)))
      if (Date.now() > end || child.exitCode !== null) throw new Error(`slbctl run: no ${what}:\n${lines.join('\n')}`);
  };
  try {
    await waitFor(/"event":"start".*running/, 'start');
    // Its first resyncs plan once more from the record its start wrote; then it is settled.
    await new Promise((r) => setTimeout(r, 5000));
    const pid = child.pid ?? 0;
    const c0 = cpuSeconds(pid);
    const t0 = performance.now();
    await new Promise((r) => setTimeout(r, IDLE_S * 1000));
    const idleShare = (cpuSeconds(pid) - c0) / ((performance.now() - t0) / 1000);
    const vip = '198.18.0.3';
    const edited = performance.now();
    await runChecked('hand edit', ['nft', 'delete', 'element', 'ip', 'slbctl', 'backends_tcp', `{ ${vip} . 80 . 1 }`]);
    await waitFor(/"event":"drift"/, 'drift repair');
    return { idleShare, repair: (performance.now() - edited) / 1000, resync };
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => child.once('close', r));
  }
}

type Session = Awaited<ReturnType<typeof openSession>>;

/**
 * The cold apply of every service with its VIPs as addresses and as local
 * routes, one after the other from an empty namespace, each followed by a
 * destroy; then the kernel's own shares with the same inputs: `nft -f` of the
 * cold ruleset, `ip -batch` of the VIP addresses, and of the VIP routes.
 */
async function vipFormFigures(k: Session): Promise<string[]> {
  const cold = async (vipAs: 'address' | 'route') => {
    const config = makeConfig(1, vipAs);
    const [plan, t] = await timed(async () => {
      const p = await planConfig(k, config, { fromRecord: true });
      await withWriteLock(0, () => executePlan(k, p));
      return p;
    });
    const [, tDestroy] = await timed(async () => {
      const p = await planDestroy(k);
      await withWriteLock(0, () => executePlan(k, p));
    });
    return { plan, t, tDestroy, script: renderPlan(plan) };
  };
  const vips = makeConfig(1).services.map((x) => `${x.vip}/32 dev eth0`);
  const batch = async (what: string, lines: string[]) =>
    (await timed(() => runChecked(what, ['ip', '-batch', '-'], { input: lines.join('') })))[1];
  // Each figure the median of VIP_ROUNDS rounds, the two forms and their anchors taken in turn within a round.
  const runs = { address: [] as number[], route: [] as number[], addressDestroy: [] as number[], routeDestroy: [] as number[] };
  const anchors = { nft: [] as number[], ipAddr: [] as number[], ipRoute: [] as number[] };
  let address: Awaited<ReturnType<typeof cold>> | undefined;
  let route: Awaited<ReturnType<typeof cold>> | undefined;
  for (let i = 0; i < VIP_ROUNDS; i++) {
    address = await cold('address');
    runs.address.push(address.t);
    runs.addressDestroy.push(address.tDestroy);
    route = await cold('route');
    runs.route.push(route.t);
    runs.routeDestroy.push(route.tDestroy);
    anchors.nft.push((await timed(() => runChecked('nft -f', ['nft', '-f', '-'], { input: route?.script ?? '' })))[1]);
    await runChecked('delete table', ['nft', 'delete', 'table', 'ip', 'slbctl']);
    anchors.ipAddr.push(
      await batch(
        'ip -batch addr add',
        vips.map((a) => `addr add ${a}\n`),
      ),
    );
    await batch(
      'ip -batch addr del',
      vips.map((a) => `addr del ${a}\n`),
    );
    anchors.ipRoute.push(
      await batch(
        'ip -batch route add',
        vips.map((a) => `route add local ${a} table local proto 245\n`),
      ),
    );
    await batch(
      'ip -batch route del',
      vips.map((a) => `route del local ${a} table local proto 245\n`),
    );
  }
  if (!address || !route) throw new Error('SLB_BENCH_VIP_ROUNDS must be at least 1');
  const tAddress = median(runs.address);
  const tRoute = median(runs.route);
  const tNft = median(anchors.nft);
  const tIpAddr = median(anchors.ipAddr);
  const tIpRoute = median(anchors.ipRoute);
  const tAddressDestroy = median(runs.addressDestroy);
  const tRouteDestroy = median(runs.routeDestroy);
  const f = (x: number) => (x < 1 ? `${(x * 1000).toFixed(1)} ms` : `${x.toFixed(2)} s`);
  const r = (a: number, b: number) => (a / b).toFixed(3);
  const routes = route.plan.ops.filter((o) => o.op === 'add-route').length;
  const addresses = address.plan.ops.filter((o) => o.op === 'add-address').length;
  const all = (xs: number[]) => xs.map(f).join(', ');
  return [
    `vipAs figures: median of ${VIP_ROUNDS} rounds`,
    `cold plan+apply, vipAs address (${addresses} addresses)  ${f(tAddress).padEnd(10)}  nft -f + ip -batch addr add of the same  ${f(tNft + tIpAddr).padEnd(10)}  ${r(tAddress, tNft + tIpAddr)}   (runs ${all(runs.address)})`,
    `cold plan+apply, vipAs route (${routes} routes)  ${f(tRoute).padEnd(10)}  nft -f + ip -batch route add of the same  ${f(tNft + tIpRoute).padEnd(10)}  ${r(tRoute, tNft + tIpRoute)}   (runs ${all(runs.route)})`,
    `cold plan+apply, vipAs route  ${f(tRoute).padEnd(10)}  cold plan+apply, vipAs address  ${f(tAddress).padEnd(10)}  ${r(tRoute, tAddress)}`,
    `ip -batch route add local (${vips.length})  ${f(tIpRoute).padEnd(10)}  ip -batch addr add (${vips.length})  ${f(tIpAddr).padEnd(10)}  ${r(tIpRoute, tIpAddr)}   (nft -f alone ${f(tNft)})`,
    `destroy, vipAs route  ${f(tRouteDestroy).padEnd(10)}  destroy, vipAs address  ${f(tAddressDestroy).padEnd(10)}  ${r(tRouteDestroy, tAddressDestroy)}`,
  ];
}

async function inner(): Promise<void> {
  if (process.env.SLB_BENCH_ONLY === 'vip-forms') {
    const k = await openSession('nft');
    try {
      const lines = await vipFormFigures(k);
      const load = os
        .loadavg()
        .map((x) => x.toFixed(2))
        .join(' ');
      process.stdout.write(
        [`services: ${SERVICES} x ${REAL_SERVERS} real servers (fullnat, wrr)`, ...lines, `load average at the end: ${load}`].join('\n') +
          '\n',
      );
    } finally {
      closeSession(k);
    }
    return;
  }
  if (process.env.SLB_BENCH_ONLY === 'weight') {
    // The weight change alone: a cold apply, then the memo's figures and the executors side by side.
    const k = await openSession('nft');
    try {
      const cold = await planConfig(k, makeConfig(1), { fromRecord: true });
      await withWriteLock(0, () => executePlan(k, cold));
      const memo = await memoFigures(k);
      const executors = await executorFigures(k, renderPlan(cold));
      const f = (x: number) => (x < 1 ? `${(x * 1000).toFixed(1)} ms` : `${x.toFixed(2)} s`);
      const r = (a: number, b: number) => (a / b).toFixed(3);
      const load = os
        .loadavg()
        .map((x) => x.toFixed(2))
        .join(' ');
      process.stdout.write(
        [
          `services: ${SERVICES} x ${REAL_SERVERS} real servers (fullnat, wrr)`,
          `no-change plan, memo (${memo.same.ops} ops, ${memo.same.how})  ${f(memo.same.memo)}  the same plan from the record, no memo  ${f(memo.same.full)}  ${r(memo.same.memo, memo.same.full)}`,
          `one weight plan, memo (${memo.weight.ops} op, ${memo.weight.how})  ${f(memo.weight.plan)}  the same plan, no memo  ${f(memo.weight.planFull)}  ${r(memo.weight.plan, memo.weight.planFull)}`,
          `one weight plan+apply, memo (${memo.weight.commands} nft commands)  ${f(memo.weight.memo)}  the same, no memo  ${f(memo.weight.full)}  ${r(memo.weight.memo, memo.weight.full)}`,
          ...executorLines(executors, f),
          `load average at the end: ${load}`,
        ].join('\n') + '\n',
      );
    } finally {
      closeSession(k);
    }
    return;
  }
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
    const memo = await memoFigures(rtnl);
    const executors = await executorFigures(rtnl, script);
    let listed = listingCount();
    const [same, tSame] = await timed(() => planConfig(rtnl, makeConfig(1), { fromRecord: true }));
    const sameListed = listingCount() - listed;
    const [sameListing, tSameListing] = await timed(() => planConfig(rtnl, makeConfig(1), { fromRecord: false }));
    listed = listingCount();
    const [weight, tWeight] = await timed(() => planApply(5));
    const weightListed = listingCount() - listed;
    const [, tWeightListing] = await timed(() => planApply(1, false));
    // The CPU of one plan that lists the tables: what every resync of `slbctl run` spent before the generation shortcut.
    const cpu0 = process.cpuUsage();
    await planConfig(rtnl, makeConfig(1), { fromRecord: false });
    const listedCpu = (process.cpuUsage(cpu0).user + process.cpuUsage(cpu0).system) / 1e6;
    // `slbctl plan` as a user runs it: a new process, module loading and the config file included.
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'slbctl-bench-'));
    const file = path.join(dir, 'services.json');
    fs.writeFileSync(file, JSON.stringify(makeConfig(1)));
    const cliArgs = [process.execPath, CLI_ENTRY, 'plan', '-f', file, '--no-nft'];
    // The old way: no memo, so each run resolves and diffs the whole config (and leaves a memo for the next).
    const tCliFull = await commandTime(cliArgs, () => removeRecord('plan-memo'));
    await run(cliArgs);
    const tCli = await commandTime(cliArgs);
    const tNode = await commandTime([process.execPath, '-e', '']);
    const ctl = await controllerFigures(file);
    fs.rmSync(dir, { recursive: true, force: true });
    // The kernel's own share: the same first transaction loaded by nft alone, into an empty namespace's table.
    await runChecked('delete table', ['nft', 'delete', 'table', 'ip', 'slbctl']);
    const [, tNft] = await timed(() => runChecked('nft -f', ['nft', '-f', '-'], { input: script }));
    // The other kernel share of a cold apply: its VIP addresses, added by `ip -batch` alone (after removing them, untimed).
    const vips = makeConfig(1).services.map((x) => `${x.vip}/32 dev eth0`);
    await runChecked('ip -batch addr del', ['ip', '-batch', '-'], { input: vips.map((a) => `addr del ${a}\n`).join('') });
    const [, tIp] = await timed(() =>
      runChecked('ip -batch addr add', ['ip', '-batch', '-'], { input: vips.map((a) => `addr add ${a}\n`).join('') }),
    );
    // Back to an empty namespace (the anchors above left the table and the addresses, no longer as recorded).
    await runChecked('delete table', ['nft', 'delete', 'table', 'ip', 'slbctl']);
    await runChecked('ip -batch addr del', ['ip', '-batch', '-'], { input: vips.map((a) => `addr del ${a}\n`).join('') });
    removeRecordsOf(currentNetns());
    const vipForms = await vipFormFigures(rtnl);
    const f = (x: number) => (x < 1 ? `${(x * 1000).toFixed(1)} ms` : `${x.toFixed(2)} s`);
    const r = (a: number, b: number) => (a / b).toFixed(3);
    process.stdout.write(
      [
        `services: ${SERVICES} x ${REAL_SERVERS} real servers (fullnat, wrr)`,
        `figure                                   time        anchor                                time        ratio`,
        `cold plan+apply (${commandsOf(script)} nft commands)  ${f(tCold).padEnd(10)}  nft -f of the same ruleset alone      ${f(tNft).padEnd(10)}  ${r(tCold, tNft)}`,
        `cold plan+apply                          ${f(tCold).padEnd(10)}  nft -f + ip -batch of its ${vips.length} VIPs  ${f(tNft + tIp).padEnd(10)}  ${r(tCold, tNft + tIp)}   (ip -batch alone ${f(tIp)})`,
        `no-change plan (${same.ops.length} ops, ${sameListed} listings)    ${f(tSame).padEnd(10)}  the same plan, tables listed (${sameListing.ops.length} ops)  ${f(tSameListing).padEnd(10)}  ${r(tSame, tSameListing)}`,
        `one weight plan+apply (${weight.ops.length} op, ${weightListed} listings, ${commandsOf(renderPlan(weight))} nft commands, 1 nft -f)  ${f(tWeight)}  the same, tables listed  ${f(tWeightListing)}  ${r(tWeight, tWeightListing)}`,
        `no-change plan, memo (${memo.same.ops} ops, ${memo.same.how})  ${f(memo.same.memo)}  the same plan from the record, no memo  ${f(memo.same.full)}  ${r(memo.same.memo, memo.same.full)}`,
        `one weight plan, memo (${memo.weight.ops} op, ${memo.weight.how})  ${f(memo.weight.plan)}  the same plan, no memo  ${f(memo.weight.planFull)}  ${r(memo.weight.plan, memo.weight.planFull)}`,
        `one weight plan+apply, memo (${memo.weight.commands} nft commands, 1 nft -f)  ${f(memo.weight.memo)}  the same, no memo  ${f(memo.weight.full)}  ${r(memo.weight.memo, memo.weight.full)}   (nft -c -f of its script alone ${f(memo.weight.nftCheck)})`,
        ...executorLines(executors, f),
        `slbctl plan command, no change (new process)  ${f(tCli).padEnd(10)}  node start-up alone (node -e '')  ${f(tNode).padEnd(10)}  ${r(tCli, tNode)}`,
        `slbctl plan command, no change (new process)  ${f(tCli).padEnd(10)}  the same command without a memo  ${f(tCliFull).padEnd(10)}  ${r(tCli, tCliFull)}`,
        `slbctl run idle, ${IDLE_S} s (resync ${ctl.resync} s)  ${(ctl.idleShare * 100).toFixed(2)} % of a core  one listing resync a second (the CPU of a listed plan ${f(listedCpu)})  ${((listedCpu / ctl.resync) * 100).toFixed(1)} %  ${r(ctl.idleShare, listedCpu / ctl.resync)}`,
        `slbctl run, hand edit -> repaired  ${f(ctl.repair).padEnd(10)}  the same plan, tables listed  ${f(tSameListing).padEnd(10)}  ${r(ctl.repair, tSameListing)}`,
        ...vipForms,
        `load average at the end: ${os
          .loadavg()
          .map((x) => x.toFixed(2))
          .join(' ')}`,
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
