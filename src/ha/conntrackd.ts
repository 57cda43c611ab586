// Connection state for the standby: slbctl drives conntrackd (FTFW: reliable
// sync over UDP unicast to the other balancer). Every connection the master's
// conntrack table holds is copied into the standby's conntrackd (its
// "external cache"); on becoming master, keepalived's notify script commits
// that cache to the kernel, so NATed connections go on through the new master.
//
// One instance per network namespace: conntrackd's defaults (lock file
// /var/lock/conntrack.lock, control socket /var/run/conntrackd.ctl) are one
// per host, so every path is set under /run/slbctl/conntrackd/net-INODE/.
// Run in the foreground ("console mode", no -d) as the controller's child
// with a parent-death signal, like BIRD and keepalived.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ChildProcess } from 'node:child_process';
import { ConntrackdSyncSettings } from '../model/types';
import { findCommand, run } from '../util/exec';
import { PreflightError } from '../util/errors';
import { runDir } from '../util/rundir';
import { currentNetns } from '../records/netns';
import { NetInterface } from '../kernel/rtnl/rtnl';
import { interfaceForAddress } from '../engine/interfaces';
import { HaEngineError, endChild, sleep, spawnTied } from './child';

/** conntrackd's customary port for its sync messages. */
export const SYNC_PORT = 3780;

export interface ConntrackdFiles {
  conf: string;
  lock: string;
  socket: string;
  log: string;
}

export function conntrackdFiles(dir: string): ConntrackdFiles {
  return {
    conf: path.join(dir, 'conntrackd.conf'),
    lock: path.join(dir, 'conntrackd.lock'),
    socket: path.join(dir, 'conntrackd.ctl'),
    log: path.join(dir, 'conntrackd.log'),
  };
}

/** This balancer's address towards the peer: on the sync interface, in a subnet that holds the peer. */
export function localSyncAddress(sync: ConntrackdSyncSettings, interfaces: NetInterface[]): string {
  const iface = interfaces.find((i) => i.name === sync.interface);
  if (!iface)
    throw new HaEngineError(
      `ha.sync.interface: "${sync.interface}" does not exist on this host (it has ${interfaces.map((i) => i.name).join(', ')})`,
    );
  const found = interfaceForAddress([iface], sync.peer);
  if (!found)
    throw new HaEngineError(
      `ha.sync.peer: ${sync.peer} is on no subnet of ${sync.interface} (it has ${iface.addresses.map((a) => `${a.address}/${a.prefixLength}`).join(', ') || 'no address'}); sync with the other balancer over a link they share`,
    );
  return found.local;
}

/** The whole conntrackd.conf: FTFW over UDP unicast to the peer, every path in `files`. */
export function renderConntrackdConfig(sync: ConntrackdSyncSettings, local: string, files: ConntrackdFiles): string {
  const lines = [
    '# Written by slbctl run (src/ha/conntrackd.ts).',
    'Sync {',
    '  Mode FTFW {',
    '  }',
    '  UDP {',
    `    IPv4_address ${local}`,
    `    IPv4_Destination_Address ${sync.peer}`,
    `    Port ${SYNC_PORT}`,
    `    Interface ${sync.interface}`,
    '    SndSocketBuffer 1249280',
    '    RcvSocketBuffer 1249280',
    '    Checksum on',
    '  }',
    '}',
    'General {',
    // Started by slbctl, not by systemd: no sd_notify.
    '  Systemd off',
    '  HashSize 32768',
    '  HashLimit 131072',
    `  LogFile ${files.log}`,
    '  Syslog off',
    `  LockFile ${files.lock}`,
    '  UNIX {',
    `    Path ${files.socket}`,
    '  }',
    '  NetlinkBufferSize 2097152',
    '  NetlinkBufferSizeMaxGrowth 8388608',
    '  Filter From Userspace {',
    '    Protocol Accept {',
    '      TCP',
    '      UDP',
    '      SCTP',
    '    }',
    // conntrackd matches a connection's original source and reply source: this leaves out the balancers'
    // own connections (health checks, the sync messages themselves), not the clients' through the VIPs.
    '    Address Ignore {',
    '      IPv4_address 127.0.0.1',
    `      IPv4_address ${local}`,
    `      IPv4_address ${sync.peer}`,
    '    }',
    '  }',
    '}',
  ];
  return `${lines.join('\n')}\n`;
}

