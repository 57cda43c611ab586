// Custom check: a command (argument array, never a shell string); exit 0 is healthy.
import { spawn } from 'node:child_process';
import { findCommand } from '../util/exec';
import { CheckResult, Checker } from './types';
import { settleOnce } from './settle';

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
    return settleOnce(
      timeoutMs,
      `did not finish within ${timeoutMs} ms`,
      (done) => {
        const [cmd, ...args] = this.argv;
        const child = spawn(cmd, args, { stdio: 'ignore' });
        child.on('error', (e) => done(false, e.message));
        child.on('exit', (code, signal) => done(code === 0, signal ? `killed by ${signal}` : `exit ${code}`));
        // Settled by the deadline while still running: it must not outlive its check.
        return () => {
          if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
        };
      },
      'cannot start the command',
    );
  }
}
