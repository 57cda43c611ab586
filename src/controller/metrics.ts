// Prometheus text exposition of the controller's state (served by
// metrics-server.ts, on 127.0.0.1 by default: metrics are not for the world).
import { ServiceRuntime } from './records';
import type { SnatUse } from '../kernel/conntrack/snat-use';

export interface RealServerCounters {
  checksOk: number;
  checksFailed: number;
  /** Transitions by the state entered. */
  transitions: Record<string, number>;
}

/** A real server's connections and traffic as the kernel counts them (IPVS). */
export interface KernelRealServer {
  active?: number;
  inactive?: number;
  packets?: number;
  bytes?: number;
}

export interface MetricsSnapshot {
  backend: string;
  services: (ServiceRuntime & {
    mode: string;
    protocol: string;
    packets?: number;
    bytes?: number;
    counters: Map<string, RealServerCounters>;
    kernel: Map<string, KernelRealServer>;
  })[];
  applies: { ok: number; failed: number };
  /** Apply durations in seconds, by histogram bucket upper bound. */
  applyBuckets: { le: number; count: number }[];
  applySeconds: { sum: number; count: number };
  driftRepairs: number;
  /** Resyncs that planned, and those skipped because nothing they depend on had changed (the nftables generation held). */
  resyncs?: { planned: number; skipped: number };
  reloads: { ok: number; failed: number };
  /** How late the event loop ran what was due, seconds, by quantile, since the previous scrape. */
  loopDelay: { quantile: number; seconds: number }[];
  /** Checks run by all monitors, by kind (tcp, http, tcp-vip …). */
  checksByKind: { kind: string; ok: number; failed: number }[];
  /** fullnat's source addresses and their ports in use (conntrack, sampled every few seconds). */
  snat?: readonly SnatUse[];
  startedAt: number;
}

export const APPLY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

const SPECIAL = /[\\"\n]/;

function esc(v: string): string {
  return SPECIAL.test(v) ? v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n') : v;
}

function labels(l: Record<string, string>): string {
  return Object.entries(l)
    .map(([k, v]) => `${k}="${esc(v)}"`)
    .join(',');
}

const HEALTH_STATES = ['up', 'down', 'unknown', 'unchecked'];

type ServiceSnapshot = MetricsSnapshot['services'][number];
type RealServerSnapshot = ServiceRuntime['realServers'][number];

/** One real server as the per-server families need it: its labels rendered once, not once per sample. */
interface Row {
  labels: string;
  r: RealServerSnapshot;
  counters: RealServerCounters | undefined;
  kernel: KernelRealServer | undefined;
}

/**
 * Text appended to a growing buffer. With 1,000 real servers a scrape is
 * some 10,000 samples and a megabyte: kept as one growing string, every
 * garbage collection during the render copied all of it again.
 */
class TextBuffer {
  private buf = Buffer.allocUnsafe(1 << 16);
  private used = 0;

  add(text: string): void {
    const most = text.length * 3;
    if (this.used + most > this.buf.length) {
      const bigger = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.used + most));
      this.buf.copy(bigger, 0, 0, this.used);
      this.buf = bigger;
    }
    this.used += this.buf.write(text, this.used);
  }

  bytes(): Buffer {
    return this.buf.subarray(0, this.used);
  }
}

export function renderMetrics(m: MetricsSnapshot): string {
  return renderMetricsBytes(m).toString();
}

/**
 * The Prometheus text, UTF-8. Each real server's labels are escaped once:
 * building a label object per sample cost more than the rest of a scrape.
 */
