// The options and the lock every command that changes the kernel takes:
// one writer per network namespace (src/records/lock.ts).
import type { Argv } from 'yargs';
import { parseDuration } from '../model/health';
import { refuseUnderController, withWriteLock } from '../records/lock';
import { UsageError } from './errors';

export const DEFAULT_WAIT = '5s';

export function withWaitOption<T>(y: Argv<T>) {
  return (
    y
      .option('wait', {
        type: 'string',
        default: DEFAULT_WAIT,
        describe: 'how long to wait for another slbctl changing this network namespace, e.g. 30s, before refusing',
      })
      // A bad value is a usage error, refused before the command does anything.
      .check((a) => {
        if (waitOf(a.wait) === undefined)
          throw new Error(`--wait ${JSON.stringify(a.wait)} is not a duration up to 1 hour (e.g. "5s", "500ms", "0")`);
        return true;
      })
  );
}

function waitOf(wait: string): number | undefined {
  // 0 is allowed here: do not wait at all.
  if (/^0+(?:\.0+)?(?:ms|s)?$/.test(wait.trim())) return 0;
  const ms = parseDuration(wait);
  return ms === undefined || ms > 3_600_000 ? undefined : ms;
}

export function withWriterOptions<T>(y: Argv<T>) {
  return withWaitOption(y).option('force', {
    type: 'boolean',
    default: false,
    describe:
      'change the kernel even though `slbctl run` manages this network namespace (it will put its own config back at its next resync)',
  });
}

export function waitMs(wait: string): number {
  const ms = waitOf(wait);
  if (ms === undefined) throw new UsageError(`--wait ${JSON.stringify(wait)} is not a duration up to 1 hour (e.g. "5s", "500ms", "0")`);
  return ms;
}

/**
 * Run `fn` as this namespace's one writer: refuse when a controller manages
 * the namespace (unless forced), wait for another writer up to --wait, hold
 * the write lock while `fn` plans and executes.
 */
export async function asWriter<T>(args: { wait: string; force?: boolean }, what: string, fn: () => Promise<T>): Promise<T> {
  const ms = waitMs(args.wait);
  if (!args.force) refuseUnderController(what);
  return withWriteLock(ms, fn);
}
