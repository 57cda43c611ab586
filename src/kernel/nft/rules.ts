// Every rule slbctl writes, declared once with both of its forms: the text
// `nft -f` reads, and the expression list `nft -j list` prints back for it
// (nft 1.0.x, JSON schema 1). Drift repair compares the second with what the
// kernel holds, so a rule altered by hand is found; a real-kernel test loads
// every shape and checks that the listing equals the declared expression.
import { ServiceState } from '../../model/state';
import { MAGLEV_DEFAULTS } from '../../model/types';
import { FULLNAT_VIPS_MAP, SERVICES_MAP, backendsMap, pickChain, serviceComment } from './names';

export interface Rule {
  /** After `add rule FAMILY TABLE CHAIN `. */
  text: string;
  /** What the kernel lists for the rule ("expr"), counters at zero. */
  expr: unknown[];
  comment?: string;
}

/** Fixed so that one flow hashes to the same real server on every apply. */
export const HASH_SEED = MAGLEV_DEFAULTS.seed;

const payload = (protocol: string, field: string) => ({ payload: { protocol, field } });
const meta = (key: string) => ({ meta: { key } });
const match = (left: unknown, right: unknown, op = '==') => ({ match: { op, left, right } });
const counter = { counter: { packets: 0, bytes: 0 } };

/** prerouting, output and each ingress hook: one verdict-map lookup on (protocol . VIP . port). */
export function dispatchRule(family: 'ip' | 'netdev'): Rule {
  // netdev needs the "meta protocol ip" dependency in the text; nft adds it implicitly and does not list it.
  // netdev (DSR): only frames sent to this balancer's own MAC. A switch floods frames for a MAC whose port went
  // down (a failed balancer behind ECMP); forwarding those too would send the RS a second copy of every packet.
  const text = `${family === 'netdev' ? 'meta protocol ip meta pkttype host ' : ''}meta l4proto . ip daddr . th dport vmap @${SERVICES_MAP}`;
  const lookup = { vmap: { key: { concat: [meta('l4proto'), payload('ip', 'daddr'), payload('th', 'dport')] }, data: `@${SERVICES_MAP}` } };
  return { text, expr: family === 'netdev' ? [match(meta('pkttype'), 'host'), lookup] : [lookup] };
}

/** postrouting: a connection slbctl DNATed goes to the source-NAT chain of its original VIP. */
export function snatDispatchRule(): Rule {
  return {
    text: `ct status dnat ct original ip daddr vmap @${FULLNAT_VIPS_MAP}`,
    expr: [
      match({ ct: { key: 'status' } }, 'dnat', 'in'),
      { vmap: { key: { ct: { key: 'ip daddr', dir: 'original' } }, data: `@${FULLNAT_VIPS_MAP}` } },
    ],
  };
}

/** Not the schedulers' seed: the address a flow gets must not follow the real server it got. */
export const SNAT_HASH_SEED = 0x5a7;

/**
 * One fullnat service's source NAT. The client's source port is kept where
 * it is free (no `random`): a real server holds each closed connection in
 * TIME_WAIT for 60 s, and a SYN on a 4-tuple it holds is accepted only if its
 * TCP timestamp is newer. Linux clients offset timestamps per connection, so
 * a NAT tuple reused by *another* client connection is refused (PAWS) about
 * half the time, and the client waits a second to retry; a kept port reuses
 * a tuple only with the same client connection's, whose timestamps go on
 * rising. Measured in the lab (wrk, a connection per request, 15 s): with
 * `random` 3,888 PAWS refusals and 3,856 client SYN retransmits, 0.28 of
 * direct; without, none, 0.61 of direct. A pool: the flow's hash (client address and port) picks the address,
 * so connections from one client spread over all of them (a plain address
 * range would not: the kernel picks within a range by the flow's addresses
 * alone). nft needs the pool rule's `meta l4proto` to read `proto-dst`, but
 * drops it when it lists the rule: the hash's `tcp sport` implies it.
 */
export function snatRule(s: Pick<ServiceState, 'protocol' | 'port' | 'snatAddress' | 'snatPool' | 'snatPorts'>): Rule {
  const [low, high] = (s.snatPorts ?? '').split('-').map(Number);
  const ports = s.snatPorts ? { text: `:${low}-${high}`, expr: { port: { range: [low, high] } } } : { text: '', expr: {} };
  const dport = match({ ct: { key: 'proto-dst', dir: 'original' } }, s.port);
  const pool = s.snatPool;
  if (pool && pool.length > 1) {
    const hash = `jhash ip saddr . ${s.protocol} sport mod ${pool.length} seed 0x${SNAT_HASH_SEED.toString(16)}`;
    return {
      text: `meta l4proto ${s.protocol} ct original proto-dst ${s.port} snat ip to ${hash} map { ${pool.map((a, i) => `${i} : ${a}`).join(', ')} }${ports.text ? ` ${ports.text.replace(':', ': ')}` : ''}`,
      expr: [
        dport,
        {
          snat: {
            addr: {
              map: {
                key: {
                  jhash: {
                    mod: pool.length,
                    seed: SNAT_HASH_SEED,
                    expr: { concat: [payload('ip', 'saddr'), payload(s.protocol, 'sport')] },
                  },
                },
                data: { set: pool.map((a, i) => [i, a]) },
              },
            },
            ...ports.expr,
          },
        },
      ],
    };
  }
  return {
    text: `meta l4proto ${s.protocol} ct original proto-dst ${s.port} snat ip to ${s.snatAddress ?? ''}${ports.text}`,
    expr: [match(meta('l4proto'), s.protocol), dport, { snat: { addr: s.snatAddress ?? '', ...ports.expr } }],
  };
}

