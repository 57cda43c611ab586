// The IPVS operations slbctl uses, as one interface: the generic-netlink
// client (client.ts) talks to the kernel; the in-memory double (memory.ts)
// records every call and can fail at any step, so plans and rollbacks are
// testable on any machine. The user-mode-linux tests stay the real proof.
import { IpvsDestination, IpvsService } from './types';

export type ServiceKey = Pick<IpvsService, 'protocol' | 'address' | 'port'>;

export interface IpvsOperations {
  services(): Promise<IpvsService[]>;
  destinations(s: ServiceKey): Promise<IpvsDestination[]>;
  addService(s: IpvsService): Promise<void>;
  updateService(s: IpvsService): Promise<void>;
  deleteService(s: ServiceKey): Promise<void>;
  addDestination(s: ServiceKey, d: IpvsDestination): Promise<void>;
  updateDestination(s: ServiceKey, d: IpvsDestination): Promise<void>;
  deleteDestination(s: ServiceKey, d: Pick<IpvsDestination, 'address' | 'port'>): Promise<void>;
}
