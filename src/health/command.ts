// Custom check: a command (argument array, never a shell string); exit 0 is healthy.
import { spawn } from 'node:child_process';
import { findCommand } from '../util/exec';
import { CheckResult, Checker } from './types';

export class CommandChecker implements Checker {
  readonly kind = 'command';
  readonly target: string;

  constructor(private readonly argv: readonly string[]) {
    const program = argv[0];
    if (!program) throw new Error('health check command is empty');
    if (!program.includes('/') && !findCommand(program)) throw new Error(`health check command "${program}" is not on PATH`);
    this.target = `command ${argv.join(' ')}`;
  }

  check(timeoutMs: number): Promise<CheckResult> {
    const started = Date.now();
    return new Promise((resolve) => {
      const [cmd, ...args] = this.argv;
      const child = spawn(cmd as string, args, { stdio: 'ignore' });
      let settled = false;
      const done = (ok: boolean, detail: string) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve({ ok, detail, millis: Date.now() - started });
      };
      const timer = setTimeout(() => { child.kill('SIGKILL'); done(false, `did not finish within ${timeoutMs} ms`); }, timeoutMs);
      child.on('error', (e) => done(false, e.message));
      child.on('exit', (code, signal) => done(code === 0, signal ? `killed by ${signal}` : `exit ${code}`));
    });
  }
}
