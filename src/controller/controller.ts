// The long-running controller (`slbctl run`): health checks decide each real
// server's weight, and every change (health, reload, drain, drift) goes
// through the same observe -> plan -> execute path as `slbctl apply`.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { BackendChoice, Config, realServerKey, serviceKey } from '../model/types';
import { KernelSession, closeSession, executePlan, openSession, planConfig } from '../engine/engine';
import { formatPlan } from '../plan/format';
import { loadConfigFile } from '../model/load';
import { Monitors, monitorKey } from './monitors';
import { checkerFor } from './checkers';
import { KernelCounters } from './kernel-view';
import { refuseWhatCannotRun } from './preflight';
import { closeIcmpSockets } from '../health/icmp';
import { closeVipPathCaptures } from '../health/vip-path';
import { Effective, RealServerDecision, effectiveConfig } from './effective';
import { Logger } from './log';
import { APPLY_BUCKETS, MetricsSnapshot, RealServerCounters } from './metrics';
import { MetricsServer, serveMetrics } from './metrics-server';
import { ControllerRecord, ServiceRuntime, readDrains, removeControllerRecord, writeControllerRecord } from './records';
import { Lock } from '../records/lock';
import { Rtnl } from '../kernel/rtnl/rtnl';
import { readSysctl } from '../kernel/rtnl/sysctl';
import { recordFile } from '../records/netns';
import { isL7 } from '../model/types';
import { hasIntent, readOwnership } from '../records/ownership';
import { setRecordReporter } from '../records/netns';
import { BusyError, PreflightError } from '../util/errors';
import { BirdSpeaker, maglevByVip, resolveSpeaker } from '../ha/bird';
import { SnatWatch } from './snat-watch';
import { VrrpPair, resolveVrrp } from '../ha/vrrp';

/** The default resync is never shorter than this (see defaultResync). */
const MIN_DEFAULT_RESYNC_MS = 1000;
/** How often a resync with nothing to do rewrites the status record (10,000 services make it megabytes). */
const RECORD_REFRESH_MS = 10_000;

export interface ControllerOptions {
  file: string;
  backend?: BackendChoice;
  logger: Logger;
  /** Where /metrics listens; undefined: no metrics endpoint. */
  metrics?: { host: string; port: number };
  /** How often the kernel is compared with the desired state (default: the shortest check interval, at least 1 s). */
  resyncMs?: number;
  /** How long a reconcile waits for another writer of the namespace (apply --force, drain) before it tries again later. */
  waitMs?: number;
}

/** The VIPs with a service that has a real server with a weight (healthy, not drained). */
function servingVips(eff: Effective): Set<string> {
  return new Set(eff.config.services.filter((s) => s.realServers.some((r) => r.weight > 0)).map((s) => s.vip));
}

