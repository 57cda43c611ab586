// Active/active over BGP: slbctl drives BIRD 2 (Debian's bird2), never a BGP
// speaker of its own. BIRD rather than FRR: one daemon with one config file
// and its own control socket path, so one instance per network namespace is a
// file and a process, where FRR is a set of daemons (zebra, bgpd, bfdd) under
// a per-host layout.
//
// The speaker announces each VIP as a /32 (a static blackhole route that BIRD
// exports over BGP only: it has no kernel protocol here, so nothing reaches
// this host's routing table). Routes change by rewriting the file and asking
// BIRD to reconfigure, which re-reads the static protocol and sends only the
// difference. BIRD runs as the controller's child with a parent-death signal:
// when `slbctl run` ends in any way, BIRD ends its sessions (a BGP Cease), and
// the routers withdraw the routes at once; a balancer that vanishes from the
// wire is noticed by BFD in about 0.3 s.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ChildProcess, spawn } from 'node:child_process';
import { BgpSettings, MAGLEV_DEFAULTS, MaglevSettings, Service } from '../model/types';
import { findCommand, run } from '../util/exec';
import { PreflightError, SlbctlError } from '../util/errors';
import { NetInterface } from '../kernel/rtnl/rtnl';
import { interfaceForAddress } from '../engine/interfaces';
import { runDir } from '../util/rundir';
import { currentNetns } from '../records/netns';
import { endLeftover } from './child';

/** How often the other balancers' routes (ha.bgp.balancers) are compared with ours. */
const AGREEMENT_CHECK_MS = 3000;

/** BFD timers: 100 ms, 3 missed: about 0.3 s to notice a dead neighbour. */
export const BFD_INTERVAL_MS = 100;
export const BFD_MULTIPLIER = 3;

/** A BGP peer as this host reaches it: the local address and interface that face it. */
export interface ResolvedPeer {
  address: string;
  asn: number;
  local: string;
  device: string;
}

export interface SpeakerConfig {
  asn: number;
  routerId: string;
  bfd: boolean;
  holdTime: number;
  peers: ResolvedPeer[];
  /** The other balancers (iBGP, learn-only): whose Maglev communities to compare with ours. */
  balancers?: ResolvedPeer[];
}

export class BgpError extends SlbctlError {
  readonly exitCode = 2;
}

/** Each peer must be on a subnet of this host (slbctl peers with the routers it is attached to, not across hops). */
export function resolveSpeaker(bgp: BgpSettings, interfaces: NetInterface[]): SpeakerConfig {
  const resolve = (address: string, asn: number, where: string, what: string): ResolvedPeer => {
    const found = interfaceForAddress(interfaces, address);
    if (!found)
      throw new BgpError(
        `ha.bgp.${where}: ${address} is on no subnet of this host (it has ${interfaces
          .flatMap((x) => x.addresses.map((a) => `${a.address}/${a.prefixLength} on ${x.name}`))
          .join(', ')}); slbctl peers only with directly connected ${what}`,
      );
    return { address, asn, local: found.local, device: found.iface.name };
  };
  const own = new Set(interfaces.flatMap((x) => x.addresses.map((a) => a.address)));
  const peers = bgp.peers.map((p, i) => {
    if (own.has(p.address)) throw new BgpError(`ha.bgp.peers[${i}]: ${p.address} is this host's own address, not a router's`);
    return resolve(p.address, p.asn, `peers[${i}]`, 'routers');
  });
  // One list serves every balancer of the VIPs: each skips its own address.
  const balancers = (bgp.balancers ?? []).flatMap((b, i) => (own.has(b) ? [] : [resolve(b, bgp.asn, `balancers[${i}]`, 'balancers')]));
  const first = peers[0];
  if (!first) throw new BgpError('ha.bgp.peers: no peer');
  return {
    asn: bgp.asn,
    routerId: bgp.routerId ?? first.local,
    bfd: bgp.bfd,
    holdTime: bgp.holdTime,
    peers,
    ...(balancers.length ? { balancers } : {}),
  };
}

/** One VIP whose Maglev communities another balancer announces differently from this one. */
export interface MaglevDisagreement {
  vip: string;
  balancer: string;
  ours: MaglevSettings[];
  theirs: MaglevSettings[];
}

