import type { CommandModule } from 'yargs';
import { Backend, KernelSession, closeSession, observe, planEdit, sessionIfAvailable } from '../../engine/engine';
import { BACKEND_NAMES } from '../../backends/names';
import { formatPlan } from '../../plan/format';
import { realServerKey, serviceKey } from '../../model/types';
import { KernelState } from '../../model/state';
import { renderTable } from '../../util/table';
import { ControllerRecord, RealServerRuntime, readDrains, runningController } from '../../controller/records';
import { Drain } from '../../controller/effective';
import { bgpSessions } from '../../ha/bird';
import { Counts, listFlows } from '../../kernel/conntrack/conntrack';
import { SNAT_WARN_RATIO, SnatUse, snatUse } from '../../kernel/conntrack/snat-use';
import { L7Engine } from '../../backends/haproxy/engine';
import { backendName, serverName } from '../../backends/haproxy/render';
import { L7ServiceState } from '../../model/state';
import { StatRow } from '../../backends/haproxy/runtime';
import { IpvsClient } from '../../kernel/ipvs/client';
import { IpvsSyncDaemon, describeDaemon } from '../../kernel/ipvs/daemon';

/** The IPVS sync daemons the kernel runs in this namespace (none without IPVS), each marked when the running controller started it. */
async function ipvsSyncStatus(controller: ControllerRecord | undefined): Promise<(IpvsSyncDaemon & { startedBySlbctl: boolean })[]> {
  const client = await IpvsClient.open().catch(() => undefined);
  if (!client) return [];
  try {
    const daemons = await client.daemons();
    return daemons.map((d) => ({ ...d, startedBySlbctl: controller?.ipvsSyncDaemons?.includes(d.state) ?? false }));
  } catch {
    return [];
  } finally {
    client.close();
  }
}

function renderIpvsSync(daemons: Awaited<ReturnType<typeof ipvsSyncStatus>>): string {
  return daemons.map((d) => `ipvs sync: ${describeDaemon(d)}${d.startedBySlbctl ? ', started by slbctl run' : ''}\n`).join('');
}

/** The L7 services as HAProxy's runtime API reports them now (sessions, bytes, state per real server). */
interface L7Status {
  running: boolean;
  services: (L7ServiceState & {
    sessions?: { current: number; total: number };
    bytes?: { in: number; out: number };
    realServers: (L7ServiceState['realServers'][number] & {
      state?: string;
      sessions?: { current: number; total: number };
      bytes?: { in: number; out: number };
    })[];
  })[];
}

async function l7Status(): Promise<L7Status | undefined> {
  const engine = new L7Engine();
  const observed = await engine.observe();
  if (!observed) return undefined;
  const rows: StatRow[] = observed.running ? ((await engine.stats().catch(() => undefined)) ?? []) : [];
  const row = (px: string, sv: string) => rows.find((r) => r.pxname === px && r.svname === sv);
  const counters = (r: StatRow | undefined) =>
    r ? { sessions: { current: r.scur ?? 0, total: r.stot ?? 0 }, bytes: { in: r.bin ?? 0, out: r.bout ?? 0 } } : {};
  return {
    running: observed.running,
    services: observed.services.map((s) => {
      const be = backendName(serviceKey(s));
      return {
        ...s,
        ...counters(row(be, 'BACKEND')),
        realServers: s.realServers.map((r) => {
          const x = row(be, serverName(r));
          return { ...r, ...(x ? { state: x.status } : {}), ...counters(x) };
        }),
      };
    }),
  };
}

