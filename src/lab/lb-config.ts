// The balancer's config for each mode of the lab, derived from the topology
// (one source of truth for addresses).
import { stringify } from 'yaml';
import { BackendChoice, Encapsulation, Mode } from '../model/types';
import { LabTopology, REAL_SERVERS, addressOf } from './topology';

export const MODE_TITLES: Record<Mode, string> = {
  fullnat: 'reverse proxy / full NAT',
  transparent: 'transparent / pass-through',
  dsr: 'triangle / direct server return',
};

export function labServiceConfig(
  mode: Mode,
  topology: LabTopology,
  backend: BackendChoice = 'auto',
  encapsulation: Encapsulation = 'none',
): string {
  const config = {
    backend,
    services: [
      {
        name: 'web',
        vip: topology.vip,
        port: topology.servicePort,
        protocol: 'tcp',
        mode,
        scheduler: 'rr',
        ...(encapsulation === 'ipip' ? { encapsulation } : {}),
        realServers: REAL_SERVERS.map((h) => ({ address: addressOf(topology, h), port: topology.servicePort, weight: 1 })),
      },
    ],
  };
  return `# slbctl lab: ${MODE_TITLES[mode]}\n${stringify(config)}`;
}