const pairsText = (pairs: readonly MaglevSettings[]) =>
  pairs.length ? pairs.map((m) => `size ${m.size} seed ${m.seed}`).join(' and ') : 'no Maglev community (not mh, or IPVS)';

/** The sentence for one disagreement: what each side announces and what to do. */
export function describeDisagreement(d: MaglevDisagreement): string {
  return `balancer ${d.balancer} announces ${d.vip} with ${pairsText(d.theirs)}, this balancer with ${pairsText(d.ours)}: the two would send one flow to different real servers; give every balancer of the VIP the same scheduler, backend and maglev: {size, seed}`;
}

/** Pure: each VIP both sides announce whose (size, seed) pairs differ. */
export function maglevDisagreements(
  ours: ReadonlyMap<string, readonly MaglevSettings[]>,
  theirs: ReadonlyMap<string, ReadonlyMap<string, readonly MaglevSettings[]>>,
): MaglevDisagreement[] {
  const key = (pairs: readonly MaglevSettings[]) =>
    [...pairs]
      .map((m) => `${m.size}/${m.seed}`)
      .sort()
      .join(',');
  const out: MaglevDisagreement[] = [];
  for (const [balancer, routes] of [...theirs].sort(([a], [b]) => a.localeCompare(b)))
    for (const [vip, pairs] of [...ours].sort(([a], [b]) => a.localeCompare(b))) {
      const other = routes.get(vip);
      if (other !== undefined && key(other) !== key(pairs)) out.push({ vip, balancer, ours: [...pairs], theirs: [...other] });
    }
  return out;
}

/**
 * The large communities of each route in `birdc show route … all` text, by the protocol that learned it and
 * its prefix, each as "(a,b,c)", sorted.
 */
export function routeCommunities(text: string): Map<string, Map<string, string[]>> {
  const out = new Map<string, Map<string, string[]>>();
  let prefix = '';
  let current: string[] | undefined;
  for (const line of text.split('\n')) {
    const route = /^(\S*)\s+\w+ \[(\S+) /.exec(line);
    if (route) {
      prefix = route[1] || prefix;
      const proto = route[2] ?? '';
      const routes = out.get(proto) ?? new Map<string, string[]>();
      out.set(proto, routes);
      current = [];
      routes.set(prefix, current);
      continue;
    }
    const lc = /^\s+BGP\.large_community:\s*(.*)$/.exec(line);
    if (lc && current) current.push(...[...(lc[1] ?? '').matchAll(/\([^)]*\)/g)].map((m) => m[0].replace(/\s+/g, '')).sort());
  }
  return out;
}

/** "(65001,1021,1307)" of our AS -> { size: 1021, seed: 1307 } (a community of another AS is not ours to read). */
export function maglevOfCommunities(communities: readonly string[], asn: number): MaglevSettings[] {
  return communities.flatMap((c) => {
    const m = /^\((\d+),(\d+),(\d+)\)$/.exec(c);
    return m && Number(m[1]) === asn ? [{ size: Number(m[2]), seed: Number(m[3]) }] : [];
  });
}

/**
 * The Maglev pairs (size, seed) of the mh services on each VIP, nftables only
 * (IPVS's mh is the kernel's, not slbctl's to announce). A VIP's route carries
 * each pair as the BGP large community (local AS, size, seed): balancers that
 * announce one VIP with different communities would send one flow to different
 * real servers, and the router (and `slbctl lab verify`) can see it.
 */
export function maglevByVip(services: readonly Service[], backend: string): Map<string, MaglevSettings[]> {
  const out = new Map<string, MaglevSettings[]>();
  if (backend !== 'nft') return out;
  for (const s of services) {
    if (s.scheduler !== 'mh') continue;
    const m = s.maglev ?? MAGLEV_DEFAULTS;
    const list = out.get(s.vip) ?? [];
    if (!list.some((x) => x.size === m.size && x.seed === m.seed)) list.push({ size: m.size, seed: m.seed });
    out.set(
      s.vip,
      list.sort((a, b) => a.size - b.size || a.seed - b.seed),
    );
  }
  return out;
}

const quote = (s: string) => `"${s.replace(/[^A-Za-z0-9_.:-]/g, '')}"`;

