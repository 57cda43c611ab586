// Prometheus text exposition of the controller's state, and the small HTTP
// server that serves it (127.0.0.1 by default: metrics are not for the world).
import * as http from 'node:http';
import { ServiceRuntime } from './records';

export interface RealServerCounters {
  checksOk: number;
  checksFailed: number;
  /** Transitions by the state entered. */
  transitions: Record<string, number>;
}

export interface MetricsSnapshot {
  backend: string;
  services: (ServiceRuntime & {
    mode: string;
    protocol: string;
    packets?: number;
    bytes?: number;
    counters: Map<string, RealServerCounters>;
    kernel: Map<string, { active?: number; inactive?: number; packets?: number; bytes?: number }>;
  })[];
  applies: { ok: number; failed: number };
  /** Apply durations in seconds, by histogram bucket upper bound. */
  applyBuckets: { le: number; count: number }[];
  applySeconds: { sum: number; count: number };
  driftRepairs: number;
  reloads: { ok: number; failed: number };
  startedAt: number;
}

export const APPLY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

function esc(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

function labels(l: Record<string, string>): string {
  const parts = Object.entries(l).map(([k, v]) => `${k}="${esc(v)}"`);
  return parts.length ? `{${parts.join(',')}}` : '';
}

const HEALTH_STATES = ['up', 'down', 'unknown', 'unchecked'];

export function renderMetrics(m: MetricsSnapshot): string {
  const out: string[] = [];
  const family = (name: string, type: string, help: string, samples: [Record<string, string>, number][]) => {
    out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    for (const [l, v] of samples) out.push(`${name}${labels(l)} ${Number.isFinite(v) ? v : 0}`);
  };
  const svc = (s: MetricsSnapshot['services'][number]) => ({ service: s.name, vip: s.key });
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
  const rs: [Record<string, string>, MetricsSnapshot['services'][number], ServiceRuntime['realServers'][number]][] = [];
  for (const s of m.services) for (const r of s.realServers) rs.push([{ ...svc(s), real_server: `${r.address}:${r.port}` }, s, r]);
  family(
    'slbctl_real_server_health',
    'gauge',
    'Health state of the real server (1 for the current state).',
    rs.flatMap(([l, , r]) => HEALTH_STATES.map((st): [Record<string, string>, number] => [{ ...l, state: st }, r.health === st ? 1 : 0])),
  );
  family(
    'slbctl_real_server_weight',
    'gauge',
    'Weight programmed in the kernel (-1: not in the kernel).',
    rs.map(([l, , r]) => [l, r.weight ?? -1]),
  );
  family(
    'slbctl_real_server_configured_weight',
    'gauge',
    'Weight in the config.',
    rs.map(([l, , r]) => [l, r.configuredWeight]),
  );
  family(
    'slbctl_health_checks_total',
    'counter',
    'Health checks run, by result.',
    rs.flatMap(([l, s, r]) => {
      const c = s.counters.get(`${r.address}:${r.port}`);
      return c
        ? ([
            [{ ...l, result: 'ok' }, c.checksOk],
            [{ ...l, result: 'failed' }, c.checksFailed],
          ] as [Record<string, string>, number][])
        : [];
    }),
  );
  family(
    'slbctl_health_transitions_total',
    'counter',
    'Health state changes, by the state entered.',
    rs.flatMap(([l, s, r]) => {
      const c = s.counters.get(`${r.address}:${r.port}`);
      return c ? Object.entries(c.transitions).map(([to, n]): [Record<string, string>, number] => [{ ...l, to }, n]) : [];
    }),
  );
  const kernelOf = (s: MetricsSnapshot['services'][number], r: ServiceRuntime['realServers'][number]) =>
    s.kernel.get(`${r.address}:${r.port}`);
  family(
    'slbctl_real_server_connections',
    'gauge',
    'Connections to the real server (IPVS), by state.',
    rs.flatMap(([l, s, r]) => {
      const k = kernelOf(s, r);
      return k?.active !== undefined
        ? ([
            [{ ...l, state: 'active' }, k.active],
            [{ ...l, state: 'inactive' }, k.inactive ?? 0],
          ] as [Record<string, string>, number][])
        : [];
    }),
  );
  family(
    'slbctl_real_server_packets_total',
    'counter',
    'Packets forwarded to the real server (IPVS).',
    rs.flatMap(([l, s, r]) => {
      const k = kernelOf(s, r);
      return k?.packets !== undefined ? ([[l, k.packets]] as [Record<string, string>, number][]) : [];
    }),
  );
  family(
    'slbctl_real_server_bytes_total',
    'counter',
    'Bytes forwarded to the real server (IPVS).',
    rs.flatMap(([l, s, r]) => {
      const k = kernelOf(s, r);
      return k?.bytes !== undefined ? ([[l, k.bytes]] as [Record<string, string>, number][]) : [];
    }),
  );
  family('slbctl_applies_total', 'counter', 'Plans executed against the kernel, by result.', [
    [{ result: 'ok' }, m.applies.ok],
    [{ result: 'failed' }, m.applies.failed],
  ]);
  out.push('# HELP slbctl_apply_duration_seconds Time to plan and execute a change.', '# TYPE slbctl_apply_duration_seconds histogram');
  for (const b of m.applyBuckets) out.push(`slbctl_apply_duration_seconds_bucket{le="${b.le}"} ${b.count}`);
  out.push(
    `slbctl_apply_duration_seconds_bucket{le="+Inf"} ${m.applySeconds.count}`,
    `slbctl_apply_duration_seconds_sum ${m.applySeconds.sum}`,
    `slbctl_apply_duration_seconds_count ${m.applySeconds.count}`,
  );
  family('slbctl_drift_repairs_total', 'counter', "Times the kernel was found changed behind slbctl's back and restored.", [
    [{}, m.driftRepairs],
  ]);
  family('slbctl_config_reloads_total', 'counter', 'Config reloads, by result (a failed reload keeps the old config).', [
    [{ result: 'ok' }, m.reloads.ok],
    [{ result: 'failed' }, m.reloads.failed],
  ]);
  family('slbctl_start_time_seconds', 'gauge', 'When the controller started (Unix time).', [[{}, m.startedAt / 1000]]);
  return `${out.join('\n')}\n`;
}

/** "127.0.0.1:9469", "[::1]:9469" or ":9469" (all addresses). */
export function parseListen(v: string): { host: string; port: number } | undefined {
  const m = /^(?:\[([0-9a-fA-F:]+)\]|([0-9.]*)):(\d{1,5})$/.exec(v.trim());
  if (!m) return undefined;
  const port = Number(m[3]);
  if (port < 1 || port > 65535) return undefined;
  return { host: m[1] ?? (m[2] || '0.0.0.0'), port };
}

export function serveMetrics(listen: { host: string; port: number }, render: () => string): Promise<http.Server> {
  const server = http.createServer((req, res) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { Allow: 'GET, HEAD' }).end();
      return;
    }
    if (req.url === '/metrics') {
      const body = render();
      res.writeHead(200, { 'Content-Type': 'text/plain; version=0.0.4; charset=utf-8', 'Content-Length': Buffer.byteLength(body) });
      res.end(req.method === 'HEAD' ? undefined : body);
      return;
    }
    res.writeHead(404, { 'Content-Type': 'text/plain' }).end('slbctl: metrics are at /metrics\n');
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(listen.port, listen.host, () => {
      server.off('error', reject);
      resolve(server);
    });
  });
}