export class Controller {
  private config: Config;
  private k: KernelSession | undefined;
  private readonly monitors = new Monitors((m, t) => {
    this.log(t.to === 'down' ? 'warn' : 'info', 'health', `${m.service} ${m.realServer}: ${t.from} -> ${t.to}, ${t.reason}`, {
      service: m.service,
      realServer: m.realServer,
      from: t.from,
      to: t.to,
      check: m.checker.target,
    });
    this.inputs++;
    void this.reconcile(`health ${m.realServer} ${t.to}`);
  });
  /** Bumped whenever what the effective config is made of changes (health, reload); part of the settled state. */
  private inputs = 0;
  /** Bumped by every link or address notification of the namespace (a VIP removed by hand is drift too). */
  private hostChanges = 0;
  /** Bumped by every neighbour notification (a DSR real server's MAC). */
  private neighbourChanges = 0;
  private interfaceWatch: { close(): void } | undefined;
  /** What the kernel, the host and the inputs were at the last plan that found nothing to do; a resync that finds the same skips planning. */
  private settled: string | undefined;
  /** The sysctls the last plan read. */
  private sysctlKeys: string[] = [];
  /** When the kernel's traffic counters were last read (a plan started from a record reads none). */
  private countersAt = 0;
  private countersBusy: Promise<void> | undefined;
  private resyncMs = MIN_DEFAULT_RESYNC_MS;
  private recordAt = 0;
  private recorded = '';
  /** The effective config last found in the kernel or put there: an unchanged one with a non-empty plan is drift. */
  private lastApplied: string | undefined;
  private busy: Promise<void> | undefined;
  private again: string | undefined;
  private stopped = false;
  private resyncTimer: NodeJS.Timeout | undefined;
  private watcher: fs.FSWatcher | undefined;
  private reloadTimer: NodeJS.Timeout | undefined;
  private metricsServer: MetricsServer | undefined;
  private decisions = new Map<string, RealServerDecision[]>();
  private readonly counters = new KernelCounters();
  /** ha.bgp: the BGP speaker that announces the VIPs while their services have a real server. */
  private speaker: BirdSpeaker | undefined;
  /** ha.vrrp: keepalived (and conntrackd or the IPVS sync daemons with ha.sync), which hold the VIPs on whichever balancer is master. */
  private vrrp: VrrpPair | undefined;
  /** DSR on nftables: real servers' MACs seen so far, and those that answer no ARP now. */
  private readonly macs = new Map<string, string>();
  private unresolved = '';
  private readonly startedAt = Date.now();
  private readonly loopDelay = monitorEventLoopDelay({ resolution: 10 });
  private readonly snat = new SnatWatch((level, event, message, fields) => this.log(level, event, message, fields));
  private readonly stats = {
    applies: { ok: 0, failed: 0 },
    buckets: APPLY_BUCKETS.map((le) => ({ le, count: 0 })),
    seconds: { sum: 0, count: 0 },
    driftRepairs: 0,
    resyncs: { planned: 0, skipped: 0 },
    reloads: { ok: 0, failed: 0 },
  };

  private constructor(
    private readonly o: ControllerOptions,
    config: Config,
  ) {
    this.config = config;
  }

  /** Load the config, open the kernel, apply once; throws (and leaves nothing running) when any of that fails. */
  static async start(o: ControllerOptions): Promise<Controller> {
    const c = new Controller(o, loadConfigFile(o.file));
    // A stale record (of a namespace that had this one's inode) is reported in the log, as one line of its format.
    setRecordReporter((m) => c.log('warn', 'record', m));
    c.loopDelay.enable();
    c.k = await openSession(o.backend ?? c.config.backend);
    try {
      // Before the first plan: a change between its read of the interfaces and this subscription would otherwise go unseen.
      c.interfaceWatch = Rtnl.watchInterfaces((what) => {
        if (what === 'interfaces') c.hostChanges++;
        else c.neighbourChanges++;
      });
      // Opening the session reads; what can still refuse comes before the first change, so a refusal leaves the kernel as it was.
      if (o.metrics) {
        const where = `${o.metrics.host}:${o.metrics.port}`;
        c.metricsServer = await serveMetrics(o.metrics, (scrape) => c.freshSnapshot(scrape)).catch((caught: unknown) => {
          const e = caught as NodeJS.ErrnoException;
          throw new PreflightError(
            `cannot serve metrics on ${where}: ${e.code === 'EADDRINUSE' ? 'the port is in use' : e.message}; choose another with --metrics ADDRESS:PORT, or --metrics off`,
          );
        });
      }
      refuseWhatCannotRun(c.config);
      // An interface ha.vrrp or ha.sync names that this host lacks: refused before the first apply changes anything.
      resolveVrrp(c.config, await c.k.rtnl.interfaces(), c.k.backend);
      c.log(
        'info',
        'start',
        `backend ${c.k.backend}, ${c.config.services.length} service${c.config.services.length === 1 ? '' : 's'} from ${o.file}`,
        { pid: process.pid },
      );
      if (o.metrics)
        c.log(
          'info',
          'metrics',
          `serving http://${o.metrics.host.includes(':') ? `[${o.metrics.host}]` : o.metrics.host}:${o.metrics.port}/metrics`,
        );
      // The first apply, before any checker runs: what the kernel or this host cannot do is refused at once.
      await c.reconcileOnce('start', true);
      await c.startSpeaker();
      await c.startVrrp();
      c.setMonitors();
    } catch (e) {
      await c.stop();
      throw e;
    }
    const resync = o.resyncMs ?? c.defaultResync();
    c.resyncMs = resync;
    c.resyncTimer = setInterval(() => void c.reconcile('resync'), resync);
    c.watch();
    c.log('info', 'start', `running: kernel compared with the config every ${resync} ms; reload with SIGHUP or by saving ${o.file}`);
    return c;
  }

