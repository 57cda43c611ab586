// IPVS control-plane benchmark, run inside the user-mode-linux kernel (or
// directly where the host has IPVS): N services x 4 real servers programmed
// by slbctl's netlink client one request at a time, pipelined (128 requests
// in flight, one sendmsg each), batched (64 requests to a sendmsg, 256 in
// flight: what `apply` uses), and the same set through `ipvsadm -R`; each in
// a network namespace of its own (IPVS state is per namespace), for every
// size in SLB_BENCH_SIZES. Then the old benchmark's order, which made
// pipelining look slow: the same set again right after deleting it in the
// same namespace. Times and ratios come from one run, side by side.
import * as os from 'node:os';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { IpvsCall, IpvsClient } from '../../src/kernel/ipvs/client';
import { IpvsDestination, IpvsService } from '../../src/kernel/ipvs/types';
import { runInUml } from '../../src/uml/run';
import { run, runChecked } from '../../src/util/exec';
import { inNetns } from '../../src/util/netns';

const SIZES = (process.env.SLB_BENCH_SIZES ?? '100,1000,10000').split(',').map(Number);
const RS = 4;

function dataset(n: number): { service: IpvsService; dests: IpvsDestination[] }[] {
  return Array.from({ length: n }, (_, i) => ({
    service: {
      protocol: 'tcp' as const,
      address: `198.18.${Math.floor(i / 250)}.${(i % 250) + 2}`,
      port: 80,
      scheduler: 'wrr',
      flags: 0,
      timeout: 0,
      netmask: '255.255.255.255',
    },
    dests: Array.from({ length: RS }, (_, j) => ({
      address: `198.19.${Math.floor(i / 60)}.${(i % 60) * 4 + j + 2}`,
      port: 8080,
      forwarding: 'masq' as const,
      weight: 1,
      upperThreshold: 0,
      lowerThreshold: 0,
    })),
  }));
}

type DataSet = ReturnType<typeof dataset>;

function restoreText(set: DataSet): string {
  return (
    set
      .map(({ service: s, dests }) =>
        [
          `-A -t ${s.address}:${s.port} -s ${s.scheduler}`,
          ...dests.map((d) => `-a -t ${s.address}:${s.port} -r ${d.address}:${d.port} -m -w ${d.weight}`),
        ].join('\n'),
      )
      .join('\n') + '\n'
  );
}

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return (performance.now() - t0) / 1000;
}

const addCalls = (set: DataSet): IpvsCall[] =>
  set.flatMap(({ service, dests }) => [
    { call: 'addService' as const, service },
    ...dests.map((dest) => ({ call: 'addDestination' as const, service, dest })),
  ]);

/** Batched; with `perRequest`, in slices of 5,000 requests, each slice's time per request (ms) pushed there. */
async function batched(client: IpvsClient, calls: IpvsCall[], perRequest?: number[]): Promise<void> {
  const slice = perRequest ? 5000 : calls.length;
  for (let i = 0; i < calls.length; i += slice) {
    const t = performance.now();
    const part = calls.slice(i, i + slice);
    const failed = (await client.batch(part)).find((r) => r !== undefined);
    if (failed) throw failed;
    perRequest?.push((performance.now() - t) / part.length);
  }
}

/**
 * Seconds of wall time, and of CPU charged to this process (user and system:
 * UML charges the guest kernel's work for the process to user; under UML it
 * has come out equal to wall time even when a profile showed idle time).
 */
async function timedCpu(fn: () => Promise<unknown>): Promise<{ t: number; cpu: number }> {
  const c0 = process.cpuUsage();
  const t = await timed(fn);
  const c = process.cpuUsage(c0);
  return { t, cpu: (c.user + c.system) / 1e6 };
}
const REDO = process.env.SLB_BENCH_REDO !== '0';

const removeAll = (client: IpvsClient, set: DataSet) =>
  batched(
    client,
    set.map(({ service }) => ({ call: 'deleteService', service })),
  );

async function sequential(client: IpvsClient, set: DataSet, per1k: number[]): Promise<void> {
  let t = performance.now();
  let n = 0;
  for (const { service, dests } of set) {
    await client.addService(service);
    for (const d of dests) await client.addDestination(service, d);
    n += 1 + dests.length;
    if (n >= 1000) {
      per1k.push((performance.now() - t) / n);
      t = performance.now();
      n = 0;
    }
  }
}

async function pipelined(client: IpvsClient, set: DataSet): Promise<void> {
  await IpvsClient.pipeline(
    set.map(
      ({ service }) =>
        () =>
          client.addService(service),
    ),
  );
  await IpvsClient.pipeline(set.flatMap(({ service, dests }) => dests.map((d) => () => client.addDestination(service, d))));
}

/** A fresh namespace with one address, and a client opened in it; removed after `fn`. */
async function inFreshNamespace<T>(name: string, fn: (client: IpvsClient, ns: string) => Promise<T>): Promise<T> {
  await runChecked('netns', ['ip', 'netns', 'add', name]);
  try {
    await runChecked('lo', ['ip', '-n', name, 'link', 'set', 'lo', 'up']);
    await runChecked('dummy', ['ip', '-n', name, 'link', 'add', 'bench0', 'type', 'dummy']);
    await runChecked('addr', ['ip', '-n', name, 'addr', 'replace', '198.18.0.1/15', 'dev', 'bench0']);
    await runChecked('up', ['ip', '-n', name, 'link', 'set', 'bench0', 'up']);
    const client = await inNetns(name, () => IpvsClient.open());
    try {
      return await fn(client, name);
    } finally {
      client.close();
    }
  } finally {
    await run(['ip', 'netns', 'del', name]);
  }
}

