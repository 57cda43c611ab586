// The lab on four VMs, or five with --balancers 2 (`lab up --provider vagrant`): wraps `vagrant up` of
// vagrant/Vagrantfile with the lab's name, box and management network, and
// records the lab under /run/slbctl/vagrant/<lab>.json so `lab mode`,
// `verify`, `exec` and `down` find it. Everything it creates in libvirt is
// named slbctl-<lab>-…, and `down` removes only such names.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawn } from 'node:child_process';
import { findCommand, run, RunResult } from '../util/exec';
import { LabError } from '../lab/errors';
import { checkLabName } from '../lab/names';
import { VM_MEMORY_MB, VmName, vmNames } from './plan';
import type { BalancerName } from '../lab/topology';
import { watchConsoles } from './console-watch';
import { quoteLastLine } from './console';
import { vagrantErrorLine } from './vagrant-output';
import { SshTarget } from './ssh';

const ROOT = path.join(__dirname, '..', '..', '..');
export const VAGRANT_DIR = path.join(ROOT, 'vagrant');
const RECORDS = '/run/slbctl/vagrant';
const DATA = '/var/lib/slbctl/vagrant';
export const LOCAL_BOX = 'slbctl/debian12';
export const PUBLIC_BOX = 'debian/bookworm64';
const LIBVIRT = 'qemu:///system';

export interface VagrantLabRecord extends SshTarget {
  lab: string;
  box: string;
  managementNet: string;
  /** Vagrant's machine data and the consoles' logs. */
  dataDir: string;
  mode?: string;
  encapsulation?: string;
  /** The applied service type (tcp, http, https) and whether its L7 proxy caches. */
  protocol?: string;
  cache?: boolean;
  /** 2: the fifth VM lb2 (absent: one balancer, four VMs). */
  balancers?: number;
  /** The pair's HA kind once `lab mode dsr --ha ecmp` applied it, and the balancers `lab fail` took down. */
  ha?: 'ecmp';
  failed?: BalancerName[];
  startedAt: string;
}

const recordFile = (lab: string) => path.join(RECORDS, `${lab}.json`);
export const libvirtPrefix = (lab: string) => `slbctl-${lab}-`;

export function vagrantLab(lab: string): VagrantLabRecord | undefined {
  checkLabName(lab);
  try {
    return JSON.parse(fs.readFileSync(recordFile(lab), 'utf8')) as VagrantLabRecord;
  } catch {
    return undefined;
  }
}

/**
 * A lab whose record is gone (its `lab up` was killed) but whose VMs or
 * networks are still in libvirt: enough of a record for `lab down`.
 */
export async function orphanedVagrantLab(lab: string): Promise<VagrantLabRecord | undefined> {
  checkLabName(lab);
  if (!findCommand('virsh')) return undefined;
  const left = await libvirtLeftovers(lab);
  if (left.domains.length + left.networks.length + left.volumes.length === 0) return undefined;
  const dataDir = path.join(DATA, lab);
  const balancers = left.domains.some((d) => d.endsWith('-lb2')) ? 2 : 1;
  return { lab, box: '', managementNet: managementNet(lab), dataDir, sshConfig: path.join(dataDir, 'ssh_config'), balancers, startedAt: '' };
}

export function writeVagrantRecord(record: VagrantLabRecord): void {
  fs.mkdirSync(RECORDS, { recursive: true });
  fs.writeFileSync(`${recordFile(record.lab)}.tmp`, `${JSON.stringify(record, null, 2)}\n`);
  fs.renameSync(`${recordFile(record.lab)}.tmp`, recordFile(record.lab));
}

/** A /24 for the isolated management network, from the lab's name (outside the lab's ranges). */
export function managementNet(lab: string): string {
  let h = 0;
  for (const c of lab) h = (h * 31 + c.charCodeAt(0)) % 40;
  return `192.168.${200 + h}.0/24`;
}

type VagrantTarget = Pick<VagrantLabRecord, 'lab' | 'box' | 'managementNet' | 'dataDir' | 'balancers'>;

