// What the data-path bench's two places share (dataplane.ts, the netns lab;
// dataplane-vagrant.ts, the Vagrant lab's VMs): the cases, the stages they
// are measured in, and the Bed interface through which the measurement code
// runs commands on the lab's hosts.
import { LabModeOptions } from '../../src/lab/lb-config';
import { LabHostName, REFERENCE_TOPOLOGY, addressOf } from '../../src/lab/topology';
import { Mode } from '../../src/model/types';
import { RunResult } from '../../src/util/exec';
import { Role } from './dataplane-report';
import { HAPROXY_TCP_ADDRESS, TcpListener } from './haproxy-tcp';
import { IPERF_PORT } from './iperf';

export const CONNECTIONS = 32;

export interface Case {
  label: string;
  role: Role;
  /** Where the client connects: RS1, the VIP, or HAProxy's address on the balancer. */
  host: string;
  /** Also one iperf3 stream (L4 paths only: an http service cannot carry it). */
  iperf: boolean;
}

/** One balancer config, applied once per round, and what is measured under it. */
export interface Stage {
  mode: Mode;
  options: LabModeOptions;
  /** HAProxy in mode tcp runs on the balancer during this stage. */
  haproxyTcp: boolean;
  cases: Case[];
}

/** Where the bench runs: the netns lab on this host, or the Vagrant lab's VMs (dataplane-vagrant.ts). */
export interface Bed {
  stages: readonly Stage[];
  /** The report's lines on where it ran and the tools' versions. */
  facts(): Promise<string[]>;
  /** argv on a lab host (its namespace, or its VM); the caller checks the exit. */
  run(host: LabHostName, argv: string[], timeoutMs?: number): Promise<RunResult>;
  /** Busy CPU ticks so far of what the CPU column covers, and what that is (for the note under the table). */
  busyTicks(): Promise<number>;
  cpuCovers: string;
  /** The lab, nginx and iperf3 servers on the RSs, the tuning for many connections. */
  setUp(): Promise<void>;
  tearDown(): Promise<void>;
  apply(stage: Stage): Promise<void>;
  startHaproxyTcp(listeners: readonly TcpListener[]): Promise<void>;
  stopHaproxyTcp(): Promise<void>;
}

export const HAPROXY_LISTENERS: readonly TcpListener[] = [
  { port: REFERENCE_TOPOLOGY.servicePort, balance: 'roundrobin' },
  { port: IPERF_PORT, balance: 'source' },
];

export const DIRECT: Case = { label: 'direct client -> RS1', role: 'direct', host: addressOf(REFERENCE_TOPOLOGY, 'rs1'), iperf: true };
export const HAPROXY_TCP: Case = { label: 'HAProxy mode tcp (full proxy)', role: 'haproxy-tcp', host: HAPROXY_TCP_ADDRESS, iperf: true };
