// The lab in network namespaces on the local kernel: one namespace per host
// of the reference topology (src/lab/topology.ts). Nothing is ever created in
// the root namespace, not even for a moment:
// - the server segment's L2 is a bridge INSIDE the router namespace, so the
//   router is both the segment's switch and its gateway, and the host's own
//   interfaces, routes and firewall never see a lab address;
// - every veth is created with both ends placed straight into lab namespaces
//   (`ip link add … netns A type veth peer … netns B`), never made in the root
//   namespace and moved afterwards.
import { identityOf, removeRecordsOf } from '../records/netns';
import { RealServerPlace, Step, describeRealServer, realServerSteps } from './rs-steps';
import * as fs from 'node:fs';
import { Encapsulation, Mode } from '../model/types';
import { run, runChecked, RunResult } from '../util/exec';
import { LabError } from './errors';
import { checkLabName, nsName } from './names';
import { recordedServerPids, sleep, startHttpServer, stopAllIn, waitForHttp } from './processes';
import { labStateDir, readLabState, writeLabState } from './state';
import { LAB_HOSTS, LabHostName, LabTopology, REAL_SERVERS, REFERENCE_TOPOLOGY, addressOf, hostOf, labHosts } from './topology';

export { checkLabName, nsName, labStateDir, readLabState, writeLabState };
export type { LabState } from './state';

export type RealServerMode = Mode;

async function listNamespaces(): Promise<Set<string>> {
  const r = await runChecked('list network namespaces', ['ip', 'netns', 'list']);
  // Lines look like "slb-rs1 (id: 3)" or just "slb-rs1".
  return new Set(
    r.stdout
      .split('\n')
      .map((l) => l.trim().split(/\s+/)[0] ?? '')
      .filter(Boolean),
  );
}

/** Which of the lab's hosts have a namespace; `missing` counts the hosts every lab has (lb2 is in `present` when there). */
export async function labExists(lab: string): Promise<{ present: LabHostName[]; missing: LabHostName[] }> {
  checkLabName(lab);
  const all = await listNamespaces();
  return { present: labHosts(2).filter((h) => all.has(nsName(lab, h))), missing: LAB_HOSTS.filter((h) => !all.has(nsName(lab, h))) };
}

function inHost(lab: string, host: LabHostName, what: string, argv: string[]): Promise<RunResult> {
  return runChecked(`${nsName(lab, host)}: ${what}`, argv, { netns: nsName(lab, host) });
}

function sysctl(lab: string, host: LabHostName, key: string, value: string): Promise<RunResult> {
  return inHost(lab, host, `sysctl ${key}`, ['sysctl', '-qw', `${key}=${value}`]);
}

/** The first interface of a non-router host (the lab's hosts each have one). */
function mainInterface(topology: LabTopology, host: LabHostName) {
  const iface = hostOf(topology, host).interfaces[0];
  if (!iface) throw new LabError(`lab topology: host ${host} has no interface`);
  return iface;
}