function selector(
  s: Pick<ServiceState, 'mode' | 'scheduler' | 'protocol' | 'maglev'>,
  total: number,
): { name: string; text: string; expr: unknown } {
  const seed = `seed 0x${HASH_SEED.toString(16)}`;
  if (s.scheduler === 'mh' && s.maglev && s.maglev.seed !== HASH_SEED) {
    // Its own pick chain: services share a pick chain only when they pick alike, and another seed picks otherwise.
    const own = s.maglev.seed;
    return {
      name: `flow${own.toString(16)}`,
      text: `jhash ip saddr . ${s.protocol} sport mod ${total} seed 0x${own.toString(16)}`,
      expr: { jhash: { mod: total, seed: own, expr: { concat: [payload('ip', 'saddr'), payload(s.protocol, 'sport')] } } },
    };
  }
  const bySource = {
    name: 'sh',
    text: `jhash ip saddr mod ${total} ${seed}`,
    expr: { jhash: { mod: total, seed: HASH_SEED, expr: payload('ip', 'saddr') } },
  };
  if (s.scheduler === 'sh') return bySource;
  if (s.mode === 'dsr' || s.scheduler === 'mh') {
    // No conntrack on the netdev hook: every packet of a flow must hash the same way. mh: the flow's hash
    // with a fixed seed indexes the Maglev table, so balancers with the same table pick the same server.
    return {
      name: 'flow',
      text: `jhash ip saddr . ${s.protocol} sport mod ${total} ${seed}`,
      expr: { jhash: { mod: total, seed: HASH_SEED, expr: { concat: [payload('ip', 'saddr'), payload(s.protocol, 'sport')] } } },
    };
  }
  return { name: 'inc', text: `numgen inc mod ${total}`, expr: { numgen: { mode: 'inc', mod: total, offset: 0 } } };
}

type Picked = Pick<ServiceState, 'mode' | 'scheduler' | 'protocol' | 'forwardDevice' | 'forwardMac' | 'maglev'>;

/** The chain a service with `total` slots jumps to; undefined with no slot (its own rule drops). */
export function pickChainOf(s: Picked, total: number): string | undefined {
  if (total === 0) return undefined;
  const forward = s.mode === 'dsr' ? { device: s.forwardDevice ?? '', mac: s.forwardMac ?? '' } : undefined;
  return pickChain(s.protocol, selector(s, total).name, total, forward);
}

/**
 * The one rule of a pick chain: pick a slot, map it to a real server, forward
 * there. No protocol match of its own: nft adds the one `tcp dport` depends
 * on, and lists the rule without it.
 */
export function pickRule(s: Picked, total: number): Rule {
  const sel = selector(s, total);
  const map = backendsMap(s.protocol);
  const lookupText = `ip daddr . ${s.protocol} dport . ${sel.text} map @${map}`;
  const lookupExpr = { map: { key: { concat: [payload('ip', 'daddr'), payload(s.protocol, 'dport'), sel.expr] }, data: `@${map}` } };
  if (s.mode === 'dsr') {
    return {
      text: `ether saddr set ${s.forwardMac ?? ''} ether daddr set ${lookupText} fwd to "${s.forwardDevice ?? ''}"`,
      expr: [
        { mangle: { key: payload('ether', 'saddr'), value: s.forwardMac ?? '' } },
        { mangle: { key: payload('ether', 'daddr'), value: lookupExpr } },
        { fwd: { dev: s.forwardDevice ?? '' } },
      ],
    };
  }
  return { text: `dnat ip to ${lookupText}`, expr: [{ dnat: { family: 'ip', addr: lookupExpr } }] };
}

/** The one rule of a service's chain: count, then jump to the chain that picks its backend (or drop, with none). */
export function serviceRule(s: ServiceState, total: number): Rule {
  const comment = serviceComment(s);
  const head = `meta l4proto ${s.protocol} counter`;
  const headExpr = [match(meta('l4proto'), s.protocol), counter];
  const pick = pickChainOf(s, total);
  if (pick === undefined) return { text: `${head} drop`, expr: [...headExpr, { drop: null }], comment };
  return { text: `${head} jump ${pick}`, expr: [...headExpr, { jump: { target: pick } }], comment };
}

/** The rule as `add rule` takes it. */
export function ruleText(r: Rule): string {
  return r.comment === undefined ? r.text : `${r.text} comment "${r.comment}"`;
}

/** A stable text of a rule's expression and comment, for comparison: object keys sorted, counters at zero. */
export function ruleFingerprint(expr: unknown, comment: string | undefined): string {
  return `${canonical(expr)}${comment === undefined ? '' : ` # ${comment}`}`;
}

function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v !== null && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    if ('counter' in o && Object.keys(o).length === 1) return '{"counter":{}}';
    return `{${Object.keys(o)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical(o[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(v) ?? 'null';
}
