// IPVS control-plane benchmark, run inside the user-mode-linux kernel (or
// directly where the host has IPVS, in a namespace it creates): 10,000
// services x 4 real servers programmed by slbctl's netlink client, one
// request at a time and pipelined, and the same set through `ipvsadm -R`;
// then one weight change. Times and ratios come from one run, side by side.
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { IpvsClient } from '../../src/kernel/ipvs/client';
import { IpvsDestination, IpvsService } from '../../src/kernel/ipvs/types';
import { runInUml } from '../../src/uml/run';
import { run, runChecked } from '../../src/util/exec';

const SERVICES = Number(process.env.SLB_BENCH_SERVICES ?? 10000);
const RS = 4;

function dataset(): { service: IpvsService; dests: IpvsDestination[] }[] {
  return Array.from({ length: SERVICES }, (_, i) => ({
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

function restoreText(set: ReturnType<typeof dataset>): string {
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

async function removeAll(client: IpvsClient, set: ReturnType<typeof dataset>): Promise<void> {
  await IpvsClient.pipeline(
    set.map(
      ({ service }) =>
        () =>
          client.deleteService(service),
    ),
  );
}

async function inner(): Promise<void> {
  await run(['ip', 'link', 'add', 'bench0', 'type', 'veth', 'peer', 'name', 'bench1']);
  await runChecked('addr', ['ip', 'addr', 'replace', '198.18.0.1/15', 'dev', 'bench0']);
  await runChecked('up', ['ip', 'link', 'set', 'bench0', 'up']);
  const client = await IpvsClient.open();
  const set = dataset();
  const f = (s: number) => `${s.toFixed(2)} s`;
  try {
    const m0 = client.messagesSent;
    const tSequential = await timed(async () => {
      for (const { service, dests } of set) {
        await client.addService(service);
        for (const d of dests) await client.addDestination(service, d);
      }
    });
    const messages = client.messagesSent - m0;
    await removeAll(client, set);
    const tPipelined = await timed(async () => {
      await IpvsClient.pipeline(
        set.map(
          ({ service }) =>
            () =>
              client.addService(service),
        ),
      );
      await IpvsClient.pipeline(set.flatMap(({ service, dests }) => dests.map((d) => () => client.addDestination(service, d))));
    });
    const listed = (await client.services()).length;
    await removeAll(client, set);
    const tRestore = await timed(() => runChecked('ipvsadm -R', ['ipvsadm', '-R'], { input: restoreText(set) }));
    const first = set[0];
    const m1 = client.messagesSent;
    const tWeight = await timed(() => client.updateDestination(first.service, { ...first.dests[0], weight: 5 }));
    const weightMessages = client.messagesSent - m1;
    await removeAll(client, set);
    process.stdout.write(
      [
        `IPVS: ${SERVICES} services x ${RS} real servers (${messages} netlink requests), ${listed} services listed back`,
        `slbctl, one request at a time: ${f(tSequential)}`,
        `slbctl, pipelined (128 in flight): ${f(tPipelined)}`,
        `ipvsadm -R:                      ${f(tRestore)}`,
        `ratio slbctl sequential / ipvsadm -R: ${(tSequential / tRestore).toFixed(2)}`,
        `ratio slbctl pipelined / ipvsadm -R:  ${(tPipelined / tRestore).toFixed(2)}`,
        `one weight change: ${(tWeight * 1000).toFixed(2)} ms, ${weightMessages} netlink message`,
      ].join('\n') + '\n',
    );
  } finally {
    client.close();
  }
}

async function outer(): Promise<void> {
  const r = await runInUml([process.execPath, path.join(__dirname, 'ipvs.js')], {
    env: { SLB_BENCH_INNER: '1', SLB_BENCH_SERVICES: String(SERVICES) },
    modules: ['ip_vs', 'ip_vs_wrr', 'veth'],
  });
  process.stdout.write(`(inside user-mode-linux, ${r.seconds.toFixed(0)} s in all)\n${r.output}`);
  process.exitCode = r.code;
}

(process.env.SLB_BENCH_INNER ? inner() : outer()).catch((e: unknown) => {
  process.stderr.write(`bench: ${(e as Error).message}\n`);
  process.exitCode = 1;
});
