// IPVS's part of a plan: slbctl's services read from and written to kernel IPVS
// over generic netlink. IPVS has no transactions, so every completed step
// records its inverse and a failure rolls back what was done.
import { IpvsOperations } from '../../kernel/ipvs/operations';
import { SnatIo } from '../../kernel/iptables/snat';
import { SvcFlag } from '../../kernel/ipvs/constants';
import { IpvsDestination, IpvsService } from '../../kernel/ipvs/types';
import { OwnedIpvsService, Ownership } from '../../records/ownership';
import { KernelState, RealServerState, ServiceState } from '../../model/state';
import { Mode, SCHEDULERS, Scheduler, serviceKey } from '../../model/types';
import { GenericOp, Plan, changesOf } from '../../plan/types';

/** How a mode forwards in IPVS. fullnat is masquerading plus source NAT done by netfilter. */
export function forwardingOf(s: Pick<ServiceState, 'mode' | 'encapsulation'>): IpvsDestination['forwarding'] {
  if (s.mode === 'dsr') return s.encapsulation === 'ipip' ? 'tunnel' : 'route';
  return 'masq';
}

function modeOf(owned: OwnedIpvsService, dests: IpvsDestination[]): Mode {
  const f = dests[0]?.forwarding;
  if (f === 'route' || f === 'tunnel') return 'dsr';
  if (f === 'masq' && owned.mode === 'dsr') return 'transparent'; // drifted: the planner will repair it
  return owned.mode;
}

export function toIpvsService(s: ServiceState): IpvsService {
  const p = s.persistence;
  return {
    protocol: s.protocol,
    address: s.vip,
    port: s.port,
    scheduler: s.scheduler,
    // mh hashes the source port too (mh-port), as the nftables Maglev does: one client's flows spread over the servers.
    flags: (p ? SvcFlag.PERSISTENT : 0) | (s.scheduler === 'mh' ? SvcFlag.SCHED2 : 0),
    timeout: p?.timeout ?? 0,
    netmask: p?.netmask ?? '255.255.255.255',
  };
}

function toDestination(s: ServiceState, r: RealServerState): IpvsDestination {
  const d: IpvsDestination = {
    address: r.address,
    port: r.port,
    forwarding: forwardingOf(s),
    weight: r.weight,
    upperThreshold: 0,
    lowerThreshold: 0,
  };
  if (d.forwarding === 'tunnel') d.tunnelType = 'ipip';
  return d;
}

/**
 * slbctl's services as IPVS holds them; services IPVS has but slbctl does not
 * own are left out (and named in `foreign`). A service the record lists as
 * "adding" (an apply was cut short) is slbctl's when IPVS has it.
 */
export async function observeIpvs(client: IpvsOperations, owned: Ownership, snat: SnatIo): Promise<KernelState & { foreign: string[] }> {
  const live = await client.services();
  const services: ServiceState[] = [];
  const foreign: string[] = [];
  for (const svc of live) {
    const o = owned.ipvsServices.find((x) => x.protocol === svc.protocol && x.vip === svc.address && x.port === svc.port);
    if (!o) {
      foreign.push(serviceKey({ protocol: svc.protocol, vip: svc.address, port: svc.port }));
      continue;
    }
    const dests = await client.destinations(svc);
    const s: ServiceState = {
      name: o.name,
      vip: o.vip,
      port: o.port,
      protocol: o.protocol,
      mode: modeOf(o, dests),
      device: o.device,
      scheduler: (SCHEDULERS as readonly string[]).includes(svc.scheduler) ? (svc.scheduler as Scheduler) : o.scheduler,
      realServers: dests.map((d) => ({
        address: d.address,
        port: d.port,
        weight: d.weight,
        connections: { active: d.activeConnections ?? 0, inactive: d.inactiveConnections ?? 0 },
        ...(d.stats
          ? { counters: { packets: Number(d.stats.inpkts + d.stats.outpkts), bytes: Number(d.stats.inbytes + d.stats.outbytes) } }
          : {}),
      })),
    };
    if (o.snatAddress && s.mode === 'fullnat') s.snatAddress = o.snatAddress;
    if (dests.some((d) => d.forwarding === 'tunnel')) s.encapsulation = 'ipip';
    if (svc.flags & SvcFlag.PERSISTENT) s.persistence = { timeout: svc.timeout, netmask: svc.netmask };
    if (svc.stats)
      s.counters = { packets: Number(svc.stats.inpkts + svc.stats.outpkts), bytes: Number(svc.stats.inbytes + svc.stats.outbytes) };
    services.push(s);
  }
  return { services, ownedAddresses: [], tables: [], ingressDevices: [], foreign, snat: await snat.read() };
}

interface Step {
  what: string;
  undo: () => Promise<void>;
}