function vagrantEnv(record: VagrantTarget): NodeJS.ProcessEnv {
  return {
    ...process.env,
    VAGRANT_CWD: VAGRANT_DIR,
    VAGRANT_DOTFILE_PATH: path.join(record.dataDir, 'dot'),
    VAGRANT_DEFAULT_PROVIDER: process.env.VAGRANT_DEFAULT_PROVIDER ?? 'libvirt',
    VAGRANT_CHECKPOINT_DISABLE: '1',
    VAGRANT_BOX_UPDATE_CHECK_DISABLE: '1',
    SLBCTL_LAB: record.lab,
    SLBCTL_VAGRANT_BOX: record.box,
    SLBCTL_MGMT_NET: record.managementNet,
    SLBCTL_STATE_DIR: record.dataDir,
    // Every vagrant command of the lab must see the same machines (destroy, ssh-config: lb2 too).
    SLBCTL_BALANCERS: String(record.balancers ?? 1),
  };
}

function vagrant(record: VagrantTarget, args: string[], timeoutMs: number): Promise<RunResult> {
  return run(['vagrant', ...args, '--no-tty', '--no-color'], { env: vagrantEnv(record), timeoutMs });
}

/**
 * Run vagrant with its output appended to a log file as it comes (vagrant
 * up takes minutes: `tail -f` it). An abort (the timeout, or a stuck VM)
 * ends it with SIGTERM, and SIGKILL if Ruby has not finished 15 s later.
 */
function vagrantLogged(record: VagrantLabRecord, args: string[], logFile: string, timeoutMs: number, abort: AbortController): Promise<number> {
  const fd = fs.openSync(logFile, 'a');
  return new Promise((resolve) => {
    const child = spawn('vagrant', [...args, '--no-tty', '--no-color'], { env: vagrantEnv(record), stdio: ['ignore', fd, fd] });
    let kill: NodeJS.Timeout | undefined;
    const stop = () => {
      child.kill('SIGTERM');
      kill = setTimeout(() => child.kill('SIGKILL'), 15_000);
    };
    abort.signal.addEventListener('abort', stop, { once: true });
    const timer = setTimeout(() => abort.abort(), timeoutMs);
    const done = (code: number) => {
      clearTimeout(timer);
      clearTimeout(kill);
      abort.signal.removeEventListener('abort', stop);
      fs.closeSync(fd);
      resolve(code);
    };
    child.once('error', () => done(127));
    child.once('close', (code) => done(code ?? 1));
  });
}

/** Where the Vagrantfile logs a VM's serial console (ttyS0). */
export const consoleLogPath = (dataDir: string, vm: VmName) => path.join(dataDir, `${vm}-console.log`);

/** A file of the data folder kept in /var/tmp, since a failed lab up removes the folder. */
function keep(record: VagrantLabRecord, file: string): string {
  const kept = path.join('/var/tmp', `slbctl-vagrant-${record.lab}-${path.basename(file)}`);
  fs.copyFileSync(file, kept);
  return kept;
}

function memAvailableMb(): number {
  const m = /MemAvailable:\s+(\d+) kB/.exec(fs.readFileSync('/proc/meminfo', 'utf8'));
  return m?.[1] ? Math.floor(Number(m[1]) / 1024) : Math.floor(os.freemem() / 1048576);
}

