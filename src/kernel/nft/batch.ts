// A small nftables transaction sent to the kernel as one nfnetlink batch,
// encoded here, without libnftables. libnftables fills its cache before it
// runs any command, and on a table of 10,000 services (20,004 chains) that
// listing is most of a one-weight change (52 ms of an element command, 14 ms
// with 5 chains; measured in process). The kernel needs no cache: a batch
// names the table, chain and set of each change.
//
// Only the commands a change of real servers or services makes are encoded:
// elements of slbctl's sets and maps (their types are fixed: expected.ts),
// chains without a hook (add, flush, delete), the service chain's one rule
// (rules.ts serviceRule: `meta l4proto P counter jump CHAIN|drop comment C`)
// and the pick chain's rule of rr and wrr NAT services (numgen inc). Any
// other command (other pick rules, source NAT, tables, hooks, sets)
// makes encodeBatch answer undefined, and the script goes to libnftables.
// The bytes are those nft 1.0.6 sends for the same commands (read with
// strace), so `nft list` prints the result as it prints nft's own; a
// real-kernel test applies the same plans both ways and compares listings.
//
// The batch carries the ruleset generation the plan was made at
// (NFNL_BATCH_GENID): if anyone committed since, the kernel refuses it whole
// (ERESTART) and nothing changes.
import * as os from 'node:os';
import { Family } from '../../model/state';
import { NftCommand } from './commands';
import { Rule } from './rules';
import { TABLE, FULLNAT_VIPS_MAP, MEMBERS_SET, SERVICES_MAP } from './names';
import { native, netnsInode } from '../../util/netns';
import { NFNL_SUBSYS_NFTABLES } from './generation';
import { attribute, messages } from '../netlink';

const NLM_F_REQUEST = 0x1;
const NLM_F_ACK = 0x4;
const NLM_F_CREATE = 0x400;
const NLM_F_APPEND = 0x800;
const NLA_F_NESTED = 0x8000;
const NLMSG_ERROR = 2;
const NFNL_MSG_BATCH_BEGIN = 16;
const NFNL_MSG_BATCH_END = 17;
const NFNL_BATCH_GENID = 1;
/** enum nf_tables_msg_types. */
const MSG = { NEWCHAIN: 3, DELCHAIN: 5, NEWRULE: 6, DELRULE: 8, NEWSETELEM: 12, DELSETELEM: 14 } as const;
const NFPROTO: Record<Family, number> = { ip: 2, netdev: 5 };
const ERESTART = 85;
/** Verdict codes: NF_DROP, NFT_JUMP. */
const NF_DROP = 0;
const NFT_JUMP = -3;

/** Above this the transaction is not "small": libnftables takes it (and the socket's send buffer is not in question). */
const MAX_BATCH_BYTES = 64 * 1024;

type Field = 'proto' | 'ipv4' | 'port' | 'slot' | 'ether';

interface SetShape {
  key: Field[];
  data?: Field[] | 'verdict';
}

/** The sets and maps of slbctl's tables (expected.ts tablePlumbing), by name, in a table of this family. */
function shapeOf(family: Family, set: string): SetShape | undefined {
  if (set === SERVICES_MAP) return { key: ['proto', 'ipv4', 'port'], data: 'verdict' };
  if (set === MEMBERS_SET) return { key: ['proto', 'ipv4', 'port', 'ipv4', 'port'] };
  if (set === FULLNAT_VIPS_MAP && family === 'ip') return { key: ['ipv4'], data: 'verdict' };
  if (set === 'backends_tcp' || set === 'backends_udp')
    return { key: ['ipv4', 'port', 'slot'], data: family === 'netdev' ? ['ether'] : ['ipv4', 'port'] };
  return undefined;
}

const PROTOCOL_NUMBERS: Record<string, number> = { tcp: 6, udp: 17 };
const littleEndian = os.endianness() === 'LE';

