// `lab verify` on the VMs: the capture driver of the one verify flow
// (src/verify/flow.ts): tcpdump on the client (in its namespace), the lb and
// both real servers, the client's HTTP requests run in the client VM, the
// pcap files copied to the host; judged as in every lab.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { decodeFrame } from '../capture/decode';
import { readPcap } from '../capture/pcap';
import { writeFileNoFollow } from '../util/safe-write';
import { HostCapture } from '../capture/types';
import { Mode } from '../model/types';
import { LabError } from '../lab/errors';
import { LabHostName, REFERENCE_TOPOLOGY } from '../lab/topology';
import { RequestOutcome } from '../verify/facts';
import { curlArgv, curlOutcome, writingOutput } from '../verify/judge';
import { CaptureDriver, VerifyExpectation, VerifyReport, verifyWith } from '../verify/flow';
import { CLIENT_NETNS, VM_LAB_DEVICE, VmName } from './plan';
import { VagrantLabRecord } from './lab';
import { shellCommand, vmCopyFrom, vmScript } from './ssh';

const REMOTE_DIR = '/var/tmp/slbctl-capture';

export interface VmWhere { vm: VmName; netns?: string; device: string }

/** Where a lab host's traffic is captured: the client in its namespace, the router on the client VM's lab NIC, the others on their own. */
export function whereIs(host: LabHostName): VmWhere {
  if (host === 'client') return { vm: 'client', netns: CLIENT_NETNS, device: 'eth0' };
  if (host === 'router') return { vm: 'client', device: VM_LAB_DEVICE };
  return { vm: host, device: VM_LAB_DEVICE };
}

const inNs = (w: VmWhere, argv: string[]) => (w.netns ? ['ip', 'netns', 'exec', w.netns, ...argv] : argv);

/** Start tcpdump in the background on the host's VM (its files named by `host`, a label); resolves with the captured interface's MAC once it listens. */
export async function startVmCapture(record: VagrantLabRecord, host: string, w: VmWhere, filter: string): Promise<string> {
  const file = `${REMOTE_DIR}/${host}.pcap`;
  const tcpdump = inNs(w, ['tcpdump', '-i', w.device, '-n', '-U', '-s', '0', '--time-stamp-precision=nano', '-Z', 'root', '-w', file, filter]);
  const script = [
    shellCommand(['mkdir', '-p', REMOTE_DIR]),
    shellCommand(['rm', '-f', file]),
    `${shellCommand(tcpdump)} >${REMOTE_DIR}/${host}.log 2>&1 &`,
    `echo $! >${REMOTE_DIR}/${host}.pid`,
    `i=0; until grep -q 'listening on' ${REMOTE_DIR}/${host}.log; do i=$((i+1)); [ $i -gt 150 ] && { cat ${REMOTE_DIR}/${host}.log; exit 1; }; sleep 0.1; done`,
    shellCommand(inNs(w, ['cat', `/sys/class/net/${w.device}/address`])),
  ].join('\n');
  const r = await vmScript(record, w.vm, script);
  if (r.code !== 0) throw new LabError(`capture on ${host} (${w.vm} VM, ${w.device}) did not start: ${(r.stdout + r.stderr).trim()}`);
  return r.stdout.trim().split('\n').pop() ?? '';
}

export async function stopVmCapture(record: VagrantLabRecord, host: string, w: VmWhere): Promise<void> {
  const pid = `${REMOTE_DIR}/${host}.pid`;
  // SIGINT makes tcpdump flush and close the file; wait until it has exited.
  await vmScript(record, w.vm, `p=$(cat ${pid} 2>/dev/null) || exit 0\nkill -INT "$p" 2>/dev/null\ni=0; while kill -0 "$p" 2>/dev/null && [ $i -lt 50 ]; do i=$((i+1)); sleep 0.1; done\nrm -f ${pid}`);
}

/** K requests from the client namespace of the client VM in one ssh session. */
export async function vmRequests(record: VagrantLabRecord, k: number, url: string): Promise<RequestOutcome[]> {
  const one = `${shellCommand(['ip', 'netns', 'exec', CLIENT_NETNS, ...curlArgv(url)])} 2>/dev/null; echo "@@exit=$?"`;
  const r = await vmScript(record, 'client', `i=0; while [ $i -lt ${k} ]; do i=$((i+1)); ${one}; done`, { timeoutMs: 60_000 + k * 5000 });
  const outcomes: RequestOutcome[] = [];
  const re = /([\s\S]*?)\n?@@exit=(\d+)\n/g;
  for (let m = re.exec(r.stdout); m; m = re.exec(r.stdout)) {
    const code = Number(m[2]);
    outcomes.push(curlOutcome(code, m[1] ?? '', code === 0 ? '' : `curl exit ${code}`));
  }
  while (outcomes.length < k) outcomes.push({ ok: false, error: `no answer from the client VM (ssh exit ${r.code})` });
  return outcomes;
}

