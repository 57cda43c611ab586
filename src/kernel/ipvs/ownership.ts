// Which IPVS services slbctl created. IPVS keeps no annotations, so slbctl
// records its services (and the VIPs it added) in a small file per network
// namespace under /run (tmpfs: it goes with the kernel state at reboot).
// Everything else (scheduler, real servers, weights) is read from IPVS.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Encapsulation, Mode, Protocol, Scheduler } from '../../model/types';
import { OwnedAddress } from '../../model/state';
import { runDir } from '../../util/rundir';

export interface OwnedIpvsService {
  protocol: Protocol;
  vip: string;
  port: number;
  name: string;
  mode: Mode;
  scheduler: Scheduler;
  device: string;
  snatAddress?: string;
  encapsulation?: Encapsulation;
}

export interface IpvsOwnership {
  services: OwnedIpvsService[];
  addresses: OwnedAddress[];
}


/** One record per network namespace: the namespace's inode names it. */
export function ownershipFile(): string {
  return runDir('ipvs', `net-${fs.statSync('/proc/self/ns/net').ino}.json`);
}

export function readOwnership(file = ownershipFile()): IpvsOwnership {
  try {
    const data = JSON.parse(fs.readFileSync(file, 'utf8')) as Partial<IpvsOwnership>;
    return { services: data.services ?? [], addresses: data.addresses ?? [] };
  } catch {
    return { services: [], addresses: [] };
  }
}

/** Written atomically (rename), so a crash leaves the old or the new record, never half. */
export function writeOwnership(o: IpvsOwnership, file = ownershipFile()): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  if (o.services.length === 0 && o.addresses.length === 0) {
    fs.rmSync(file, { force: true });
    return;
  }
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, `${JSON.stringify(o, null, 2)}\n`);
  fs.renameSync(tmp, file);
}