/** What is missing before anything is created, as one sentence, or undefined. */
export async function vagrantPreflight(box: string, balancers = 1): Promise<string | undefined> {
  const setup = 'run scripts/vagrant-host-setup.sh as root (installs vagrant, vagrant-libvirt, libvirt and QEMU from Debian and starts libvirtd)';
  if (!findCommand('vagrant')) return `vagrant is not installed: ${setup}`;
  if (!findCommand('virsh')) return `libvirt is not installed: ${setup}`;
  const plugins = await run(['vagrant', 'plugin', 'list'], { env: { ...process.env, VAGRANT_CHECKPOINT_DISABLE: '1' } });
  if (!/vagrant-libvirt/.test(plugins.stdout)) return `the vagrant-libvirt provider is not installed: ${setup}`;
  if ((await run(['virsh', '-c', LIBVIRT, 'version'], { timeoutMs: 20_000 })).code !== 0) return `libvirtd does not answer on ${LIBVIRT}: ${setup}`;
  if ((await run(['virsh', '-c', LIBVIRT, 'pool-info', 'slbctl'])).code !== 0) return `the libvirt storage pool "slbctl" is missing: ${setup}`;
  const vms = vmNames(balancers).length;
  const needMb = vms * VM_MEMORY_MB + 2048;
  const haveMb = memAvailableMb();
  if (haveMb < needMb) return `not enough memory for ${vms === 5 ? 'five' : 'four'} VMs: ${haveMb} MiB available, ${needMb} MiB needed (${vms} x ${VM_MEMORY_MB} MiB plus QEMU's overhead); stop other VMs or use the netns provider`;
  if (!fs.existsSync(path.join(__dirname, 'topology-json.js'))) return 'slbctl is not built: run npm run setup';
  const boxes = await run(['vagrant', 'box', 'list'], { env: { ...process.env, VAGRANT_CHECKPOINT_DISABLE: '1' } });
  const has = boxes.stdout.split('\n').some((l) => l.startsWith(`${box} `) && l.includes('libvirt'));
  if (!has) {
    return box === LOCAL_BOX
      ? `the box ${box} is not added: build it offline from Debian's archive with scripts/vagrant-box (about 2 minutes)`
      : `the box ${box} is not added for libvirt: with internet run \`vagrant box add ${box} --provider libvirt\`; offline run scripts/vagrant-box and pass --box ${LOCAL_BOX}`;
  }
  return undefined;
}

async function virshNames(kind: 'list' | 'net-list'): Promise<string[]> {
  const r = await run(['virsh', '-c', LIBVIRT, kind, '--all', '--name']);
  return r.stdout.split('\n').map((l) => l.trim()).filter(Boolean);
}

/** Domains, networks and disks of this lab still in libvirt (by their slbctl-<lab>- names). */
export async function libvirtLeftovers(lab: string): Promise<{ domains: string[]; networks: string[]; volumes: string[] }> {
  const prefix = libvirtPrefix(lab);
  const vols = await run(['virsh', '-c', LIBVIRT, 'vol-list', 'slbctl']);
  return {
    domains: (await virshNames('list')).filter((n) => n.startsWith(prefix)),
    networks: (await virshNames('net-list')).filter((n) => n.startsWith(prefix)),
    volumes: vols.stdout.split('\n').map((l) => l.trim().split(/\s+/)[0] ?? '').filter((n) => n.startsWith(prefix)),
  };
}

export async function startVagrantLab(lab: string, box: string, log: (line: string) => void, balancers = 1): Promise<VagrantLabRecord> {
  checkLabName(lab);
  if (vagrantLab(lab)) throw new LabError(`lab "${lab}" already runs on Vagrant VMs; run \`slbctl lab down --name ${lab}\` first`);
  const missing = await vagrantPreflight(box, balancers);
  if (missing) throw new LabError(`provider vagrant: ${missing}`);
  const left = await libvirtLeftovers(lab);
  if (left.domains.length + left.networks.length > 0) {
    throw new LabError(`provider vagrant: libvirt still has ${[...left.domains, ...left.networks].join(', ')} of an earlier lab "${lab}": run \`slbctl lab down --name ${lab}\``);
  }
  const dataDir = path.join(DATA, lab);
  fs.rmSync(dataDir, { recursive: true, force: true });
  fs.mkdirSync(dataDir, { recursive: true });
  const record: VagrantLabRecord = {
    lab, box, managementNet: managementNet(lab), dataDir, sshConfig: path.join(dataDir, 'ssh_config'),
    ...(balancers >= 2 ? { balancers: 2 } : {}), startedAt: new Date().toISOString(),
  };
  const vms = vmNames(balancers);
  writeVagrantRecord(record);
  try {
    const started = Date.now();
    log(`vagrant up: ${vms.map((v) => `${libvirtPrefix(lab)}${v}`).join(', ')} (box ${box}, management network ${record.managementNet}, isolated)`);
    const upLog = path.join(dataDir, 'vagrant-up.log');
    log(`its output as it comes: ${upLog}`);
    const consoles = vms.map((vm) => ({ vm, path: consoleLogPath(dataDir, vm) }));
    log(`the VMs' serial consoles: ${consoles.map((c) => c.path).join(', ')}`);
    // A VM stuck at boot (GRUB's prompt, a panic, a silent console) ends
    // vagrant up at once, rather than after its 900 s boot timeout and a
    // Ruby backtrace.
    const abort = new AbortController();
    let stuck: { vm: VmName; reason: string; lastLine: string; path: string } | undefined;
    const stopWatching = watchConsoles(consoles, (vmConsole, verdict) => {
      if (verdict.state !== 'stuck') return;
      stuck = { vm: vmConsole.vm, reason: verdict.reason, lastLine: verdict.lastLine, path: vmConsole.path };
      abort.abort();
    });
    const upMinutes = 20;
    const code = await vagrantLogged(record, ['up'], upLog, upMinutes * 60_000, abort).finally(stopWatching);
    const output = fs.readFileSync(upLog, 'utf8');
    if (stuck) {
      throw new LabError(`VM ${stuck.vm} (${libvirtPrefix(lab)}${stuck.vm}) is stuck ${stuck.reason}; ${quoteLastLine(stuck.lastLine)} (console log ${keep(record, stuck.path)}, vagrant's output ${keep(record, upLog)})`);
    }
    if (abort.signal.aborted) throw new LabError(`vagrant up did not finish within ${upMinutes} minutes (vagrant's output ${keep(record, upLog)})`);
    if (code !== 0) throw new LabError(`vagrant up failed (exit ${code}): ${vagrantErrorLine(output)} (vagrant's output ${keep(record, upLog)})`);
    for (const line of output.split('\n')) if (/slbctl provision/.test(line)) log(line.replace(/^==> /, '').trim());
    log(`${vms.length === 5 ? 'five' : 'four'} VMs up and provisioned in ${((Date.now() - started) / 1000).toFixed(0)} s`);
    const ssh = await vagrant(record, ['ssh-config'], 120_000);
    if (ssh.code !== 0) throw new LabError(`vagrant ssh-config failed: ${ssh.stderr.trim()}`);
    fs.writeFileSync(record.sshConfig, ssh.stdout);
    return record;
  } catch (e) {
    log('lab up failed: removing what it created');
    await stopVagrantLab(record, log).catch((c: unknown) => log(`cleanup also failed: ${c instanceof Error ? c.message : String(c)}`));
    throw e;
  }
}

