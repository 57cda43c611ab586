// The nftables backend's changes as `slbctl plan` prints them.
import { serviceKey } from '../../model/types';
import { NftChange } from '../../kernel/nft/changes';
import { TABLE } from '../../kernel/nft/names';

export function describeNftChange(c: NftChange): string[] {
  switch (c.what) {
    case 'create-table':
      return [`+ table ${c.family} ${TABLE}`];
    case 'delete-table':
      return [`- table ${c.family} ${TABLE}`];
    case 'add-ingress':
      return [`+ ingress hook on ${c.device}`];
    case 'delete-ingress':
      return [`- ingress hook on ${c.device}`];
    case 'rebuild-table':
      return [`~ rebuild table ${c.family} ${TABLE}: ${c.reasons.join('; ')}`];
    case 'repair-chain':
      return [`~ repair chain ${c.family} ${c.chain}: ${c.reasons.join('; ')}`];
    case 'repair-service':
      return [`~ repair service ${serviceKey(c.after)}: ${c.reasons.join('; ')}`];
    case 'repair-snat':
      return [`~ repair source NAT of ${c.vip}: ${c.reasons.join('; ')}`];
    case 'delete-object':
      return [`- ${c.object} ${c.family} ${TABLE} ${c.name}: not one slbctl makes (added by hand, or left by an older slbctl)`];
  }
}