  get backend(): string {
    return this.k?.backend ?? 'none';
  }

  /**
   * The shortest check interval, but at least a second. A resync reads the
   * whole kernel state and plans against it, only to catch changes made
   * behind slbctl's back (health changes reconcile at once, without waiting
   * for it). Measured with 200 services x 2 servers at 100 ms (bench:checks):
   * resyncing at the check interval took the controller's CPU per check from
   * 153 to 213 us and the checks run from 81 % to 47 % of the configured rate.
   */
  private defaultResync(): number {
    const intervals = this.config.services.flatMap((s) => (s.healthCheck ? [s.healthCheck.intervalMs] : []));
    return Math.max(MIN_DEFAULT_RESYNC_MS, intervals.length ? Math.min(...intervals) : 0);
  }

  private log(
    level: 'info' | 'warn' | 'error',
    event: string,
    message: string,
    fields?: Record<string, string | number | boolean | undefined | string[]>,
  ): void {
    this.o.logger.log(level, event, message, fields);
  }

  private effective(config = this.config): Effective {
    return effectiveConfig(config, (s, r) => this.monitors.stateOf(s, r), readDrains());
  }

  /** ha.bgp: BIRD, peering with the routers; the VIPs to announce follow every reconcile. */
  private async startSpeaker(): Promise<void> {
    const bgp = this.config.ha?.bgp;
    if (!bgp || !this.k) return;
    const config = resolveSpeaker(bgp, await this.k.rtnl.interfaces());
    this.speaker = await BirdSpeaker.start(config, (level, message) => this.log(level, 'bgp', message));
    this.speaker.onAgreementChange = () => this.writeRecord();
    await this.announce(this.effective());
  }

  /** ha.vrrp: after the first apply, so a balancer that becomes master at once has its services in place. */
  private async startVrrp(): Promise<void> {
    if (!this.config.ha?.vrrp || !this.k) return;
    this.vrrp = await VrrpPair.start(
      this.config,
      await this.k.rtnl.interfaces(),
      servingVips(this.effective()).size > 0,
      (level, event, message, fields) => {
        this.log(level, event, message, fields);
        // `slbctl status` shows the state: the record follows each transition, not only each reconcile.
        if (fields?.state) this.writeRecord();
      },
    );
  }

  /**
   * A VIP is announced while one of its services has a real server with a
   * weight (healthy, not drained); else it is withdrawn, so the routers send
   * its flows to the other balancers. Under VRRP (one instance for all VIPs)
   * the balancer gives the VIPs up when no service has one.
   */
  private async announce(eff: Effective): Promise<void> {
    const vips = servingVips(eff);
    this.vrrp?.keepalived.track(vips.size > 0);
    if (!this.speaker) return;
    await this.speaker.announce(
      [...vips],
      maglevByVip(
        eff.config.services.filter((s) => vips.has(s.vip)),
        this.backend,
      ),
    );
  }

  private setMonitors(): void {
    const rtnl = this.k?.rtnl;
    if (rtnl) this.monitors.set(this.config, (s, r, hc) => checkerFor(s, r, hc, rtnl));
  }

  /** Bring the kernel to the effective config; calls while one runs coalesce into one more run. */
  reconcile(cause: string): Promise<void> {
    if (this.stopped) return Promise.resolve();
    if (this.busy) {
      // A resync during a run is that run: queuing one would keep the loop planning back to back when a plan takes longer than the resync interval, starving the checks.
      if (cause !== 'resync') this.again = cause;
      return this.busy;
    }
    this.busy = (async () => {
      let next: string | undefined = cause;
      while (next && !this.stopped) {
        this.again = undefined;
        await this.reconcileOnce(next);
        next = this.again;
      }
    })().finally(() => {
      this.busy = undefined;
    });
    return this.busy;
  }

