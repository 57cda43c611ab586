// The two pieces of netlink's wire format that slbctl reads and writes by
// hand (rtnetlink routes, nfnetlink batches, the addon's raw dumps): one
// attribute (struct nlattr, padded to 4 bytes) and the messages of a buffer
// (struct nlmsghdr each, 4-byte aligned).

/** One attribute: length (header included, padding not), type, the value, padding to 4 bytes. */
export function attribute(type: number, value: Buffer): Buffer {
  const head = Buffer.alloc(4);
  head.writeUInt16LE(4 + value.length, 0);
  head.writeUInt16LE(type, 2);
  const pad = (4 - (value.length % 4)) % 4;
  return pad ? Buffer.concat([head, value, Buffer.alloc(pad)]) : Buffer.concat([head, value]);
}

/** The messages in a buffer of netlink messages (struct nlmsghdr { u32 len; u16 type; u16 flags; u32 seq; u32 pid }); a short one ends it. */
export function messages(raw: Buffer): { type: number; seq: number; data: Buffer }[] {
  const out: { type: number; seq: number; data: Buffer }[] = [];
  for (let at = 0; at + 16 <= raw.length;) {
    const len = raw.readUInt32LE(at);
    if (len < 16 || at + len > raw.length) break;
    out.push({ type: raw.readUInt16LE(at + 4), seq: raw.readUInt32LE(at + 8), data: raw.subarray(at + 16, at + len) });
    at += (len + 3) & ~3;
  }
  return out;
}
