// What the kernel said of each service at the controller's last plan: its
// traffic counters and its real servers', and rates derived from two looks.
// For status and /metrics; pure bookkeeping.
import { realServerKey, serviceKey } from '../model/types';
import { KernelState } from '../model/state';
import { monitorKey } from './monitors';

export type KernelRs = { active?: number; inactive?: number; packets?: number; bytes?: number };
export type KernelView = Map<string, { packets?: number; bytes?: number; realServers: Map<string, KernelRs> }>;
export type Rates = Map<string, { packets: number; bytes: number }>;

export class KernelCounters {
  view: KernelView = new Map();
  /** Per second since the previous look; per service (its key) and per real server (monitorKey). */
  rates: Rates = new Map();
  private previous: { at: number; view: KernelView } | undefined;

  absorb(kernel: KernelState, now = Date.now()): void {
    const view: KernelView = new Map();
    for (const s of kernel.services) {
      const realServers = new Map<string, KernelRs>();
      for (const r of s.realServers) {
        realServers.set(realServerKey(r), {
          ...(r.connections ? { active: r.connections.active, inactive: r.connections.inactive } : {}),
          ...(r.counters ? { packets: r.counters.packets, bytes: r.counters.bytes } : {}),
        });
      }
      view.set(serviceKey(s), {
        ...(s.counters ? { packets: s.counters.packets, bytes: s.counters.bytes } : {}),
        realServers,
      });
    }
    const prev = this.previous;
    if (prev && now > prev.at) {
      const dt = (now - prev.at) / 1000;
      const rate = (a: number | undefined, b: number | undefined) =>
        a !== undefined && b !== undefined && a >= b ? (a - b) / dt : undefined;
      this.rates = new Map();
      for (const [sk, s] of view) {
        const p = prev.view.get(sk);
        const sp = rate(s.packets, p?.packets);
        if (sp !== undefined) this.rates.set(sk, { packets: sp, bytes: rate(s.bytes, p?.bytes) ?? 0 });
        for (const [rk, r] of s.realServers) {
          const pr = p?.realServers.get(rk);
          const rp = rate(r.packets, pr?.packets);
          if (rp !== undefined) this.rates.set(monitorKey(sk, rk), { packets: rp, bytes: rate(r.bytes, pr?.bytes) ?? 0 });
        }
      }
    }
    this.view = view;
    this.previous = { at: now, view };
  }
}