/** The whole BIRD config for this balancer, announcing `vips` (sorted, so equal sets render equally). */
export function renderBirdConfig(
  c: SpeakerConfig,
  vips: readonly string[],
  maglev: ReadonlyMap<string, readonly MaglevSettings[]> = new Map(),
): string {
  const route = (v: string) => {
    const pairs = maglev.get(v) ?? [];
    if (pairs.length === 0) return `  route ${v}/32 blackhole;`;
    return `  route ${v}/32 blackhole { ${pairs.map((m) => `bgp_large_community.add((${c.asn}, ${m.size}, ${m.seed}));`).join(' ')} };`;
  };
  const keepalive = Math.max(1, Math.floor(c.holdTime / 3));
  const devices = [...new Set(c.peers.map((p) => p.device))];
  const lines = [
    '# Written by slbctl run (src/ha/bird.ts); rewritten on every change of the announced VIPs.',
    `router id ${c.routerId};`,
    'protocol device { }',
    ...(c.bfd
      ? [
          'protocol bfd {',
          ...devices.map(
            (d) =>
              `  interface ${quote(d)} { min rx interval ${BFD_INTERVAL_MS} ms; min tx interval ${BFD_INTERVAL_MS} ms; multiplier ${BFD_MULTIPLIER}; };`,
          ),
          '}',
        ]
      : []),
    '# Each VIP whose service has a real server to send to; never installed in this host (no kernel protocol).',
    'protocol static slbctl_vips {',
    '  ipv4;',
    ...(maglev.size > 0 ? ['  # mh services: each Maglev (size, seed) of the VIP as the large community (our AS, size, seed).'] : []),
    ...[...vips].sort().map(route),
    '}',
    ...c.peers.flatMap((p, i) => [
      `protocol bgp peer${i} {`,
      `  local ${p.local} as ${c.asn};`,
      `  neighbor ${p.address} as ${p.asn};`,
      ...(c.bfd ? ['  bfd on;'] : []),
      `  hold time ${c.holdTime}; keepalive time ${keepalive};`,
      // A peer that went away is tried again within seconds, not BIRD's default minute.
      '  connect retry time 1; error wait time 1, 5;',
      '  ipv4 { import none; export where proto = "slbctl_vips"; };',
      '}',
    ]),
    // The other balancers: their VIP routes are learned to be compared (their Maglev communities), never installed (no
    // kernel protocol) nor passed on (every export takes slbctl_vips only).
    ...(c.balancers ?? []).flatMap((p, i) => [
      `protocol bgp balancer${i} {`,
      `  local ${p.local} as ${c.asn};`,
      `  neighbor ${p.address} as ${c.asn};`,
      // iBGP is multihop unless told: these balancers share a subnet.
      '  direct;',
      `  hold time ${c.holdTime}; keepalive time ${keepalive};`,
      '  connect retry time 1; error wait time 1, 5;',
      '  ipv4 { import where net.len = 32; export where proto = "slbctl_vips"; };',
      '}',
    ]),
  ];
  return `${lines.join('\n')}\n`;
}

/** "172.16.75.84 size 1021 seed 1307", for the log. */
export function describeMaglev(maglev: ReadonlyMap<string, readonly MaglevSettings[]>): string {
  return [...maglev]
    .sort()
    .map(([vip, pairs]) => `${vip} ${pairs.map((m) => `size ${m.size} seed ${m.seed}`).join(' and ')}`)
    .join(', ');
}

/** BIRD missing is a preflight refusal (exit 3), said before anything changes. */
export function requireBird(): { bird: string; birdc: string } {
  const bird = findCommand('bird');
  const birdc = findCommand('birdc');
  if (!bird || !birdc)
    throw new PreflightError(
      'ha.bgp needs BIRD 2 (bird and birdc, Debian package bird2), which is not installed; run scripts/setup.sh or apt-get install bird2',
    );
  return { bird, birdc };
}

/** Where this namespace's BIRD keeps its files: /run/slbctl/bird/net-INODE/. */
export function birdDir(): string {
  return runDir('bird', `net-${currentNetns().inode}`);
}

