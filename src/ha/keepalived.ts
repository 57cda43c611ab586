// Active/standby: slbctl drives keepalived in VRRP-only mode (no LVS section:
// the services are slbctl's, on both balancers; keepalived only decides which
// balancer holds the VIPs). One instance per network namespace, the
// controller's child with a parent-death signal: when `slbctl run` ends in
// any way, keepalived gets SIGTERM, sends an advert with priority 0 and drops
// the VIPs, so the standby takes over at once instead of after 3 adverts.
//
// Both balancers start as BACKUP with nopreempt: the higher priority wins the
// first election, and afterwards a balancer that comes back does not take the
// VIPs back from a healthy master. Taking them back would be a second
// failover for no gain, and every failover cuts the connections whose state
// the standby did not have yet (conntrackd syncs with a delay).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ChildProcess } from 'node:child_process';
import { Config, VrrpSettings } from '../model/types';
import { findCommand, run } from '../util/exec';
import { PreflightError } from '../util/errors';
import { runDir } from '../util/rundir';
import { currentNetns } from '../records/netns';
import { HaEngineError, endChild, endLeftover, sleep, spawnTied } from './child';

/** The one VRRP instance slbctl writes; its name is in every state line keepalived logs. */
export const INSTANCE = 'slbctl';

/** The track file keepalived reads: 0 while a service can serve, 1 when none can (the instance then goes to FAULT). */
export const TRACK = 'slbctl_health';

export type VrrpState = 'MASTER' | 'BACKUP' | 'FAULT';

/** A floating address and the interface it goes to on the master. */
export interface FloatingAddress {
  /** address/prefix */
  address: string;
  device: string;
}

/** The VIPs of the services (each on its service's interface, else the VRRP one) and the extra addresses, once each. */
export function floatingAddresses(config: Config): FloatingAddress[] {
  const vrrp = config.ha?.vrrp;
  if (!vrrp) return [];
  const all = [
    ...config.services.map((s) => ({ address: `${s.vip}/32`, device: s.interface ?? vrrp.interface })),
    ...vrrp.addresses.map((address) => ({ address, device: vrrp.interface })),
  ];
  return [...new Map(all.map((a) => [a.address, a])).values()];
}

/** keepalived splits a notify line on blanks itself (no shell): a path with blanks or quotes cannot be one. */
function notifyCommand(script: string, state: string): string {
  if (!/^[A-Za-z0-9_./+-]+$/.test(script))
    throw new HaEngineError(`keepalived notify script path ${script} has characters keepalived cannot take`);
  return `"${script} ${state}"`;
}

/** keepalived reads a quoted path itself: one with quotes or blanks cannot be written in its config. */
function quotedPath(p: string): string {
  if (!/^[A-Za-z0-9_./+-]+$/.test(p)) throw new HaEngineError(`keepalived file path ${p} has characters keepalived cannot take`);
  return `"${p}"`;
}

/**
 * The whole keepalived config for this balancer; `notify`: the script run on each transition (connection
 * sync); `track`: the file slbctl writes its services' health to (weight 0: non-zero means FAULT).
 */
export function renderKeepalivedConfig(vrrp: VrrpSettings, addresses: readonly FloatingAddress[], notify?: string, track?: string): string {
  const lines = [
    '# Written by slbctl run (src/ha/keepalived.ts); rewritten when the VIPs or ha.vrrp change.',
    ...(track ? [`track_file ${TRACK} {`, `  file ${quotedPath(track)}`, '  weight 0', '}'] : []),
    'global_defs {',
    `  router_id ${INSTANCE}`,
    // VRRPv3: advert intervals below a second (in centiseconds); v2 counts whole seconds.
    '  vrrp_version 3',
    // Scripts run as root, and only from paths no other user can write (keepalived checks).
    '  script_user root',
    '  enable_script_security',
    '}',
    `vrrp_instance ${INSTANCE} {`,
    '  state BACKUP',
    '  nopreempt',
    `  interface ${vrrp.interface}`,
    `  virtual_router_id ${vrrp.virtualRouterId}`,
    `  priority ${vrrp.priority}`,
    `  advert_int ${vrrp.advertIntervalMs / 1000}`,
    ...(vrrp.peers.length ? ['  unicast_peer {', ...vrrp.peers.map((p) => `    ${p}`), '  }'] : []),
    '  virtual_ipaddress {',
    ...addresses.map((a) => `    ${a.address} dev ${a.device}`),
    '  }',
    ...(track ? ['  track_file {', `    ${TRACK}`, '  }'] : []),
    ...(notify
      ? [
          `  notify_master ${notifyCommand(notify, 'master')}`,
          `  notify_backup ${notifyCommand(notify, 'backup')}`,
          `  notify_fault ${notifyCommand(notify, 'fault')}`,
        ]
      : []),
    '}',
  ];
  return `${lines.join('\n')}\n`;
}