/** Apply the IPVS part of a plan; on failure undo the completed steps (newest first) and rethrow. */
export async function executeIpvs(client: IpvsOperations, plan: Plan, log: (line: string) => void, snat: SnatIo): Promise<void> {
  const done: Step[] = [];
  const before = new Map(plan.observed.kernel.services.map((s) => [serviceKey(s), s]));
  // A service with its destinations; `record` false when this is itself an undo (an undo is not undone).
  const addWhole = async (s: ServiceState, record = true) => {
    await client.addService(toIpvsService(s));
    if (record) done.push({ what: `add ${serviceKey(s)}`, undo: () => client.deleteService(toIpvsService(s)) });
    for (const r of s.realServers) await client.addDestination(toIpvsService(s), toDestination(s, r));
  };
  const deleteWhole = async (s: ServiceState) => {
    await client.deleteService(toIpvsService(s));
    done.push({ what: `delete ${serviceKey(s)}`, undo: () => addWhole(s, false) });
  };
  const handlers: { [K in GenericOp['op']]?: (op: Extract<GenericOp, { op: K }>) => Promise<void> } = {
    'add-service': (op) => addWhole(op.service),
    'delete-service': (op) => deleteWhole(op.service),
    'update-service': async (op) => {
      // Scheduler and forwarding change in place: live connections keep their real server.
      const svc = toIpvsService(op.after);
      await client.updateService(svc);
      done.push({ what: `update ${serviceKey(op.after)}`, undo: () => client.updateService(toIpvsService(op.before)) });
      const was = new Map(op.before.realServers.map((r) => [`${r.address}:${r.port}`, r]));
      for (const r of op.after.realServers) {
        const old = was.get(`${r.address}:${r.port}`);
        if (old) {
          await client.updateDestination(svc, toDestination(op.after, r));
          done.push({ what: `update ${r.address}`, undo: () => client.updateDestination(svc, toDestination(op.before, old)) });
        } else {
          await client.addDestination(svc, toDestination(op.after, r));
          done.push({ what: `add ${r.address}`, undo: () => client.deleteDestination(svc, r) });
        }
      }
      for (const [key, old] of was) {
        if (op.after.realServers.some((r) => `${r.address}:${r.port}` === key)) continue;
        await client.deleteDestination(svc, old);
        done.push({ what: `delete ${old.address}`, undo: () => client.addDestination(svc, toDestination(op.before, old)) });
      }
    },
    'add-real-server': async (op) => {
      await client.addDestination(toIpvsService(op.service), toDestination(op.service, op.realServer));
      done.push({ what: `add ${op.realServer.address}`, undo: () => client.deleteDestination(toIpvsService(op.service), op.realServer) });
    },
    'update-real-server': async (op) => {
      await client.updateDestination(toIpvsService(op.service), toDestination(op.service, op.after));
      const prior = before.get(serviceKey(op.service)) ?? op.service;
      done.push({
        what: `update ${op.after.address}`,
        undo: () => client.updateDestination(toIpvsService(op.service), toDestination(prior, op.before)),
      });
    },
    'delete-real-server': async (op) => {
      const prior = before.get(serviceKey(op.service)) ?? op.service;
      await client.deleteDestination(toIpvsService(op.service), op.realServer);
      done.push({
        what: `delete ${op.realServer.address}`,
        undo: () => client.addDestination(toIpvsService(op.service), toDestination(prior, op.realServer)),
      });
    },
  };
  try {
    for (const op of plan.ops) {
      if (op.op === 'backend') continue;
      const handler = handlers[op.op] as ((o: GenericOp) => Promise<void>) | undefined;
      if (handler) await handler(op);
    }
    // fullnat: IPVS masquerades, netfilter source-NATs to the balancer's address.
    for (const c of changesOf(plan.ops, 'ipvs')) {
      await snat.apply(c.before, c.after);
      done.push({ what: 'source NAT rules', undo: async () => snat.apply(await snat.read(), c.before.rules) });
      log(`source NAT for ${c.after.length} fullnat service(s)`);
    }
  } catch (e) {
    for (const step of [...done].reverse()) {
      try {
        await step.undo();
      } catch (undoError) {
        log(`rollback: undo ${step.what} failed: ${(undoError as Error).message}`);
      }
    }
    throw e;
  }
}

/** The IPVS services slbctl owns after a plan: the desired ones. */
export function ipvsServicesOf(services: readonly ServiceState[]): OwnedIpvsService[] {
  return services.map((s) => {
    const o: OwnedIpvsService = {
      protocol: s.protocol,
      vip: s.vip,
      port: s.port,
      name: s.name,
      mode: s.mode,
      scheduler: s.scheduler,
      device: s.device,
      state: 'owned',
    };
    if (s.snatAddress) o.snatAddress = s.snatAddress;
    if (s.encapsulation) o.encapsulation = s.encapsulation;
    return o;
  });
}