/** One field of a value, as nft puts it in a register: network order, except numgen's slot (host order). */
function fieldBytes(field: Field, text: string): Buffer | undefined {
  switch (field) {
    case 'proto': {
      const n = PROTOCOL_NUMBERS[text];
      return n === undefined ? undefined : Buffer.from([n]);
    }
    case 'ipv4': {
      const parts = text.split('.');
      if (parts.length !== 4 || parts.some((p) => !/^\d{1,3}$/.test(p) || Number(p) > 255)) return undefined;
      return Buffer.from(parts.map(Number));
    }
    case 'port': {
      if (!/^\d{1,5}$/.test(text) || Number(text) > 65535) return undefined;
      const b = Buffer.alloc(2);
      b.writeUInt16BE(Number(text));
      return b;
    }
    case 'slot': {
      if (!/^\d{1,10}$/.test(text) || Number(text) > 0xffffffff) return undefined;
      const b = Buffer.alloc(4);
      if (littleEndian) b.writeUInt32LE(Number(text));
      else b.writeUInt32BE(Number(text));
      return b;
    }
    case 'ether': {
      if (!/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i.test(text)) return undefined;
      return Buffer.from(text.split(':').map((h) => parseInt(h, 16)));
    }
  }
}

/** A value of these fields from its text (`a . b . c`): a concatenation pads each field to 4 bytes, a single field is as it is. */
function valueBytes(fields: readonly Field[], text: string): Buffer | undefined {
  const parts = text.split(' . ');
  if (parts.length !== fields.length) return undefined;
  const out: Buffer[] = [];
  for (let i = 0; i < fields.length; i++) {
    const b = fieldBytes(fields[i], parts[i].trim());
    if (!b) return undefined;
    out.push(b);
    if (fields.length > 1 && b.length % 4 !== 0) out.push(Buffer.alloc(4 - (b.length % 4)));
  }
  return Buffer.concat(out);
}

const nest = (type: number, ...parts: Buffer[]) => attribute(type | NLA_F_NESTED, Buffer.concat(parts));
const strz = (type: number, s: string) => attribute(type, Buffer.from(`${s}\0`, 'utf8'));
const be32 = (type: number, n: number) => {
  const b = Buffer.alloc(4);
  b.writeInt32BE(n | 0, 0);
  return attribute(type, b);
};
/**
 * A list of nested items. A rule's expressions are each NFTA_LIST_ELEM (1), which the kernel checks; a set's
 * elements libnftnl numbers 1, 2, … (the kernel reads them in order, whatever their type): as nft sends them.
 */
const list = (type: number, items: Buffer[], numbered = false) =>
  nest(type, ...items.map((item, i) => attribute((numbered ? i + 1 : 1) | NLA_F_NESTED, item)));

/** libnftnl's user data: one TLV, type 0 (a rule's or an element's comment), the text with its NUL. */
function comment(type: number, text: string): Buffer {
  const s = Buffer.from(`${text}\0`, 'utf8');
  if (s.length > 255) throw new Error('comment too long');
  return attribute(type, Buffer.concat([Buffer.from([0, s.length]), s]));
}

/** enum nft_data_attributes: NFTA_DATA_VALUE 1, NFTA_DATA_VERDICT 2; enum nft_verdict_attributes: CODE 1, CHAIN 2. */
const dataValue = (bytes: Buffer) => attribute(1, bytes);
const verdict = (code: number, chain?: string) => nest(2, be32(1, code), ...(chain === undefined ? [] : [strz(2, chain)]));

/** A map's verdict text: `jump CHAIN`. */
function verdictOf(text: string): Buffer | undefined {
  const m = /^jump ([A-Za-z0-9_]+)$/.exec(text);
  return m ? verdict(NFT_JUMP, m[1]) : undefined;
}

/** enum nft_set_elem_attributes: KEY 1, DATA 2, USERDATA 6. */
function element(shape: SetShape, key: string, value?: string, note?: string): Buffer | undefined {
  const k = valueBytes(shape.key, key);
  if (!k) return undefined;
  const parts = [nest(1, dataValue(k))];
  if (value !== undefined) {
    if (shape.data === undefined) return undefined;
    const d = shape.data === 'verdict' ? verdictOf(value) : valueBytes(shape.data, value);
    if (!d) return undefined;
    parts.push(nest(2, shape.data === 'verdict' ? d : dataValue(d)));
  } else if (shape.data !== undefined) return undefined;
  if (note !== undefined) parts.push(comment(6, note));
  return Buffer.concat(parts);
}

/** An expression: NFTA_EXPR_NAME 1, NFTA_EXPR_DATA 2 (nested). */
const expression = (name: string, ...data: Buffer[]) => Buffer.concat([strz(1, name), nest(2, ...data)]);

