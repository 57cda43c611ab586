// The reference topology (src/lab/topology.ts) mapped onto four VMs, as plain
// data: the Vagrantfile reads it as JSON (topology-json.ts), so the VMs'
// addresses come from the same description the netns lab uses.
//
// Five lab hosts on four VMs: the router is folded into the client VM, whose
// root namespace routes between the server segment (eth1, a libvirt network
// with no host address) and a namespace "client" holding the client's own
// address behind a veth. The real servers' DSR replies then reach the client
// through the router without ever crossing the balancer.
//
// Two balancers (`lab up --provider vagrant --balancers 2`) add a fifth VM,
// lb2; the router and both balancers then get BIRD (provision.sh's bgp=yes),
// for `lab mode dsr --ha ecmp`. With one balancer the plan is the four VMs
// it always was.
import { BALANCERS, LabHostName, LabTopology, REAL_SERVERS, REFERENCE_TOPOLOGY, hostOf } from '../lab/topology';

export type VmName = 'client' | 'lb' | 'lb2' | 'rs1' | 'rs2';

/** The lab's VMs, in the order vagrant makes them: lb2 only with two balancers. */
export function vmNames(balancers = 1): VmName[] {
  return balancers >= 2 ? ['client', 'lb', 'lb2', 'rs1', 'rs2'] : ['client', 'lb', 'rs1', 'rs2'];
}

/** The VMs' NIC on the server segment (eth0 is Vagrant's management NIC). */
export const VM_LAB_DEVICE = 'eth1';
/** Namespace in the client VM that holds the client's address. */
export const CLIENT_NETNS = 'client';
/** Memory of each VM in MiB. */
export const VM_MEMORY_MB = 1024;

export interface VmPlan {
  name: VmName;
  /** Lab hosts this VM plays. */
  hosts: LabHostName[];
  memoryMb: number;
  /** key=value arguments of vagrant/provision.sh. */
  provision: string[];
}

export interface VagrantPlan {
  clientNet: string;
  serverNet: string;
  vip: string;
  servicePort: number;
  labDevice: string;
  clientNetns: string;
  vms: VmPlan[];
}

function serverSideCidr(topology: LabTopology, host: LabHostName): string {
  const iface = hostOf(topology, host).interfaces.find((i) => i.segment === 'server-net');
  if (!iface) throw new Error(`lab topology: ${host} has no server-net interface`);
  return iface.cidr;
}

function clientSideCidr(topology: LabTopology, host: LabHostName): string {
  const iface = hostOf(topology, host).interfaces.find((i) => i.segment === 'client-net');
  if (!iface) throw new Error(`lab topology: ${host} has no client-net interface`);
  return iface.cidr;
}

export function vagrantPlan(topology: LabTopology = REFERENCE_TOPOLOGY, balancers = 1): VagrantPlan {
  const routerOnServerNet = serverSideCidr(topology, 'router').split('/')[0];
  const common = [`device=${VM_LAB_DEVICE}`, `client_net=${topology.clientNet}`, `router=${routerOnServerNet}`];
  // The ECMP pair's BGP speakers: BIRD on the router and on both balancers (installed if the box lacks it).
  const bgp = balancers >= 2 ? ['bgp=yes'] : [];
  const client = hostOf(topology, 'client');
  const vms: VmPlan[] = [
    {
      name: 'client', hosts: ['client', 'router'], memoryMb: VM_MEMORY_MB,
      provision: ['role=client-router', ...common, `router_cidr=${serverSideCidr(topology, 'router')}`, `router_client_cidr=${clientSideCidr(topology, 'router')}`,
        `client_cidr=${clientSideCidr(topology, 'client')}`, `client_gateway=${client.gateway ?? ''}`, `netns=${CLIENT_NETNS}`, ...bgp],
    },
    ...BALANCERS.slice(0, balancers >= 2 ? 2 : 1).map((b): VmPlan => (
      { name: b, hosts: [b], memoryMb: VM_MEMORY_MB, provision: ['role=balancer', ...common, `cidr=${serverSideCidr(topology, b)}`, ...bgp] })),
    ...REAL_SERVERS.map((h): VmPlan => ({
      name: h as VmName, hosts: [h], memoryMb: VM_MEMORY_MB,
      provision: ['role=real-server', ...common, `cidr=${serverSideCidr(topology, h)}`, `http_name=${h}`, `http_port=${topology.servicePort}`],
    })),
  ];
  return { clientNet: topology.clientNet, serverNet: topology.serverNet, vip: topology.vip, servicePort: topology.servicePort, labDevice: VM_LAB_DEVICE, clientNetns: CLIENT_NETNS, vms };
}
