// How full the fullnat services' source-NAT addresses are, sampled from
// conntrack every few seconds while there are any: a gauge for /metrics, and
// a warning in the log when an address passes SNAT_WARN_RATIO of its ports
// (port range x real servers), before new connections start to fail.
import { ServiceState } from '../model/state';
import { Flow, listFlows } from '../kernel/conntrack/conntrack';
import { SNAT_WARN_RATIO, SnatUse, snatUse } from '../kernel/conntrack/snat-use';

export const SNAT_SAMPLE_MS = 5000;

type Log = (level: 'info' | 'warn', event: string, message: string, fields?: Record<string, string | number>) => void;

export class SnatWatch {
  private services: readonly ServiceState[] = [];
  private last: SnatUse[] = [];
  private readonly warned = new Set<string>();
  private timer: NodeJS.Timeout | undefined;
  private sampling = false;

  constructor(
    private readonly log: Log,
    private readonly everyMs = SNAT_SAMPLE_MS,
    private readonly flowsNow: () => Promise<Flow[] | undefined> = listFlows,
  ) {}

  /** The services as last planned: their source addresses are the ones watched. */
  track(services: readonly ServiceState[]): void {
    this.services = services.filter((s) => s.mode === 'fullnat' && s.snatAddress);
    if (this.services.length === 0) {
      this.last = [];
      if (this.timer) clearInterval(this.timer);
      this.timer = undefined;
    } else if (!this.timer) {
      this.timer = setInterval(() => void this.sample(), this.everyMs);
      this.timer.unref();
      void this.sample();
    }
  }

  get use(): SnatUse[] {
    return this.last;
  }

  /** One listing of conntrack; skipped while the previous one runs (a big table takes a while). */
  async sample(): Promise<void> {
    if (this.sampling || this.services.length === 0) return;
    this.sampling = true;
    try {
      const flows = await this.flowsNow();
      this.last = flows ? snatUse(this.services, flows) : [];
    } finally {
      this.sampling = false;
    }
    for (const u of this.last) {
      const fields = { address: u.address, used: u.used, capacity: u.capacity };
      if (u.ratio >= SNAT_WARN_RATIO && !this.warned.has(u.address)) {
        this.warned.add(u.address);
        this.log(
          'warn',
          'snat',
          `source address ${u.address} has ${u.used} of its ${u.capacity} ports in use (${(u.ratio * 100).toFixed(0)}%); add addresses to snatAddresses, widen snatPorts or shorten conntrack.tcpTimeWait before new connections fail`,
          fields,
        );
      } else if (u.ratio < SNAT_WARN_RATIO * 0.9 && this.warned.delete(u.address)) {
        this.log('info', 'snat', `source address ${u.address} is back to ${(u.ratio * 100).toFixed(0)}% of its ports`, fields);
      }
    }
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }
}