  /** `first`: the apply at start-up, which waits for ARP and throws what fails instead of retrying. */
  /**
   * Everything a plan with nothing to do depended on, read cheaply: the
   * backend's stamp (nftables: one GETGEN), link and address notifications,
   * the health and reload inputs, the drains, the sysctls the plan read, and
   * the ownership record other writers change. undefined when the backend has
   * no stamp, L7 services run (HAProxy's state has none) or a DSR real server
   * has no MAC yet: then every resync plans.
   */
  private async settledState(k: KernelSession): Promise<string | undefined> {
    // HAProxy's state has no stamp; a DSR real server without a MAC is looked for again at every resync.
    if (this.config.services.some((s) => isL7(s.protocol)) || this.unresolved !== '') return undefined;
    const stamp = await k.driver.stamp?.();
    if (stamp === undefined) return undefined;
    let ownership = '';
    try {
      const st = fs.statSync(recordFile('ownership'));
      ownership = `${st.ino}/${st.size}/${st.mtimeMs}`;
    } catch {
      // No record.
    }
    const sysctls = this.sysctlKeys.map((key) => {
      try {
        return readSysctl(key);
      } catch {
        return '?';
      }
    });
    // DSR on a backend that rewrites MACs plans with the real servers' MACs: the neighbour table counts too.
    const macs = k.impl.capabilities.dsrNeedsMacs && this.config.services.some((s) => s.mode === 'dsr') ? this.neighbourChanges : 0;
    return JSON.stringify([stamp, this.hostChanges, macs, this.inputs, readDrains(), sysctls, ownership]);
  }

