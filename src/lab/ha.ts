// Two balancers behind the lab's router (`lab up --balancers 2`), `slbctl run`
// on each:
//  - `lab mode dsr --ha ecmp`: each controller drives its own BIRD, which
//    announces the VIP to the router; the router's BIRD (started here, the
//    lab's stand-in for an operator's router) learns both routes and installs
//    one multipath route, hashed on the flow's addresses and ports (L4 policy).
//  - `lab mode fullnat|transparent --ha vrrp`: each controller drives its own
//    keepalived (and conntrackd, unless --no-sync); the master holds the VIP
//    and the pair's floating address, which the real servers answer.
// `lab fail` takes a balancer off the wire and kills its controller;
// `lab recover` brings it back.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawn } from 'node:child_process';
import { run, runChecked } from '../util/exec';
import { CLI_ENTRY } from '../util/self';
import { BFD_INTERVAL_MS, BFD_MULTIPLIER } from '../ha/bird';
import { LabError } from './errors';
import { nsName } from './names';
import { readLabState, labStateDir, writeLabState } from './state';
import { BALANCERS, BalancerName, LabTopology, addressOf, hostOf } from './topology';

export const HA_KINDS = ['ecmp', 'vrrp'] as const;
export type HaKind = (typeof HA_KINDS)[number];

/** The lab's AS numbers: the router's, and the one both balancers share (private, RFC 6996). */
export const LAB_ROUTER_ASN = 65000;
export const LAB_BALANCER_ASN = 65001;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The router's side: one BGP session per balancer, BFD on the server segment (`device`: its interface there, if not the topology's), ECMP into the kernel. */
export function renderRouterBird(topology: LabTopology, device?: string, o: { bfd?: boolean } = {}): string {
  const bfd = o.bfd !== false;
  const router = hostOf(topology, 'router');
  const serverSide = router.interfaces.find((i) => i.segment === 'server-net');
  if (!serverSide) throw new LabError('lab topology: the router has no server-net interface');
  const local = serverSide.cidr.split('/')[0];
  return `${[
    "# The lab router of slbctl (src/lab/ha.ts): learns each balancer's VIP routes and installs them as one multipath route.",
    `router id ${local};`,
    'protocol device { }',
    'protocol kernel {',
    '  ipv4 { import none; export all; };',
    '  merge paths on;',
    '}',
    ...(bfd
      ? [
          'protocol bfd {',
          `  interface "${device ?? serverSide.name}" { min rx interval ${BFD_INTERVAL_MS} ms; min tx interval ${BFD_INTERVAL_MS} ms; multiplier ${BFD_MULTIPLIER}; };`,
          '}',
        ]
      : []),
    'template bgp balancer {',
    `  local ${local} as ${LAB_ROUTER_ASN};`,
    ...(bfd ? ['  bfd on;'] : []),
    '  hold time 3; keepalive time 1; connect retry time 1; error wait time 1, 5;',
    '  ipv4 { import filter { if net.len = 32 then accept; reject; }; export none; };',
    '}',
    ...BALANCERS.map((b) => `protocol bgp ${b} from balancer { neighbor ${addressOf(topology, b)} as ${LAB_BALANCER_ASN}; }`),
  ].join('\n')}\n`;
}

export function routerFiles(lab: string) {
  const dir = labStateDir(lab);
  return {
    conf: path.join(dir, 'router-bird.conf'),
    socket: path.join(dir, 'router-bird.ctl'),
    pid: path.join(dir, 'router-bird.pid'),
    log: path.join(dir, 'router-bird.log'),
  };
}

/** The router's BIRD (started, or told to read its config again when it runs) and the L4 multipath hash. */
export async function startRouterBgp(lab: string, topology: LabTopology): Promise<void> {
  const f = routerFiles(lab);
  fs.mkdirSync(path.dirname(f.conf), { recursive: true });
  fs.writeFileSync(f.conf, renderRouterBird(topology));
  const ns = nsName(lab, 'router');
  await runChecked(`${ns}: L4 multipath hash`, ['sysctl', '-qw', 'net.ipv4.fib_multipath_hash_policy=1'], { netns: ns });
  if ((await run(['birdc', '-s', f.socket, 'configure'])).code === 0) return;
  // BIRD forks into the background itself; `lab down` ends it with every other process of the lab.
  const r = await run(['ip', 'netns', 'exec', ns, 'bird', '-c', f.conf, '-s', f.socket, '-P', f.pid]);
  if (r.code !== 0) throw new LabError(`${ns}: BIRD did not start: ${(r.stderr || r.stdout).trim()}`);
}

export async function stopRouterBgp(lab: string): Promise<void> {
  const f = routerFiles(lab);
  await run(['birdc', '-s', f.socket, 'down']);
  for (const x of [f.socket, f.pid]) fs.rmSync(x, { force: true });
}

