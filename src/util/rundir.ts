// Where slbctl keeps its records (IPVS ownership, drains, the controller's
// status): systemd's RuntimeDirectory when run as a service, /run/slbctl
// otherwise (the same place: the unit's RuntimeDirectory is "slbctl").
import * as path from 'node:path';

export function runDir(...parts: string[]): string {
  const fromSystemd = process.env.RUNTIME_DIRECTORY?.split(':')[0];
  return path.join(fromSystemd || '/run/slbctl', ...parts);
}
