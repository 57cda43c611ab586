// The one way slbctl starts other programs: an argument array, never a shell
// string, so nothing in a name or address can be interpreted by a shell.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { EXIT, ExitCode, SlbctlError } from './errors';

export interface RunOptions {
  /** Run inside this named network namespace (via `ip netns exec`). */
  netns?: string;
  /** Written to the program's standard input, which is then closed. */
  input?: string;
  /** A descriptor the program reads as its standard input instead (complete before it starts, unlike a pipe). */
  stdinFd?: number;
  /** Kill the program after this many milliseconds. */
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
  /** The program's working directory (default this process's). */
  cwd?: string;
  /**
   * An open descriptor the child inherits (as its fd 3): a kernel tool run
   * under slbctl's write lock keeps the lock held until it exits, even when
   * slbctl itself is killed first.
   */
  passFd?: number;
}

export interface RunResult {
  argv: string[];
  code: number;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** A program slbctl ran failed. Lab steps use it as it is (exit 5); kernel tools wrap it in their own error. */
export class CommandError extends SlbctlError {
  constructor(
    readonly result: RunResult,
    what: string,
    readonly exitCode: ExitCode = EXIT.lab,
  ) {
    const detail = (result.stderr || result.stdout).trim().split('\n').slice(-3).join(' / ');
    super(`${what}: \`${result.argv.join(' ')}\` exited ${result.signal ?? result.code}${detail ? `: ${detail}` : ''}`);
  }
}

export function withNetns(netns: string | undefined, argv: readonly string[]): string[] {
  return netns ? ['ip', 'netns', 'exec', netns, ...argv] : [...argv];
}

export function run(argv: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  const full = withNetns(options.netns, argv);
  const [cmd, ...args] = full;
  if (!cmd) throw new Error('run: empty argument list');
  return new Promise((resolve) => {
    const stdio: ('pipe' | number)[] = [options.stdinFd ?? 'pipe', 'pipe', 'pipe'];
    if (options.passFd !== undefined) stdio.push(options.passFd);
    const child = spawn(cmd, args, { stdio, env: options.env ?? process.env, ...(options.cwd ? { cwd: options.cwd } : {}) });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let timer: NodeJS.Timeout | undefined;
    // On timeout the pipes are let go too: a grandchild that inherited them
    // (a daemon, a hung helper) would otherwise hold the result back forever.
    if (options.timeoutMs)
      timer = setTimeout(() => {
        child.kill('SIGKILL');
        child.stdout?.destroy();
        child.stderr?.destroy();
      }, options.timeoutMs);
    child.stdout?.on('data', (b: Buffer) => out.push(b));
    child.stderr?.on('data', (b: Buffer) => err.push(b));
    child.on('error', (e: NodeJS.ErrnoException) => {
      if (timer) clearTimeout(timer);
      resolve({ argv: full, code: e.code === 'ENOENT' ? 127 : 126, signal: null, stdout: '', stderr: e.message });
    });
    child.on('close', (code, signal) => {
      if (timer) clearTimeout(timer);
      resolve({ argv: full, code: code ?? -1, signal, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() });
    });
    child.stdin?.on('error', () => undefined);
    child.stdin?.end(options.input ?? '');
  });
}

/** Like run, but throws a CommandError naming `what` when the exit code is not 0. */
export async function runChecked(
  what: string,
  argv: readonly string[],
  options: RunOptions & { exitCode?: ExitCode } = {},
): Promise<RunResult> {
  const result = await run(argv, options);
  if (result.code !== 0) throw new CommandError(result, what, options.exitCode);
  return result;
}

/** Is an executable of this name on PATH? */
export function findCommand(name: string): string | undefined {
  const dirs = (process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin').split(':').filter(Boolean);
  for (const dir of dirs) {
    const candidate = path.join(dir, name);
    try {
      fs.accessSync(candidate, fs.constants.X_OK);
      return candidate;
    } catch {
      // not here; keep looking
    }
  }
  return undefined;
}
