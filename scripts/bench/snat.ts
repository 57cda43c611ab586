// Full NAT under sustained new connections (issue 12 item 5): one connection
// per request (wrk -H 'Connection: close') from the lab client for a minute,
// straight to an RS, through fullnat with one source address and the
// kernel's conntrack timeouts, and through fullnat with a pool of four source
// addresses, with a short TIME_WAIT and with the default. One lab, nginx on the RSs, side by side in
// one run; ratios to direct, and the goal: the pool sustains >= 0.8 x direct.
// With one address, each RS has one port range for the balancer's source
// address, and conntrack keeps every closed connection (and its port) for
// 120 s: new connections stall once the range is used up.
// Usage: node dist/scripts/bench/snat.js   (SLB_BENCH_SECONDS, default 60;
// SLB_BENCH_SNAT_PORTS=low-high narrows every fullnat case's port range, so a
// slow machine reaches in seconds the exhaustion a fast one reaches at its rate;
// SLB_BENCH_CONNECTIONS, default 32: wrk's connections, each a closed loop)
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { stringify } from 'yaml';
import { applyLabMode } from '../../src/lab/mode';
import { DEFAULT_LAB_OPTIONS } from '../../src/lab/lb-config';
import { labDown, labUp, nsName } from '../../src/lab/netns';
import { REAL_SERVERS, REFERENCE_TOPOLOGY, addressOf } from '../../src/lab/topology';
import { CLI_ENTRY } from '../../src/util/self';
import { run, runChecked } from '../../src/util/exec';
import { startNginx, stopLabServers, stopNginx } from './l7-nginx';

const SECONDS = Number(process.env.SLB_BENCH_SECONDS ?? 60);
const CONNECTIONS = Number(process.env.SLB_BENCH_CONNECTIONS ?? 32);
const POOL = ['172.16.75.90', '172.16.75.91', '172.16.75.92', '172.16.75.93'];
const GOAL = 0.8;
const PORTS = process.env.SLB_BENCH_SNAT_PORTS;

interface Case {
  label: string;
  /** The balancer's config (undefined: straight to RS1, no balancer on the path). */
  config?: object;
}

const service = (over: object) => ({
  name: 'web',
  vip: REFERENCE_TOPOLOGY.vip,
  port: REFERENCE_TOPOLOGY.servicePort,
  mode: 'fullnat',
  ...(PORTS ? { snatPorts: PORTS } : {}),
  ...over,
  realServers: REAL_SERVERS.map((h) => ({ address: addressOf(REFERENCE_TOPOLOGY, h) })),
});

const CASES: Case[] = [
  { label: 'direct client -> RS1' },
  { label: 'fullnat, 1 source address, conntrack defaults', config: { backend: 'nft', services: [service({})] } },
  {
    label: 'fullnat, 1 source address, tcpTimeWait 10',
    config: { backend: 'nft', conntrack: { tcpTimeWait: 10 }, services: [service({})] },
  },
  {
    label: 'fullnat, 4-address pool, tcpTimeWait 10',
    config: { backend: 'nft', conntrack: { tcpTimeWait: 10 }, services: [service({ snatAddresses: POOL })] },
  },
  {
    label: 'fullnat, 4-address pool, conntrack defaults',
    config: { backend: 'nft', services: [service({ snatAddresses: POOL })] },
  },
  // Direct again: the machine is shared, so the ratios take the mean of the first and the last measurement.
  { label: 'direct client -> RS1, again' },
];

interface Result {
  requestsPerSecond: number;
  errors: number;
  /** The client's SYN retransmissions (TcpExtTCPSynRetrans) and the RSs' refusals of a SYN on a TIME_WAIT 4-tuple (TcpExtPAWSTimewait). */
  synRetransmits: number;
  pawsRefused: number;
  /** The balancer's SNAT port use at the end of the run, from `slbctl status --json`. */
  snat: { address: string; used: number; capacity: number }[];
}

function parseWrk(text: string): { requestsPerSecond: number; errors: number } {
  const rate = /Requests\/sec:\s*([\d.]+)/.exec(text);
  if (!rate) throw new Error(`wrk: no figures in ${JSON.stringify(text.slice(0, 500))}`);
  const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(text);
  const status = /Non-2xx or 3xx responses: (\d+)/.exec(text);
  const errors = (socket ? socket.slice(1).reduce((a, b) => a + Number(b), 0) : 0) + (status ? Number(status[1]) : 0);
  return { requestsPerSecond: Number(rate[1]), errors };
}

/** One TCP counter of a lab host (nstat -az: absolute values). */
async function counter(lab: string, host: 'client' | 'rs1' | 'rs2', name: string): Promise<number> {
  const r = await run(['nstat', '-az', name], { netns: nsName(lab, host) });
  return Number(new RegExp(`^${name}\\s+(\\d+)`, 'm').exec(r.stdout)?.[1] ?? 0);
}

const retransmitsAndRefusals = async (lab: string) => ({
  syn: await counter(lab, 'client', 'TcpExtTCPSynRetrans'),
  paws: (await counter(lab, 'rs1', 'TcpExtPAWSTimewait')) + (await counter(lab, 'rs2', 'TcpExtPAWSTimewait')),
});

