// Commands on the lab's VMs over plain ssh with the config `vagrant
// ssh-config` wrote (much faster than `vagrant ssh`, which starts Ruby each
// time). ssh hands the remote side one command string; it is always built
// from an argument array by shellQuote, the single quoting helper, so no
// argument is ever interpreted by the remote shell.
import { ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { run, RunResult } from '../util/exec';
import { VmName } from './plan';

/** POSIX shell quoting of one word: '…' with embedded ' as '\''. */
export function shellQuote(word: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

export function shellCommand(argv: readonly string[]): string {
  return argv.map(shellQuote).join(' ');
}

export interface SshTarget {
  /** ssh_config file written from `vagrant ssh-config`. */
  sshConfig: string;
}

const SSH_OPTIONS = ['-o', 'BatchMode=yes', '-o', 'ConnectTimeout=20'];

/** Run argv as root on a VM. */
export function vmRun(t: SshTarget, vm: VmName, argv: readonly string[], opts: { input?: string; timeoutMs?: number } = {}): Promise<RunResult> {
  return run(['ssh', '-F', t.sshConfig, ...SSH_OPTIONS, vm, '--', shellCommand(['sudo', '-n', ...argv])], { timeoutMs: opts.timeoutMs ?? 120_000, ...(opts.input !== undefined ? { input: opts.input } : {}) });
}

/** Run a small sh script as root on a VM; the script text is passed as one quoted argument of sh -c. */
export function vmScript(t: SshTarget, vm: VmName, script: string, opts: { timeoutMs?: number } = {}): Promise<RunResult> {
  return vmRun(t, vm, ['sh', '-c', script], opts);
}

/** Copy a file from a VM to the host. */
export function vmCopyFrom(t: SshTarget, vm: VmName, remote: string, local: string): Promise<RunResult> {
  return run(['scp', '-q', '-F', t.sshConfig, ...SSH_OPTIONS, `${vm}:${remote}`, local], { timeoutMs: 120_000 });
}

/** Copy files of the host into a directory of a VM (as the ssh user: a directory it may write). */
export function vmCopyTo(t: SshTarget, vm: VmName, locals: readonly string[], remoteDir: string): Promise<RunResult> {
  return run(['scp', '-q', '-F', t.sshConfig, ...SSH_OPTIONS, ...locals, `${vm}:${remoteDir}/`], { timeoutMs: 300_000 });
}

/** Start argv as root on a VM and keep talking to it (stdin, stdout): a process of this host that ends with the command. */
export function vmSpawn(t: SshTarget, vm: VmName, argv: readonly string[]): ChildProcessWithoutNullStreams {
  return spawn('ssh', ['-F', t.sshConfig, ...SSH_OPTIONS, vm, '--', shellCommand(['sudo', '-n', ...argv])], { stdio: ['pipe', 'pipe', 'pipe'] });
}
