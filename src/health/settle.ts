// The shape every probe shares: start it, settle exactly once (answer,
// error or deadline), cancel whatever is still waiting, time it precisely.
import { CheckResult } from './types';

/** A detail, or one made from the elapsed milliseconds (e.g. "echo reply in 0.3 ms"). */
export type Done = (ok: boolean, detail: string | ((millis: number) => string)) => void;

/**
 * Run `start(done)`, which returns how to stop waiting (close the socket,
 * kill the child …); that runs once the probe settles, whatever settled it.
 * Never rejects; settles by timeoutMs.
 */
export function settleOnce(timeoutMs: number, timeoutDetail: string, start: (done: Done) => () => void, failedToStart: string): Promise<CheckResult> {
  const started = process.hrtime.bigint();
  return new Promise((resolve) => {
    let settled = false;
    let cancel = (): void => undefined;
    const done: Done = (ok, detail) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      cancel();
      const millis = Math.round(Number(process.hrtime.bigint() - started) / 1e4) / 100;
      resolve({ ok, detail: typeof detail === 'function' ? detail(millis) : detail, millis });
    };
    const timer = setTimeout(() => done(false, timeoutDetail), timeoutMs);
    try {
      cancel = start(done);
      if (settled) cancel();
    } catch (e) {
      done(false, `${failedToStart}: ${(e as Error).message}`);
    }
  });
}
