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

async function batched(client: IpvsClient, calls: IpvsCall[]): Promise<void> {
  const failed = (await client.batch(calls)).find((r) => r !== undefined);
  if (failed) throw failed;
}

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
    const t = await timed(() => sequential(client, set, per1k));
    const count = await listed(client);
    await removeAll(client, set);
    // The old benchmark's order: pipelined right after deleting the same set in the same namespace.
    const again = await timed(() => pipelined(client, set));
    return { t, count, again };
  });
  const pipe = await inFreshNamespace(`${tag}-pipe`, async (client) => ({
    t: await timed(() => pipelined(client, set)),
    count: await listed(client),
  }));
  const bat = await inFreshNamespace(`${tag}-batch`, async (client) => {
    const m0 = client.messagesSent;
    const s0 = client.sendCalls;
    const t = await timed(() => batched(client, addCalls(set)));
    const sends = client.sendCalls - s0;
    const messages = client.messagesSent - m0;
    const count = await listed(client);
    await removeAll(client, set);
    const again = await timed(() => batched(client, addCalls(set)));
    const first = set[0];
    const m1 = client.messagesSent;
    const weight = await timed(() => client.updateDestination(first.service, { ...first.dests[0], weight: 5 }));
    return { t, count, sends, messages, again, weight, weightMessages: client.messagesSent - m1 };
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
    `  one request at a time:            ${f(seq.t)}  (per request: first tenth ${ms(avg(per1k.slice(0, tenth)))}, last tenth ${ms(avg(per1k.slice(-tenth)))})`,
    `  pipelined (128 in flight):        ${f(pipe.t)}`,
    `  batched (${bat.messages} requests in ${bat.sends} sendmsg): ${f(bat.t)}`,
    `  ipvsadm -R:                       ${f(restore.t)}`,
    `  ratio batched / one at a time: ${(bat.t / seq.t).toFixed(2)}; batched / pipelined: ${(bat.t / pipe.t).toFixed(2)}; batched / ipvsadm -R: ${(bat.t / restore.t).toFixed(2)}; one at a time / ipvsadm -R: ${(seq.t / restore.t).toFixed(2)}`,
    `  same set again right after deleting it in the same namespace: pipelined ${f(seq.again)} (${(seq.again / pipe.t).toFixed(2)} x fresh), batched ${f(bat.again)} (${(bat.again / bat.t).toFixed(2)} x fresh)`,
    `  one weight change: ${(bat.weight * 1000).toFixed(2)} ms, ${bat.weightMessages} netlink message`,
  ];
}

async function inner(): Promise<void> {
  for (const n of SIZES) process.stdout.write((await size(n)).join('\n') + '\n');
}

async function outer(): Promise<void> {
  const r = await runInUml([process.execPath, path.join(__dirname, 'ipvs.js')], {
    env: { SLB_BENCH_INNER: '1', SLB_BENCH_SIZES: SIZES.join(',') },
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