/** Power off and destroy the lab's VMs, then remove any of its domains, networks and disks still left. Idempotent. */
export async function stopVagrantLab(record: VagrantLabRecord, log: (line: string) => void): Promise<string[]> {
  // Without libvirtd nothing can be removed, and the record must stay for a later try.
  if ((await run(['virsh', '-c', LIBVIRT, 'version'], { timeoutMs: 20_000 })).code !== 0) {
    throw new LabError(`lab "${record.lab}": libvirtd does not answer on ${LIBVIRT}, so its VMs cannot be removed: run scripts/vagrant-host-setup.sh, then lab down again`);
  }
  const before = await libvirtLeftovers(record.lab);
  // Hard power-off first: vagrant destroy would otherwise wait for each
  // guest to shut down cleanly, which under emulation takes minutes.
  for (const d of before.domains) await run(['virsh', '-c', LIBVIRT, 'destroy', d]);
  if (fs.existsSync(path.join(record.dataDir, 'dot'))) await vagrant(record, ['destroy', '-f'], 10 * 60_000);
  const left = await libvirtLeftovers(record.lab);
  for (const d of left.domains) {
    await run(['virsh', '-c', LIBVIRT, 'destroy', d]);
    await run(['virsh', '-c', LIBVIRT, 'undefine', d, '--remove-all-storage']);
  }
  for (const n of left.networks) {
    await run(['virsh', '-c', LIBVIRT, 'net-destroy', n]);
    await run(['virsh', '-c', LIBVIRT, 'net-undefine', n]);
  }
  for (const v of left.volumes) await run(['virsh', '-c', LIBVIRT, 'vol-delete', '--pool', 'slbctl', v]);
  const still = await libvirtLeftovers(record.lab);
  const remaining = [...still.domains, ...still.networks, ...still.volumes];
  fs.rmSync(record.dataDir, { recursive: true, force: true });
  fs.rmSync(recordFile(record.lab), { force: true });
  if (remaining.length > 0) throw new LabError(`lab "${record.lab}": could not remove ${remaining.join(', ')}`);
  log(`removed ${[...before.domains, ...before.networks].join(', ') || 'nothing (no VM was left)'}`);
  return [...before.domains, ...before.networks];
}
