// The reference lab topology of shared/reference/slb-modes.md, described once
// as data. Every provider (netns, uml, vagrant) realises exactly this.

export type LabHostName = 'client' | 'router' | 'lb' | 'rs1' | 'rs2' | 'lb2';

export interface LabInterface {
  /** Interface name inside the host. */
  name: string;
  /** Address with prefix length, e.g. "172.16.75.83/24". */
  cidr: string;
  /** Segment the interface is plugged into. */
  segment: 'client-net' | 'server-net';
}

export interface LabHost {
  name: LabHostName;
  role: 'client' | 'router' | 'balancer' | 'real-server';
  interfaces: LabInterface[];
  /** Default gateway (absent on the router). */
  gateway?: string;
}

export interface LabTopology {
  clientNet: string;
  serverNet: string;
  vip: string;
  servicePort: number;
  /**
   * Two balancers as an active/standby pair (`lab mode fullnat|transparent --ha vrrp`): the address both
   * share, held with the VIP by the VRRP master: full NAT's source towards the real servers and transparent's
   * return gateway, so replies of a connection reach whichever balancer holds its state.
   */
  floatingAddress: string;
  hosts: LabHost[];
}

export const REFERENCE_TOPOLOGY: LabTopology = {
  clientNet: '10.8.21.0/24',
  serverNet: '172.16.75.0/24',
  vip: '172.16.75.84',
  servicePort: 80,
  floatingAddress: '172.16.75.87',
  hosts: [
    { name: 'client', role: 'client', interfaces: [{ name: 'eth0', cidr: '10.8.21.40/24', segment: 'client-net' }], gateway: '10.8.21.1' },
    {
      name: 'router',
      role: 'router',
      interfaces: [
        { name: 'eth0', cidr: '10.8.21.1/24', segment: 'client-net' },
        { name: 'br0', cidr: '172.16.75.1/24', segment: 'server-net' },
      ],
    },
    {
      name: 'lb',
      role: 'balancer',
      interfaces: [{ name: 'eth0', cidr: '172.16.75.83/24', segment: 'server-net' }],
      gateway: '172.16.75.1',
    },
    {
      // The second balancer, only in a lab made with --balancers 2 (scale-out: BGP ECMP).
      name: 'lb2',
      role: 'balancer',
      interfaces: [{ name: 'eth0', cidr: '172.16.75.86/24', segment: 'server-net' }],
      gateway: '172.16.75.1',
    },
    {
      name: 'rs1',
      role: 'real-server',
      interfaces: [{ name: 'eth0', cidr: '172.16.75.82/24', segment: 'server-net' }],
      gateway: '172.16.75.1',
    },
    {
      name: 'rs2',
      role: 'real-server',
      interfaces: [{ name: 'eth0', cidr: '172.16.75.85/24', segment: 'server-net' }],
      gateway: '172.16.75.1',
    },
  ],
};

/** The hosts of every lab; a lab of two balancers adds lb2. */
export const LAB_HOSTS: readonly LabHostName[] = ['client', 'router', 'lb', 'rs1', 'rs2'];
export const BALANCERS = ['lb', 'lb2'] as const satisfies readonly LabHostName[];
export type BalancerName = (typeof BALANCERS)[number];

/** The hosts of a lab with this many balancers (1 or 2). */
export function labHosts(balancers: number): LabHostName[] {
  return balancers >= 2 ? [...LAB_HOSTS, 'lb2'] : [...LAB_HOSTS];
}

export function hostOf(topology: LabTopology, name: LabHostName): LabHost {
  const host = topology.hosts.find((h) => h.name === name);
  if (!host) throw new Error(`lab topology has no host ${name}`);
  return host;
}

/** The host's first address, without prefix length. */
export function addressOf(topology: LabTopology, name: LabHostName): string {
  const iface = hostOf(topology, name).interfaces[0];
  if (!iface) throw new Error(`lab host ${name} has no interface`);
  return iface.cidr.split('/')[0];
}

export const REAL_SERVERS: readonly LabHostName[] = ['rs1', 'rs2'];