function loadCapture(host: string, device: string, mac: string, file: string, pcapPath?: string): HostCapture {
  const { linkType, frames } = readPcap(file);
  if (typeof linkType === 'number') throw new LabError(`${file}: link type ${linkType} is not one slbctl decodes`);
  return { host, device, mac, linkType, frames, packets: frames.map((f) => decodeFrame(f, linkType)), ...(pcapPath !== undefined ? { pcapPath } : {}) };
}

/** Copy a stopped capture from its VM into `staging` (a private directory of this host); returns the file. */
async function copyVmCapture(record: VagrantLabRecord, host: string, w: VmWhere, staging: string): Promise<string> {
  const copied = path.join(staging, `${host}.pcap`);
  const r = await vmCopyFrom(record, w.vm, `${REMOTE_DIR}/${host}.pcap`, copied);
  if (r.code !== 0) throw new LabError(`copying the capture of ${host} from the ${w.vm} VM failed: ${r.stderr.trim()}`);
  return copied;
}

/** Stop captures and read them back (not yet written anywhere of the user's: keepCaptures does that). */
export async function stopAndLoadVmCaptures(record: VagrantLabRecord, which: readonly { label: string; where: VmWhere; mac: string }[]): Promise<HostCapture[]> {
  await Promise.all(which.map((c) => stopVmCapture(record, c.label, c.where)));
  const staging = fs.mkdtempSync(path.join(os.tmpdir(), 'slbctl-pcaps-'));
  try {
    const out: HostCapture[] = [];
    for (const c of which) {
      const copied = await copyVmCapture(record, c.label, c.where, staging);
      out.push(loadCapture(c.label, c.where.device, c.mac, copied));
    }
    return out;
  } finally {
    fs.rmSync(staging, { recursive: true, force: true });
  }
}

/** The VMs' captures: tcpdump on each host's VM, curl in the client namespace of the client VM, pcaps copied back. */
export function vagrantCaptureDriver(record: VagrantLabRecord): CaptureDriver {
  const macs = new Map<LabHostName, string>();
  let hosts: readonly LabHostName[] = [];
  return {
    async start(which, filter) {
      hosts = which;
      const started = await Promise.all(which.map(async (h) => [h, await startVmCapture(record, h, whereIs(h), filter)] as const));
      for (const [h, mac] of started) macs.set(h, mac);
    },
    requests: (k, url) => vmRequests(record, k, url),
    async stop() {
      await new Promise((r) => setTimeout(r, 500)); // the last FIN/ACKs reach every capture
      await Promise.all(hosts.map((h) => stopVmCapture(record, h, whereIs(h))));
    },
    async collect(outDir) {
      const captures: HostCapture[] = [];
      // scp writes wherever its path leads: it copies into a private directory
      // (mode 0700, a fresh name), and slbctl moves the bytes on without following links.
      const staging = fs.mkdtempSync(path.join(os.tmpdir(), 'slbctl-pcaps-'));
      try {
        for (const h of hosts) {
          const copied = await copyVmCapture(record, h, whereIs(h), staging);
          const local = writingOutput(() => writeFileNoFollow(path.join(outDir, `${h}.pcap`), fs.readFileSync(copied)));
          captures.push(loadCapture(h, whereIs(h).device, macs.get(h) ?? '', copied, local));
        }
      } finally {
        fs.rmSync(staging, { recursive: true, force: true });
      }
      return captures;
    },
  };
}

export function verifyVagrantLab(
  record: VagrantLabRecord,
  mode: Mode | undefined,
  k: number,
  out: string | undefined,
  expect?: VerifyExpectation,
): Promise<VerifyReport> {
  return verifyWith(vagrantCaptureDriver(record), {
    lab: record.lab,
    mode,
    applied: record,
    requests: k,
    out,
    topology: REFERENCE_TOPOLOGY,
    ...(expect ? { expect } : {}),
  });
}