/** keepalived's console log line for a transition of slbctl's instance, e.g. "(slbctl) Entering MASTER STATE". */
export function parseTransition(line: string): VrrpState | undefined {
  const m = /\((\S+)\) Entering (MASTER|BACKUP|FAULT) STATE/.exec(line);
  return m && m[1] === INSTANCE ? (m[2] as VrrpState) : undefined;
}

export function requireKeepalived(): string {
  const bin = findCommand('keepalived');
  if (!bin)
    throw new PreflightError('ha.vrrp needs keepalived, which is not installed; run scripts/setup.sh or apt-get install keepalived');
  return bin;
}

/** Where this namespace's keepalived keeps its files: /run/slbctl/keepalived/net-INODE/. */
export function keepalivedDir(): string {
  return runDir('keepalived', `net-${currentNetns().inode}`);
}

/** One keepalived owned by the controller of this namespace; `onState` hears every transition of the instance. */
export class Keepalived {
  private child: ChildProcess | undefined;
  private exited: string | undefined;
  private stopping = false;
  private offset = 0;
  private partial = '';
  private tail: NodeJS.Timeout | undefined;
  private current: VrrpState | undefined;
  private rendered = '';
  private serving: boolean | undefined;

  private constructor(
    private readonly bin: string,
    private readonly dir: string,
    private readonly notify: string | undefined,
    private readonly log: (level: 'info' | 'warn' | 'error', message: string, state?: VrrpState) => void,
  ) {}

  get files() {
    return {
      conf: path.join(this.dir, 'keepalived.conf'),
      pid: path.join(this.dir, 'keepalived.pid'),
      vrrpPid: path.join(this.dir, 'vrrp.pid'),
      log: path.join(this.dir, 'keepalived.log'),
      track: path.join(this.dir, 'health'),
    };
  }

  /**
   * Whether this balancer can serve (one of its services has a real server with a weight). keepalived
   * watches the file: when nothing can be served the instance goes to FAULT and drops the VIPs, so the
   * other balancer takes them, as a BGP speaker withdraws its routes; back to BACKUP when a server is.
   */
  track(serving: boolean): void {
    if (serving === this.serving) return;
    const first = this.serving === undefined;
    this.serving = serving;
    const f = this.files.track;
    // Written then renamed, so keepalived never reads a half-written value.
    fs.writeFileSync(`${f}.tmp`, serving ? '0\n' : '1\n');
    fs.renameSync(`${f}.tmp`, f);
    if (!first || !serving)
      this.log(
        serving ? 'info' : 'warn',
        serving
          ? 'a service has a real server again: this balancer may hold the VIPs'
          : 'no service has a real server with a weight: VRRP FAULT, the VIPs go to the other balancer',
      );
  }

  /** The instance's state as keepalived last logged it (undefined until its first transition). */
  get state(): VrrpState | undefined {
    return this.current;
  }

