// The changes of a plan that only the nftables backend has: its tables, its
// hooks, and the repairs of what a hand edit broke in them.
import { Family, ServiceState } from '../../model/state';

export type NftChange =
  | { what: 'create-table'; family: Family }
  | { what: 'delete-table'; family: Family }
  | { what: 'add-ingress'; device: string }
  | { what: 'delete-ingress'; device: string }
  /** A set or map of the table is missing or of the wrong type: the table is built anew (one transaction). */
  | { what: 'rebuild-table'; family: Family; reasons: string[] }
  /** A hook chain is missing, hooked wrongly, or its rules differ. */
  | { what: 'repair-chain'; family: Family; chain: string; reasons: string[] }
  /** A service's pieces (map element, chain, rule, backend slots) differ from its settings. */
  | { what: 'repair-service'; before: ServiceState; after: ServiceState; reasons: string[] }
  /** The source-NAT chain of a VIP or its fullnat_vips element differs. */
  | { what: 'repair-snat'; vip: string; reasons: string[] }
  /** An object in slbctl's table that slbctl does not make (added by hand, or left by an older version). */
  | { what: 'delete-object'; family: Family; object: 'chain' | 'set' | 'map'; name: string };
