// Turns any error into one sentence and its exit code. The code comes from
// the error's class (src/util/errors.ts), never from its text.
import { ConfigError, exitCodeOf } from '../util/errors';

export { EXIT } from '../util/errors';

/** A bad option value or a missing argument (exit 2). */
export class UsageError extends ConfigError {}

export const exitCodeFor = exitCodeOf;

export function report(e: unknown): number {
  const message = e instanceof Error ? e.message : String(e);
  process.stderr.write(`slbctl: ${message}\n`);
  if (process.env.SLBCTL_DEBUG && e instanceof Error && e.stack) process.stderr.write(`${e.stack}\n`);
  return exitCodeFor(e);
}