function renderL7(l7: L7Status, controller: ControllerRecord | undefined): string {
  if (!l7.running) return 'L7 (HAProxy): not running (the next apply starts it)\n';
  const rows: string[][] = [];
  for (const s of l7.services) {
    const via = s.mode === 'fullnat' ? `from ${s.snatAddress ?? '?'}` : 'from the client';
    const sess = (x: { sessions?: { current: number; total: number } }) => (x.sessions ? `${x.sessions.current}/${x.sessions.total}` : '-');
    const bytes = (x: { bytes?: { in: number; out: number } }) => (x.bytes ? `${x.bytes.in}/${x.bytes.out}` : '-');
    rows.push([serviceKey(s), s.name, `L7 ${s.mode}`, s.scheduler, `${s.device} ${via}`, '', '', '', '', sess(s), bytes(s)]);
    // Health is slbctl's own (slbctl run), as for the L4 services; HAProxy itself checks nothing.
    const runtime = controller?.services.find((x) => x.key === serviceKey(s))?.realServers ?? [];
    for (const r of s.realServers)
      rows.push([
        '',
        '',
        '',
        '',
        '',
        `${r.address}:${r.port}`,
        r.weight < 0 ? 'changed by hand' : String(r.weight),
        runtime.find((x) => realServerKey(x) === realServerKey(r))?.health ?? (controller ? '-' : 'no controller'),
        r.state ?? '-',
        sess(r),
        bytes(r),
      ]);
  }
  return `L7 (HAProxy, runtime API):\n${renderTable(['SERVICE', 'NAME', 'MODE', 'SCHED', 'VIP DEVICE / SOURCE', 'REAL SERVER', 'WEIGHT', 'HEALTH', 'HAPROXY STATE', 'SESSIONS CUR/TOTAL', 'BYTES IN/OUT'], rows)}\n`;
}

interface Args {
  json: boolean;
}

interface Found {
  backend: Backend;
  kernel: KernelState;
  sysctls: Record<string, string>;
  /** What does not match what slbctl programmed (the repairs the next apply or resync makes), one line each. */
  drift: string[];
}

function age(at: number | undefined): string {
  if (!at) return '';
  const s = (Date.now() - at) / 1000;
  return s < 10 ? `${s.toFixed(1)}s ago` : s < 120 ? `${Math.round(s)}s ago` : `${Math.round(s / 60)}m ago`;
}

function rate(n: number | undefined, unit: string): string {
  if (n === undefined) return '';
  return n >= 1e6
    ? `${(n / 1e6).toFixed(1)}M${unit}`
    : n >= 1e3
      ? `${(n / 1e3).toFixed(1)}k${unit}`
      : `${n.toFixed(n < 10 ? 1 : 0)}${unit}`;
}

/** Connection counts where the kernel's service listing has none (nftables: from conntrack), asked of each backend. */
async function connectionsOf(k: KernelSession, kernel: KernelState): Promise<Map<string, Counts>> {
  const out = new Map<string, Counts>();
  for (const s of kernel.services) {
    for (const r of s.realServers) {
      if (r.connections) continue;
      const p = await k.driver.connections(s, r);
      if (p.visible) out.set(`${serviceKey(s)}|${realServerKey(r)}`, { active: p.active, inactive: p.inactive });
    }
  }
  return out;
}

/** The source-NAT addresses of the fullnat services and how many of their ports conntrack holds; [] without any (or without conntrack). */
async function snatStatus(found: readonly Found[]): Promise<SnatUse[]> {
  const services = found.flatMap((f) => f.kernel.services).filter((s) => s.mode === 'fullnat' && s.snatAddress);
  if (services.length === 0) return [];
  const flows = await listFlows();
  return flows ? snatUse(services, flows) : [];
}

function renderSnat(use: readonly SnatUse[]): string {
  if (use.length === 0) return '';
  const rows = use.map((u) => [
    u.address,
    String(u.used),
    String(u.capacity),
    `${(u.ratio * 100).toFixed(1)}%${u.ratio >= SNAT_WARN_RATIO ? ' NEARLY FULL' : ''}`,
    u.services.join(' '),
  ]);
  return `source NAT ports (conntrack entries by reply destination, against port range x real servers):\n${renderTable(['SOURCE ADDRESS', 'IN USE', 'CAPACITY', 'USE', 'SERVICES'], rows)}\n`;
}

