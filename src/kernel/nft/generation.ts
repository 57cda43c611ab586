// The nftables ruleset generation of this network namespace, asked of the
// kernel directly over nfnetlink (NFT_MSG_GETGEN): one small message, no
// listing. The kernel moves the generation on every committed nftables
// transaction in the namespace, whoever sent it and whatever table it
// touched, so an unchanged generation means an unchanged ruleset.
import { NetlinkSocket, createNetlink, parseError } from 'netlink';
import { NftError } from './client';

const NETLINK_NETFILTER = 12;
const NLMSG_ERROR = 2;
/** include/uapi/linux/netfilter/nfnetlink.h: the nftables subsystem's message types are (10 << 8) | command. */
export const NFNL_SUBSYS_NFTABLES = 10;
/** include/uapi/linux/netfilter/nf_tables.h, enum nf_tables_msg_types. */
const NFT_MSG_NEWGEN = 15;
const NFT_MSG_GETGEN = 16;
/** enum nft_gen_attributes. */
const NFTA_GEN_ID = 1;

export const GETGEN_TYPE = (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETGEN;
export const NEWGEN_TYPE = (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWGEN;

/** The payload of a GETGEN request: struct nfgenmsg { family AF_UNSPEC, version NFNETLINK_V0, res_id 0 }. */
export function encodeGetGen(): Buffer {
  return Buffer.from([0, 0, 0, 0]);
}

/** The generation in a NEWGEN reply's payload (nfgenmsg, then attributes; NFTA_GEN_ID is big-endian u32). */
export function decodeNewGen(payload: Buffer): number {
  let at = 4;
  while (at + 4 <= payload.length) {
    const len = payload.readUInt16LE(at);
    const type = payload.readUInt16LE(at + 2) & 0x3fff;
    if (len < 4 || at + len > payload.length) break;
    if (type === NFTA_GEN_ID && len >= 8) return payload.readUInt32BE(at + 4);
    at += (len + 3) & ~3;
  }
  throw new NftError('read the ruleset generation', 'the kernel answer has no NFTA_GEN_ID');
}

let socket: NetlinkSocket | undefined;

/** The current ruleset generation of this namespace. */
export async function readGeneration(): Promise<number> {
  socket ??= createNetlink(NETLINK_NETFILTER);
  const [messages] = await socket.request(GETGEN_TYPE, encodeGetGen(), { checkError: false, timeout: 5000 });
  for (const m of messages) {
    if (m.type === NLMSG_ERROR) {
      const { errno } = parseError(m.data, m.flags);
      if (errno !== 0) throw new NftError('read the ruleset generation', `errno ${-errno}`);
    }
    if (m.type === NEWGEN_TYPE) return decodeNewGen(m.data);
  }
  throw new NftError('read the ruleset generation', 'the kernel sent no NEWGEN answer');
}

/** Close the socket (tests, and a process that leaves the namespace). */
export function closeGenerationSocket(): void {
  socket?.close();
  socket = undefined;
}
