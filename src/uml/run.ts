// Boot Debian's user-mode-linux kernel (package user-mode-linux) with the
// host's filesystem as root, run one command inside, return its output and
// exit code. This is how IPVS is exercised on hosts whose own kernel has
// none: the guest is a real Linux 6.1 kernel with ip_vs as a module.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { findCommand, run } from '../util/exec';
import { UmlJob } from './job';
import { SHOW_FILE, Visibility, foldersToShow } from './visible';

export const UML_KERNEL = '/usr/bin/linux.uml';
export const UML_MODULES = '/usr/lib/uml/modules';
const ROOT = path.join(__dirname, '..', '..', '..');
const INIT = path.join(ROOT, 'scripts', 'uml-init.sh');
const GUEST = path.join(__dirname, 'guest.js');

/** Modules an IPVS lab needs in the guest. */
export const IPVS_MODULES = [
  'ip_vs',
  'ip_vs_rr',
  'ip_vs_wrr',
  'ip_vs_lc',
  'ip_vs_wlc',
  'ip_vs_sh',
  'ip_vs_mh',
  'ip_vs_sed',
  'ip_vs_nq',
  'ip_vs_dh',
  'ip_vs_lblc',
  'ip_vs_lblcr',
  'ip_vs_fo',
  'ip_vs_ovf',
  'ipip',
  'veth',
  'bridge',
  'dummy',
  'nf_tables',
  'nft_ct',
  'nft_numgen',
  'nft_hash',
  // fullnat on IPVS: source NAT beside IPVS through iptables (this kernel has no nftables NAT).
  'nf_conntrack',
  'nf_nat',
  'ip_tables',
  'iptable_nat',
  'xt_ipvs',
  'xt_nat',
  // L7 transparent: the TPROXY return path marks packets of HAProxy's transparent sockets (iptables here: no nftables ip family).
  'iptable_mangle',
  'xt_socket',
  'xt_mark',
];

export function umlAvailable(): string | undefined {
  if (!fs.existsSync(UML_KERNEL)) return `${UML_KERNEL} is missing (apt-get install user-mode-linux)`;
  if (!fs.existsSync(UML_MODULES)) return `${UML_MODULES} is missing (apt-get install user-mode-linux)`;
  if (!findCommand('node')) return 'node is not on PATH';
  return undefined;
}

/** The kernel command line that boots the guest on the host's filesystem with slbctl's init. */
export function umlKernelArgs(work: string, memoryMb: number): string[] {
  return [
    `mem=${memoryMb}M`,
    'root=/dev/root',
    'rootfstype=hostfs',
    'rootflags=/',
    'rw',
    `init=${INIT}`,
    `slbctl_work=${work}`,
    `slbctl_guest=${GUEST}`,
    'con=null',
    'con0=null,fd:1',
    `umid=slbctl-${path.basename(work)}`,
  ];
}

/**
 * Write the job into its folder, with the host folders the guest must be
 * shown at boot: slbctl's own checkout (without it the guest cannot start),
 * node's folder, the job's working directory and `extra`. Returns what could
 * not be shown, for the caller to mention.
 */
export function writeJob(work: string, job: UmlJob, extra: readonly string[] = []): Visibility {
  const needed = [ROOT, path.dirname(process.execPath)];
  const v = foldersToShow([...needed, job.cwd, ...extra]);
  const lost = v.hidden.filter((h) => needed.some((n) => n === h || n.startsWith(`${h}/`)));
  if (lost.length)
    throw new Error(
      `user-mode-linux: ${lost.join(', ')} cannot be shown to the guest, which keeps its own there; put slbctl (and node) in another folder`,
    );
  fs.writeFileSync(path.join(work, 'job.json'), JSON.stringify(job));
  fs.writeFileSync(path.join(work, SHOW_FILE), v.show.map((d) => `${d}\n`).join(''));
  return v;
}

export interface UmlResult {
  code: number;
  output: string;
  seconds: number;
}

export async function runInUml(
  argv: string[],
  options: { modules?: string[]; memoryMb?: number; timeoutMs?: number; env?: Record<string, string> } = {},
): Promise<UmlResult> {
  const missing = umlAvailable();
  if (missing) throw new Error(`user-mode-linux: ${missing}`);
  // The job folder must be on the host filesystem the guest sees (not /tmp or /run: private there).
  const work = fs.mkdtempSync(path.join('/var/tmp', `slbctl-uml-${process.pid}-`));
  const timeoutMs = options.timeoutMs ?? 10 * 60 * 1000;
  const job: UmlJob = { argv, cwd: ROOT, modules: options.modules ?? IPVS_MODULES, env: options.env ?? {}, timeoutMs };
  const started = Date.now();
  try {
    writeJob(work, job);
    const boot = await run([UML_KERNEL, ...umlKernelArgs(work, options.memoryMb ?? 1024)], {
      timeoutMs: timeoutMs + 60_000,
      env: { ...process.env, TMPDIR: os.tmpdir() },
    });
    const output = fs.existsSync(path.join(work, 'output.log')) ? fs.readFileSync(path.join(work, 'output.log'), 'utf8') : '';
    const codeFile = path.join(work, 'exit-code');
    if (!fs.existsSync(codeFile)) {
      return {
        code: 124,
        output: `${output}\nuser-mode-linux: the guest ended without a result (exit ${boot.code}${boot.signal ? `, ${boot.signal}` : ''}):\n${boot.stdout.split('\n').slice(-15).join('\n')}`,
        seconds: (Date.now() - started) / 1000,
      };
    }
    return { code: Number(fs.readFileSync(codeFile, 'utf8').trim()), output, seconds: (Date.now() - started) / 1000 };
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}