/**
 * The service chain's rule (rules.ts serviceRule) as expressions: meta l4proto into register 1, compared with
 * the protocol; a counter; a jump or a drop. Anything else: undefined.
 */
function serviceRuleExpressions(rule: Rule): Buffer[] | undefined {
  const expr = rule.expr as {
    match?: { op: string; left: unknown; right: unknown };
    counter?: unknown;
    jump?: { target: string };
    drop?: null;
  }[];
  if (!Array.isArray(expr) || expr.length !== 3) return undefined;
  const [m, c, v] = expr;
  const left = m.match?.left as { meta?: { key?: string } } | undefined;
  if (m.match?.op !== '==' || left?.meta?.key !== 'l4proto' || typeof m.match.right !== 'string') return undefined;
  const proto = PROTOCOL_NUMBERS[m.match.right];
  if (proto === undefined || c.counter === undefined || Object.keys(c).length !== 1) return undefined;
  let last: Buffer;
  if (v.jump && typeof v.jump.target === 'string' && Object.keys(v).length === 1) last = verdict(NFT_JUMP, v.jump.target);
  else if ('drop' in v && Object.keys(v).length === 1) last = verdict(NF_DROP);
  else return undefined;
  // Text and expression must say the same rule: the text is what libnftables would have been given.
  const target = v.jump ? `jump ${v.jump.target}` : 'drop';
  if (rule.text !== `meta l4proto ${m.match.right} counter ${target}`) return undefined;
  return [
    // meta: NFTA_META_KEY 2 (NFT_META_L4PROTO 16), NFTA_META_DREG 1 (register 1).
    expression('meta', be32(2, 16), be32(1, 1)),
    // cmp: NFTA_CMP_SREG 1, NFTA_CMP_OP 2 (NFT_CMP_EQ 0), NFTA_CMP_DATA 3.
    expression('cmp', be32(1, 1), be32(2, 0), nest(3, dataValue(Buffer.from([proto])))),
    expression('counter'),
    // immediate: NFTA_IMMEDIATE_DREG 1 (NFT_REG_VERDICT 0), NFTA_IMMEDIATE_DATA 2 holding the verdict.
    expression('immediate', be32(1, 0), nest(2, last)),
  ];
}

/**
 * A pick chain's rule with the `inc` selector (rules.ts pickRule: full NAT and
 * transparent services, rr and wrr): `dnat ip to ip daddr . P dport . numgen
 * inc mod N map @backends_P`, as nft 1.0.6 sends it: the protocol dependency
 * `tcp dport` needs (meta l4proto, cmp), the daddr into register 1, the port
 * into 9, the slot into 10, the map looked up from 1 into 1, and DNAT to the
 * address in 1 and the port in 9. Anything else: undefined.
 */
function pickRuleExpressions(rule: Rule): Buffer[] | undefined {
  const m = /^dnat ip to ip daddr \. (tcp|udp) dport \. numgen inc mod (\d+) map @backends_(tcp|udp)$/.exec(rule.text);
  if (!m || m[1] !== m[3] || rule.comment !== undefined) return undefined;
  const protocol = m[1];
  const modulus = Number(m[2]);
  if (!Number.isSafeInteger(modulus) || modulus < 1 || modulus > 0xffffffff) return undefined;
  // The expression must say the same as the text (the text is what libnftables would have been given).
  const payload = (p: string, field: string) => ({ payload: { protocol: p, field } });
  const want = [
    {
      dnat: {
        family: 'ip',
        addr: {
          map: {
            key: { concat: [payload('ip', 'daddr'), payload(protocol, 'dport'), { numgen: { mode: 'inc', mod: modulus, offset: 0 } }] },
            data: `@backends_${protocol}`,
          },
        },
      },
    },
  ];
  if (JSON.stringify(rule.expr) !== JSON.stringify(want)) return undefined;
  return [
    expression('meta', be32(2, 16), be32(1, 1)),
    expression('cmp', be32(1, 1), be32(2, 0), nest(3, dataValue(Buffer.from([PROTOCOL_NUMBERS[protocol]])))),
    // payload: DREG 1, BASE 2 (1 network, 2 transport), OFFSET 3, LEN 4.
    expression('payload', be32(1, 1), be32(2, 1), be32(3, 16), be32(4, 4)),
    expression('payload', be32(1, 9), be32(2, 2), be32(3, 2), be32(4, 2)),
    // numgen: DREG 1, MODULUS 2, TYPE 3 (NFT_NG_INCREMENTAL 0), OFFSET 4.
    expression('numgen', be32(1, 10), be32(2, modulus), be32(3, 0), be32(4, 0)),
    // lookup: SREG 2, DREG 3, SET 1 (by name: the set exists).
    expression('lookup', be32(2, 1), be32(3, 1), strz(1, `backends_${protocol}`)),
    // nat: TYPE 1 (NFT_NAT_DNAT 1), FAMILY 2 (NFPROTO_IPV4), REG_ADDR_MIN 3, REG_PROTO_MIN 5.
    expression('nat', be32(1, 1), be32(2, 2), be32(3, 1), be32(5, 9)),
  ];
}