function render(
  f: Found,
  controller: ControllerRecord | undefined,
  drains: Drain[],
  conns: Map<string, Counts>,
  sessions: { name: string; state: string }[],
): string {
  const rows: string[][] = [];
  for (const s of f.kernel.services) {
    const key = serviceKey(s);
    const via =
      s.mode === 'fullnat'
        ? `snat ${s.snatAddress ?? '?'}`
        : s.mode === 'dsr'
          ? s.encapsulation === 'ipip'
            ? 'ipip tunnel'
            : `fwd ${s.forwardDevice ?? 'direct routing'}`
          : 'dnat only';
    const svc = controller?.services.find((x) => x.key === key);
    const svcRates = svc?.rates ? `${rate(svc.rates.packets, 'pps')} ${rate(svc.rates.bytes * 8, 'bps')}` : '';
    rows.push([
      key,
      s.name,
      s.mode,
      s.scheduler,
      `${s.device} ${via}`,
      '',
      '',
      '',
      '',
      '',
      String(s.counters?.packets ?? '-'),
      String(s.counters?.bytes ?? '-'),
      svcRates,
    ]);
    const runtime = svc?.realServers ?? [];
    const keys = [
      ...new Set([
        ...s.realServers.map(realServerKey),
        ...runtime.map(realServerKey),
        ...drains.filter((d) => d.service === key).map((d) => d.realServer),
      ]),
    ];
    for (const rk of keys) {
      const r = s.realServers.find((x) => realServerKey(x) === rk);
      const rt: RealServerRuntime | undefined = runtime.find((x) => realServerKey(x) === rk);
      const drain = drains.find((d) => d.service === key && d.realServer === rk);
      const c = r?.connections ?? conns.get(`${key}|${rk}`);
      const health = drain
        ? drain.state === 'removed'
          ? 'drained'
          : 'draining'
        : rt
          ? rt.decision === 'sorry server'
            ? 'sorry server'
            : rt.health
          : controller
            ? '-'
            : 'no controller';
      const last = rt?.last ? `${rt.last.ok ? 'ok' : 'FAIL'} ${rt.last.detail} (${age(rt.last.at)})` : '';
      const rates = rt?.rates ? `${rate(rt.rates.packets, 'pps')} ${rate(rt.rates.bytes * 8, 'bps')}` : '';
      rows.push([
        '',
        '',
        '',
        '',
        '',
        `${rk}${r?.mac ? ` (${r.mac})` : ''}`,
        r ? String(r.weight) : 'out',
        health,
        last,
        c ? `${c.active}/${c.inactive}` : '-',
        String(r?.counters?.packets ?? ''),
        String(r?.counters?.bytes ?? ''),
        rates,
      ]);
    }
  }
  const owned = f.kernel.ownedAddresses.map((a) => `${a.address} on ${a.device}`).join(', ');
  const routed = (f.kernel.ownedRoutes ?? []).map((a) => `${a.address} on ${a.device}`).join(', ');
  const ctl = controller
    ? `controller: pid ${controller.pid}, ${controller.file}, updated ${age(controller.updatedAt)}${controller.metrics ? `, metrics http://${controller.metrics}/metrics` : ''}\n`
    : 'controller: none running (health is checked only by `slbctl run`)\n';
  const bgp = controller?.bgp
    ? `bgp: ${controller.bgp.announced.length ? `announcing ${controller.bgp.announced.join(', ')}` : 'announcing nothing (no service has a server with a weight)'} to ${controller.bgp.peers
        .map((p, i) => `${p.address} AS ${p.asn} (${sessions[i]?.state ?? 'no answer from BIRD'})`)
        .join(', ')}\n${(controller.bgp.maglevDisagreements ?? []).map((d) => `MAGLEV DISAGREEMENT: ${d}\n`).join('')}`
    : '';
  const vrrp = controller?.vrrp
    ? `vrrp: ${controller.vrrp.state ?? 'no state yet'} in group ${controller.vrrp.group}, priority ${controller.vrrp.priority}${controller.vrrp.state === 'MASTER' ? ' (this balancer holds the VIPs)' : ''}\n`
    : '';
  const drift = f.drift.length
    ? `DRIFT: the kernel no longer holds what slbctl programmed; \`slbctl apply\` (or the running controller, at its next resync) repairs:\n${f.drift.map((l) => `  ${l}`).join('\n')}\n`
    : '';
  return `backend: ${f.backend}\n${ctl}${bgp}${vrrp}${drift}${renderTable(['SERVICE', 'NAME', 'MODE', 'SCHED', 'VIP DEVICE / PATH', 'REAL SERVER', 'WEIGHT', 'HEALTH', 'LAST CHECK', 'CONNS ACT/INACT', 'PACKETS', 'BYTES', 'RATE'], rows)}\n${owned ? `addresses added by slbctl: ${owned}\n` : ''}${routed ? `local routes added by slbctl (vipAs route): ${routed}\n` : ''}`;
}