/** The next hops of the router's route to the VIP (none: no route learned). */
export async function routerNextHops(lab: string, vip: string): Promise<string[]> {
  const r = await run(['ip', 'route', 'show', `${vip}/32`], { netns: nsName(lab, 'router') });
  return [...r.stdout.matchAll(/via (\d+\.\d+\.\d+\.\d+)/g)].map((m) => m[1] ?? '').sort();
}

/** Wait until the router sends the VIP to exactly these balancers. */
export async function waitForNextHops(
  lab: string,
  topology: LabTopology,
  want: readonly BalancerName[],
  timeoutMs = 20_000,
): Promise<void> {
  const expected = want.map((b) => addressOf(topology, b)).sort();
  const deadline = Date.now() + timeoutMs;
  let seen: string[] = [];
  while (Date.now() < deadline) {
    seen = await routerNextHops(lab, topology.vip);
    if (seen.join(',') === expected.join(',')) return;
    await sleep(100);
  }
  throw new LabError(
    `the router's route to ${topology.vip} goes via ${seen.join(', ') || 'nothing'} after ${timeoutMs / 1000} s, not via ${expected.join(', ')}; see ${labStateDir(lab)}/*-run.log`,
  );
}

const controllerFiles = (lab: string, b: BalancerName) => ({
  pid: path.join(labStateDir(lab), `${b}-run.pid`),
  log: path.join(labStateDir(lab), `${b}-run.log`),
});

