// Human-readable plan lines: what `slbctl plan` prints and tests compare as golden text.
import { RealServerState, ServiceState } from '../model/state';
import { serviceKey } from '../model/types';
import { Op } from './types';
import { backendOf } from '../backends/registry';
import { describeL7 } from '../backends/haproxy/plan';

function describeService(s: ServiceState): string {
  const parts = [serviceKey(s), `"${s.name}"`, s.mode, s.scheduler, `dev ${s.device}`];
  if (s.snatAddress) parts.push(`snat ${s.snatPool ? s.snatPool.join(',') : s.snatAddress}${s.snatPorts ? ` ports ${s.snatPorts}` : ''}`);
  if (s.forwardDevice) parts.push(`forward ${s.forwardDevice} from ${s.forwardMac ?? '?'}`);
  if (s.encapsulation === 'ipip') parts.push('ipip');
  if (s.maglev) parts.push(`maglev size ${s.maglev.size} seed ${s.maglev.seed}`);
  if (s.persistence) parts.push(`persistent ${s.persistence.timeout}s mask ${s.persistence.netmask}`);
  return parts.join(' ');
}

function describeRealServer(r: RealServerState): string {
  return `${r.address}:${r.port} weight ${r.weight}${r.mac ? ` mac ${r.mac}` : ''}`;
}

export function formatOp(op: Op): string[] {
  switch (op.op) {
    case 'backend':
      // Each backend words its own changes.
      return backendOf(op.backend).describe(op.change);
    case 'l7':
      return describeL7(op.change);
    case 'set-sysctl':
      return [`~ sysctl ${op.key} ${op.from || '(unset)'} -> ${op.to}`];
    case 'add-address':
      return [`+ address ${op.address}/32 dev ${op.device}`];
    case 'delete-address':
      return [`- address ${op.address}/32 dev ${op.device}`];
    case 'forget-address':
      return [`- record of address ${op.address} (already gone from ${op.device})`];
    case 'add-route':
      return [`+ route local ${op.address}/32 dev ${op.device} table local`];
    case 'delete-route':
      return [`- route local ${op.address}/32 dev ${op.device} table local`];
    case 'forget-route':
      return [`- record of route local ${op.address} (already gone from ${op.device})`];
    case 'add-service':
      return [`+ service ${describeService(op.service)}`, ...op.service.realServers.map((r) => `+   real server ${describeRealServer(r)}`)];
    case 'delete-service':
      return [`- service ${describeService(op.service)}`];
    case 'update-service':
      return [`~ service ${serviceKey(op.after)}: ${op.changes.join(', ')}`];
    case 'add-real-server':
      return [`+ real server ${serviceKey(op.service)} -> ${describeRealServer(op.realServer)}`];
    case 'delete-real-server':
      return [`- real server ${serviceKey(op.service)} -> ${op.realServer.address}:${op.realServer.port}`];
    case 'update-real-server': {
      const changes: string[] = [];
      if (op.before.weight !== op.after.weight) changes.push(`weight ${op.before.weight} -> ${op.after.weight}`);
      if (op.before.mac !== op.after.mac) changes.push(`mac ${op.before.mac ?? '-'} -> ${op.after.mac ?? '-'}`);
      return [`~ real server ${serviceKey(op.service)} -> ${op.after.address}:${op.after.port} ${changes.join(', ')}`];
    }
  }
}

export function formatPlan(ops: readonly Op[]): string {
  if (ops.length === 0) return 'no changes';
  return ops.flatMap(formatOp).join('\n');
}
