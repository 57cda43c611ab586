// An IPVS in memory with the kernel's answers to the operations slbctl uses
// (EEXIST for a second add, ENOENT for what is not there, ESRCH for a
// destination of a missing service), recording every call as one line and
// failing on purpose at the Nth change. For tests of plans and rollbacks.
import { IpvsError } from './client';
import { IpvsOperations, ServiceKey } from './operations';
import { IpvsDestination, IpvsService } from './types';

const EEXIST = 17;
const ENOENT = 2;
const ESRCH = 3;
const EINVAL = 22;

const key = (s: ServiceKey) => `${s.protocol} ${s.address}:${s.port}`;
const destKey = (d: Pick<IpvsDestination, 'address' | 'port'>) => `${d.address}:${d.port}`;

function describeService(s: IpvsService): string {
  const persistence = s.flags & 1 ? ` persistent ${s.timeout} mask ${s.netmask}` : '';
  return `${key(s)} ${s.scheduler}${persistence}`;
}

function describeDest(d: IpvsDestination): string {
  return `${destKey(d)} ${d.forwarding}${d.tunnelType ? `/${d.tunnelType}` : ''} weight ${d.weight}`;
}

export class MemoryIpvs implements IpvsOperations {
  private readonly table = new Map<string, { service: IpvsService; dests: Map<string, IpvsDestination> }>();
  /** Every call that changes IPVS, in order, as one readable line. */
  readonly calls: string[] = [];
  /** The change (1-based) that fails with EINVAL, as a kernel refusal would; 0: none. */
  failAt = 0;

  constructor(services: { service: IpvsService; dests: IpvsDestination[] }[] = []) {
    for (const s of services)
      this.table.set(key(s.service), { service: { ...s.service }, dests: new Map(s.dests.map((d) => [destKey(d), { ...d }])) });
  }

  /** The whole table as text, services and destinations sorted: compare before and after. */
  dump(): string {
    return [...this.table.values()]
      .sort((a, b) => key(a.service).localeCompare(key(b.service)))
      .map(({ service, dests }) =>
        [
          describeService(service),
          ...[...dests.values()].sort((a, b) => destKey(a).localeCompare(destKey(b))).map((d) => `  -> ${describeDest(d)}`),
        ].join('\n'),
      )
      .join('\n');
  }

  private change(step: string, line: string): void {
    this.calls.push(line);
    if (this.failAt > 0 && this.calls.length === this.failAt)
      throw new IpvsError(step, EINVAL, 'invalid argument (failure injected by the test double)');
  }

  private entry(step: string, s: ServiceKey, errno = ENOENT) {
    const e = this.table.get(key(s));
    if (!e) throw new IpvsError(step, errno);
    return e;
  }

  async services(): Promise<IpvsService[]> {
    return [...this.table.values()].map((e) => ({ ...e.service }));
  }

  async destinations(s: ServiceKey): Promise<IpvsDestination[]> {
    return [...this.entry(`list destinations of ${key(s)}`, s, ESRCH).dests.values()].map((d) => ({
      ...d,
      activeConnections: 0,
      inactiveConnections: 0,
    }));
  }

  async addService(s: IpvsService): Promise<void> {
    const step = `add service ${key(s)}`;
    this.change(step, `NEW_SERVICE ${describeService(s)}`);
    if (this.table.has(key(s))) throw new IpvsError(step, EEXIST);
    this.table.set(key(s), { service: { ...s }, dests: new Map() });
  }

  async updateService(s: IpvsService): Promise<void> {
    const step = `update service ${key(s)}`;
    this.change(step, `SET_SERVICE ${describeService(s)}`);
    this.entry(step, s, ESRCH).service = { ...s };
  }

  async deleteService(s: ServiceKey): Promise<void> {
    const step = `delete service ${key(s)}`;
    this.change(step, `DEL_SERVICE ${key(s)}`);
    this.entry(step, s, ESRCH);
    this.table.delete(key(s));
  }

  async addDestination(s: ServiceKey, d: IpvsDestination): Promise<void> {
    const step = `add destination ${destKey(d)} to service ${key(s)}`;
    this.change(step, `NEW_DEST ${key(s)} -> ${describeDest(d)}`);
    const e = this.entry(step, s, ESRCH);
    if (e.dests.has(destKey(d))) throw new IpvsError(step, EEXIST);
    e.dests.set(destKey(d), { ...d });
  }

  async updateDestination(s: ServiceKey, d: IpvsDestination): Promise<void> {
    const step = `update destination ${destKey(d)} of service ${key(s)}`;
    this.change(step, `SET_DEST ${key(s)} -> ${describeDest(d)}`);
    const e = this.entry(step, s, ESRCH);
    if (!e.dests.has(destKey(d))) throw new IpvsError(step, ENOENT);
    e.dests.set(destKey(d), { ...d });
  }

  async deleteDestination(s: ServiceKey, d: Pick<IpvsDestination, 'address' | 'port'>): Promise<void> {
    const step = `delete destination ${destKey(d)} from service ${key(s)}`;
    this.change(step, `DEL_DEST ${key(s)} -> ${destKey(d)}`);
    const e = this.entry(step, s, ESRCH);
    if (!e.dests.delete(destKey(d))) throw new IpvsError(step, ENOENT);
  }
}