/** Whether the process runs: a zombie (dead, not yet reaped by whoever adopted it) does not. */
function alive(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

function controllerPid(lab: string, b: BalancerName): number | undefined {
  try {
    const pid = Number(fs.readFileSync(controllerFiles(lab, b).pid, 'utf8').trim());
    return Number.isInteger(pid) && pid > 1 && alive(pid) ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** `slbctl run -f FILE` in the balancer's namespace, detached (it outlives this command), logging JSON to the lab's state dir. */
export async function startLabController(lab: string, b: BalancerName, file: string, o: { sloppyTcp?: boolean } = {}): Promise<void> {
  const f = controllerFiles(lab, b);
  // IPVS (user-mode-linux), ECMP: the survivor must take over a flow mid-connection, which IPVS schedules only from
  // a SYN unless sloppy_tcp. VRRP (sloppyTcp false): only the synced connection may carry a flow over, as
  // tcpLoose: false does for nftables. Without IPVS in this kernel the sysctl is absent and nothing changes.
  await run(['sysctl', '-qw', `net.ipv4.vs.sloppy_tcp=${o.sloppyTcp === false ? 0 : 1}`], { netns: nsName(lab, b) });
  const fd = fs.openSync(f.log, 'a');
  let exit: string | undefined;
  try {
    const child = spawn(
      'ip',
      ['netns', 'exec', nsName(lab, b), process.execPath, CLI_ENTRY, 'run', '-f', file, '--log-format', 'json', '--metrics', 'off'],
      { detached: true, stdio: ['ignore', fd, fd] },
    );
    child.once('exit', (code, signal) => (exit = String(signal ?? code)));
    child.unref();
    if (child.pid === undefined) throw new LabError(`could not start slbctl run in ${nsName(lab, b)}`);
    fs.writeFileSync(f.pid, `${child.pid}\n`);
  } finally {
    fs.closeSync(fd);
  }
  // Running once its first apply is done and BIRD is up (the start line that says so).
  const deadline = Date.now() + 20_000;
  for (;;) {
    const text = fs.readFileSync(f.log, 'utf8');
    if (/"msg":"running: kernel compared/.test(text.split('\n').slice(-50).join('\n'))) return;
    if (exit !== undefined || Date.now() > deadline)
      throw new LabError(
        `slbctl run in ${nsName(lab, b)} ${exit !== undefined ? `exited (${exit})` : 'did not start in 20 s'}; log ${f.log}: ${text.trim().split('\n').slice(-3).join(' / ')}`,
      );
    await sleep(100);
  }
}

/** End the balancer's controller (SIGTERM: its BIRD withdraws the VIPs; SIGKILL: a crash, BIRD ends by its parent-death signal). */
export async function stopLabController(lab: string, b: BalancerName, signal: 'SIGTERM' | 'SIGKILL' = 'SIGTERM'): Promise<boolean> {
  const pid = controllerPid(lab, b);
  fs.rmSync(controllerFiles(lab, b).pid, { force: true });
  if (pid === undefined) return false;
  process.kill(pid, signal);
  for (let i = 0; i < 250 && alive(pid); i++) await sleep(20);
  if (alive(pid)) process.kill(pid, 'SIGKILL');
  return true;
}

/** The config file `slbctl run` of balancer b reads in a mode (lb-dsr.yaml, lb2-fullnat.yaml). */
export function balancerConfigFile(lab: string, b: BalancerName, mode: string): string {
  return path.join(labStateDir(lab), `${b}-${mode}.yaml`);
}

async function requireHaLab(lab: string, b: BalancerName): Promise<{ file: string; ha: string }> {
  const state = await readLabState(lab);
  if (state?.balancers !== 2)
    throw new LabError(`lab "${lab}" has one balancer; make one with \`slbctl lab up --balancers 2 --name ${lab}\``);
  if (!state.ha || !state.mode)
    throw new LabError(
      `lab "${lab}" runs no --ha mode; run \`slbctl lab mode dsr --ha ecmp --name ${lab}\` or \`slbctl lab mode fullnat --ha vrrp --name ${lab}\` first`,
    );
  return { file: balancerConfigFile(lab, b, state.mode), ha: state.ha };
}

/** The VRRP state balancer b's controller reports (`slbctl status`), if it runs. */
export async function vrrpStateOf(lab: string, b: BalancerName): Promise<string | undefined> {
  const r = await run([process.execPath, CLI_ENTRY, 'status'], { netns: nsName(lab, b) });
  return /^vrrp: (MASTER|BACKUP|FAULT)\b/m.exec(r.stdout)?.[1];
}

/** The balancers that hold the VIP on their wire-facing interface (VRRP: the master alone). */
export async function vipHolders(lab: string, topology: LabTopology): Promise<BalancerName[]> {
  const held: BalancerName[] = [];
  for (const b of BALANCERS) {
    const r = await run(['ip', '-4', '-o', 'addr', 'show', 'dev', 'eth0'], { netns: nsName(lab, b) });
    if (r.stdout.includes(` ${topology.vip}/`)) held.push(b);
  }
  return held;
}

/** Wait until balancer b's controller reports the VRRP state (and, for MASTER, b alone holds the VIP). */
export async function waitForVrrp(lab: string, topology: LabTopology, b: BalancerName, want: 'MASTER' | 'BACKUP'): Promise<void> {
  const deadline = Date.now() + 20_000;
  let state: string | undefined;
  let holders: BalancerName[] = [];
  while (Date.now() < deadline) {
    state = await vrrpStateOf(lab, b);
    holders = await vipHolders(lab, topology);
    if (state === want && (want === 'BACKUP' || holders.join() === b)) return;
    await sleep(100);
  }
  throw new LabError(
    `${nsName(lab, b)} is ${state ?? 'in no VRRP state'} after 20 s, not ${want} (VIP held by ${holders.join(', ') || 'nobody'}); see ${labStateDir(lab)}/${b}-run.log`,
  );
}

/** The balancer leaves the wire (its server-side link down) and its controller dies without a word. */
export async function failBalancer(lab: string, b: BalancerName, say: (line: string) => void): Promise<void> {
  await requireHaLab(lab, b);
  const ns = nsName(lab, b);
  await runChecked(`${ns}: link down`, ['ip', 'link', 'set', 'eth0', 'down'], { netns: ns });
  say(`  ${ns}: eth0 down`);
  const killed = await stopLabController(lab, b, 'SIGKILL');
  say(`  ${ns}: slbctl run ${killed ? 'killed (SIGKILL)' : 'was not running'}`);
  const state = await readLabState(lab);
  await writeLabState(lab, { failed: [...new Set([...(state?.failed ?? []), b])] });
}

/**
 * Link up, default route back, controller started again with the balancer's config; waits until the router
 * uses it again (ecmp), or until it is the standby (vrrp: nopreempt, the survivor keeps the VIP).
 */
export async function recoverBalancer(lab: string, topology: LabTopology, b: BalancerName, say: (line: string) => void): Promise<void> {
  const { file, ha } = await requireHaLab(lab, b);
  const ns = nsName(lab, b);
  const host = hostOf(topology, b);
  await runChecked(`${ns}: link up`, ['ip', 'link', 'set', 'eth0', 'up'], { netns: ns });
  // A link going down takes its routes with it.
  if (host.gateway) await runChecked(`${ns}: default route`, ['ip', 'route', 'replace', 'default', 'via', host.gateway], { netns: ns });
  say(`  ${ns}: eth0 up${host.gateway ? `, default via ${host.gateway}` : ''}`);
  await stopLabController(lab, b);
  await startLabController(lab, b, file, { sloppyTcp: ha !== 'vrrp' });
  const state = await readLabState(lab);
  const failed = (state?.failed ?? []).filter((x) => x !== b);
  if (ha === 'vrrp') {
    say(`  ${ns}: slbctl run -f ${file} (keepalived joins as the standby)`);
    await waitForVrrp(lab, topology, b, 'BACKUP');
    await writeLabState(lab, { failed });
    say(`  ${ns}: VRRP BACKUP; ${topology.vip} stays on ${(await vipHolders(lab, topology)).join(', ') || 'nobody'}`);
    return;
  }
  say(`  ${ns}: slbctl run -f ${file} (BIRD announces the VIP again)`);
  await writeLabState(lab, { failed });
  const up = BALANCERS.filter((x) => !failed.includes(x));
  await waitForNextHops(lab, topology, up);
  say(`  router: ${topology.vip} via ${(await routerNextHops(lab, topology.vip)).join(' and ')}`);
}