async function buildNamespaces(
  lab: string,
  topology: LabTopology,
  hosts: readonly LabHostName[],
  log: (line: string) => void,
): Promise<void> {
  for (const h of hosts) {
    await runChecked('create namespace', ['ip', 'netns', 'add', nsName(lab, h)]);
    await inHost(lab, h, 'lo up', ['ip', 'link', 'set', 'lo', 'up']);
    // No IPv6 in the lab: no DAD, router solicitations or MLD reports in the
    // captures. Set before any veth exists so new interfaces inherit it.
    await sysctl(lab, h, 'net.ipv6.conf.all.disable_ipv6', '1');
    await sysctl(lab, h, 'net.ipv6.conf.default.disable_ipv6', '1');
  }
  log(`namespaces ${hosts.map((h) => nsName(lab, h)).join(', ')}`);

  const router = nsName(lab, 'router');
  const routerIfaces = hostOf(topology, 'router').interfaces;
  const bridge = routerIfaces.find((i) => i.segment === 'server-net');
  const routerClientSide = routerIfaces.find((i) => i.segment === 'client-net');
  if (!bridge || !routerClientSide) throw new LabError('lab topology: the router needs a client-net and a server-net interface');
  await inHost(lab, 'router', 'bridge', ['ip', 'link', 'add', bridge.name, 'type', 'bridge']);
  await inHost(lab, 'router', 'bridge address', ['ip', 'addr', 'add', bridge.cidr, 'dev', bridge.name]);
  await inHost(lab, 'router', 'bridge up', ['ip', 'link', 'set', bridge.name, 'up']);
  await sysctl(lab, 'router', 'net.ipv4.ip_forward', '1');
  log(`${router}: ${bridge.name} ${bridge.cidr} (server segment), ip_forward=1`);

  for (const h of hosts.filter((x) => x !== 'router')) {
    const host = hostOf(topology, h);
    const iface = mainInterface(topology, h);
    // The host's end is named as in the topology; the router's end is the
    // router's client-side interface, or a bridge port named after the host.
    const peer = iface.segment === 'client-net' ? routerClientSide.name : h;
    await runChecked(`veth ${nsName(lab, h)}/${iface.name} <-> ${router}/${peer}`, [
      'ip',
      'link',
      'add',
      iface.name,
      'netns',
      nsName(lab, h),
      'type',
      'veth',
      'peer',
      'name',
      peer,
      'netns',
      router,
    ]);
    if (iface.segment === 'server-net')
      await inHost(lab, 'router', `bridge port ${peer}`, ['ip', 'link', 'set', peer, 'master', bridge.name]);
    else await inHost(lab, 'router', 'client-side address', ['ip', 'addr', 'add', routerClientSide.cidr, 'dev', peer]);
    await inHost(lab, 'router', `${peer} up`, ['ip', 'link', 'set', peer, 'up']);
    await inHost(lab, h, 'address', ['ip', 'addr', 'add', iface.cidr, 'dev', iface.name]);
    await inHost(lab, h, 'link up', ['ip', 'link', 'set', iface.name, 'up']);
    if (host.gateway) await inHost(lab, h, 'default route', ['ip', 'route', 'add', 'default', 'via', host.gateway]);
    log(`${nsName(lab, h)}: ${iface.name} ${iface.cidr}${host.gateway ? ` via ${host.gateway}` : ''} (router port ${peer})`);
  }
}

/** Build the lab and start the real servers' HTTP servers. On any failure, removes what it made and rethrows. */
export async function labUp(
  lab: string,
  topology: LabTopology = REFERENCE_TOPOLOGY,
  log: (line: string) => void = () => undefined,
  o: { balancers?: number } = {},
): Promise<void> {
  checkLabName(lab);
  const balancers = o.balancers ?? 1;
  if (balancers !== 1 && balancers !== 2) throw new LabError(`--balancers ${balancers}: a lab has 1 or 2 balancers`);
  const { present } = await labExists(lab);
  if (present.length > 0) {
    throw new LabError(
      `lab "${lab}" already exists (namespaces ${present.map((h) => nsName(lab, h)).join(', ')}); run \`slbctl lab down --name ${lab}\` first`,
    );
  }
  try {
    // No namespace exists, so any state dir is a leftover of a crashed lab:
    // its mode would lie, and servers it records may still run.
    await stopAllIn([], () => recordedServerPids(labStateDir(lab)));
    fs.rmSync(labStateDir(lab), { recursive: true, force: true });
    await buildNamespaces(lab, topology, labHosts(balancers), log);
    await writeLabState(lab, { provider: 'netns', createdAt: new Date().toISOString(), ...(balancers === 2 ? { balancers } : {}) });
    const servers = REAL_SERVERS.map((h) => ({ h, server: startHttpServer(lab, nsName(lab, h), h, topology.servicePort) }));
    const deadline = Date.now() + 5000;
    for (const { h, server } of servers) {
      await waitForHttp(nsName(lab, h), server, `http://${addressOf(topology, h)}:${topology.servicePort}/`, deadline);
    }
    log(`HTTP servers answering on ${REAL_SERVERS.map((h) => `${addressOf(topology, h)}:${topology.servicePort}`).join(', ')}`);
  } catch (e) {
    try {
      await labDown(lab);
    } catch (cleanup) {
      log(`cleanup after the failure also failed: ${(cleanup as Error).message}`);
    }
    throw e;
  }
}

