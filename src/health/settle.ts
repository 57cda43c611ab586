// The shape every probe shares: start it, settle exactly once (answer,
// error or deadline), cancel whatever is still waiting, time it precisely.
import { CheckResult } from './types';
import { loopStopwatch } from './loop-clock';

/** A detail, or one made from the elapsed milliseconds (e.g. "echo reply in 0.3 ms"). */
export type Done = (ok: boolean, detail: string | ((millis: number) => string)) => void;

/** However blocked the loop, a probe ends by then: a server that never answers is still found. */
export function hardLimitMs(timeoutMs: number): number {
  return Math.max(10 * timeoutMs, timeoutMs + 1000);
}

/** Under a millisecond left is the timer's own rounding, not time worth another turn. */
const ROUNDING_MS = 1;

/**
 * Run `start(done)`, which returns how to stop waiting (close the socket,
 * kill the child …); that runs once the probe settles, whatever settled it.
 * Never rejects.
 *
 * The deadline is timeoutMs of time the event loop could have read the
 * answer. Node runs expired timers before it polls for I/O, so when the loop
 * was busy (a plan, hundreds of checks at once) a timer would fire in the
 * same turn as an answer that already arrived, and a healthy server would
 * fail. So the timer, when it fires, first lets pending I/O run
 * (setImmediate runs after the poll), and then fails the probe only if
 * timeoutMs have passed without counting the time the loop was blocked;
 * otherwise it waits for the rest. hardLimitMs bounds it all.
 */
export function settleOnce(
  timeoutMs: number,
  timeoutDetail: string,
  start: (done: Done) => () => void,
  failedToStart: string,
  /** Read what already arrived (a probe whose answers are polled for), before the deadline is judged. */
  beforeDeadline?: () => void,
): Promise<CheckResult> {
  const started = process.hrtime.bigint();
  const clock = loopStopwatch();
  const limit = hardLimitMs(timeoutMs);
  return new Promise((resolve) => {
    let settled = false;
    let cancel = (): void => undefined;
    let timer: NodeJS.Timeout | undefined;
    let immediate: NodeJS.Immediate | undefined;
    const done: Done = (ok, detail) => {
      if (settled) return;
      settled = true;
      if (timer) clearTimeout(timer);
      if (immediate) clearImmediate(immediate);
      clock.release();
      cancel();
      const millis = Math.round(Number(process.hrtime.bigint() - started) / 1e4) / 100;
      resolve({ ok, detail: typeof detail === 'function' ? detail(millis) : detail, millis });
    };
    const expire = (): void => {
      timer = undefined;
      immediate = setImmediate(() => {
        immediate = undefined;
        beforeDeadline?.();
        if (settled) return;
        const left = timeoutMs - clock.waited();
        if (left < ROUNDING_MS || clock.wall() >= limit) done(false, timeoutDetail);
        else timer = setTimeout(expire, Math.min(left, limit - clock.wall()));
      });
    };
    timer = setTimeout(expire, timeoutMs);
    try {
      cancel = start(done);
      if (settled) cancel();
    } catch (e) {
      done(false, `${failedToStart}: ${(e as Error).message}`);
    }
  });
}