export const statusCommand: CommandModule<object, Args> = {
  command: 'status',
  describe:
    "Show what slbctl has programmed in the kernel, per backend (read back from the kernel, with counters), and each real server's health from `slbctl run`",
  builder: (y) => y.option('json', { type: 'boolean', default: false, describe: 'print JSON' }),
  handler: async (args) => {
    const found: Found[] = [];
    const conns = new Map<string, Counts>();
    for (const backend of BACKEND_NAMES) {
      const k = await sessionIfAvailable(backend);
      if (!k) continue;
      try {
        const { kernel, sysctls } = await observe(k, ['net.ipv4.ip_forward']);
        // What slbctl programmed, planned against itself: whatever a hand edit broke shows up as a repair.
        const self = await planEdit(k, (services) => services);
        const drift = self.ops.length ? formatPlan(self.ops).split('\n') : [];
        if (kernel.services.length > 0 || kernel.tables.length > 0 || found.length === 0) found.push({ backend, kernel, sysctls, drift });
        for (const [key, c] of await connectionsOf(k, kernel)) conns.set(key, c);
      } finally {
        closeSession(k);
      }
    }
    const controller = runningController();
    const sessions = controller?.bgp ? await bgpSessions() : [];
    // Asked of the kernel whatever backend holds services: the daemons run without any slbctl service (the IPVS session above opened the family already).
    const syncDaemons = await ipvsSyncStatus(controller);
    const drains = readDrains();
    const withServices = found.filter((f) => f.kernel.services.length > 0);
    const l7 = await l7Status();
    const snat = await snatStatus(withServices);
    if (args.json) {
      const bigints = (_k: string, v: unknown) => (typeof v === 'bigint' ? Number(v) : v);
      const pick = withServices[0] ?? found[0];
      const services = withServices.flatMap((f) =>
        f.kernel.services.map((s) => {
          const key = serviceKey(s);
          const runtime = controller?.services.find((x) => x.key === key)?.realServers ?? [];
          const { nft: _pieces, backendKeys: _keys, ...shown } = s;
          return {
            backend: f.backend,
            ...shown,
            realServers: s.realServers.map((r) => {
              const rt = runtime.find((x) => realServerKey(x) === realServerKey(r));
              const c = r.connections ?? conns.get(`${key}|${realServerKey(r)}`);
              return {
                ...r,
                ...(c ? { connections: c } : {}),
                ...(rt
                  ? {
                      health: rt.health,
                      decision: rt.decision,
                      configuredWeight: rt.configuredWeight,
                      last: rt.last,
                      reason: rt.reason,
                      changedAt: rt.changedAt,
                      rates: rt.rates,
                    }
                  : {}),
              };
            }),
            removed: [
              ...runtime
                .filter((x) => x.weight === undefined)
                .map((x) => ({ address: x.address, port: x.port, decision: x.decision, health: x.health, last: x.last })),
              ...drains
                .filter((d) => d.service === key && d.state === 'removed' && !runtime.some((x) => realServerKey(x) === d.realServer))
                .map((d) => ({ realServer: d.realServer, decision: 'drained: removed' })),
            ],
          };
        }),
      );
      process.stdout.write(
        `${JSON.stringify(
          {
            backend: pick?.backend ?? 'none',
            controller: controller ?? null,
            ...(controller?.bgp ? { bgpSessions: sessions } : {}),
            ...(syncDaemons.length ? { ipvsSyncDaemons: syncDaemons } : {}),
            drains,
            services,
            ownedAddresses: found.flatMap((f) => f.kernel.ownedAddresses),
            ...(found.some((f) => f.kernel.ownedRoutes?.length) ? { ownedRoutes: found.flatMap((f) => f.kernel.ownedRoutes ?? []) } : {}),
            tables: found.flatMap((f) => f.kernel.tables),
            sysctls: pick?.sysctls ?? {},
            drift: found.flatMap((f) => f.drift),
            snat,
            l7: l7 ?? null,
          },
          bigints,
          2,
        )}\n`,
      );
      return;
    }
    const l7Text = l7 && (l7.services.length > 0 || !l7.running) ? renderL7(l7, controller) : '';
    if (withServices.length === 0) {
      process.stdout.write(
        `backend: ${found.map((f) => f.backend).join(', ') || 'none'}\n${renderIpvsSync(syncDaemons)}${l7Text || 'no services programmed\n'}`,
      );
      return;
    }
    process.stdout.write(
      withServices.map((f) => render(f, controller, drains, conns, sessions)).join('\n') +
        renderIpvsSync(syncDaemons) +
        renderSnat(snat) +
        l7Text,
    );
  },
};
