// The IPVS backend: kernel IPVS over generic netlink (src/kernel/ipvs), with
// fullnat's source NAT in one iptables chain beside it (src/kernel/iptables).
import { IpvsClient } from '../../kernel/ipvs/client';
import {
  describeSnatChange,
  iptablesBinary,
  iptablesSnat,
  NO_SNAT,
  SNAT_CHAIN,
  snatMatches,
  snatRulesOf,
} from '../../kernel/iptables/snat';
import { interfaceSysctl } from '../../kernel/rtnl/sysctl';
import { interfaceForAddress } from '../../engine/interfaces';
import { SCHEDULERS, serviceKey } from '../../model/types';
import { changesOf } from '../../plan/types';
import { PreflightError } from '../../util/errors';
import { Backend, BackendDriver } from '../types';
import { IpvsChange } from './changes';
import { executeIpvs, ipvsServicesOf, observeIpvs } from './execute';

declare module '../../plan/types' {
  interface BackendChanges {
    ipvs: IpvsChange;
  }
}

function driverOf(client: IpvsClient): BackendDriver {
  return {
    async observe(ownership) {
      const { foreign, ...kernel } = await observeIpvs(client, ownership, iptablesSnat());
      return { kernel, foreign, legacyOwnedAddresses: [] };
    },
    preflight(plan) {
      const snat = changesOf(plan.ops, 'ipvs').some((c) => c.after.length > 0 || c.before.chain || c.before.jumps > 0);
      if (snat && !iptablesBinary())
        throw new PreflightError(
          'iptables: not installed; fullnat on IPVS needs it for source NAT (apt-get install iptables, or run `npm run setup`)',
        );
    },
    execute: (plan, log, passFd) => executeIpvs(client, plan, log, iptablesSnat(passFd)),
    async afterApply() {
      // IPVS expires a removed UDP real server's entries itself (net.ipv4.vs.expire_nodest_conn).
    },
    async connections(service, realServer) {
      const dest = (
        await client.destinations({ protocol: service.protocol, address: service.vip, port: service.port }).catch(() => [])
      ).find((d) => d.address === realServer.address && d.port === realServer.port);
      return { active: dest?.activeConnections ?? 0, inactive: dest?.inactiveConnections ?? 0, visible: true };
    },
    requestsSent: () => client.messagesSent,
    close: () => client.close(),
  };
}

export const ipvsBackend: Backend<'ipvs'> = {
  name: 'ipvs',
  capabilities: {
    schedulers: SCHEDULERS,
    persistence: true,
    encapsulations: ['none', 'ipip'],
    dsrNeedsMacs: false,
    snatPool: false,
    title: 'the IPVS backend',
  },
  async open() {
    try {
      return driverOf(await IpvsClient.open());
    } catch (e) {
      throw new PreflightError(`backend ipvs: ${(e as Error).message.replace(/^ipvs: open: /, '')}`);
    }
  },
  async tryOpen() {
    try {
      return driverOf(await IpvsClient.open());
    } catch {
      return undefined;
    }
  },
  sysctls(services, config, interfaces) {
    const sysctls: Record<string, string> = {};
    if (services.some((s) => s.mode !== 'dsr')) sysctls['net.ipv4.ip_forward'] = '1';
    // IPVS keeps conntrack entries only with this on; fullnat's source NAT needs them.
    if (services.some((s) => s.mode === 'fullnat')) sysctls['net.ipv4.vs.conntrack'] = '1';
    // transparent: the real servers' replies reach the balancer on the interface they leave by (towards the
    // router), and IPVS rewrites them only after the forwarding code has sent the real server an ICMP redirect
    // ("the router is closer"). A real server that takes it sends its next replies to the client directly, from
    // its own address, and those connections fail. So no redirects from the interfaces facing the real servers.
    const devices = new Set<string>();
    for (const s of services.filter((x) => x.mode === 'transparent')) {
      devices.add(s.device);
      for (const r of s.realServers) {
        const facing = interfaceForAddress(interfaces, r.address);
        if (facing) devices.add(facing.iface.name);
      }
    }
    if (devices.size > 0) sysctls['net.ipv4.conf.all.send_redirects'] = '0';
    for (const d of [...devices].sort()) sysctls[interfaceSysctl(d, 'send_redirects')] = '0';
    // A UDP real server that fails its checks leaves the service; with this on, IPVS drops its stale entries at the next datagram and schedules it anew.
    if (config.services.some((s) => s.protocol === 'udp' && s.healthCheck)) sysctls['net.ipv4.vs.expire_nodest_conn'] = '1';
    return sysctls;
  },
  plan: {
    prepare: (_desired, kernel) => ({ kernel, first: [] }),
    finish(desired, kernel) {
      const want = snatRulesOf(desired.services);
      const have = kernel.snat ?? { ...NO_SNAT };
      return { repairs: snatMatches(have, want) ? [] : [{ what: 'set-snat', before: have, after: want }], last: [] };
    },
  },
  describe: (c) => [`~ iptables chain ${SNAT_CHAIN}: ${describeSnatChange(c.before, c.after).join(', ')}`],
  script: () => '',
  ownership: {
    // IPVS keeps no annotations: the services slbctl creates, and its chain beside IPVS, are known only from the record.
    intent(record, plan) {
      const keys = new Set(record.ipvsServices.map((s) => serviceKey(s)));
      for (const op of plan.ops) {
        if (op.op !== 'add-service') continue;
        const [added] = ipvsServicesOf([op.service]);
        if (added && !keys.has(serviceKey(added))) {
          record.ipvsServices.push({ ...added, state: 'adding' });
          keys.add(serviceKey(added));
        }
      }
      for (const c of changesOf(plan.ops, 'ipvs'))
        if (c.after.length > 0 && !c.before.chain && record.iptablesChain !== 'owned') record.iptablesChain = 'adding';
    },
    after(record, plan) {
      record.ipvsServices = ipvsServicesOf(plan.desired.services);
      const snat = changesOf(plan.ops, 'ipvs')[0];
      const chain = snat ? snat.after.length > 0 : plan.observed.kernel.snat?.chain === true;
      if (chain) record.iptablesChain = 'owned';
      else delete record.iptablesChain;
    },
  },
};
