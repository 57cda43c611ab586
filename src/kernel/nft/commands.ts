// The nftables commands slbctl sends, as typed objects; text (what `nft -f`
// reads) is made from them last, in one place. render.ts builds them and
// never reads text back.
import { Family } from '../../model/state';
import { TABLE } from './names';
import { Rule, ruleText } from './rules';

export interface Element {
  key: string;
  /** Maps only. */
  value?: string;
  comment?: string;
}

export type NftCommand =
  | { verb: 'add' | 'delete'; object: 'table'; family: Family }
  | { verb: 'add'; object: 'chain'; family: Family; chain: string; declaration?: string }
  | { verb: 'flush' | 'delete'; object: 'chain'; family: Family; chain: string }
  | { verb: 'add'; object: 'rule'; family: Family; chain: string; rule: Rule }
  | { verb: 'add'; object: 'set' | 'map'; family: Family; name: string; declaration: string }
  | { verb: 'delete'; object: 'set' | 'map'; family: Family; name: string }
  | { verb: 'add'; object: 'element'; family: Family; set: string; elements: Element[] }
  | { verb: 'delete'; object: 'element'; family: Family; set: string; keys: string[] };

function elementText(e: Element): string {
  return `${e.key}${e.value !== undefined ? ` : ${e.value}` : ''}${e.comment !== undefined ? ` comment "${e.comment}"` : ''}`;
}

/** One command as `nft -f` reads it. */
export function commandText(c: NftCommand): string {
  const where = `${c.family} ${TABLE}`;
  switch (c.object) {
    case 'table':
      return `${c.verb} table ${where}`;
    case 'chain':
      return c.verb === 'add' && c.declaration ? `add chain ${where} ${c.chain} ${c.declaration}` : `${c.verb} chain ${where} ${c.chain}`;
    case 'rule':
      return `add rule ${where} ${c.chain} ${ruleText(c.rule)}`;
    case 'set':
    case 'map':
      return c.verb === 'add' ? `add ${c.object} ${where} ${c.name} ${c.declaration}` : `delete ${c.object} ${where} ${c.name}`;
    case 'element':
      return c.verb === 'add'
        ? `add element ${where} ${c.set} { ${c.elements.map(elementText).join(', ')} }`
        : `delete element ${where} ${c.set} { ${c.keys.join(', ')} }`;
  }
}

/** The whole transaction's text, one command a line. */
export function scriptText(commands: readonly NftCommand[]): string {
  return commands.length > 0 ? `${commands.map(commandText).join('\n')}\n` : '';
}