async function listed(client: IpvsClient): Promise<number> {
  return (await client.services()).length;
}

async function size(n: number): Promise<string[]> {
  const set = dataset(n);
  const requests = n * (1 + RS);
  const f = (s: number) => `${s.toFixed(2)} s`;
  const ms = (x: number) => `${x.toFixed(3)} ms`;
  const tag = `slbb-${process.pid}-${n}`;
  const per1k: number[] = [];
  const seq = await inFreshNamespace(`${tag}-seq`, async (client) => {
    const { t, cpu } = await timedCpu(() => sequential(client, set, per1k));
    const count = await listed(client);
    if (!REDO) return { t, cpu, count, again: NaN };
    await removeAll(client, set);
    // The old benchmark's order: pipelined right after deleting the same set in the same namespace.
    const again = await timed(() => pipelined(client, set));
    return { t, cpu, count, again };
  });
  const pipe = await inFreshNamespace(`${tag}-pipe`, async (client) => ({
    ...(await timedCpu(() => pipelined(client, set))),
    count: await listed(client),
  }));
  const bat = await inFreshNamespace(`${tag}-batch`, async (client) => {
    const m0 = client.messagesSent;
    const s0 = client.sendCalls;
    const slices: number[] = [];
    const { t, cpu } = await timedCpu(() => batched(client, addCalls(set), slices));
    const sends = client.sendCalls - s0;
    const messages = client.messagesSent - m0;
    const count = await listed(client);
    let again = NaN;
    if (REDO) {
      await removeAll(client, set);
      again = await timed(() => batched(client, addCalls(set)));
    }
    const first = set[0];
    const m1 = client.messagesSent;
    const weight = await timed(() => client.updateDestination(first.service, { ...first.dests[0], weight: 5 }));
    return { t, cpu, slices, count, sends, messages, again, weight, weightMessages: client.messagesSent - m1 };
  });
  const restore = await inFreshNamespace(`${tag}-restore`, async (client, ns) => ({
    t: await timed(() => runChecked('ipvsadm -R', ['ipvsadm', '-R'], { input: restoreText(set), netns: ns })),
    count: await listed(client),
  }));
  const counts = [seq.count, pipe.count, bat.count, restore.count];
  if (counts.some((c) => c !== n)) throw new Error(`services listed back ${counts.join('/')}, expected ${n}`);
  const avg = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
  const tenth = Math.max(1, Math.floor(per1k.length / 10));
  return [
    `IPVS: ${n} services x ${RS} real servers (${requests} requests), each way in a fresh namespace, all ${n} listed back each time`,
    `  one request at a time:            ${f(seq.t)} (CPU ${f(seq.cpu)}; per request: first tenth ${ms(avg(per1k.slice(0, tenth)))}, last tenth ${ms(avg(per1k.slice(-tenth)))})`,
    `  pipelined (128 in flight):        ${f(pipe.t)} (CPU ${f(pipe.cpu)})`,
    `  batched (${bat.messages} requests in ${bat.sends} sendmsg): ${f(bat.t)} (CPU ${f(bat.cpu)}; per request by 5,000: ${bat.slices.map(ms).join(', ')})`,
    `  ipvsadm -R:                       ${f(restore.t)}`,
    `  ratio batched / one at a time: ${(bat.t / seq.t).toFixed(2)}; batched / pipelined: ${(bat.t / pipe.t).toFixed(2)}; batched / ipvsadm -R: ${(bat.t / restore.t).toFixed(2)}; one at a time / ipvsadm -R: ${(seq.t / restore.t).toFixed(2)}`,
    ...(REDO ? [] : ['  (same set again after deleting it: not run, SLB_BENCH_REDO=0)']),
    ...(REDO
      ? [
          `  same set again right after deleting it in the same namespace: pipelined ${f(seq.again)} (${(seq.again / pipe.t).toFixed(2)} x fresh), batched ${f(bat.again)} (${(bat.again / bat.t).toFixed(2)} x fresh)`,
        ]
      : []),
    `  one weight change: ${(bat.weight * 1000).toFixed(2)} ms, ${bat.weightMessages} netlink message`,
  ];
}

async function inner(): Promise<void> {
  for (const n of SIZES) process.stdout.write((await size(n)).join('\n') + '\n');
}

async function outer(): Promise<void> {
  const r = await runInUml([process.execPath, path.join(__dirname, 'ipvs.js')], {
    env: { SLB_BENCH_INNER: '1', SLB_BENCH_SIZES: SIZES.join(','), SLB_BENCH_REDO: REDO ? '1' : '0' },
    modules: ['ip_vs', 'ip_vs_wrr', 'dummy'],
    timeoutMs: 40 * 60 * 1000,
  });
  process.stdout.write(
    `(inside user-mode-linux, ${r.seconds.toFixed(0)} s in all; host load average ${os
      .loadavg()
      .map((x) => x.toFixed(2))
      .join(' ')} at the end)\n${r.output}`,
  );
  process.exitCode = r.code;
}

(process.env.SLB_BENCH_INNER ? inner() : outer()).catch((e: unknown) => {
  process.stderr.write(`bench: ${(e as Error).message}\n`);
  process.exitCode = 1;
});