/** The attributes of one command's message, and its type and flags; undefined when it is not one this module encodes. */
function encodeCommand(c: NftCommand): { type: number; flags: number; family: Family; attrs: Buffer[] } | undefined {
  const table = strz(1, TABLE);
  switch (c.object) {
    case 'chain':
      // enum nft_chain_attributes: TABLE 1, NAME 3. A chain with a declaration is a base chain (a hook): not here.
      if (c.verb === 'add' && c.declaration) return undefined;
      if (c.verb === 'add') return { type: MSG.NEWCHAIN, flags: NLM_F_CREATE, family: c.family, attrs: [table, strz(3, c.chain)] };
      if (c.verb === 'delete') return { type: MSG.DELCHAIN, flags: 0, family: c.family, attrs: [table, strz(3, c.chain)] };
      // flush: every rule of the chain (enum nft_rule_attributes: TABLE 1, CHAIN 2; no handle).
      return { type: MSG.DELRULE, flags: 0, family: c.family, attrs: [table, strz(2, c.chain)] };
    case 'rule': {
      const exprs = serviceRuleExpressions(c.rule) ?? pickRuleExpressions(c.rule);
      if (!exprs) return undefined;
      // NFTA_RULE_EXPRESSIONS 4, NFTA_RULE_USERDATA 7.
      const attrs = [table, strz(2, c.chain), list(4, exprs)];
      if (c.rule.comment !== undefined) attrs.push(comment(7, c.rule.comment));
      return { type: MSG.NEWRULE, flags: NLM_F_CREATE | NLM_F_APPEND, family: c.family, attrs };
    }
    case 'element': {
      const shape = shapeOf(c.family, c.set);
      if (!shape) return undefined;
      const items: Buffer[] = [];
      if (c.verb === 'add') {
        for (const e of c.elements) {
          const item = element(shape, e.key, e.value, e.comment);
          if (!item) return undefined;
          items.push(item);
        }
      } else {
        for (const key of c.keys) {
          const k = valueBytes(shape.key, key);
          if (!k) return undefined;
          items.push(nest(1, dataValue(k)));
        }
      }
      // enum nft_set_elem_list_attributes: TABLE 1, SET 2, ELEMENTS 3.
      const attrs = [table, strz(2, c.set), list(3, items, true)];
      return c.verb === 'add'
        ? { type: MSG.NEWSETELEM, flags: NLM_F_CREATE, family: c.family, attrs }
        : { type: MSG.DELSETELEM, flags: 0, family: c.family, attrs };
    }
    default:
      return undefined;
  }
}

function message(type: number, flags: number, seq: number, family: number, resId: number, attrs: readonly Buffer[]): Buffer {
  const body = Buffer.concat([Buffer.from([family, 0, resId >> 8, resId & 0xff]), ...attrs]);
  const head = Buffer.alloc(16);
  head.writeUInt32LE(16 + body.length, 0);
  head.writeUInt16LE(type, 4);
  head.writeUInt16LE(NLM_F_REQUEST | flags, 6);
  head.writeUInt32LE(seq, 8);
  head.writeUInt32LE(0, 12);
  return Buffer.concat([head, body]);
}

export interface Batch {
  bytes: Buffer;
  /** Sequence numbers: the batch's begin message, then one per command, in order. */
  first: number;
  commands: number;
}

let nextSeq = 1;

