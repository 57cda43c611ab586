// The data-path bench's tools (nginx, wrk, iperf3, conntrack) for the Vagrant
// lab's VMs, which have no network to Debian's archive and whose box does not
// carry them: the .deb files of what a VM lacks, of the versions this host has
// installed (both Debian 12), fetched here with `apt-get download`, copied in
// with scp and installed with `dpkg -i`, services not started (policy-rc.d).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { run, runChecked } from '../../src/util/exec';
import { VagrantLabRecord } from '../../src/vagrant/lab';
import { VmName } from '../../src/vagrant/plan';
import { vmCopyTo, vmRun } from '../../src/vagrant/ssh';

/** An installed package as dpkg knows it: its version, its dependencies (Pre-Depends and Depends) and what it provides. */
export interface Installed {
  version: string;
  depends: string;
  provides: string;
}

const FORMAT = '${Package}\\t${Version}\\t${Pre-Depends}, ${Depends}\\t${Provides}\\t${db:Status-Abbrev}\\n';

/** `dpkg-query -W` with FORMAT: the packages installed (status ii). */
export function parseDpkgQuery(text: string): Map<string, Installed> {
  const installed = new Map<string, Installed>();
  for (const line of text.split('\n')) {
    const [name, version, depends, provides, status] = line.split('\t');
    if (name && version && status?.startsWith('ii')) installed.set(name, { version, depends: depends ?? '', provides: provides ?? '' });
  }
  return installed;
}

/** The package names of a Depends-like field, as groups of alternatives (versions and :any dropped). */
export function dependencyGroups(field: string): string[][] {
  return field
    .split(',')
    .map((g) =>
      g
        .split('|')
        .map((alt) => (alt.trim().split(/[\s(]/)[0] ?? '').replace(/:.*$/, ''))
        .filter(Boolean),
    )
    .filter((g) => g.length > 0);
}

function providedBy(installed: Map<string, Installed>): Set<string> {
  const names = new Set(installed.keys());
  for (const p of installed.values()) for (const [name] of dependencyGroups(p.provides)) if (name) names.add(name);
  return names;
}

/**
 * What the VM must get for `wanted` to be installed there: the wanted packages
 * and, recursively, each dependency group the VM does not satisfy, by the
 * alternative this host installed (or the package of the host providing it).
 * Throws if the host lacks one (it is where the .deb files come from).
 */
export function missingPackages(wanted: readonly string[], host: Map<string, Installed>, vm: Map<string, Installed>): string[] {
  const vmHas = providedBy(vm);
  const hostProviders = new Map<string, string>();
  for (const [name, p] of host) for (const [virtual] of dependencyGroups(p.provides)) if (virtual) hostProviders.set(virtual, name);
  const chosen: string[] = [];
  const queue = [...wanted];
  for (let next = queue.shift(); next !== undefined; next = queue.shift()) {
    if (vmHas.has(next) || chosen.includes(next)) continue;
    const p = host.get(next);
    if (!p) throw new Error(`${next} is not installed on this host, so its .deb cannot be fetched here: run scripts/setup.sh`);
    chosen.push(next);
    for (const group of dependencyGroups(p.depends)) {
      if (group.some((alt) => vmHas.has(alt) || chosen.includes(alt) || queue.includes(alt))) continue;
      const pick = group.find((alt) => host.has(alt)) ?? group.map((alt) => hostProviders.get(alt)).find((x) => x !== undefined);
      if (!pick) throw new Error(`${next} needs ${group.join(' | ')}, which neither this host nor the VM has`);
      queue.push(pick);
    }
  }
  return chosen;
}

async function dpkgQuery(runner: (argv: string[]) => Promise<{ code: number; stdout: string; stderr: string }>, where: string) {
  const r = await runner(['dpkg-query', '-W', '-f', FORMAT]);
  if (r.code !== 0) throw new Error(`dpkg-query on ${where} failed: ${r.stderr.trim()}`);
  return parseDpkgQuery(r.stdout);
}

const REMOTE_DIR = '/var/tmp/slbctl-bench-debs';
const POLICY = '/usr/sbin/policy-rc.d';

/** Install `wanted` on each VM from this host's .deb files (nothing if it has them); returns what each got. */
export async function installOnVms(
  record: VagrantLabRecord,
  wanted: ReadonlyMap<VmName, readonly string[]>,
  dir: string,
): Promise<string[]> {
  const host = await dpkgQuery((argv) => run(argv), 'this host');
  const done: string[] = [];
  for (const [vm, packages] of wanted) {
    const missing = missingPackages(packages, host, await dpkgQuery((argv) => vmRun(record, vm, argv), vm));
    if (missing.length === 0) {
      done.push(`${vm}: has ${packages.join(', ')}`);
      continue;
    }
    const local = path.join(dir, 'debs');
    fs.mkdirSync(local, { recursive: true });
    const specs = missing.map((p) => `${p}=${host.get(p)?.version ?? ''}`);
    await runChecked('apt-get download (the bench tools for the VMs)', ['apt-get', 'download', '-q', ...specs], {
      cwd: local,
      timeoutMs: 300_000,
    });
    const files = fs.readdirSync(local).filter((f) => missing.some((p) => f.startsWith(`${p}_`)));
    // The ssh user (not root) copies into it.
    await checked(vmRun(record, vm, ['install', '-d', '-m', '0777', REMOTE_DIR]), vm, 'install -d');
    const copy = await vmCopyTo(
      record,
      vm,
      files.map((f) => path.join(local, f)),
      REMOTE_DIR,
    );
    if (copy.code !== 0) throw new Error(`scp of the .deb files to ${vm} failed: ${copy.stderr.trim()}`);
    // No service of theirs starts (nginx would take port 80 with Debian's default site); the bench starts its own.
    await checked(
      vmRun(record, vm, ['install', '-m', '0755', '/dev/stdin', POLICY], { input: '#!/bin/sh\nexit 101\n' }),
      vm,
      'policy-rc.d',
    );
    try {
      const argv = ['env', 'DEBIAN_FRONTEND=noninteractive', 'dpkg', '-i', ...files.map((f) => `${REMOTE_DIR}/${f}`)];
      await checked(vmRun(record, vm, argv, { timeoutMs: 600_000 }), vm, 'dpkg -i');
    } finally {
      await vmRun(record, vm, ['rm', '-rf', POLICY, REMOTE_DIR]);
    }
    done.push(`${vm}: dpkg -i ${missing.join(' ')}`);
  }
  return done;
}

async function checked(p: Promise<{ code: number; stdout: string; stderr: string }>, vm: VmName, what: string): Promise<void> {
  const r = await p;
  if (r.code !== 0)
    throw new Error(`${what} on ${vm} failed (exit ${r.code}): ${(r.stderr || r.stdout).trim().split('\n').slice(-3).join(' / ')}`);
}
