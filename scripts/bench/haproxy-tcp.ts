// The peer a user would pick instead of slbctl's L4 path: Debian's HAProxy in
// `mode tcp` in the lab's balancer namespace, with a config of the bench's
// own. It listens on the balancer's own address (not the VIP, which slbctl's
// nftables rules own) on the same ports as the lab's services, and connects
// to the RSs from that address: a full proxy, the L4 proxy counterpart of
// full NAT.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { nsName } from '../../src/lab/netns';
import { REAL_SERVERS, REFERENCE_TOPOLOGY, addressOf } from '../../src/lab/topology';
import { runChecked } from '../../src/util/exec';
import { stopDaemon, waitForPidFile } from './daemons';

/** A port HAProxy forwards, and how it picks the RS. */
export interface TcpListener {
  port: number;
  /** roundrobin like the lab's rr service; source keeps a client on one RS (iperf3's control and data connections). */
  balance: 'roundrobin' | 'source';
}

/** The address clients connect to: the balancer's own. */
export const HAPROXY_TCP_ADDRESS = addressOf(REFERENCE_TOPOLOGY, 'lb');

const files = (dir: string) => ({ config: path.join(dir, 'haproxy-tcp.cfg'), pid: path.join(dir, 'haproxy-tcp.pid') });

export function haproxyTcpConfig(listeners: readonly TcpListener[], pidFile: string): string {
  const lines = [
    '# HAProxy in mode tcp for the data-path bench (scripts/bench/dataplane.ts)',
    'global',
    '    daemon',
    `    pidfile ${pidFile}`,
    '    maxconn 4096',
    '',
    'defaults',
    '    mode tcp',
    '    timeout connect 5s',
    '    timeout client 60s',
    '    timeout server 60s',
  ];
  for (const l of listeners) {
    lines.push('', `listen tcp-${l.port}`, `    bind ${HAPROXY_TCP_ADDRESS}:${l.port}`, `    balance ${l.balance}`);
    for (const h of REAL_SERVERS) lines.push(`    server ${h} ${addressOf(REFERENCE_TOPOLOGY, h)}:${l.port}`);
  }
  return `${lines.join('\n')}\n`;
}

/** Checked with `haproxy -c`, then started (daemonised) in the balancer namespace. */
export async function startHaproxyTcp(lab: string, dir: string, listeners: readonly TcpListener[]): Promise<void> {
  const f = files(dir);
  fs.writeFileSync(f.config, haproxyTcpConfig(listeners, f.pid));
  await runChecked('haproxy -c (mode tcp)', ['haproxy', '-c', '-q', '-f', f.config]);
  await runChecked(`haproxy (mode tcp) in ${nsName(lab, 'lb')}`, ['haproxy', '-f', f.config], { netns: nsName(lab, 'lb') });
  await waitForPidFile(f.pid, 'haproxy');
}

export async function stopHaproxyTcp(dir: string): Promise<void> {
  await stopDaemon(files(dir).pid, 'haproxy');
}