  private async reconcileOnce(cause: string, first = false): Promise<void> {
    const k = this.k;
    if (!k) return;
    // Taken before the plan: whatever changes during it shows as a different state at the next resync.
    const state = await this.settledState(k).catch(() => undefined);
    if (cause === 'resync' && state !== undefined && state === this.settled) {
      this.stats.resyncs.skipped++;
      // The status record is rewritten when what it shows moved (checks ran, counters were read), and less often.
      if (this.recordContent() !== this.recorded && Date.now() - this.recordAt >= RECORD_REFRESH_MS) this.writeRecord();
      return;
    }
    if (cause === 'resync') this.stats.resyncs.planned++;
    this.settled = undefined;
    const eff = this.effective();
    const signature = JSON.stringify(eff.config.services);
    const started = process.hrtime.bigint();
    let lock: Lock | undefined;
    try {
      // A DSR real server that stops answering ARP (powered off) must not stall or fail the plan for the others.
      // From the record when the kernel shows no change since slbctl's last commit: a listing of 10,000 services is seconds.
      const options = { knownMacs: this.macs, arpWaitMs: first ? 2000 : 0, dropUnresolved: true, fromRecord: true };
      // Most resyncs find nothing to do: they plan without the write lock, so drain, undrain and a forced apply
      // are not starved by a controller that would otherwise hold it nearly all the time. A change is planned
      // again as the namespace's one writer before it is made.
      let plan = await planConfig(k, eff.config, options);
      // An ownership record with "adding" entries (an apply was killed) is settled as the writer too.
      if (plan.ops.length > 0 || (plan.observed.ownership !== undefined && hasIntent(plan.observed.ownership))) {
        lock = await Lock.acquire('write', this.o.waitMs ?? 5000);
        // Planned again as the writer, unless nothing the plan read has moved since before it (at 10,000 services,
        // after a hand edit, that plan listed the tables: seconds).
        const now = state === undefined ? undefined : await this.settledState(k).catch(() => undefined);
        if (now === undefined || now !== state) plan = await planConfig(k, eff.config, options);
      }
      for (const s of plan.desired.services) for (const r of s.realServers) if (r.mac) this.macs.set(r.address, r.mac);
      this.snat.track(plan.desired.services);
      const unresolved = plan.unresolved.join(', ');
      if (unresolved !== this.unresolved) {
        if (unresolved) this.log('warn', 'arp', `no MAC for ${unresolved}: left out of their DSR services until they answer ARP`);
        else this.log('info', 'arp', `${this.unresolved}: MAC known again`);
        this.unresolved = unresolved;
      }
      this.decisions = eff.decisions;
      this.sysctlKeys = Object.keys(plan.desired.sysctls);
      // A plan started from a record has no counters: the last ones read stay (metrics reads fresh ones when asked).
      if (!plan.observed.kernel.nftRecorded) {
        this.counters.absorb(plan.observed.kernel);
        this.countersAt = Date.now();
      }
      if (plan.ops.length > 0) {
        const drift = this.lastApplied === signature;
        await executePlan(k, plan);
        const seconds = Number(process.hrtime.bigint() - started) / 1e9;
        this.stats.applies.ok++;
        this.stats.seconds.sum += seconds;
        this.stats.seconds.count++;
        for (const b of this.stats.buckets) if (seconds <= b.le) b.count++;
        const summary = formatPlan(plan.ops)
          .split('\n')
          .filter((l) => l.trim() && !/^\d+ operation/.test(l))
          .map((l) => l.trim());
        if (drift) {
          this.stats.driftRepairs++;
          this.log(
            'warn',
            'drift',
            `the kernel no longer matched the config (changed outside slbctl); restored with ${plan.ops.length} operation${plan.ops.length === 1 ? '' : 's'}`,
            { ops: summary },
          );
        } else {
          this.log(
            'info',
            'apply',
            `${plan.ops.length} operation${plan.ops.length === 1 ? '' : 's'} applied in ${(seconds * 1000).toFixed(1)} ms (${cause})`,
            { ops: summary },
          );
        }
        // What the backend does once a change is in (nftables: a removed UDP server's flows expired).
        await k.driver.afterApply(plan, (line) => this.log('info', 'expire', line));
      } else if (lock) {
        // Nothing to change; this settles the ownership record a killed apply left (see executePlan).
        await executePlan(k, plan);
      } else {
        this.settled = state;
      }
      this.lastApplied = signature;
      await this.announce(eff);
    } catch (e) {
      if (first) throw e;
      this.stats.applies.failed++;
      // lastApplied stays: if the wanted state is unchanged, what the next run repairs is still drift
      // (a hand edit can race with a plan, e.g. ipvsadm -D between observe and execute).
      this.log(
        e instanceof BusyError ? 'warn' : 'error',
        e instanceof BusyError ? 'busy' : 'apply',
        `${cause}: ${(e as Error).message}; the kernel was left as it was and slbctl retries at the next resync`,
      );
    } finally {
      lock?.release();
    }
    this.writeRecord();
  }

  private runtime(): ServiceRuntime[] {
    return this.config.services.map((s) => {
      const key = serviceKey(s);
      const decisions = this.decisions.get(key) ?? [];
      const rates = this.counters.rates.get(key);
      return {
        key,
        name: s.name,
        ...(rates ? { rates } : {}),
        realServers: decisions.map((d) => {
          const rk = realServerKey(d);
          const m = this.monitors.get(key, rk);
          const rate = this.counters.rates.get(monitorKey(key, rk));
          return {
            ...d,
            health: m ? m.status.state : ('unchecked' as const),
            ...(m?.last ? { last: m.last } : {}),
            ...(m?.status.reason ? { reason: m.status.reason } : {}),
            ...(m?.status.changedAt ? { changedAt: m.status.changedAt } : {}),
            ...(rate ? { rates: rate } : {}),
          };
        }),
      };
    });
  }

  /** What the status record shows besides what only a plan changes (decisions): the checks run and the counters read. */
  private recordContent(): string {
    let checks = 0;
    for (const c of this.monitors.checksByKind.values()) checks += c.ok + c.failed;
    return `${checks}/${this.countersAt}`;
  }

