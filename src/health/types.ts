// Health checks decide each real server's state; the state decides its
// effective weight, which goes through the same planner as apply.

export interface CheckResult {
  ok: boolean;
  /** Why it failed (or what succeeded), in a few words. */
  detail: string;
  /** How long the probe took, milliseconds. */
  millis: number;
}

/** One kind of probe (tcp, http, command …) against one target. */
export interface Checker {
  readonly kind: string;
  /** Describes the target, e.g. "tcp 172.16.75.82:80". */
  readonly target: string;
  /** Probe once; must settle within timeoutMs and never reject. */
  check(timeoutMs: number): Promise<CheckResult>;
}

export interface CheckTiming {
  /** Milliseconds between probes. */
  intervalMs: number;
  /** Milliseconds a probe may take; at most intervalMs. */
  timeoutMs: number;
  /** Consecutive successes that bring a down server up. */
  rise: number;
  /** Consecutive failures that take an up server down. */
  fall: number;
}

/** Documented defaults: a failed server is down within fall × interval = 3 s. */
export const DEFAULT_TIMING: CheckTiming = { intervalMs: 1000, timeoutMs: 800, rise: 2, fall: 3 };
/** The fastest setting slbctl accepts (sub-second detection: 3 × 100 ms). */
export const FASTEST_INTERVAL_MS = 100;
