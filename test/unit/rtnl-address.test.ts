// The rtnetlink address decoder (src/kernel/rtnl/rtnl.ts decodeAddress) on a
// RTM_NEWADDR payload laid out as the kernel sends it for `ip addr add
// 198.18.0.2/32 dev eth0` (ifindex 3): ifaddrmsg, then IFA_ADDRESS,
// IFA_LOCAL, IFA_LABEL, IFA_FLAGS and IFA_CACHEINFO.
import { describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import { decodeAddress } from '../../src/kernel/rtnl/rtnl';

const attr = (type: number, value: Buffer) => {
  const len = 4 + value.length;
  const b = Buffer.alloc((len + 3) & ~3);
  b.writeUInt16LE(len, 0);
  b.writeUInt16LE(type, 2);
  value.copy(b, 4);
  return b;
};

const payload = (prefix: number, local: number[] | undefined, address: number[], label?: string) =>
  Buffer.concat([
    Buffer.from([2, prefix, 0x80, 0, 3, 0, 0, 0]),
    attr(1, Buffer.from(address)),
    ...(local ? [attr(2, Buffer.from(local))] : []),
    ...(label ? [attr(3, Buffer.from(`${label}\0`))] : []),
    attr(8, Buffer.from([0x80, 0, 0, 0])),
    attr(6, Buffer.alloc(16, 0xff)),
  ]);

describe('rtnetlink address decoding', () => {
  it('reads the interface, the local address, the prefix and the label', () => {
    assert.deepEqual(decodeAddress(payload(32, [198, 18, 0, 2], [198, 18, 0, 2], 'eth0')), {
      index: 3,
      entry: { address: '198.18.0.2', prefixLength: 32, label: 'eth0' },
    });
  });

  it('takes IFA_LOCAL over IFA_ADDRESS (the peer of a point-to-point address)', () => {
    assert.equal(decodeAddress(payload(32, [10, 0, 0, 1], [10, 0, 0, 2]))?.entry.address, '10.0.0.1');
    assert.equal(decodeAddress(payload(24, undefined, [10, 0, 0, 2]))?.entry.address, '10.0.0.2');
  });

  it('ignores what is not IPv4', () => {
    assert.equal(decodeAddress(Buffer.from([10, 64, 0, 0, 3, 0, 0, 0])), undefined);
  });
});
