// Builds the checker for one real server of a service from its healthCheck.
// In DSR (direct routing) the check follows the data path: a probe to the VIP
// sent to that real server's MAC, so a server without the VIP on its
// loopback is down even though its own address answers.
import { HealthCheck } from '../model/health';
import { RealServer, Service } from '../model/types';
import { Checker, CheckResult } from '../health/types';
import { TcpChecker } from '../health/tcp';
import { HttpChecker } from '../health/http';
import { CommandChecker } from '../health/command';
import { IcmpChecker } from '../health/icmp';
import { VipPathChecker } from '../health/vip-path';
import { loopStopwatch } from '../health/loop-clock';
import { Rtnl } from '../kernel/rtnl/rtnl';
import { interfaceForAddress } from '../engine/resolve';

function fill(template: string, r: RealServer, port: number): string {
  return template.replaceAll('{address}', r.address).replaceAll('{port}', String(port));
}

function ownChecker(r: RealServer, hc: HealthCheck): Checker {
  const port = hc.port ?? r.port;
  switch (hc.type) {
    case 'tcp':
      return new TcpChecker(r.address, port);
    case 'http':
    case 'https': {
      const url = hc.url ? fill(hc.url, r, port) : `${hc.type}://${r.address}:${port}/`;
      return new HttpChecker(url, { status: hc.expectStatus, ...(hc.body !== undefined ? { body: hc.body } : {}) });
    }
    case 'icmp':
      return new IcmpChecker(r.address);
    case 'command':
      return new CommandChecker((hc.command ?? []).map((a) => fill(a, r, port)));
    default: {
      const never: never = hc.type;
      throw new Error(`no checker for health check type ${String(never)}`);
    }
  }
}

/**
 * The data-path probe through one real server. Which interface faces it, the
 * balancer's address there and the server's MAC are looked up at each probe
 * (cheap: one rtnetlink dump) so a changed MAC or address is followed.
 */
export class DsrPathChecker implements Checker {
  readonly kind: string;
  readonly target: string;
  private probe: { key: string; checker: VipPathChecker } | undefined;

  constructor(
    private readonly rtnl: Rtnl,
    private readonly s: Service,
    private readonly r: RealServer,
    private readonly protocol: 'tcp' | 'icmp',
  ) {
    this.kind = protocol === 'tcp' ? 'tcp-vip' : 'icmp-vip';
    this.target = protocol === 'tcp' ? `tcp ${s.vip}:${s.port} via ${r.address}` : `icmp ${s.vip} via ${r.address}`;
  }

  async check(timeoutMs: number): Promise<CheckResult> {
    const started = Date.now();
    // The budget left for the probe after ARP leaves out time the event loop was blocked, as settleOnce does.
    const clock = loopStopwatch();
    const fail = (detail: string): CheckResult => ({ ok: false, detail, millis: Date.now() - started });
    try {
      const facing = interfaceForAddress(await this.rtnl.interfaces(), this.r.address);
      if (!facing) return fail(`no interface of the balancer faces ${this.r.address}`);
      const n = await this.rtnl.resolveNeighbour(this.r.address, Math.max(0, timeoutMs / 2));
      if (!n) return fail(`${this.r.address} does not answer ARP on ${facing.iface.name}`);
      const key = `${facing.iface.name} ${facing.local} ${n.mac}`;
      if (this.probe?.key !== key) {
        this.probe = {
          key,
          checker: new VipPathChecker({
            interface: facing.iface.name,
            source: facing.local,
            vip: this.s.vip,
            port: this.s.port,
            rsAddress: this.r.address,
            rsMac: n.mac,
            protocol: this.protocol,
          }),
        };
      }
      const left = timeoutMs - clock.waited();
      if (left <= 0) return fail(`no time left for the probe after ARP (${timeoutMs} ms)`);
      const r = await this.probe.checker.check(left);
      return { ...r, millis: Date.now() - started };
    } catch (e) {
      return fail((e as Error).message);
    } finally {
      clock.release();
    }
  }
}

/** Healthy only when every checker is: the server's own check and the data path. */
export class AllOf implements Checker {
  readonly kind: string;
  readonly target: string;

  constructor(private readonly checkers: Checker[]) {
    this.kind = checkers.map((c) => c.kind).join('+');
    this.target = checkers.map((c) => c.target).join(' and ');
  }

  async check(timeoutMs: number): Promise<CheckResult> {
    const results = await Promise.all(this.checkers.map((c) => c.check(timeoutMs)));
    const failed = results.filter((r) => !r.ok);
    return {
      ok: failed.length === 0,
      detail: (failed.length ? failed : results).map((r) => r.detail).join('; '),
      millis: Math.max(...results.map((r) => r.millis)),
    };
  }
}

export function checkerFor(s: Service, r: RealServer, hc: HealthCheck, rtnl: Rtnl): Checker {
  // IPVS tunnel mode (ipip) reaches the server another way; its data-path probe is not built yet: the server's own check decides.
  if (s.mode !== 'dsr' || s.encapsulation === 'ipip') return ownChecker(r, hc);
  if (hc.type === 'tcp' && (hc.port === undefined || hc.port === s.port)) return new DsrPathChecker(rtnl, s, r, 'tcp');
  if (hc.type === 'icmp') return new DsrPathChecker(rtnl, s, r, 'icmp');
  return new AllOf([ownChecker(r, hc), new DsrPathChecker(rtnl, s, r, 'tcp')]);
}
