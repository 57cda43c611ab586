// The health monitors of `slbctl run`: one per (service, real server) with a
// health check, each running its checker on its own timer and keeping its
// rise/fall state; a transition calls back, so the controller can plan.
import { Config, realServerKey, serviceKey } from '../model/types';
import { Checker, CheckResult, CheckTiming } from '../health/types';
import { HealthState, HealthStatus, INITIAL, Transition, observe as observeHealth } from '../health/state';
import { Rtnl } from '../kernel/rtnl/rtnl';
import { checkerFor } from './checkers';
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

export const monitorKey = (service: string, realServer: string) => `${service}|${realServer}`;

export class Monitors {
  private readonly all = new Map<string, Monitor>();

  constructor(private readonly onTransition: (m: Monitor, t: Transition) => void) {}

  get(service: string, realServer: string): Monitor | undefined {
    return this.all.get(monitorKey(service, realServer));
  }

  stateOf(service: string, realServer: string): HealthState | undefined {
    return this.get(service, realServer)?.status.state;
  }

  /** Every monitor of one service. */
  ofService(service: string): Monitor[] {
    return [...this.all.values()].filter((m) => m.service === service);
  }

  /** One monitor per (service, real server) with a health check; unchanged ones keep their state across reloads. */
  set(config: Config, rtnl: Rtnl): void {
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
          checker: checkerFor(s, r, hc, rtnl),
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
    const tick = async () => {
      if (m.stopped) return;
      const started = Date.now();
      const result = await m.checker.check(m.timing.timeoutMs);
      if (m.stopped) return;
      if (result.ok) m.counters.checksOk++;
      else m.counters.checksFailed++;
      m.last = { ...result, at: Date.now() };
      const { status, transition } = observeHealth(m.status, result, m.timing);
      m.status = status;
      if (transition) {
        m.counters.transitions[transition.to] = (m.counters.transitions[transition.to] ?? 0) + 1;
        this.onTransition(m, transition);
      }
      m.timer = setTimeout(() => void tick(), Math.max(0, started + m.timing.intervalMs - Date.now()));
    };
    // Spread first checks over the interval: monitors started together would stay in step and start all their probes in one loop turn.
    m.timer = setTimeout(() => void tick(), Math.floor(Math.random() * m.timing.intervalMs));
  }
}

function stop(m: Monitor): void {
  m.stopped = true;
  if (m.timer) clearTimeout(m.timer);
}
