// iperf3 for the data-path bench: a server in each RS namespace (listening on
// every address, so DSR's VIP on lo is served too), the client in the
// client namespace, one TCP stream, its JSON report.
import * as path from 'node:path';
import { nsName } from '../../src/lab/netns';
import { REAL_SERVERS } from '../../src/lab/topology';
import { runChecked } from '../../src/util/exec';
import { stopDaemon, waitForPidFile } from './daemons';

/** iperf3's own port, served by the lab's extra tcp service (LabModeOptions.extraTcpPorts). */
export const IPERF_PORT = 5201;

const pidFile = (dir: string, h: string) => path.join(dir, `${h}-iperf3.pid`);

/** An iperf3 server on IPERF_PORT, daemonised, with its pid and log files (the netns lab's and the Vagrant VMs'). */
export const iperfServerArgv = (pid: string, log: string): string[] => [
  'iperf3',
  '-s',
  '-4',
  '-p',
  String(IPERF_PORT),
  '-D',
  '-I',
  pid,
  '--logfile',
  log,
];

export async function startIperfServers(lab: string, dir: string): Promise<void> {
  for (const h of REAL_SERVERS) {
    const argv = iperfServerArgv(pidFile(dir, h), path.join(dir, `${h}-iperf3.log`));
    await runChecked(`iperf3 server in ${nsName(lab, h)}`, argv, { netns: nsName(lab, h) });
    await waitForPidFile(pidFile(dir, h), 'iperf3');
  }
}

export async function stopIperfServers(dir: string): Promise<void> {
  for (const h of REAL_SERVERS) await stopDaemon(pidFile(dir, h), 'iperf3');
}

export interface IperfFigures {
  /** Payload bytes the server received. */
  bytes: number;
  bitsPerSecond: number;
  retransmits: number;
}

/** The receiver's figures of `iperf3 -J`. */
export function parseIperf(json: string): IperfFigures {
  const report = JSON.parse(json) as {
    error?: string;
    end?: { sum_received?: { bytes?: number; bits_per_second?: number }; sum_sent?: { retransmits?: number } };
  };
  if (report.error) throw new Error(`iperf3: ${report.error}`);
  const received = report.end?.sum_received;
  if (typeof received?.bytes !== 'number' || typeof received.bits_per_second !== 'number')
    throw new Error('iperf3: no receiver figures in its report');
  return { bytes: received.bytes, bitsPerSecond: received.bits_per_second, retransmits: report.end?.sum_sent?.retransmits ?? 0 };
}

/** One TCP stream for `seconds`, its report as JSON. */
export function iperfArgv(host: string, port: number, seconds: number): string[] {
  return ['iperf3', '-c', host, '-p', String(port), '-4', '-t', String(seconds), '-J'];
}

/** One TCP stream from the client namespace for `seconds`. */
export async function runIperf(lab: string, host: string, port: number, seconds: number): Promise<IperfFigures> {
  const argv = iperfArgv(host, port, seconds);
  const r = await runChecked(`iperf3 to ${host}:${port}`, argv, { netns: nsName(lab, 'client'), timeoutMs: (seconds + 30) * 1000 });
  return parseIperf(r.stdout);
}