  private writeRecord(): void {
    if (this.stopped) return;
    this.recordAt = Date.now();
    this.recorded = this.recordContent();
    const record: ControllerRecord = {
      pid: process.pid,
      file: path.resolve(this.o.file),
      startedAt: this.startedAt,
      updatedAt: Date.now(),
      backend: this.backend,
      ...(this.o.metrics ? { metrics: `${this.o.metrics.host}:${this.o.metrics.port}` } : {}),
      services: this.runtime(),
      ...(this.speaker
        ? {
            bgp: {
              announced: this.speaker.vips,
              peers: this.speaker.peers,
              ...(this.speaker.disagreements.length ? { maglevDisagreements: this.speaker.disagreements } : {}),
            },
          }
        : {}),
      ...(this.vrrp && this.config.ha?.vrrp
        ? {
            vrrp: {
              ...(this.vrrp.keepalived.state ? { state: this.vrrp.keepalived.state } : {}),
              group: this.config.ha.vrrp.virtualRouterId,
              priority: this.config.ha.vrrp.priority,
            },
          }
        : {}),
      ...(this.vrrp?.ipvsSync ? { ipvsSyncDaemons: this.vrrp.ipvsSync.owned.map((d) => d.state) } : {}),
    };
    try {
      writeControllerRecord(record);
    } catch (e) {
      this.log('warn', 'record', `cannot write the status record: ${(e as Error).message}`);
    }
  }

  metricsSnapshot(resetLoopDelay = true): MetricsSnapshot {
    // By key, not by search: a scrape of 1,000 real servers must not scan every service or monitor for each one.
    const services = new Map(this.config.services.map((s) => [serviceKey(s), s]));
    return {
      backend: this.backend,
      services: this.runtime().map((s) => {
        const svc = services.get(s.key);
        const counters = new Map<string, RealServerCounters>();
        for (const r of s.realServers) {
          const m = this.monitors.get(s.key, realServerKey(r));
          if (m) counters.set(m.realServer, m.counters);
        }
        const k = this.counters.view.get(s.key);
        return {
          ...s,
          mode: svc?.mode ?? '',
          protocol: svc?.protocol ?? '',
          counters,
          kernel: k?.realServers ?? new Map(),
          ...(k?.packets !== undefined ? { packets: k.packets } : {}),
          ...(k?.bytes !== undefined ? { bytes: k.bytes } : {}),
        };
      }),
      applies: { ...this.stats.applies },
      applyBuckets: this.stats.buckets.map((b) => ({ ...b })),
      applySeconds: { ...this.stats.seconds },
      driftRepairs: this.stats.driftRepairs,
      resyncs: { ...this.stats.resyncs },
      reloads: { ...this.stats.reloads },
      checksByKind: [...this.monitors.checksByKind].map(([kind, c]) => ({ kind, ...c })),
      loopDelay: this.loopDelayQuantiles(resetLoopDelay),
      snat: this.snat.use,
      startedAt: this.startedAt,
    };
  }

  /** The loop's delay since the previous reset. */
  private loopDelayQuantiles(reset: boolean): { quantile: number; seconds: number }[] {
    const h = this.loopDelay;
    const q = [0.5, 0.99, 1].map((quantile) => ({ quantile, seconds: (quantile === 1 ? h.max : h.percentile(quantile * 100)) / 1e9 }));
    if (reset) h.reset();
    return q.map((x) => ({ ...x, seconds: Number.isFinite(x.seconds) ? x.seconds : 0 }));
  }

  /**
   * The kernel's traffic counters, read when older than a resync interval:
   * resyncs that start from a record read none, so a scrape asks for them.
   * Concurrent scrapes share one read.
   */
  private async freshCounters(): Promise<void> {
    const k = this.k;
    if (!k || Date.now() - this.countersAt < this.resyncMs) return;
    this.countersBusy ??= (async () => {
      try {
        const { kernel } = await k.driver.observe(readOwnership());
        this.counters.absorb(kernel);
        this.countersAt = Date.now();
      } catch (e) {
        this.log('warn', 'metrics', `cannot read the kernel's counters: ${(e as Error).message}`);
      } finally {
        this.countersBusy = undefined;
      }
    })();
    await this.countersBusy;
  }

