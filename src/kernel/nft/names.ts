// Names of slbctl's nftables objects, and the comments that let slbctl read a
// service back from the kernel. The only place that knows them.
import { ServiceState } from '../../model/state';

export const TABLE = 'slbctl';
/** Maps (protocol . VIP . port) to a jump into the service's chain. */
export const SERVICES_MAP = 'services';
/** Maps a full-NAT VIP to the chain that source-NATs its connections. */
export const FULLNAT_VIPS_MAP = 'fullnat_vips';
/** Addresses slbctl added to interfaces, element comment = device. */
export const OWNED_ADDRESSES_SET = 'owned_addresses';
/** Every real server of every service: (protocol . VIP . port . RS address . RS port), comment = weight/MAC. */
export const MEMBERS_SET = 'members';
export const COMMENT_PREFIX = 'slbctl/1';

export function serviceId(s: Pick<ServiceState, 'protocol' | 'vip' | 'port'>): string {
  return `${s.protocol}_${s.vip.replace(/\./g, '_')}_${s.port}`;
}
export const serviceChain = (id: string) => `svc_${id}`;
/**
 * One map per protocol holds the backends of every service, keyed by
 * (VIP . port . slot). A few large maps instead of a map per service: the
 * kernel finds named sets by walking a list, so 10,000 per-service maps made
 * every transaction quadratic (measured: 46 s to load 10,000 services).
 */
export const backendsMap = (protocol: string) => `backends_${protocol}`;
/**
 * The chain that picks a backend slot for every service with the same way of
 * picking (protocol, selector, slot count; for DSR the interface and MAC it
 * forwards with). Services jump to it from their own chain: a rule that looks
 * up a backends map binds the map to its chain, and the kernel checks every
 * element of the map at each binding and each added element against every
 * binding, so one lookup rule per service made a 10,000-service transaction
 * quadratic (20 s of kernel time in nf_tables_bind_set and nft_add_set_elem).
 */
export function pickChain(protocol: string, selector: string, total: number, forward?: { device: string; mac: string }): string {
  const base = `pick_${protocol}_${selector}_${total}`;
  return forward ? `${base}_${forward.device}_${forward.mac.replace(/:/g, '')}` : base;
}
export const snatChain = (vip: string) => `snat_${vip.replace(/\./g, '_')}`;
export const ingressChain = (device: string) => `ingress_${device}`;

/** The service rule's comment: everything about the service that is not a real server. */
export function serviceComment(s: ServiceState): string {
  const parts = [COMMENT_PREFIX, `n=${s.name}`, `m=${s.mode}`, `s=${s.scheduler}`, `d=${s.device}`];
  if (s.snatAddress) parts.push(`sn=${s.snatAddress}`);
  if (s.forwardDevice) parts.push(`f=${s.forwardDevice}`);
  if (s.forwardMac) parts.push(`fm=${s.forwardMac}`);
  if (s.maglev) parts.push(`mg=${s.maglev.size}/${s.maglev.seed}`);
  return parts.join(' ');
}

export function parseComment(comment: string): Record<string, string> | undefined {
  const words = comment.split(' ');
  if (words[0] !== COMMENT_PREFIX) return undefined;
  const fields: Record<string, string> = {};
  for (const w of words.slice(1)) {
    const eq = w.indexOf('=');
    if (eq > 0) fields[w.slice(0, eq)] = w.slice(eq + 1);
  }
  return fields;
}

export function memberComment(r: { weight: number; mac?: string }): string {
  return r.mac ? `w=${r.weight} mac=${r.mac}` : `w=${r.weight}`;
}