/** Each BGP session of this namespace's BIRD and its state ("Established", "Active" …), read from its control socket; none when it does not answer. */
export async function bgpSessions(dir = birdDir()): Promise<{ name: string; state: string }[]> {
  const r = await run(['birdc', '-s', path.join(dir, 'bird.ctl'), 'show', 'protocols']);
  if (r.code !== 0) return [];
  return [...r.stdout.matchAll(/^(peer\d+)\s+BGP\s+\S+\s+\S+\s+\S+\s+(\S+)/gm)].map((m) => ({ name: m[1] ?? '', state: m[2] ?? '' }));
}

/** One BIRD instance owned by the controller of this namespace. */
export class BirdSpeaker {
  private announced: string | undefined;
  private communities: string | undefined;
  private child: ChildProcess | undefined;
  private exited: string | undefined;
  private maglev: ReadonlyMap<string, readonly MaglevSettings[]> = new Map();
  private agreementTimer: NodeJS.Timeout | undefined;
  /** ha.bgp.balancers: each VIP the other balancers announce with other Maglev parameters, one sentence each. */
  disagreements: string[] = [];
  /** Called when `disagreements` changes (the controller writes its record, for `slbctl status`). */
  onAgreementChange: (() => void) | undefined;

  private constructor(
    private readonly config: SpeakerConfig,
    private readonly tools: { bird: string; birdc: string },
    private readonly dir: string,
    private readonly log: (level: 'info' | 'warn' | 'error', message: string) => void,
  ) {}

  private get files() {
    return {
      conf: path.join(this.dir, 'bird.conf'),
      socket: path.join(this.dir, 'bird.ctl'),
      pid: path.join(this.dir, 'bird.pid'),
      log: path.join(this.dir, 'bird.log'),
    };
  }