async function measure(lab: string, dir: string, c: Case): Promise<Result> {
  const lb = nsName(lab, 'lb');
  const cli = (args: string[]) => run([process.execPath, CLI_ENTRY, ...args], { netns: lb });
  // Each case starts with the balancer's conntrack table empty and no TIME_WAIT socket in the lab (its own namespaces).
  await run(['conntrack', '-F'], { netns: lb });
  for (const h of ['client', 'rs1', 'rs2'] as const) await run(['ss', '-K', 'state', 'time-wait'], { netns: nsName(lab, h) });
  if (c.config) {
    const file = path.join(dir, 'snat.yaml');
    fs.writeFileSync(file, stringify(c.config));
    const applied = await cli(['apply', '-f', file]);
    if (applied.code !== 0) throw new Error(`apply ${c.label}: ${applied.stderr}`);
  }
  const host = c.config ? REFERENCE_TOPOLOGY.vip : addressOf(REFERENCE_TOPOLOGY, 'rs1');
  const url = `http://${host}:${REFERENCE_TOPOLOGY.servicePort}/`;
  const argv = ['wrk', '-t1', `-c${CONNECTIONS}`, `-d${SECONDS}s`, '--timeout', '2s', '-H', 'Connection: close', url];
  const before = await retransmitsAndRefusals(lab);
  const w = parseWrk((await runChecked(`wrk ${url}`, argv, { netns: nsName(lab, 'client'), timeoutMs: (SECONDS + 30) * 1000 })).stdout);
  const after = await retransmitsAndRefusals(lab);
  let snat: Result['snat'] = [];
  if (c.config) {
    const status = await cli(['status', '--json']);
    snat = (JSON.parse(status.stdout) as { snat?: Result['snat'] }).snat ?? [];
    // The next case starts from nothing of slbctl's (timeouts put back, pool addresses removed).
    await cli(['destroy']);
  }
  return { ...w, synRetransmits: after.syn - before.syn, pawsRefused: after.paws - before.paws, snat };
}

async function main(): Promise<void> {
  const lab = `snb${process.pid % 100000}`;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'slbctl-snatbench-'));
  const say = (line: string) => process.stdout.write(`${line}\n`);
  say(
    `${new Date().toISOString()}, ${os.cpus().length} cores, kernel ${os.release()}, load average ${os
      .loadavg()
      .map((x) => x.toFixed(2))
      .join(' ')}`,
  );
  say(`wrk -t1 -c${CONNECTIONS} -d${SECONDS}s -H 'Connection: close' from the client namespace; nginx (1 worker) on each RS`);
  say(`source ports of every fullnat case: ${PORTS ?? "the kernel's 1024-65535"}`);
  const results = new Map<string, Result>();
  try {
    await labUp(lab, REFERENCE_TOPOLOGY);
    // The client must not be the limit: its own ports are reused as soon as TCP allows.
    for (const setting of ['net.ipv4.ip_local_port_range=1024 65535', 'net.ipv4.tcp_tw_reuse=1'])
      await runChecked(`sysctl ${setting}`, ['sysctl', '-qw', setting], { netns: nsName(lab, 'client') });
    await stopLabServers(lab);
    await startNginx(lab, dir);
    // The RSs' routes for full NAT (their replies to the client network go through the router).
    await applyLabMode(lab, 'fullnat', () => undefined, { ...DEFAULT_LAB_OPTIONS, backend: 'nft' });
    await run([process.execPath, CLI_ENTRY, 'destroy'], { netns: nsName(lab, 'lb') });
    for (const c of CASES) {
      const r = await measure(lab, dir, c);
      results.set(c.label, r);
      const use = r.snat.map((u) => `${u.address} ${u.used}/${u.capacity}`).join(', ');
      say(
        `${c.label}: ${r.requestsPerSecond.toFixed(0)} requests/s, ${r.errors} errors, ${r.synRetransmits} SYN retransmits, ${r.pawsRefused} PAWS refusals${use ? `; SNAT ports at the end: ${use}` : ''}`,
      );
    }
  } finally {
    try {
      await stopNginx(lab, dir);
    } finally {
      await labDown(lab);
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }
  const directs = CASES.filter((c) => !c.config).map((c) => results.get(c.label)?.requestsPerSecond ?? 0);
  const direct = directs.reduce((a, b) => a + b, 0) / Math.max(1, directs.length);
  say('');
  say(`direct: mean of ${directs.map((d) => d.toFixed(0)).join(' and ')}`);
  say('| configuration | requests/s | ratio to direct | errors | client SYN retransmits | RS PAWS refusals (TIME_WAIT) |');
  say('|---|--:|--:|--:|--:|--:|');
  for (const c of CASES) {
    const r = results.get(c.label);
    if (r)
      say(
        `| ${c.label} | ${r.requestsPerSecond.toFixed(0)} | ${direct ? (r.requestsPerSecond / direct).toFixed(2) : '-'} | ${r.errors} | ${r.synRetransmits} | ${r.pawsRefused} |`,
      );
  }
  for (const c of CASES.filter((x) => x.label.includes('pool'))) {
    const ratio = direct ? (results.get(c.label)?.requestsPerSecond ?? 0) / direct : 0;
    say(`goal: ${c.label} sustains >= ${GOAL} x direct: ${ratio.toFixed(2)} -> ${ratio >= GOAL ? 'met' : 'NOT met'}`);
  }
  say(
    `load average after: ${os
      .loadavg()
      .map((x) => x.toFixed(2))
      .join(' ')}`,
  );
}

void main().catch((e: unknown) => {
  process.stderr.write(`snat bench: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exitCode = 1;
});
