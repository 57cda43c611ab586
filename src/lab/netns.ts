// The lab in network namespaces on the local kernel: one namespace per host
// of the reference topology. The server segment is a bridge inside the
// router's namespace, and every veth is created directly inside the lab's
// namespaces, so nothing ever appears in the root namespace.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawn } from 'node:child_process';
import { run, runChecked, RunResult } from '../util/exec';
import { LabError } from './errors';
import { LAB_HOSTS, LabHostName, LabTopology, REAL_SERVERS, REFERENCE_TOPOLOGY, addressOf, hostOf } from './topology';
import { labStateDir, readLabState, writeLabState } from './state';

export { labStateDir, readLabState, writeLabState };

const NAME_RULE = /^[a-z0-9][a-z0-9-]{0,11}$/;

export function checkLabName(lab: string): void {
  if (!NAME_RULE.test(lab)) throw new LabError(`lab name "${lab}" must be 1-12 characters of a-z, 0-9 and "-", starting with a letter or digit`);
}

export function nsName(lab: string, host: LabHostName): string {
  return `${lab}-${host}`;
}

async function listNamespaces(): Promise<string[]> {
  const r = await run(['ip', 'netns', 'list']);
  return r.stdout.split('\n').map((l) => l.split(' ')[0] ?? '').filter(Boolean);
}

export async function labExists(lab: string): Promise<{ present: LabHostName[]; missing: LabHostName[] }> {
  const all = new Set(await listNamespaces());
  return { present: LAB_HOSTS.filter((h) => all.has(nsName(lab, h))), missing: LAB_HOSTS.filter((h) => !all.has(nsName(lab, h))) };
}

function inHost(lab: string, host: LabHostName, what: string, argv: string[]): Promise<RunResult> {
  return runChecked(`${nsName(lab, host)}: ${what}`, argv, { netns: nsName(lab, host) });
}

const sysctl = (lab: string, host: LabHostName, key: string, value: string) => inHost(lab, host, `sysctl ${key}`, ['sysctl', '-qw', `${key}=${value}`]);

async function startHttpServer(lab: string, host: LabHostName, port: number): Promise<void> {
  const dir = labStateDir(lab);
  fs.mkdirSync(dir, { recursive: true });
  const log = fs.openSync(path.join(dir, `${host}-http.log`), 'a');
  const script = path.join(__dirname, 'rs-http-server.js');
  const child = spawn('ip', ['netns', 'exec', nsName(lab, host), process.execPath, script, '--name', host, '--port', String(port)], { detached: true, stdio: ['ignore', log, log] });
  child.unref();
  fs.closeSync(log);
  fs.writeFileSync(path.join(dir, `${host}-http.pid`), `${child.pid ?? ''}\n`);
}

async function waitForHttp(lab: string, host: LabHostName, address: string, port: number): Promise<void> {
  const deadline = Date.now() + 5000;
  for (;;) {
    const r = await run(['curl', '-s', '-o', '/dev/null', '--max-time', '1', `http://${address}:${port}/`], { netns: nsName(lab, host) });
    if (r.code === 0) return;
    if (Date.now() > deadline) throw new LabError(`the HTTP server on ${host} did not answer on ${address}:${port} within 5 s (log: ${path.join(labStateDir(lab), `${host}-http.log`)})`);
    await new Promise((res) => setTimeout(res, 100));
  }
}

export async function labUp(lab: string, topology: LabTopology = REFERENCE_TOPOLOGY, log: (line: string) => void = () => undefined): Promise<void> {
  checkLabName(lab);
  const { present } = await labExists(lab);
  if (present.length > 0) {
    throw new LabError(`lab "${lab}" already exists (namespaces ${present.map((h) => nsName(lab, h)).join(', ')}); run \`slbctl lab down --name ${lab}\` first`);
  }
  try {
    for (const h of LAB_HOSTS) {
      await runChecked('create namespace', ['ip', 'netns', 'add', nsName(lab, h)]);
      await inHost(lab, h, 'lo up', ['ip', 'link', 'set', 'lo', 'up']);
      // No IPv6 in the lab: keeps router solicitations and DAD out of the captures.
      await sysctl(lab, h, 'net.ipv6.conf.all.disable_ipv6', '1');
      await sysctl(lab, h, 'net.ipv6.conf.default.disable_ipv6', '1');
    }
    log(`namespaces ${LAB_HOSTS.map((h) => nsName(lab, h)).join(', ')}`);
    const router = nsName(lab, 'router');
    const routerHost = hostOf(topology, 'router');
    const bridge = routerHost.interfaces.find((i) => i.segment === 'server-net');
    const routerClientSide = routerHost.interfaces.find((i) => i.segment === 'client-net');
    if (!bridge || !routerClientSide) throw new LabError('the topology\'s router needs a client-net and a server-net interface');
    await inHost(lab, 'router', 'bridge', ['ip', 'link', 'add', bridge.name, 'type', 'bridge']);
    await inHost(lab, 'router', 'bridge address', ['ip', 'addr', 'add', bridge.cidr, 'dev', bridge.name]);
    await inHost(lab, 'router', 'bridge up', ['ip', 'link', 'set', bridge.name, 'up']);
    await sysctl(lab, 'router', 'net.ipv4.ip_forward', '1');
    for (const h of LAB_HOSTS.filter((x) => x !== 'router')) {
      const host = hostOf(topology, h);
      const iface = host.interfaces[0];
      if (!iface) continue;
      // The host's end is named as in the topology, the router's end after the host.
      const peer = iface.segment === 'client-net' ? routerClientSide.name : h;
      await runChecked(`veth ${h}`, ['ip', 'link', 'add', iface.name, 'netns', nsName(lab, h), 'type', 'veth', 'peer', 'name', peer, 'netns', router]);
      await inHost(lab, h, 'address', ['ip', 'addr', 'add', iface.cidr, 'dev', iface.name]);
      await inHost(lab, h, 'link up', ['ip', 'link', 'set', iface.name, 'up']);
      if (iface.segment === 'server-net') await inHost(lab, 'router', `bridge port ${peer}`, ['ip', 'link', 'set', peer, 'master', bridge.name]);
      else await inHost(lab, 'router', 'client side address', ['ip', 'addr', 'add', routerClientSide.cidr, 'dev', peer]);
      await inHost(lab, 'router', `${peer} up`, ['ip', 'link', 'set', peer, 'up']);
      if (host.gateway) await inHost(lab, h, 'default route', ['ip', 'route', 'add', 'default', 'via', host.gateway]);
      log(`${nsName(lab, h)}: ${iface.name} ${iface.cidr}${host.gateway ? ` via ${host.gateway}` : ''}`);
    }
    await writeLabState(lab, { provider: 'netns', createdAt: new Date().toISOString() });
    for (const h of REAL_SERVERS) await startHttpServer(lab, h, topology.servicePort);
    for (const h of REAL_SERVERS) await waitForHttp(lab, h, addressOf(topology, h), topology.servicePort);
    log(`HTTP servers answering on ${REAL_SERVERS.map((h) => `${addressOf(topology, h)}:${topology.servicePort}`).join(', ')}`);
  } catch (e) {
    await labDown(lab);
    throw e;
  }
}

