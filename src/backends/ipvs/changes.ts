// The change of a plan that only the IPVS backend has: the iptables chain
// that source-NATs fullnat connections beside IPVS.
import type { SnatObserved, SnatRule } from '../../kernel/iptables/snat';

/** SLBCTL-SNAT and its jump, made to hold exactly these rules. */
export type IpvsChange = { what: 'set-snat'; before: SnatObserved; after: SnatRule[] };