  /** Start keepalived; throws (and leaves nothing running) if it refuses the config or exits at once. */
  static async start(
    vrrp: VrrpSettings,
    addresses: readonly FloatingAddress[],
    o: { notify?: string; dir?: string; serving?: boolean },
    log: (level: 'info' | 'warn' | 'error', message: string, state?: VrrpState) => void,
  ): Promise<Keepalived> {
    const bin = requireKeepalived();
    const dir = o.dir ?? keepalivedDir();
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    const k = new Keepalived(bin, dir, o.notify, log);
    const f = k.files;
    await endLeftover(f.pid, 'keepalived');
    k.track(o.serving ?? true);
    k.rendered = renderKeepalivedConfig(vrrp, addresses, o.notify, f.track);
    fs.writeFileSync(f.conf, k.rendered);
    const checked = await run([bin, '--config-test', '--use-file', f.conf]);
    if (checked.code !== 0)
      throw new HaEngineError(
        `keepalived refused slbctl's config ${f.conf}: ${(checked.stderr || checked.stdout).trim().split('\n').pop() ?? ''}`,
      );
    fs.writeFileSync(f.log, '');
    // --log-console --no-syslog: the state lines go to keepalived.log, which is read back for the transitions.
    k.child = spawnTied(
      [bin, '--vrrp', '--dont-fork', '--log-console', '--no-syslog', '--use-file', f.conf, '--pid', f.pid, '--vrrp_pid', f.vrrpPid],
      f.log,
    );
    k.child.once('exit', (code, signal) => {
      k.exited = String(signal ?? code);
      k.readLog();
      if (!k.stopping) k.log('error', `keepalived exited (${k.exited}); this balancer no longer takes part in VRRP; see ${f.log}`);
    });
    k.child.once('error', (e) => (k.exited = e.message));
    k.tail = setInterval(() => k.readLog(), 100);
    // Up once its VRRP process wrote its pid; a config keepalived cannot serve (e.g. an address it cannot add) ends it first.
    for (let i = 0; !fs.existsSync(f.vrrpPid); i++) {
      if (k.exited !== undefined || i >= 100) {
        await k.stop();
        throw new HaEngineError(`keepalived did not start (${k.exited ?? 'no VRRP process in 5 s'}); see ${f.log}`);
      }
      await sleep(50);
    }
    log(
      'info',
      `keepalived: VRRP group ${vrrp.virtualRouterId} on ${vrrp.interface}, priority ${vrrp.priority}, adverts every ${vrrp.advertIntervalMs} ms${
        vrrp.peers.length ? ` to ${vrrp.peers.join(', ')}` : ' (multicast)'
      }, floating ${addresses.map((a) => a.address).join(', ') || 'nothing'}`,
    );
    return k;
  }

  /** New VIPs or settings: rewrite the config and have keepalived reload it (SIGHUP keeps its state). */
  async update(vrrp: VrrpSettings, addresses: readonly FloatingAddress[]): Promise<void> {
    const text = renderKeepalivedConfig(vrrp, addresses, this.notify, this.files.track);
    if (text === this.rendered || !this.child || this.exited !== undefined) return;
    const f = this.files;
    fs.writeFileSync(`${f.conf}.tmp`, text);
    const checked = await run([this.bin, '--config-test', '--use-file', `${f.conf}.tmp`]);
    if (checked.code !== 0) {
      this.log('error', `keepalived refused the new config, it keeps the old one: ${(checked.stderr || checked.stdout).trim()}`);
      return;
    }
    fs.renameSync(`${f.conf}.tmp`, f.conf);
    this.rendered = text;
    this.child.kill('SIGHUP');
    this.log('info', `keepalived reloaded: floating ${addresses.map((a) => a.address).join(', ') || 'nothing'}`);
  }

  /** New lines of keepalived's log: each transition of slbctl's instance is reported once. */
  private readLog(): void {
    let text: string;
    try {
      const fd = fs.openSync(this.files.log, 'r');
      try {
        const buf = Buffer.alloc(Math.max(0, fs.fstatSync(fd).size - this.offset));
        const n = fs.readSync(fd, buf, 0, buf.length, this.offset);
        this.offset += n;
        text = this.partial + buf.subarray(0, n).toString();
      } finally {
        fs.closeSync(fd);
      }
    } catch {
      return;
    }
    const lines = text.split('\n');
    this.partial = lines.pop() ?? '';
    for (const line of lines) {
      const state = parseTransition(line);
      if (!state || state === this.current) continue;
      const from = this.current;
      this.current = state;
      this.log(
        state === 'FAULT' ? 'warn' : 'info',
        `${from ?? 'start'} -> ${state}${state === 'MASTER' ? ': this balancer holds the VIPs' : ''}`,
        state,
      );
    }
  }

  /** End keepalived: it sends priority 0 and drops the VIPs, so the standby takes over without waiting. */
  async stop(): Promise<void> {
    this.stopping = true;
    if (this.child) await endChild(this.child, 5000);
    if (this.tail) clearInterval(this.tail);
    this.tail = undefined;
    for (const f of [this.files.pid, this.files.vrrpPid, this.files.track]) fs.rmSync(f, { force: true });
  }
}