  /** For /metrics: a scrape's snapshot restarts the event-loop delay window, a periodic one does not. */
  async freshSnapshot(scrape: boolean): Promise<MetricsSnapshot> {
    await this.freshCounters();
    return this.metricsSnapshot(scrape);
  }

  /** Read the file again; an invalid or unresolvable one is logged and the running config kept. */
  async reload(reason: string): Promise<void> {
    if (this.stopped || !this.k) return;
    let next: Config;
    try {
      next = loadConfigFile(this.o.file);
      if (!this.o.backend && next.backend !== this.config.backend) {
        throw new Error(`backend changed from ${this.config.backend} to ${next.backend}; that needs a restart of slbctl run`);
      }
      // Resolve against this host before taking it (an interface that does not exist, a foreign IPVS service …).
      // From the record and the memo of the last plan: a reload that changes a few services resolves only those.
      await planConfig(this.k, this.effective(next).config, { knownMacs: this.macs, arpWaitMs: 0, dropUnresolved: true, fromRecord: true });
    } catch (e) {
      this.stats.reloads.failed++;
      this.log('error', 'reload', `${reason}: ${this.o.file} not taken, the running config stays: ${(e as Error).message}`);
      return;
    }
    if (JSON.stringify(next) === JSON.stringify(this.config)) {
      this.log('info', 'reload', `${reason}: ${this.o.file} unchanged`);
      return;
    }
    const haChanged = JSON.stringify(next.ha) !== JSON.stringify(this.config.ha);
    this.config = next;
    this.inputs++;
    this.stats.reloads.ok++;
    this.setMonitors();
    if (haChanged) {
      await this.speaker?.stop();
      this.speaker = undefined;
      await this.vrrp?.stop();
      this.vrrp = undefined;
      try {
        await this.startSpeaker();
      } catch (e) {
        this.log('error', 'bgp', `reload: the BGP speaker did not start, no VIP is announced: ${(e as Error).message}`);
      }
      try {
        await this.startVrrp();
      } catch (e) {
        this.log('error', 'vrrp', `reload: keepalived did not start, this balancer holds no VIP: ${(e as Error).message}`);
      }
    } else await this.vrrp?.update(next);
    this.log('info', 'reload', `${reason}: ${this.o.file} taken, ${next.services.length} service${next.services.length === 1 ? '' : 's'}`);
    await this.reconcile('reload');
  }

  /** Reload when the file is saved (editors often replace it: watch its folder). */
  private watch(): void {
    const dir = path.dirname(path.resolve(this.o.file));
    const base = path.basename(this.o.file);
    try {
      this.watcher = fs.watch(dir, (_event, name) => {
        if (name !== base) return;
        if (this.reloadTimer) clearTimeout(this.reloadTimer);
        this.reloadTimer = setTimeout(() => void this.reload('file changed'), 200);
      });
    } catch (e) {
      this.log('warn', 'reload', `cannot watch ${dir} (${(e as Error).message}); reload with SIGHUP`);
    }
  }

  /** Stop checking and watching. The kernel keeps serving what was programmed. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.loopDelay.disable();
    if (this.resyncTimer) clearInterval(this.resyncTimer);
    if (this.reloadTimer) clearTimeout(this.reloadTimer);
    this.watcher?.close();
    this.interfaceWatch?.close();
    this.monitors.stopAll();
    this.snat.stop();
    if (this.metricsServer) {
      await this.metricsServer.close();
    }
    await this.busy;
    // Before anything else ends: the routers withdraw this balancer's VIPs at once.
    await this.speaker?.stop();
    this.speaker = undefined;
    // keepalived sends priority 0 as it ends: the standby takes the VIPs over at once.
    await this.vrrp?.stop();
    this.vrrp = undefined;
    if (this.k) closeSession(this.k);
    this.k = undefined;
    closeIcmpSockets();
    closeVipPathCaptures();
    removeControllerRecord(process.pid);
  }
}
