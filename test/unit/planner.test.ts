// plan(desired, observed) on a table of situations. Each row shows the plan
// as `slbctl plan` prints it and the kinds of the operations, so the table
// reads as the planner's behaviour: what changes, in which order, and what
// is never touched.
import { describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import { plan } from '../../src/plan/planner';
import { formatPlan } from '../../src/plan/format';
import { DesiredState, ObservedState, opKind } from '../../src/plan/types';
import { Family, KernelState, OwnedAddress, ServiceState } from '../../src/model/state';

const LB_ADDRESS: OwnedAddress = { address: '172.16.75.83', device: 'eth0' };
const rs = (address: string, weight = 1, port = 80) => ({ address, port, weight });

/** The lab's reference service (fullnat, resolved: device, SNAT address). */
const web = (over: Partial<ServiceState> = {}): ServiceState => ({
  name: 'web',
  vip: '172.16.75.84',
  port: 80,
  protocol: 'tcp',
  mode: 'fullnat',
  scheduler: 'rr',
  device: 'eth0',
  snatAddress: '172.16.75.83',
  realServers: [rs('172.16.75.82'), rs('172.16.75.85')],
  ...over,
});
/** A second service on the same VIP. */
const tls = (over: Partial<ServiceState> = {}): ServiceState =>
  web({ name: 'tls', port: 443, realServers: [rs('172.16.75.82', 1, 443)], ...over });
/** A DSR service on its own VIP, resolved with MACs. */
const dsr = (over: Partial<ServiceState> = {}): ServiceState => ({
  name: 'web-dsr',
  vip: '172.16.75.86',
  port: 80,
  protocol: 'tcp',
  mode: 'dsr',
  scheduler: 'rr',
  device: 'eth0',
  forwardDevice: 'eth0',
  forwardMac: '02:00:00:00:00:83',
  realServers: [
    { ...rs('172.16.75.82'), mac: '02:00:00:00:00:82' },
    { ...rs('172.16.75.85'), mac: '02:00:00:00:00:85' },
  ],
  ...over,
});

const vipsOf = (services: ServiceState[]): OwnedAddress[] =>
  [...new Set(services.map((s) => `${s.vip}@${s.device}`))].map((k) => ({ address: k.split('@')[0] ?? '', device: k.split('@')[1] ?? '' }));

/** What resolveConfig makes of these services: their VIPs on eth0, ip_forward for the NAT modes. */
function desired(services: ServiceState[]): DesiredState {
  return {
    backend: 'nft',
    services,
    addresses: vipsOf(services),
    sysctls: services.some((s) => s.mode !== 'dsr') ? { 'net.ipv4.ip_forward': '1' } : {},
  };
}

/** A host where slbctl has never run: the LB's own address, forwarding off. */
const pristine: ObservedState = {
  kernel: { services: [], ownedAddresses: [], tables: [], ingressDevices: [] },
  addresses: [LB_ADDRESS],
  sysctls: { 'net.ipv4.ip_forward': '0' },
};

/** The kernel right after slbctl applied `services`; `drift` then edits it as someone might by hand. */
function applied(
  services: ServiceState[],
  drift: { kernel?: Partial<KernelState>; addresses?: OwnedAddress[]; sysctls?: Record<string, string> } = {},
): ObservedState {
  // The ip table holds the NAT services, the netdev table the DSR ones.
  const tables: Family[] = [
    ...(services.some((s) => s.mode !== 'dsr') ? ['ip' as const] : []),
    ...(services.some((s) => s.mode === 'dsr') ? ['netdev' as const] : []),
  ];
  const vips = vipsOf(services);
  return {
    kernel: {
      services,
      ownedAddresses: vips,
      tables,
      ingressDevices: [...new Set(services.filter((s) => s.mode === 'dsr').map((s) => s.device))],
      ...drift.kernel,
    },
    addresses: drift.addresses ?? [LB_ADDRESS, ...vips],
    sysctls: drift.sysctls ?? { 'net.ipv4.ip_forward': '1' },
  };
}

interface Case {
  name: string;
  desired: DesiredState;
  observed: ObservedState;
  /** The plan as `slbctl plan` prints it. */
  plan: string;
  /** The operations, by kind, in order. */
  ops: string[];
}

const cases: Case[] = [
  // ------------------------------------------------------------ from nothing
  {
    name: 'first apply: everything is added, in order sysctl, tables, ingress hook, addresses, services (by key)',
    desired: desired([web(), dsr()]),
    observed: pristine,
    plan: `~ sysctl net.ipv4.ip_forward 0 -> 1
+ table ip slbctl
+ table netdev slbctl
+ ingress hook on eth0
+ address 172.16.75.84/32 dev eth0
+ address 172.16.75.86/32 dev eth0
+ service tcp/172.16.75.84:80 "web" fullnat rr dev eth0 snat 172.16.75.83
+   real server 172.16.75.82:80 weight 1
+   real server 172.16.75.85:80 weight 1
+ service tcp/172.16.75.86:80 "web-dsr" dsr rr dev eth0 forward eth0 from 02:00:00:00:00:83
+   real server 172.16.75.82:80 weight 1 mac 02:00:00:00:00:82
+   real server 172.16.75.85:80 weight 1 mac 02:00:00:00:00:85`,
    ops: ['set-sysctl', 'create-table', 'create-table', 'add-ingress', 'add-address', 'add-address', 'add-service', 'add-service'],
  },
  {
    name: 'first apply of a DSR service alone: no ip_forward, no ip table (VIPs are in the ownership record)',
    desired: desired([dsr()]),
    observed: pristine,
    plan: `+ table netdev slbctl
+ ingress hook on eth0
+ address 172.16.75.86/32 dev eth0
+ service tcp/172.16.75.86:80 "web-dsr" dsr rr dev eth0 forward eth0 from 02:00:00:00:00:83
+   real server 172.16.75.82:80 weight 1 mac 02:00:00:00:00:82
+   real server 172.16.75.85:80 weight 1 mac 02:00:00:00:00:85`,
    ops: ['create-table', 'add-ingress', 'add-address', 'add-service'],
  },
  {
    name: 'a VIP the operator already put on the interface is used, not added',
    desired: desired([web()]),
    observed: {
      ...pristine,
      addresses: [LB_ADDRESS, { address: '172.16.75.84', device: 'eth0' }],
      sysctls: { 'net.ipv4.ip_forward': '1' },
    },
    plan: `+ table ip slbctl
+ service tcp/172.16.75.84:80 "web" fullnat rr dev eth0 snat 172.16.75.83
+   real server 172.16.75.82:80 weight 1
+   real server 172.16.75.85:80 weight 1`,
    ops: ['create-table', 'add-service'],
  },

  // ------------------------------------------------------------ steady state
  { name: 'the same state again: no changes', desired: desired([web()]), observed: applied([web()]), plan: 'no changes', ops: [] },
  {
    name: 'the same state again with DSR and two services: no changes',
    desired: desired([web(), tls(), dsr()]),
    observed: applied([dsr(), tls(), web()]),
    plan: 'no changes',
    ops: [],
  },

  // ------------------------------------------------------------ real servers
  {
    name: 'one weight changed: exactly one operation',
    desired: desired([web({ scheduler: 'wrr', realServers: [rs('172.16.75.82'), rs('172.16.75.85', 4)] })]),
    observed: applied([web({ scheduler: 'wrr' })]),
    plan: '~ real server tcp/172.16.75.84:80 -> 172.16.75.85:80 weight 1 -> 4',
    ops: ['update-real-server'],
  },
  {
    name: 'a weight set to 0 (drain) is a weight change, not a removal',
    desired: desired([web({ realServers: [rs('172.16.75.82', 0), rs('172.16.75.85')] })]),
    observed: applied([web()]),
    plan: '~ real server tcp/172.16.75.84:80 -> 172.16.75.82:80 weight 1 -> 0',
    ops: ['update-real-server'],
  },
  {
    name: 'a real server added: one operation',
    desired: desired([web({ realServers: [rs('172.16.75.82'), rs('172.16.75.85'), rs('172.16.75.87', 2)] })]),
    observed: applied([web()]),
    plan: '+ real server tcp/172.16.75.84:80 -> 172.16.75.87:80 weight 2',
    ops: ['add-real-server'],
  },
  {
    name: 'a real server removed: one operation',
    desired: desired([web({ realServers: [rs('172.16.75.85')] })]),
    observed: applied([web()]),
    plan: '- real server tcp/172.16.75.84:80 -> 172.16.75.82:80',
    ops: ['delete-real-server'],
  },
  {
    name: 'a real server moved to another port: the old one goes, the new one comes',
    desired: desired([web({ realServers: [rs('172.16.75.82'), rs('172.16.75.85', 1, 8080)] })]),
    observed: applied([web()]),
    plan: '+ real server tcp/172.16.75.84:80 -> 172.16.75.85:8080 weight 1\n- real server tcp/172.16.75.84:80 -> 172.16.75.85:80',
    ops: ['add-real-server', 'delete-real-server'],
  },
  {
    name: 'a DSR real server answered ARP with a new MAC: one update',
    desired: desired([
      dsr({
        realServers: [
          { ...rs('172.16.75.82'), mac: '02:00:00:00:00:82' },
          { ...rs('172.16.75.85'), mac: '02:00:00:00:99:85' },
        ],
      }),
    ]),
    observed: applied([dsr()]),
    plan: '~ real server tcp/172.16.75.86:80 -> 172.16.75.85:80 mac 02:00:00:00:00:85 -> 02:00:00:00:99:85',
    ops: ['update-real-server'],
  },
  {
    name: 'the order of the real servers in the config does not matter',
    desired: desired([web({ realServers: [rs('172.16.75.85'), rs('172.16.75.82')] })]),
    observed: applied([web()]),
    plan: 'no changes',
    ops: [],
  },

  // ------------------------------------------------------------ services
  {
    name: 'a mode change updates the service in place',
    desired: desired([web({ mode: 'transparent', snatAddress: undefined })]),
    observed: applied([web()]),
    plan: '~ service tcp/172.16.75.84:80: mode fullnat -> transparent, snatAddress 172.16.75.83 -> -',
    ops: ['update-service'],
  },
  {
    name: 'a Maglev size or seed change updates the service; the same pair again is no change',
    desired: desired([web({ scheduler: 'mh', maglev: { size: 251, seed: 42 } })]),
    observed: applied([web({ scheduler: 'mh' })]),
    plan: '~ service tcp/172.16.75.84:80: maglev - -> size 251 seed 42',
    ops: ['update-service'],
  },
  {
    name: 'the same Maglev size and seed again: no changes',
    desired: desired([web({ scheduler: 'mh', maglev: { size: 251, seed: 42 } })]),
    observed: applied([web({ scheduler: 'mh', maglev: { size: 251, seed: 42 } })]),
    plan: 'no changes',
    ops: [],
  },
  {
    name: 'a scheduler change and a rename update the service',
    desired: desired([web({ name: 'www', scheduler: 'sh' })]),
    observed: applied([web()]),
    plan: '~ service tcp/172.16.75.84:80: name web -> www, scheduler rr -> sh',
    ops: ['update-service'],
  },
  {
    name: 'fullnat to DSR: the netdev table and ingress hook come first, the ip table goes with its last NAT service (ip_forward stays as it is)',
    desired: desired([web({ mode: 'dsr', snatAddress: undefined, forwardDevice: 'eth0', forwardMac: '02:00:00:00:00:83' })]),
    observed: applied([web()]),
    plan: `+ table netdev slbctl
+ ingress hook on eth0
~ service tcp/172.16.75.84:80: mode fullnat -> dsr, snatAddress 172.16.75.83 -> -, forwardDevice - -> eth0, forwardMac - -> 02:00:00:00:00:83
- table ip slbctl`,
    ops: ['create-table', 'add-ingress', 'update-service', 'delete-table'],
  },
  {
    name: 'a service added beside one that stays',
    desired: desired([web(), tls()]),
    observed: applied([web()]),
    plan: `+ service tcp/172.16.75.84:443 "tls" fullnat rr dev eth0 snat 172.16.75.83
+   real server 172.16.75.82:443 weight 1`,
    ops: ['add-service'],
  },
  {
    name: 'a service removed whose VIP another service still uses: the VIP stays',
    desired: desired([web()]),
    observed: applied([web(), tls()]),
    plan: '- service tcp/172.16.75.84:443 "tls" fullnat rr dev eth0 snat 172.16.75.83',
    ops: ['delete-service'],
  },
  {
    name: 'the DSR service removed: its VIP (slbctl added it), its ingress hook and the netdev table go',
    desired: desired([web()]),
    observed: applied([web(), dsr()]),
    plan: `- service tcp/172.16.75.86:80 "web-dsr" dsr rr dev eth0 forward eth0 from 02:00:00:00:00:83
- ingress hook on eth0
- address 172.16.75.86/32 dev eth0
- table netdev slbctl`,
    ops: ['delete-service', 'delete-ingress', 'delete-address', 'delete-table'],
  },
  {
    name: 'the last service removed: its VIP and the table go too; ip_forward is left alone',
    desired: desired([]),
    observed: applied([web()]),
    plan: `- service tcp/172.16.75.84:80 "web" fullnat rr dev eth0 snat 172.16.75.83
- address 172.16.75.84/32 dev eth0
- table ip slbctl`,
    ops: ['delete-service', 'delete-address', 'delete-table'],
  },

  // ------------------------------------------------------------ addresses slbctl does not own
  {
    name: 'a VIP that was on the interface before slbctl (not owned) is never removed',
    desired: desired([]),
    observed: applied([web()], { kernel: { ownedAddresses: [] } }),
    plan: `- service tcp/172.16.75.84:80 "web" fullnat rr dev eth0 snat 172.16.75.83
- table ip slbctl`,
    ops: ['delete-service', 'delete-table'],
  },
  {
    name: 'an owned VIP that someone already removed is not removed again, only its record',
    desired: desired([]),
    observed: applied([web()], { addresses: [LB_ADDRESS] }),
    plan: `- service tcp/172.16.75.84:80 "web" fullnat rr dev eth0 snat 172.16.75.83
- record of address 172.16.75.84 (already gone from eth0)
- table ip slbctl`,
    ops: ['delete-service', 'forget-address', 'delete-table'],
  },
  {
    name: "the balancer's own address is never touched, even with nothing left to serve",
    desired: desired([]),
    observed: applied([], { addresses: [LB_ADDRESS, { address: '172.16.75.84', device: 'eth0' }] }),
    plan: 'no changes',
    ops: [],
  },

  // ------------------------------------------------------------ drift: the kernel changed behind slbctl's back
  {
    name: 'drift: a service deleted by hand is added again',
    desired: desired([web(), tls()]),
    observed: applied([web(), tls()], { kernel: { services: [web()] } }),
    plan: `+ service tcp/172.16.75.84:443 "tls" fullnat rr dev eth0 snat 172.16.75.83
+   real server 172.16.75.82:443 weight 1`,
    ops: ['add-service'],
  },
  {
    name: 'drift: a weight changed by hand is set back',
    desired: desired([web()]),
    observed: applied([web({ realServers: [rs('172.16.75.82', 7), rs('172.16.75.85')] })]),
    plan: '~ real server tcp/172.16.75.84:80 -> 172.16.75.82:80 weight 7 -> 1',
    ops: ['update-real-server'],
  },
  {
    name: 'drift: a VIP removed by hand is added again',
    desired: desired([web()]),
    observed: applied([web()], { addresses: [LB_ADDRESS] }),
    plan: '+ address 172.16.75.84/32 dev eth0',
    ops: ['add-address'],
  },
  {
    name: 'drift: ip_forward turned off is turned on again',
    desired: desired([web()]),
    observed: applied([web()], { sysctls: { 'net.ipv4.ip_forward': '0' } }),
    plan: '~ sysctl net.ipv4.ip_forward 0 -> 1',
    ops: ['set-sysctl'],
  },
  {
    name: 'drift: the whole table deleted by hand (nft flush ruleset) is rebuilt',
    desired: desired([web()]),
    observed: applied([web()], { kernel: { services: [], ownedAddresses: [], tables: [] } }),
    plan: `+ table ip slbctl
+ service tcp/172.16.75.84:80 "web" fullnat rr dev eth0 snat 172.16.75.83
+   real server 172.16.75.82:80 weight 1
+   real server 172.16.75.85:80 weight 1`,
    ops: ['create-table', 'add-service'],
  },
  {
    name: 'drift: a DSR ingress hook deleted by hand is added again',
    desired: desired([dsr()]),
    observed: applied([dsr()], { kernel: { ingressDevices: [] } }),
    plan: '+ ingress hook on eth0',
    ops: ['add-ingress'],
  },
];

describe('plan(desired, observed)', () => {
  for (const c of cases) {
    it(c.name, () => {
      const p = plan(c.desired, c.observed);
      assert.equal(formatPlan(p.ops), c.plan);
      assert.deepEqual(p.ops.map(opKind), c.ops);
    });
  }
});

describe('plan properties', () => {
  it('applying a plan and planning again finds nothing: each row above, with its plan taken as done', () => {
    // The kernel the executor leaves behind is `applied(desired services)`; every row's second plan must be empty.
    for (const c of cases) {
      const again = plan(c.desired, applied(c.desired.services));
      assert.equal(formatPlan(again.ops), 'no changes', c.name);
    }
  });

  it('is deterministic: the input order of services does not change the plan', () => {
    assert.deepEqual(plan(desired([tls(), dsr(), web()]), pristine).ops, plan(desired([web(), tls(), dsr()]), pristine).ops);
  });

  it('keeps the desired and observed state in the plan for the executor', () => {
    const d = desired([web()]);
    const p = plan(d, pristine);
    assert.equal(p.desired, d);
    assert.equal(p.observed, pristine);
  });

  it('the IPVS backend needs no nftables tables or ingress hooks', () => {
    const p = plan({ ...desired([dsr()]), backend: 'ipvs' }, pristine);
    assert.deepEqual(p.ops.map(opKind), ['add-address', 'add-service']);
  });
});

describe('vipAs route: VIPs as local routes of table local', () => {
  const VIP = { address: '172.16.75.84', device: 'eth0' };
  const asRoutes = (services: ServiceState[]): DesiredState => ({ ...desired(services), addresses: [], routes: vipsOf(services) });
  /** The kernel after slbctl applied `services` with route VIPs; `routes` are those present (slbctl's unless said). */
  const routed = (
    services: ServiceState[],
    o: { owned?: OwnedAddress[]; routes?: (OwnedAddress & { slbctl: boolean })[] } = {},
  ): ObservedState => {
    const base = applied(services, { addresses: [LB_ADDRESS], kernel: { ownedAddresses: [] } });
    const owned = o.owned ?? vipsOf(services);
    return {
      ...base,
      kernel: { ...base.kernel, ...(owned.length > 0 ? { ownedRoutes: owned } : {}) },
      routes: o.routes ?? vipsOf(services).map((r) => ({ ...r, slbctl: true })),
    };
  };
  const rows: { name: string; desired: DesiredState; observed: ObservedState; plan: string }[] = [
    {
      name: 'first apply: the VIP is a route, added where an address would be',
      desired: asRoutes([web()]),
      observed: pristine,
      plan: `~ sysctl net.ipv4.ip_forward 0 -> 1
+ table ip slbctl
+ route local 172.16.75.84/32 dev eth0 table local
+ service tcp/172.16.75.84:80 "web" fullnat rr dev eth0 snat 172.16.75.83
+   real server 172.16.75.82:80 weight 1
+   real server 172.16.75.85:80 weight 1`,
    },
    {
      name: 'applied again: nothing to do',
      desired: asRoutes([web()]),
      observed: routed([web()]),
      plan: 'no changes',
    },
    {
      name: 'address to route: the route is added first, the address removed last (the VIP is never unheld)',
      desired: asRoutes([web()]),
      observed: applied([web()]),
      plan: `+ route local 172.16.75.84/32 dev eth0 table local
- address 172.16.75.84/32 dev eth0`,
    },
    {
      name: 'route to address: the address is added first, the route removed last',
      desired: desired([web()]),
      observed: routed([web()]),
      plan: `+ address 172.16.75.84/32 dev eth0
- route local 172.16.75.84/32 dev eth0 table local`,
    },
    {
      name: 'drift: a route deleted by hand is added again',
      desired: asRoutes([web()]),
      observed: routed([web()], { routes: [] }),
      plan: '+ route local 172.16.75.84/32 dev eth0 table local',
    },
    {
      name: 'an owned route that someone already removed: only its record goes',
      desired: asRoutes([]),
      observed: routed([], { owned: [VIP], routes: [] }),
      plan: '- record of route local 172.16.75.84 (already gone from eth0)',
    },
    {
      name: 'a local route for the VIP slbctl did not add is used and never removed',
      desired: asRoutes([]),
      observed: routed([], { owned: [], routes: [{ ...VIP, slbctl: false }] }),
      plan: 'no changes',
    },
    {
      name: 'a foreign local route already holds the VIP: nothing is added',
      desired: asRoutes([web()]),
      observed: { ...routed([web()], { owned: [], routes: [{ ...VIP, slbctl: false }] }) },
      plan: 'no changes',
    },
  ];
  for (const r of rows)
    it(r.name, () => {
      assert.equal(formatPlan(plan(r.desired, r.observed).ops), r.plan);
    });
});