/** Stop every process in the lab, delete its namespaces (and with them veths and bridge) and its state dir. Idempotent. */
export async function labDown(lab: string): Promise<{ removed: string[] }> {
  checkLabName(lab);
  const { present } = await labExists(lab);
  const namespaces = present.map((h) => nsName(lab, h));
  // Also the servers' pid files: after a crash the namespaces may be gone and the servers not.
  await stopAllIn(namespaces, () => recordedServerPids(labStateDir(lab)));
  const failures: string[] = [];
  for (const ns of namespaces) {
    // slbctl's records of the namespace (ownership, drains, controller) go with it: a later namespace that
    // gets the same inode must not find them (it would only report and ignore them, but nothing should be left).
    try {
      removeRecordsOf(identityOf(ns));
    } catch {
      // the namespace is half gone already (a crashed lab); its records are ignored by their cookie
    }
    let r = await run(['ip', 'netns', 'del', ns]);
    // A process that just exited can keep the mount busy for an instant.
    if (r.code !== 0) {
      await sleep(200);
      r = await run(['ip', 'netns', 'del', ns]);
    }
    if (r.code !== 0 && (await listNamespaces()).has(ns)) failures.push(`${ns}: ${r.stderr.trim()}`);
  }
  fs.rmSync(labStateDir(lab), { recursive: true, force: true });
  if (failures.length > 0) throw new LabError(`lab "${lab}": could not delete ${failures.join('; ')}`);
  return { removed: namespaces };
}

export function labExec(
  lab: string,
  host: LabHostName,
  argv: string[],
  opts: { input?: string; timeoutMs?: number } = {},
): Promise<RunResult> {
  return run(argv, { netns: nsName(lab, host), ...opts });
}

/** Take the VIP off the RS's lo (no error if it is not there). */
export async function removeVipFromRealServer(
  lab: string,
  host: LabHostName,
  topology: LabTopology = REFERENCE_TOPOLOGY,
): Promise<boolean> {
  const r = await run(['ip', 'addr', 'del', `${topology.vip}/32`, 'dev', 'lo'], { netns: nsName(lab, host) });
  return r.code === 0;
}

/** Route the client network from this RS via `via` (replacing any such route). */
export async function setRealServerClientRoute(
  lab: string,
  host: LabHostName,
  via: string,
  topology: LabTopology = REFERENCE_TOPOLOGY,
): Promise<void> {
  await inHost(lab, host, 'client-net route', ['ip', 'route', 'replace', topology.clientNet, 'via', via]);
}

/** How a real server sits in the netns lab: its one interface, its default route via the router. */
export function netnsPlace(topology: LabTopology, h: LabHostName): RealServerPlace {
  return { device: mainInterface(topology, h).name, clientRoute: 'default', canLoadModules: false };
}

/** Run one real server's steps in its namespace; which ones succeeded (a step that may not fail throws). */
async function runSteps(lab: string, h: LabHostName, steps: readonly Step[]): Promise<boolean[]> {
  const done: boolean[] = [];
  for (const step of steps) {
    const r = await run(step.argv, { netns: nsName(lab, h) });
    if (r.code !== 0 && !step.mayFail) {
      if (step.argv.join(' ') === 'ip link set tunl0 up')
        throw new LabError(`${h}: no tunl0: this kernel has no ipip module (dsr with ipip needs it; the user-mode-linux kernel has it)`);
      throw new LabError(`${h}: \`${step.argv.join(' ')}\` failed: ${(r.stderr || r.stdout).trim()}`);
    }
    done.push(r.code === 0);
  }
  return done;
}

/** The real servers' side of a mode (src/lab/rs-steps.ts, the same steps every provider runs). Idempotent. */
export async function configureRealServers(
  lab: string,
  mode: RealServerMode,
  topology: LabTopology = REFERENCE_TOPOLOGY,
  encapsulation: Encapsulation = 'none',
  /** The balancer address the real servers route through (transparent): lb's own unless a VRRP pair floats one. */
  balancerAddress?: string,
): Promise<string[]> {
  const { missing } = await labExists(lab);
  if (missing.length > 0) throw new LabError(`lab "${lab}" is not up (missing ${missing.map((h) => nsName(lab, h)).join(', ')})`);
  const lines: string[] = [];
  for (const h of REAL_SERVERS) {
    const place = netnsPlace(topology, h);
    const steps = realServerSteps(mode, topology, encapsulation, place, balancerAddress);
    const resetDone = await runSteps(lab, h, steps.reset);
    await runSteps(lab, h, steps.own);
    lines.push(...describeRealServer(h, topology, steps, resetDone, place));
  }
  await writeLabState(lab, { mode, encapsulation });
  return lines;
}