/** The script keepalived runs on each transition ($1: master, backup or fault): the primary-backup steps of conntrackd. */
export function renderNotifyScript(conntrackd: string, files: ConntrackdFiles, logFile: string): string {
  const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
  return [
    '#!/bin/sh',
    '# Written by slbctl run (src/ha/conntrackd.ts); keepalived runs it on each VRRP transition.',
    `exec >>${q(logFile)} 2>&1`,
    `ct() { ${q(conntrackd)} -C ${q(files.conf)} "$@" || echo "$(date '+%F %T') conntrackd $* failed"; }`,
    'echo "$(date \'+%F %T\') $1"',
    'case "$1" in',
    // Master: the standby's copy into the kernel, then start afresh from the kernel's table and send it all.
    '  master) ct -c; ct -f; ct -R; ct -B ;;',
    // Backup: let the kernel's entries age out (they are the new master's now) and ask the master for its state.
    '  backup) ct -t; ct -n ;;',
    '  fault) ct -t ;;',
    'esac',
    '',
  ].join('\n');
}

export function requireConntrackd(): string {
  const bin = findCommand('conntrackd');
  if (!bin)
    throw new PreflightError('ha.sync needs conntrackd, which is not installed; run scripts/setup.sh or apt-get install conntrackd');
  return bin;
}

export function conntrackdDir(): string {
  return runDir('conntrackd', `net-${currentNetns().inode}`);
}

/** One conntrackd owned by the controller of this namespace. */
export class Conntrackd {
  private child: ChildProcess | undefined;
  private exited: string | undefined;
  private stopping = false;

  private constructor(
    readonly bin: string,
    readonly files: ConntrackdFiles,
    private readonly log: (level: 'info' | 'warn' | 'error', message: string) => void,
  ) {}

  /** Start conntrackd; throws (and leaves nothing running) if it does not answer on its socket. */
  static async start(
    sync: ConntrackdSyncSettings,
    local: string,
    log: (level: 'info' | 'warn' | 'error', message: string) => void,
    dir = conntrackdDir(),
  ): Promise<Conntrackd> {
    const bin = requireConntrackd();
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    const c = new Conntrackd(bin, conntrackdFiles(dir), log);
    const f = c.files;
    fs.writeFileSync(f.conf, renderConntrackdConfig(sync, local, f));
    // One left by a controller killed before its child saw it answers on the socket: end it. A lock file
    // with nobody behind it (conntrackd was killed) would make the new one refuse to start.
    if (fs.existsSync(f.socket) && (await c.ctl('-s')).code === 0) {
      await c.ctl('-k');
      for (let i = 0; i < 100 && fs.existsSync(f.lock); i++) await sleep(20);
    }
    for (const x of [f.lock, f.socket]) fs.rmSync(x, { force: true });
    c.child = spawnTied([bin, '-C', f.conf], `${f.log}.out`);
    c.child.once('exit', (code, signal) => {
      c.exited = String(signal ?? code);
      if (!c.stopping) c.log('error', `conntrackd exited (${c.exited}); connection state is no longer copied; see ${f.log}`);
    });
    c.child.once('error', (e) => (c.exited = e.message));
    for (let i = 0; ; i++) {
      if (fs.existsSync(f.socket) && (await c.ctl('-s')).code === 0) break;
      if (c.exited !== undefined || i >= 100) {
        await c.stop();
        throw new HaEngineError(`conntrackd did not start (${c.exited ?? 'no answer on its socket in 5 s'}); see ${f.log}`);
      }
      await sleep(50);
    }
    log('info', `conntrackd: FTFW sync from ${local} to ${sync.peer} port ${SYNC_PORT} on ${sync.interface}`);
    return c;
  }

  /** conntrackd's client mode against this instance (e.g. -s, -e, -i). */
  ctl(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    return run([this.bin, '-C', this.files.conf, ...args]);
  }

  async stop(): Promise<void> {
    this.stopping = true;
    if (this.child) await endChild(this.child, 3000);
    for (const x of [this.files.lock, this.files.socket]) fs.rmSync(x, { force: true });
  }
}