/**
 * The commands as one batch (begin, a message per command, end), each
 * command asking for an acknowledgement; `generation`: the ruleset
 * generation the commands were planned at. undefined when a command is not
 * one this module encodes or the batch is not small.
 */
export function encodeBatch(commands: readonly NftCommand[], generation?: number): Batch | undefined {
  if (commands.length === 0) return undefined;
  const first = nextSeq;
  const parts: Buffer[] = [];
  const genid = generation === undefined ? [] : [be32(NFNL_BATCH_GENID, generation)];
  parts.push(message(NFNL_MSG_BATCH_BEGIN, 0, first, 0, NFNL_SUBSYS_NFTABLES, genid));
  let size = parts[0].length;
  for (let i = 0; i < commands.length; i++) {
    const m = encodeCommand(commands[i]);
    if (!m) return undefined;
    const b = message((NFNL_SUBSYS_NFTABLES << 8) | m.type, m.flags | NLM_F_ACK, first + 1 + i, NFPROTO[m.family], 0, m.attrs);
    size += b.length;
    if (size > MAX_BATCH_BYTES) return undefined;
    parts.push(b);
  }
  parts.push(message(NFNL_MSG_BATCH_END, 0, first + 1 + commands.length, 0, NFNL_SUBSYS_NFTABLES, []));
  nextSeq = (first + commands.length + 2) % 0x7fffffff || 1;
  return { bytes: Buffer.concat(parts), first, commands: commands.length };
}

/** What the kernel answered a batch: committed, refused because the generation moved, or refused for a command. */
export type BatchResult = { ok: true } | { ok: false; restart: true } | { ok: false; restart: false; command: number; errno: number };

/** The acknowledgements and errors among the kernel's answers: sequence number and errno (0: done). */
const answers = (raw: Buffer): { seq: number; errno: number }[] =>
  messages(raw).flatMap((m) => (m.type === NLMSG_ERROR && m.data.length >= 4 ? [{ seq: m.seq, errno: -m.data.readInt32LE(0) }] : []));

/** An nfnetlink socket per network namespace, kept: opening and closing one a batch cost 13 ms (measured). */
const sockets = new Map<string, number>();

function socketHere(): number {
  // The calling thread's namespace, as libnftables takes it: a socket belongs to the namespace it was opened in.
  const here = String(netnsInode());
  let fd = sockets.get(here);
  if (fd === undefined) {
    const n = native();
    if (!n.nfnlOpen) throw new Error('the addon has no nfnetlink socket');
    fd = n.nfnlOpen();
    // One namespace's socket kept at a time: a kept socket keeps its namespace alive after `ip netns del`.
    closeBatchSockets();
    sockets.set(here, fd);
  }
  return fd;
}

/** Close the kept sockets (tests; a process that is done with nftables). */
export function closeBatchSockets(): void {
  for (const fd of sockets.values()) native().closeFd?.(fd);
  sockets.clear();
}

/**
 * Send a batch on slbctl's nfnetlink socket of the calling thread's network
 * namespace (opened there once, as libnftables would be called there), and
 * read every command's answer or the refusal of the whole batch. The kernel
 * works a batch through inside the send, so this is synchronous: a small
 * batch is a millisecond or so of kernel time.
 */
export function sendBatch(batch: Batch): BatchResult {
  const n = native();
  if (!n.nfnlBatch) throw new Error('the addon has no nfnetlink batches');
  const raw = n.nfnlBatch(socketHere(), batch.bytes, batch.first, batch.first + batch.commands);
  const pending = new Set<number>();
  for (let i = 1; i <= batch.commands; i++) pending.add(batch.first + i);
  let failed: BatchResult | undefined;
  for (const a of answers(raw)) {
    if (a.seq === batch.first) {
      if (a.errno === ERESTART) return { ok: false, restart: true };
      throw new Error(`nfnetlink: the batch was refused: errno ${a.errno}`);
    }
    if (!pending.delete(a.seq)) continue;
    if (a.errno !== 0 && !failed) failed = { ok: false, restart: false, command: a.seq - batch.first - 1, errno: a.errno };
  }
  if (failed) return failed;
  if (pending.size > 0) throw new Error(`nfnetlink: no answer to ${pending.size} of the batch's ${batch.commands} commands`);
  return { ok: true };
}
