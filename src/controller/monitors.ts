// The health monitors of `slbctl run`: one per (service, real server) with a
// health check, each running its checker on its own timer and keeping its
// rise/fall state; a transition calls back, so the controller can plan.
import { Config, RealServer, Service, realServerKey, serviceKey } from '../model/types';
import { HealthCheck } from '../model/health';
import { Checker, CheckResult, CheckTiming } from '../health/types';
import { HealthState, HealthStatus, INITIAL, Transition, observe as observeHealth } from '../health/state';
import { nextDue } from '../health/schedule';
import { performance } from 'node:perf_hooks';
import { RealServerCounters } from './metrics';

export interface Monitor {
  service: string;
  realServer: string;
  checker: Checker;
  timing: CheckTiming;
  signature: string;
  status: HealthStatus;
  last?: CheckResult & { at: number };
  counters: RealServerCounters;
  timer?: NodeJS.Timeout;
  stopped: boolean;
}

/** The checker of one real server of a service (the controller's builds the real probes: checkerFor). */
export type MakeChecker = (s: Service, r: RealServer, hc: HealthCheck) => Checker;

export const monitorKey = (service: string, realServer: string) => `${service}|${realServer}`;

export class Monitors {
  private readonly all = new Map<string, Monitor>();
  /** Checks run, by the checker's kind; kept across reloads, as counters must be. */
  readonly checksByKind = new Map<string, { ok: number; failed: number }>();

  constructor(private readonly onTransition: (m: Monitor, t: Transition) => void) {}

  get(service: string, realServer: string): Monitor | undefined {
    return this.all.get(monitorKey(service, realServer));
  }

  stateOf(service: string, realServer: string): HealthState | undefined {
    return this.get(service, realServer)?.status.state;
  }

  /** One monitor per (service, real server) with a health check; unchanged ones keep their state across reloads. */
  set(config: Config, makeChecker: MakeChecker): void {
    const wanted = new Set<string>();
    for (const s of config.services) {
      const hc = s.healthCheck;
      if (!hc) continue;
      for (const r of s.realServers) {
        const key = monitorKey(serviceKey(s), realServerKey(r));
        wanted.add(key);
        const signature = JSON.stringify({ hc, r: { address: r.address, port: r.port }, mode: s.mode, vip: s.vip });
        const existing = this.all.get(key);
        if (existing?.signature === signature) continue;
        if (existing) stop(existing);
        const m: Monitor = {
          service: serviceKey(s),
          realServer: realServerKey(r),
          checker: makeChecker(s, r, hc),
          signature,
          timing: { intervalMs: hc.intervalMs, timeoutMs: hc.timeoutMs, rise: hc.rise, fall: hc.fall },
          status: INITIAL,
          counters: { checksOk: 0, checksFailed: 0, transitions: {} },
          stopped: false,
        };
        this.all.set(key, m);
        this.run(m);
      }
    }
    for (const [key, m] of this.all) {
      if (wanted.has(key)) continue;
      stop(m);
      this.all.delete(key);
    }
  }

  stopAll(): void {
    for (const m of this.all.values()) stop(m);
  }

  private run(m: Monitor): void {
    let due: number | undefined;
    const tick = (): void => {
      m.timer = undefined;
      if (m.stopped) return;
      due ??= performance.now();
      void m.checker.check(m.timing.timeoutMs).then((result) => {
        if (m.stopped) return;
        this.record(m, result);
        const now = performance.now();
        due = nextDue(due ?? now, m.timing.intervalMs, now);
        m.timer = setTimeout(tick, due - now);
      });
    };
    // Spread first checks over the interval: monitors started together would stay in step and start all their probes in one loop turn.
    m.timer = setTimeout(tick, Math.floor(Math.random() * m.timing.intervalMs));
  }

  private record(m: Monitor, result: CheckResult): void {
    let kind = this.checksByKind.get(m.checker.kind);
    if (!kind) this.checksByKind.set(m.checker.kind, (kind = { ok: 0, failed: 0 }));
    if (result.ok) {
      m.counters.checksOk++;
      kind.ok++;
    } else {
      m.counters.checksFailed++;
      kind.failed++;
    }
    m.last = { ok: result.ok, detail: result.detail, millis: result.millis, at: Date.now() };
    const { status, transition } = observeHealth(m.status, result, m.timing);
    m.status = status;
    if (transition) {
      m.counters.transitions[transition.to] = (m.counters.transitions[transition.to] ?? 0) + 1;
      this.onTransition(m, transition);
    }
  }
}

function stop(m: Monitor): void {
  m.stopped = true;
  if (m.timer) clearTimeout(m.timer);
}