  /** Start BIRD announcing nothing yet; throws (and leaves nothing running) if it does not come up. */
  static async start(
    config: SpeakerConfig,
    log: (level: 'info' | 'warn' | 'error', message: string) => void,
    dir = birdDir(),
  ): Promise<BirdSpeaker> {
    const tools = requireBird();
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    const s = new BirdSpeaker(config, tools, dir, log);
    const f = s.files;
    await endLeftover(f.pid, 'bird');
    const text = renderBirdConfig(config, []);
    fs.writeFileSync(f.conf, text);
    const parsed = await run([tools.bird, '-p', '-c', f.conf]);
    if (parsed.code !== 0) throw new BgpError(`BIRD refused slbctl's config ${f.conf}: ${(parsed.stderr || parsed.stdout).trim()}`);
    const out = fs.openSync(f.log, 'a');
    try {
      // setpriv --pdeathsig: BIRD gets SIGTERM when this process dies, however it dies.
      s.child = spawn('setpriv', ['--pdeathsig', 'TERM', '--', tools.bird, '-f', '-c', f.conf, '-s', f.socket, '-P', f.pid], {
        stdio: ['ignore', out, out],
      });
    } finally {
      fs.closeSync(out);
    }
    s.child.once('exit', (code, signal) => {
      s.exited = String(signal ?? code);
      if (s.announced !== undefined) s.log('error', `BIRD exited (${s.exited}); the VIPs are no longer announced; see ${f.log}`);
    });
    s.child.once('error', (e) => (s.exited = e.message));
    for (let i = 0; ; i++) {
      const r = await run([tools.birdc, '-s', f.socket, 'show', 'status']);
      if (r.code === 0 && /Daemon is up and running/.test(r.stdout)) break;
      if (s.exited !== undefined || i >= 100) {
        await s.stop();
        throw new BgpError(`BIRD did not start (${s.exited ?? 'no answer on its socket in 5 s'}); see ${f.log}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    s.announced = '';
    s.communities = '[]';
    if (config.balancers?.length) {
      s.agreementTimer = setInterval(() => void s.checkAgreement(), AGREEMENT_CHECK_MS);
      s.agreementTimer.unref();
    }
    log(
      'info',
      `BIRD ${config.routerId} AS ${config.asn} peering with ${config.peers.map((p) => `${p.address} AS ${p.asn} on ${p.device}`).join(', ')}${config.bfd ? ' (BFD)' : ''}`,
    );
    return s;
  }

  /** Announce exactly these VIPs, with their Maglev communities (a change rewrites the config and reconfigures BIRD; no change does nothing). */
  async announce(vips: readonly string[], maglev: ReadonlyMap<string, readonly MaglevSettings[]> = new Map()): Promise<void> {
    const key = [...vips].sort().join(',');
    const communities = JSON.stringify([...maglev].sort());
    if ((key === this.announced && communities === this.communities) || this.exited !== undefined) return;
    const f = this.files;
    const tmp = `${f.conf}.tmp`;
    fs.writeFileSync(tmp, renderBirdConfig(this.config, vips, maglev));
    fs.renameSync(tmp, f.conf);
    const r = await run([this.tools.birdc, '-s', f.socket, 'configure']);
    if (r.code !== 0 || !/Reconfigur/.test(r.stdout)) {
      this.log('error', `BIRD did not take the new VIP list: ${(r.stdout + r.stderr).trim()}`);
      return;
    }
    const before = new Set(this.announced ? this.announced.split(',') : []);
    const after = new Set(key ? key.split(',') : []);
    const added = [...after].filter((v) => !before.has(v));
    const removed = [...before].filter((v) => !after.has(v));
    const communitiesChanged = this.communities !== undefined && communities !== this.communities;
    this.announced = key;
    this.communities = communities;
    this.maglev = maglev;
    if (communitiesChanged) this.log('info', `Maglev communities now ${describeMaglev(maglev) || 'none'}`);
    this.log(
      'info',
      [added.length ? `announcing ${added.join(', ')}` : '', removed.length ? `withdrawing ${removed.join(', ')}` : '']
        .filter(Boolean)
        .join('; ') || 'announced VIPs unchanged',
    );
  }

  /** The other balancers' VIP routes, as (size, seed) pairs by balancer and VIP; empty when none is configured or BIRD does not answer. */
  async balancerRoutes(): Promise<Map<string, Map<string, MaglevSettings[]>>> {
    const out = new Map<string, Map<string, MaglevSettings[]>>();
    const balancers = this.config.balancers ?? [];
    if (balancers.length === 0 || this.exited !== undefined) return out;
    const r = await run([this.tools.birdc, '-s', this.files.socket, 'show', 'route', 'all']);
    if (r.code !== 0) return out;
    const byProto = routeCommunities(r.stdout);
    balancers.forEach((b, i) => {
      const routes = byProto.get(`balancer${i}`);
      if (!routes) return;
      const vips = new Map<string, MaglevSettings[]>();
      for (const [prefix, communities] of routes)
        if (prefix.endsWith('/32')) vips.set(prefix.slice(0, -3), maglevOfCommunities(communities, this.config.asn));
      out.set(b.address, vips);
    });
    return out;
  }

  /** Compare the other balancers' Maglev communities with ours; say each new disagreement once, and when all agree again. */
  async checkAgreement(): Promise<void> {
    if (this.announced === undefined) return;
    const ours = new Map(this.vips.map((v) => [v, this.maglev.get(v) ?? []]));
    const now = maglevDisagreements(ours, await this.balancerRoutes()).map(describeDisagreement);
    if (this.announced === undefined || now.join('\n') === this.disagreements.join('\n')) return;
    for (const line of now) if (!this.disagreements.includes(line)) this.log('warn', line);
    if (now.length === 0) this.log('info', 'the other balancers announce every shared VIP with the same Maglev parameters again');
    this.disagreements = now;
    this.onAgreementChange?.();
  }

  get peers(): { address: string; asn: number }[] {
    return this.config.peers.map((p) => ({ address: p.address, asn: p.asn }));
  }

  /** What is announced now (sorted). */
  get vips(): string[] {
    return this.announced ? this.announced.split(',') : [];
  }

  /** End BIRD: its sessions close with a Cease, so the routers withdraw every VIP at once. */
  async stop(): Promise<void> {
    const child = this.child;
    this.announced = undefined;
    if (this.agreementTimer) clearInterval(this.agreementTimer);
    if (child && this.exited === undefined) {
      const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 3000);
      await gone;
      clearTimeout(t);
    }
    for (const f of [this.files.socket, this.files.pid]) fs.rmSync(f, { force: true });
  }
}
