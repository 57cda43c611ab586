// IPVS's part of a plan: slbctl's services read from and written to kernel IPVS
// over generic netlink. IPVS has no transactions, so every completed step
// records its inverse and a failure rolls back what was done.
import { IpvsCall, IpvsClient } from '../../kernel/ipvs/client';
import { IpvsOperations } from '../../kernel/ipvs/operations';
import { SnatIo } from '../../kernel/iptables/snat';
import { SvcFlag } from '../../kernel/ipvs/constants';
import { IpvsDestination, IpvsService } from '../../kernel/ipvs/types';
import { OwnedIpvsService, Ownership } from '../../records/ownership';
import { KernelState, RealServerState, ServiceState } from '../../model/state';
import { Mode, SCHEDULERS, Scheduler, serviceKey } from '../../model/types';
import { Plan, changesOf } from '../../plan/types';

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

/** One request of a plan and the requests that undo it (none: undone by an earlier request's undo). */
interface Planned {
  call: IpvsCall;
  what: string;
  undo: IpvsCall[];
}

/** A completed step: IPVS requests to undo it, or (source NAT) a function. */
interface Step {
  what: string;
  undo: IpvsCall[] | (() => Promise<void>);
}

function callOne(client: IpvsOperations, c: IpvsCall): Promise<void> {
  switch (c.call) {
    case 'addService':
      return client.addService(c.service);
    case 'updateService':
      return client.updateService(c.service);
    case 'deleteService':
      return client.deleteService(c.service);
    case 'addDestination':
      return client.addDestination(c.service, c.dest);
    case 'updateDestination':
      return client.updateDestination(c.service, c.dest);
    case 'deleteDestination':
      return client.deleteDestination(c.service, c.dest);
  }
}

/**
 * Each request's outcome, in order. The kernel client batches them (see
 * IpvsClient.batch: after a failure the requests already sent still run);
 * another IpvsOperations (the in-memory double) runs them one at a time.
 * With `stopOnFailure` nothing is sent after a failure is known.
 */
async function runCalls(client: IpvsOperations, calls: IpvsCall[], stopOnFailure: boolean): Promise<(Error | undefined)[]> {
  if (client instanceof IpvsClient) return client.batch(calls, stopOnFailure ? undefined : { stopOnFailure: false });
  const out: (Error | undefined)[] = [];
  let failed = false;
  for (const c of calls) {
    if (failed && stopOnFailure) {
      out.push(new Error('not sent: an earlier request failed'));
      continue;
    }
    try {
      await callOne(client, c);
      out.push(undefined);
    } catch (e) {
      out.push(e instanceof Error ? e : new Error(String(e)));
      failed = true;
    }
  }
  return out;
}

/** Undo completed steps newest first; consecutive IPVS undos go as one batch. A failing undo is logged, the rest still run. */
async function rollback(client: IpvsOperations, done: Step[], log: (line: string) => void): Promise<void> {
  const steps = [...done].reverse();
  for (let i = 0; i < steps.length;) {
    const step = steps[i];
    if (typeof step.undo === 'function') {
      try {
        await step.undo();
      } catch (undoError) {
        log(`rollback: undo ${step.what} failed: ${(undoError as Error).message}`);
      }
      i++;
      continue;
    }
    const group: { what: string; from: number; to: number }[] = [];
    const calls: IpvsCall[] = [];
    for (; i < steps.length; i++) {
      const u = steps[i].undo;
      if (typeof u === 'function') break;
      group.push({ what: steps[i].what, from: calls.length, to: calls.length + u.length });
      calls.push(...u);
    }
    const results = await runCalls(client, calls, false);
    for (const g of group) {
      const failed = results.slice(g.from, g.to).find((r) => r !== undefined);
      if (failed) log(`rollback: undo ${g.what} failed: ${failed.message}`);
    }
  }
}

/**
 * Apply the IPVS part of a plan; on failure undo the completed steps (newest
 * first) and rethrow the failure of the first request that failed, which
 * names its object. The requests go to the kernel in batches in plan order;
 * the ones already sent when a failure is known still run, and are undone
 * like the others when they succeed.
 */
