// The real server's health state machine, with every transition in one place
// and a reason for each. Pure: the caller feeds results and acts on changes.
import { CheckResult, CheckTiming } from './types';

export type HealthState = 'unknown' | 'up' | 'down';

export interface HealthStatus {
  state: HealthState;
  /** Consecutive results of the same outcome so far. */
  streak: number;
  streakOk: boolean;
  last?: CheckResult;
  /** When the state last changed (ms since the epoch) and why. */
  changedAt?: number;
  reason?: string;
}

export interface Transition {
  from: HealthState;
  to: HealthState;
  reason: string;
}

export const INITIAL: HealthStatus = { state: 'unknown', streak: 0, streakOk: false };

/**
 * Feed one result. A server starts 'unknown' and is decided by its first
 * `rise` successes or `fall` failures; after that it changes state only on a
 * full streak of the other outcome, so one lost probe moves nothing.
 */
export function observe(
  status: HealthStatus,
  result: CheckResult,
  timing: Pick<CheckTiming, 'rise' | 'fall'>,
  now = Date.now(),
): { status: HealthStatus; transition?: Transition } {
  const streak = status.streakOk === result.ok ? status.streak + 1 : 1;
  const next: HealthStatus = { ...status, streak, streakOk: result.ok, last: result };
  let to: HealthState | undefined;
  if (result.ok && status.state !== 'up' && streak >= timing.rise) to = 'up';
  if (!result.ok && status.state !== 'down' && streak >= timing.fall) to = 'down';
  if (!to) return { status: next };
  const reason = result.ok ? `${streak} checks passed (${result.detail})` : `${streak} checks failed (last: ${result.detail})`;
  return { status: { ...next, state: to, changedAt: now, reason }, transition: { from: status.state, to, reason } };
}