export function renderMetricsBytes(m: MetricsSnapshot): Buffer {
  const text = new TextBuffer();
  const head = (name: string, type: string, help: string) => {
    text.add(`# HELP ${name} ${help}\n# TYPE ${name} ${type}\n`);
  };
  const sample = (name: string, l: string, v: number) => {
    text.add(`${name}${l ? `{${l}}` : ''} ${Number.isFinite(v) ? v : 0}\n`);
  };
  const family = (name: string, type: string, help: string, samples: [Record<string, string>, number][]) => {
    head(name, type, help);
    for (const [l, v] of samples) sample(name, labels(l), v);
  };
  const svc = (s: ServiceSnapshot) => ({ service: s.name, vip: s.key });
  family(
    'slbctl_service_info',
    'gauge',
    'Services slbctl keeps in the kernel (value 1).',
    m.services.map((s) => [{ ...svc(s), mode: s.mode, protocol: s.protocol, backend: m.backend }, 1]),
  );
  family(
    'slbctl_service_packets_total',
    'counter',
    'Packets the service received, from the kernel.',
    m.services.filter((s) => s.packets !== undefined).map((s) => [svc(s), s.packets ?? 0]),
  );
  family(
    'slbctl_service_bytes_total',
    'counter',
    'Bytes the service received, from the kernel.',
    m.services.filter((s) => s.bytes !== undefined).map((s) => [svc(s), s.bytes ?? 0]),
  );
  const rows: Row[] = [];
  for (const s of m.services) {
    const base = labels(svc(s));
    for (const r of s.realServers) {
      const key = `${r.address}:${r.port}`;
      rows.push({ labels: `${base},real_server="${esc(key)}"`, r, counters: s.counters.get(key), kernel: s.kernel.get(key) });
    }
  }
  head('slbctl_real_server_health', 'gauge', 'Health state of the real server (1 for the current state).');
  for (const { labels: l, r } of rows)
    for (const st of HEALTH_STATES) sample('slbctl_real_server_health', `${l},state="${st}"`, r.health === st ? 1 : 0);
  head('slbctl_real_server_weight', 'gauge', 'Weight programmed in the kernel (-1: not in the kernel).');
  for (const { labels: l, r } of rows) sample('slbctl_real_server_weight', l, r.weight ?? -1);
  head('slbctl_real_server_configured_weight', 'gauge', 'Weight in the config.');
  for (const { labels: l, r } of rows) sample('slbctl_real_server_configured_weight', l, r.configuredWeight);
  head('slbctl_health_checks_total', 'counter', 'Health checks run, by result.');
  for (const { labels: l, counters: c } of rows) {
    if (!c) continue;
    sample('slbctl_health_checks_total', `${l},result="ok"`, c.checksOk);
    sample('slbctl_health_checks_total', `${l},result="failed"`, c.checksFailed);
  }
  head('slbctl_health_transitions_total', 'counter', 'Health state changes, by the state entered.');
  for (const { labels: l, counters: c } of rows) {
    if (!c) continue;
    for (const [to, n] of Object.entries(c.transitions)) sample('slbctl_health_transitions_total', `${l},to="${esc(to)}"`, n);
  }
  head('slbctl_real_server_connections', 'gauge', 'Connections to the real server (IPVS), by state.');
  for (const { labels: l, kernel: k } of rows) {
    if (k?.active === undefined) continue;
    sample('slbctl_real_server_connections', `${l},state="active"`, k.active);
    sample('slbctl_real_server_connections', `${l},state="inactive"`, k.inactive ?? 0);
  }
  head('slbctl_real_server_packets_total', 'counter', 'Packets forwarded to the real server (IPVS).');
  for (const { labels: l, kernel: k } of rows) if (k?.packets !== undefined) sample('slbctl_real_server_packets_total', l, k.packets);
  head('slbctl_real_server_bytes_total', 'counter', 'Bytes forwarded to the real server (IPVS).');
  for (const { labels: l, kernel: k } of rows) if (k?.bytes !== undefined) sample('slbctl_real_server_bytes_total', l, k.bytes);
  family(
    'slbctl_health_checks_by_kind_total',
    'counter',
    'Health checks run by all monitors, by kind of check and result.',
    m.checksByKind.flatMap(({ kind, ok, failed }): [Record<string, string>, number][] => [
      [{ kind, result: 'ok' }, ok],
      [{ kind, result: 'failed' }, failed],
    ]),
  );
  family(
    'slbctl_event_loop_delay_seconds',
    'gauge',
    "How late the controller's event loop ran what was due (checks, scrapes), since the previous scrape, by quantile.",
    m.loopDelay.map(({ quantile, seconds }): [Record<string, string>, number] => [{ quantile: String(quantile) }, seconds]),
  );
  family('slbctl_applies_total', 'counter', 'Plans executed against the kernel, by result.', [
    [{ result: 'ok' }, m.applies.ok],
    [{ result: 'failed' }, m.applies.failed],
  ]);
  head('slbctl_apply_duration_seconds', 'histogram', 'Time to plan and execute a change.');
  for (const b of m.applyBuckets) text.add(`slbctl_apply_duration_seconds_bucket{le="${b.le}"} ${b.count}\n`);
  text.add(
    `slbctl_apply_duration_seconds_bucket{le="+Inf"} ${m.applySeconds.count}\n` +
      `slbctl_apply_duration_seconds_sum ${m.applySeconds.sum}\n` +
      `slbctl_apply_duration_seconds_count ${m.applySeconds.count}\n`,
  );
  family('slbctl_drift_repairs_total', 'counter', "Times the kernel was found changed behind slbctl's back and restored.", [
    [{}, m.driftRepairs],
  ]);
  if (m.resyncs)
    family(
      'slbctl_resyncs_total',
      'counter',
      'Periodic comparisons of the kernel with the config: planned, or skipped as nothing had changed.',
      [
        [{ result: 'planned' }, m.resyncs.planned],
        [{ result: 'skipped' }, m.resyncs.skipped],
      ],
    );
  family('slbctl_config_reloads_total', 'counter', 'Config reloads, by result (a failed reload keeps the old config).', [
    [{ result: 'ok' }, m.reloads.ok],
    [{ result: 'failed' }, m.reloads.failed],
  ]);
  const snat = m.snat ?? [];
  family(
    'slbctl_snat_ports_in_use',
    'gauge',
    'Source ports of a fullnat source address held by conntrack (open, closing and TIME_WAIT flows).',
    snat.map((u) => [{ address: u.address }, u.used]),
  );
  family(
    'slbctl_snat_ports_capacity',
    'gauge',
    'Source ports a fullnat source address has: its port range times the real servers it reaches.',
    snat.map((u) => [{ address: u.address }, u.capacity]),
  );
  family(
    'slbctl_snat_port_use_ratio',
    'gauge',
    'In use / capacity of each fullnat source address; slbctl run logs a warning past 0.8.',
    snat.map((u) => [{ address: u.address }, u.ratio]),
  );
  family('slbctl_start_time_seconds', 'gauge', 'When the controller started (Unix time).', [[{}, m.startedAt / 1000]]);
  return text.bytes();
}

/** "127.0.0.1:9469", "[::1]:9469" or ":9469" (all addresses). */
export function parseListen(v: string): { host: string; port: number } | undefined {
  const m = /^(?:\[([0-9a-fA-F:]+)\]|([0-9.]*)):(\d{1,5})$/.exec(v.trim());
  if (!m) return undefined;
  const port = Number(m[3]);
  if (port < 1 || port > 65535) return undefined;
  return { host: m[1] ?? (m[2] || '0.0.0.0'), port };
}
