// `lab verify`, one flow for every lab provider: capture on the client, the
// balancer and the real servers, make K HTTP requests from the client, write
// one pcap per host into a checked directory, judge the mode's packet facts.
// What differs per provider (how to capture, how to run curl on the client)
// is its CaptureDriver.
import * as path from 'node:path';
import { HostCapture } from '../capture/types';
import { Encapsulation, Mode } from '../model/types';
import { LabHostName, LabTopology, REAL_SERVERS } from '../lab/topology';
import { LabError } from '../lab/errors';
import { RequestOutcome, ServiceTypeExpectation, Verdict } from './facts';
import { clientPort, judgeLab, labAddresses, prepareOutputDirectory } from './judge';
import { buildLadder, Ladder } from '../report/ladder';
import { LAB_PROTOCOLS, LabProtocol } from '../lab/lb-config';

export interface VerifyReport {
  verdict: Verdict;
  requests: RequestOutcome[];
  pcaps: Record<string, string>;
  /** The client's first connection drawn packet by packet (the HTML report's picture; plain data for other tools). */
  ladder: Ladder;
}

export const CAPTURED_HOSTS: LabHostName[] = ['client', 'lb', ...REAL_SERVERS];

/** What the captures filter: the service's packets (on the client's port and the RSs'), and IP-in-IP for tunnelled DSR. */
export function captureFilter(port: number, rsPort = port): string {
  const ports = port === rsPort ? `port ${port}` : `port ${port} or tcp port ${rsPort}`;
  return `tcp ${ports} or udp port ${port} or ip proto 4`;
}

/** What `lab verify --protocol/--cache` states explicitly; the rest comes from what is applied. */
export interface VerifyExpectation {
  protocol?: LabProtocol;
  cache?: boolean;
}

/** The service type judged: as stated, else as applied (tcp for a lab applied before L7 existed). */
export function serviceTypeOf(
  expect: VerifyExpectation | undefined,
  applied: { protocol?: string; cache?: boolean } | undefined,
): ServiceTypeExpectation {
  const appliedProtocol = (LAB_PROTOCOLS as readonly string[]).includes(applied?.protocol ?? '')
    ? (applied?.protocol as LabProtocol)
    : 'tcp';
  const protocol = expect?.protocol ?? appliedProtocol;
  return { protocol, cache: expect?.cache ?? (protocol !== 'tcp' && applied?.cache === true) };
}

export interface CaptureDriver {
  /** Start capturing on these hosts with this filter; resolves once every capture listens. */
  start(hosts: readonly LabHostName[], filter: string): Promise<void>;
  /** K requests from the client to the URL, one after the other. */
  requests(k: number, url: string): Promise<RequestOutcome[]>;
  /** Stop every capture (also after a failure) and let the last packets land. */
  stop(): Promise<void>;
  /** The captures, each written as a pcap into `outDir` (never through a link), decoded. */
  collect(outDir: string): Promise<HostCapture[]>;
}

export interface VerifyRequest {
  lab: string;
  /** The mode asked for (--mode), else the one applied. */
  mode: Mode | undefined;
  applied: { mode?: string; encapsulation?: string; protocol?: string; cache?: boolean } | undefined;
  /** --protocol / --cache: the service type to judge against (default: as applied). */
  expect?: VerifyExpectation;
  requests: number;
  /** --out, else ./slbctl-pcaps/LAB/MODE. */
  out: string | undefined;
  topology: LabTopology;
}

export async function verifyWith(driver: CaptureDriver, r: VerifyRequest): Promise<VerifyReport> {
  const judged = r.mode ?? (r.applied?.mode as Mode | undefined);
  if (!judged) throw new LabError(`no mode is applied in lab "${r.lab}"; run \`slbctl lab mode MODE --name ${r.lab}\` or pass --mode`);
  const encapsulation: Encapsulation = r.applied?.encapsulation === 'ipip' && judged === 'dsr' ? 'ipip' : 'none';
  const outDir = path.resolve(r.out ?? path.join('slbctl-pcaps', r.lab, judged));
  // Checked first: a directory that cannot be written safely fails before a minute of capturing.
  prepareOutputDirectory(outDir);
  const serviceType = serviceTypeOf(r.expect, r.applied);
  const port = clientPort(r.topology, serviceType.protocol);
  const base = `${serviceType.protocol === 'https' ? 'https' : 'http'}://${r.topology.vip}:${port}`;
  let outcomes: RequestOutcome[] = [];
  try {
    await driver.start(CAPTURED_HOSTS, captureFilter(port, r.topology.servicePort));
    outcomes = await driver.requests(r.requests, `${base}/`);
    if (serviceType.cache) {
      // One static object, new for this run, asked three times: a cache serves the second and third itself.
      serviceType.staticPath = `/static/verify-${process.pid}-${Date.now() % 100000}`;
      const statics = await driver.requests(3, `${base}${serviceType.staticPath}`);
      outcomes.push(...statics.map((o) => ({ ...o, static: true })));
    }
  } finally {
    await driver.stop();
  }
  const captures = await driver.collect(outDir);
  const pcaps = Object.fromEntries(captures.map((c) => [c.host, c.pcapPath ?? '']));
  return {
    verdict: judgeLab(judged, r.topology, captures, outcomes, encapsulation, serviceType),
    requests: outcomes,
    pcaps,
    ladder: buildLadder({ captures, addresses: labAddresses(r.topology, serviceType) }),
  };
}
