// Builds the checker for one real server of a service from its healthCheck.
import { HealthCheck } from '../model/health';
import { RealServer, Service } from '../model/types';
import { Checker } from '../health/types';
import { TcpChecker } from '../health/tcp';
import { HttpChecker } from '../health/http';
import { CommandChecker } from '../health/command';

function fill(template: string, r: RealServer, port: number): string {
  return template.replaceAll('{address}', r.address).replaceAll('{port}', String(port));
}

export function checkerFor(s: Service, r: RealServer, hc: HealthCheck): Checker {
  const port = hc.port ?? r.port;
  switch (hc.type) {
    case 'tcp':
      return new TcpChecker(r.address, port);
    case 'http':
    case 'https': {
      const url = hc.url ? fill(hc.url, r, port) : `${hc.type}://${r.address}:${port}/`;
      return new HttpChecker(url, { status: hc.expectStatus, ...(hc.body !== undefined ? { body: hc.body } : {}) });
    }
    case 'command':
      return new CommandChecker((hc.command ?? []).map((a) => fill(a, r, port)));
    default: {
      const never: never = hc.type;
      throw new Error(`service ${s.name}: no checker for health check type ${String(never)}`);
    }
  }
}