export async function executeIpvs(client: IpvsOperations, plan: Plan, log: (line: string) => void, snat: SnatIo): Promise<void> {
  const planned: Planned[] = [];
  const before = new Map(plan.observed.kernel.services.map((s) => [serviceKey(s), s]));
  const push = (call: IpvsCall, what: string, ...undo: IpvsCall[]) => planned.push({ call, what, undo });
  // A service with its destinations (a destination is undone on its own too: when the service add
  // failed because one is there, a destination added after it in the same batch went to that one).
  const addWhole = (s: ServiceState): IpvsCall[] => {
    const service = toIpvsService(s);
    return [
      { call: 'addService', service },
      ...s.realServers.map((r): IpvsCall => ({ call: 'addDestination', service, dest: toDestination(s, r) })),
    ];
  };
  for (const op of plan.ops) {
    if (op.op === 'add-service') {
      const service = toIpvsService(op.service);
      for (const c of addWhole(op.service))
        if (c.call === 'addService') push(c, `add ${serviceKey(op.service)}`, { call: 'deleteService', service });
        else if (c.call === 'addDestination')
          push(c, `add ${c.dest.address} to ${serviceKey(op.service)}`, { call: 'deleteDestination', service, dest: c.dest });
    } else if (op.op === 'delete-service') {
      push({ call: 'deleteService', service: toIpvsService(op.service) }, `delete ${serviceKey(op.service)}`, ...addWhole(op.service));
    } else if (op.op === 'update-service') {
      // Scheduler and forwarding change in place: live connections keep their real server.
      const service = toIpvsService(op.after);
      push({ call: 'updateService', service }, `update ${serviceKey(op.after)}`, {
        call: 'updateService',
        service: toIpvsService(op.before),
      });
      const was = new Map(op.before.realServers.map((r) => [`${r.address}:${r.port}`, r]));
      for (const r of op.after.realServers) {
        const old = was.get(`${r.address}:${r.port}`);
        if (old)
          push({ call: 'updateDestination', service, dest: toDestination(op.after, r) }, `update ${r.address}`, {
            call: 'updateDestination',
            service,
            dest: toDestination(op.before, old),
          });
        else
          push({ call: 'addDestination', service, dest: toDestination(op.after, r) }, `add ${r.address}`, {
            call: 'deleteDestination',
            service,
            dest: r,
          });
      }
      for (const [key, old] of was) {
        if (op.after.realServers.some((r) => `${r.address}:${r.port}` === key)) continue;
        push({ call: 'deleteDestination', service, dest: old }, `delete ${old.address}`, {
          call: 'addDestination',
          service,
          dest: toDestination(op.before, old),
        });
      }
    } else if (op.op === 'add-real-server') {
      const service = toIpvsService(op.service);
      push({ call: 'addDestination', service, dest: toDestination(op.service, op.realServer) }, `add ${op.realServer.address}`, {
        call: 'deleteDestination',
        service,
        dest: op.realServer,
      });
    } else if (op.op === 'update-real-server') {
      const service = toIpvsService(op.service);
      const prior = before.get(serviceKey(op.service)) ?? op.service;
      push({ call: 'updateDestination', service, dest: toDestination(op.service, op.after) }, `update ${op.after.address}`, {
        call: 'updateDestination',
        service,
        dest: toDestination(prior, op.before),
      });
    } else if (op.op === 'delete-real-server') {
      const service = toIpvsService(op.service);
      const prior = before.get(serviceKey(op.service)) ?? op.service;
      push({ call: 'deleteDestination', service, dest: op.realServer }, `delete ${op.realServer.address}`, {
        call: 'addDestination',
        service,
        dest: toDestination(prior, op.realServer),
      });
    }
  }
  const done: Step[] = [];
  try {
    const results = await runCalls(
      client,
      planned.map((p) => p.call),
      true,
    );
    planned.forEach((p, i) => {
      if (results[i] === undefined && p.undo.length) done.push({ what: p.what, undo: p.undo });
    });
    const failure = results.find((r) => r !== undefined);
    if (failure) throw failure;
    // fullnat: IPVS masquerades, netfilter source-NATs to the balancer's address.
    for (const c of changesOf(plan.ops, 'ipvs')) {
      await snat.apply(c.before, c.after);
      done.push({ what: 'source NAT rules', undo: async () => snat.apply(await snat.read(), c.before.rules) });
      log(`source NAT for ${c.after.length} fullnat service(s)`);
    }
  } catch (e) {
    await rollback(client, done, log);
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
