// What the controller asks the planner for: the config with each real
// server's weight decided by its health and by drains. Pure; the one place
// where the failure policy, drains and the sorry server are applied.
import { Config, RealServer, Service, realServerKey, serviceKey } from '../model/types';
import { HealthState } from '../health/state';

export interface Drain {
  /** serviceKey of the service, e.g. "tcp/172.16.75.84:80". */
  service: string;
  /** realServerKey, e.g. "172.16.75.82:80". */
  realServer: string;
  /** The weight the real server had when the drain began (undrain restores it without a controller). */
  weight: number;
  /** ms since the epoch. */
  since: number;
  deadline: number;
  /** draining: weight 0 while connections finish; removed: out of the service until undrain. */
  state: 'draining' | 'removed';
}

export type Decision =
  'serving' | 'no health check' | 'not yet checked' | 'down: quiesced' | 'down: removed' | 'draining' | 'drained: removed' | 'sorry server';

export interface RealServerDecision {
  address: string;
  port: number;
  configuredWeight: number;
  /** undefined: not in the kernel. */
  weight: number | undefined;
  decision: Decision;
}

export interface Effective {
  config: Config;
  /** Per serviceKey, what happened to each configured real server (and the sorry server, when it serves). */
  decisions: Map<string, RealServerDecision[]>;
}

export type HealthOf = (service: string, realServer: string) => HealthState | undefined;

function decide(
  s: Service,
  r: RealServer,
  health: HealthState | undefined,
  drain: Drain | undefined,
): { weight: number | undefined; decision: Decision } {
  if (drain?.state === 'removed') return { weight: undefined, decision: 'drained: removed' };
  if (drain) return { weight: 0, decision: 'draining' };
  if (!s.healthCheck) return { weight: r.weight, decision: 'no health check' };
  if (health === 'up') return { weight: r.weight, decision: 'serving' };
  if (health === 'down') {
    // UDP has no connection end: a quiesced RS would keep its flows until they time out, so a dead UDP RS leaves the service.
    const remove = s.failurePolicy === 'remove' || s.protocol === 'udp';
    return remove ? { weight: undefined, decision: 'down: removed' } : { weight: 0, decision: 'down: quiesced' };
  }
  // Not yet decided (just started or restarted): keep serving, as a restart of slbctl must not black out a live service.
  return { weight: r.weight, decision: 'not yet checked' };
}

export function effectiveConfig(config: Config, healthOf: HealthOf, drains: readonly Drain[]): Effective {
  const decisions = new Map<string, RealServerDecision[]>();
  const services = config.services.map((s): Service => {
    const key = serviceKey(s);
    const list: RealServerDecision[] = s.realServers.map((r) => {
      const rk = realServerKey(r);
      const d = decide(
        s,
        r,
        healthOf(key, rk),
        drains.find((x) => x.service === key && x.realServer === rk),
      );
      return { address: r.address, port: r.port, configuredWeight: r.weight, ...d };
    });
    // The sorry server serves only when every real server is known down or drained, not while they are still being checked.
    const allOut = list.every((d) => d.decision.startsWith('down') || d.decision.startsWith('drain'));
    if (s.sorryServer && allOut) {
      list.push({ address: s.sorryServer.address, port: s.sorryServer.port, configuredWeight: 1, weight: 1, decision: 'sorry server' });
      decisions.set(key, list);
      return { ...s, realServers: [{ ...s.sorryServer, weight: 1 }] };
    }
    decisions.set(key, list);
    // Unchanged by health and drains: the config's own object, so the planner's digest of it is not worked out again.
    if (list.every((d) => d.weight === d.configuredWeight)) return s;
    const realServers = list
      .filter((d) => d.weight !== undefined)
      .map((d) => ({ address: d.address, port: d.port, weight: d.weight as number }));
    return { ...s, realServers };
  });
  return { config: { ...config, services }, decisions };
}