async function killAll(namespaces: string[], signal: 'SIGTERM' | 'SIGKILL'): Promise<number> {
  let found = 0;
  for (const ns of namespaces) {
    const r = await run(['ip', 'netns', 'pids', ns]);
    for (const pid of r.stdout.split(/\s+/).filter(Boolean).map(Number)) {
      found++;
      try {
        process.kill(pid, signal);
      } catch {
        // already gone
      }
    }
  }
  return found;
}

export async function labDown(lab: string): Promise<{ removed: string[] }> {
  checkLabName(lab);
  const { present } = await labExists(lab);
  const namespaces = present.map((h) => nsName(lab, h));
  if (await killAll(namespaces, 'SIGTERM')) {
    await new Promise((r) => setTimeout(r, 300));
    await killAll(namespaces, 'SIGKILL');
  }
  for (const ns of namespaces) await run(['ip', 'netns', 'del', ns]);
  fs.rmSync(labStateDir(lab), { recursive: true, force: true });
  return { removed: namespaces };
}

export function labExec(lab: string, host: LabHostName, argv: string[], opts: { input?: string; timeoutMs?: number } = {}): Promise<RunResult> {
  return run(argv, { netns: nsName(lab, host), ...opts });
}


export async function removeVipFromRealServer(lab: string, host: LabHostName, topology: LabTopology = REFERENCE_TOPOLOGY): Promise<void> {
  await run(['ip', 'addr', 'del', `${topology.vip}/32`, 'dev', 'lo'], { netns: nsName(lab, host) });
}

export async function setRealServerClientRoute(lab: string, host: LabHostName, via: string, topology: LabTopology = REFERENCE_TOPOLOGY): Promise<void> {
  await inHost(lab, host, 'client route', ['ip', 'route', 'replace', topology.clientNet, 'via', via]);
}

/** The real servers' side of a mode; resets whatever another mode set before. */
export async function configureRealServers(lab: string, mode: 'fullnat' | 'transparent' | 'dsr', topology: LabTopology = REFERENCE_TOPOLOGY): Promise<string[]> {
  const steps: string[] = [];
  const lb = addressOf(topology, 'lb');
  for (const h of REAL_SERVERS) {
    const host = hostOf(topology, h);
    const dev = host.interfaces[0]?.name ?? 'eth0';
    await removeVipFromRealServer(lab, h, topology);
    await run(['ip', 'route', 'del', topology.clientNet], { netns: nsName(lab, h) });
    for (const scope of ['all', dev]) {
      await sysctl(lab, h, `net.ipv4.conf.${scope}.arp_ignore`, '0');
      await sysctl(lab, h, `net.ipv4.conf.${scope}.arp_announce`, '0');
    }
    if (host.gateway) await inHost(lab, h, 'default route', ['ip', 'route', 'replace', 'default', 'via', host.gateway]);
    if (mode === 'transparent') {
      // The RS must send its replies to the client back through the balancer, which undoes the DNAT.
      await setRealServerClientRoute(lab, h, lb, topology);
      steps.push(`${h}: route ${topology.clientNet} via ${lb} (the LB)`);
    } else if (mode === 'dsr') {
      // The RS accepts packets for the VIP but must never answer ARP for it, or it would steal the VIP from the LB.
      for (const scope of ['all', dev]) {
        await sysctl(lab, h, `net.ipv4.conf.${scope}.arp_ignore`, '1');
        await sysctl(lab, h, `net.ipv4.conf.${scope}.arp_announce`, '2');
      }
      await inHost(lab, h, 'VIP on lo', ['ip', 'addr', 'add', `${topology.vip}/32`, 'dev', 'lo']);
      steps.push(`${h}: VIP ${topology.vip}/32 on lo, arp_ignore=1 arp_announce=2, replies via ${host.gateway ?? 'default route'} (the router)`);
    } else {
      steps.push(`${h}: nothing special (replies go to the LB's own address)`);
    }
  }
  await writeLabState(lab, { mode });
  return steps;
}

