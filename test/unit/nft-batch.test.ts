// The nfnetlink batch encoder (src/kernel/nft/batch.ts) against the bytes nft
// 1.0.6 itself sent for the same commands (strace of `nft -f` on slbctl's
// table: each message's payload after its netlink header). That the kernel
// takes them and lists them as nft's own is test/integration/nft-batch.test.ts.
import { describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import { encodeBatch } from '../../src/kernel/nft/batch';
import { NftCommand } from '../../src/kernel/nft/commands';
import { pickRule, serviceRule } from '../../src/kernel/nft/rules';
import { ServiceState } from '../../src/model/state';

/** The messages of a batch: type, flags and payload (after the 16-byte header), begin and end included. */
function messages(bytes: Buffer): { type: number; flags: number; payload: string }[] {
  const out = [];
  for (let at = 0; at < bytes.length;) {
    const len = bytes.readUInt32LE(at);
    out.push({
      type: bytes.readUInt16LE(at + 4),
      flags: bytes.readUInt16LE(at + 6),
      payload: bytes.subarray(at + 16, at + len).toString('hex'),
    });
    at += (len + 3) & ~3;
  }
  return out;
}

const one = (c: NftCommand) => {
  const b = encodeBatch([c], 7);
  assert.ok(b);
  const m = messages(b.bytes);
  assert.equal(m.length, 3);
  return m;
};

const TABLE_ATTR = '0b000100736c6263746c00';

describe('nftables batch encoding', () => {
  it('frames the batch: begin with the generation (NFNL_BATCH_GENID), one acknowledged message per command, end', () => {
    const m = one({ verb: 'flush', object: 'chain', family: 'ip', chain: 'svc_tcp_198_18_0_2_80' });
    assert.deepEqual(m[0], { type: 16, flags: 0x1, payload: '0000000a' + '0800010000000007' });
    assert.equal(m[1].type, 0x0a08);
    assert.equal(m[1].flags, 0x1 | 0x4);
    // nft's DELRULE of `flush chain ip slbctl svc_tcp_198_18_0_2_80`.
    assert.equal(m[1].payload, `02000000${TABLE_ATTR}00` + '1a0002007376635f7463705f3139385f31385f305f325f3830000000');
    assert.deepEqual(m[2], { type: 17, flags: 0x1, payload: '0000000a' });
  });

  it('encodes the service rule as nft does (meta, cmp, counter, jump; the comment as user data)', () => {
    const s = {
      name: 'svc0',
      mode: 'fullnat',
      scheduler: 'wrr',
      device: 'eth0',
      snatAddress: '198.18.0.1',
      protocol: 'tcp',
      vip: '198.18.0.2',
      port: 80,
      realServers: [],
    } as unknown as ServiceState;
    const rule = serviceRule(s, 4);
    assert.equal(rule.text, 'meta l4proto tcp counter jump pick_tcp_inc_4');
    const m = one({ verb: 'add', object: 'rule', family: 'ip', chain: 'svc_tcp_198_18_0_2_80', rule });
    assert.equal(m[1].type, 0x0a06);
    assert.equal(m[1].flags, 0x1 | 0x4 | 0x400 | 0x800);
    const nft =
      '02000000' +
      `${TABLE_ATTR}00` +
      '1a0002007376635f7463705f3139385f31385f305f325f3830000000' +
      'ac000480' +
      '24000180090001006d6574610000000014000280080002000000001008000100000000012c00018008000100636d700020000280080001000000000108000200000000000c0003800500010006000000140001800c000100636f756e7465720004000280440001800e000100696d6d656469617465000000300002800800010000000000240002802000028008000100fffffffd130002007069636b5f7463705f696e635f340000' +
      '3b0007000035736c6263746c2f31206e3d73766330206d3d66756c6c6e617420733d77727220643d6574683020736e3d3139382e31382e302e310000';
    assert.equal(m[1].payload, nft);
  });

  it("encodes an rr/wrr pick chain's rule as nft does (the set by name: nft also sends its id, read only for a set of the same batch)", () => {
    const rule = pickRule({ mode: 'fullnat', scheduler: 'wrr', protocol: 'tcp' }, 8);
    const m = one({ verb: 'add', object: 'rule', family: 'ip', chain: 'pick_tcp_inc_8', rule });
    const lookupWithoutSetId =
      '380001800b0001006c6f6f6b757000002800028008000200000000010800030000000001110001006261636b656e64735f74637000000000';
    const nft =
      `02000000${TABLE_ATTR}00` +
      '130002007069636b5f7463705f696e635f380000' +
      '58010480' +
      '24000180090001006d6574610000000014000280080002000000001008000100000000012c00018008000100636d700020000280080001000000000108000200000000000c0003800500010006000000' +
      '340001800c0001007061796c6f616400240002800800010000000001080002000000000108000300000000100800040000000004' +
      '340001800c0001007061796c6f616400240002800800010000000009080002000000000208000300000000020800040000000002' +
      '340001800b0001006e756d67656e000024000280080001000000000a080002000000000808000300000000000800040000000000' +
      lookupWithoutSetId +
      '30000180080001006e617400240002800800010000000001080002000000000208000300000000010800050000000009';
    assert.equal(m[1].payload, nft);
    // Other selectors (source hash, flow hash, DSR's forwarding) are libnftables' to encode.
    const sh = pickRule({ mode: 'fullnat', scheduler: 'sh', protocol: 'tcp' }, 8);
    assert.equal(encodeBatch([{ verb: 'add', object: 'rule', family: 'ip', chain: 'pick_tcp_sh_8', rule: sh }]), undefined);
  });

  it('encodes elements as nft does: concatenations padded to 4 bytes, the slot in host order, comments as user data', () => {
    const del = one({
      verb: 'delete',
      object: 'element',
      family: 'ip',
      set: 'backends_tcp',
      keys: ['198.18.0.2 . 80 . 0', '198.18.0.2 . 80 . 1', '198.18.0.2 . 80 . 2', '198.18.0.2 . 80 . 3'],
    });
    assert.equal(del[1].type, 0x0a0e);
    assert.equal(
      del[1].payload,
      `02000000${TABLE_ATTR}00` +
        '110002006261636b656e64735f74637000000000' +
        '64000380' +
        '180001801400018010000100c61200020050000000000000180002801400018010000100c61200020050000001000000180003801400018010000100c61200020050000002000000180004801400018010000100c61200020050000003000000',
    );
    const add = one({
      verb: 'add',
      object: 'element',
      family: 'ip',
      set: 'members',
      elements: [{ key: 'tcp . 198.18.0.2 . 80 . 198.19.0.2 . 8080', comment: 'w=5' }],
    });
    assert.equal(add[1].type, 0x0a0c);
    assert.equal(add[1].flags, 0x1 | 0x4 | 0x400);
    // nft also sends the set's id (NFTA_SET_ELEM_LIST_SET_ID), which the kernel reads only for a set made in the same batch.
    assert.equal(
      add[1].payload,
      `02000000${TABLE_ATTR}00` +
        '0c0002006d656d6265727300' +
        '30000380' +
        '2c0001801c0001801800010006000000c612000200500000c61300021f9000000a0006000004773d35000000',
    );
    const verdict = one({
      verb: 'add',
      object: 'element',
      family: 'ip',
      set: 'services',
      elements: [{ key: 'tcp . 198.18.0.4 . 80', value: 'jump svc_tcp_198_18_0_4_80' }],
    });
    assert.equal(
      verdict[1].payload,
      `02000000${TABLE_ATTR}00` +
        '0d000200736572766963657300000000' +
        '48000380' +
        '44000180140001801000010006000000c6120004005000002c0002802800028008000100fffffffd1a0002007376635f7463705f3139385f31385f305f345f3830000000',
    );
  });

  it('leaves to libnftables what it does not encode: tables, hooked chains, pick and NAT rules, other sets, odd values', () => {
    // A pick rule whose expression does not say what its text says.
    const pick = { text: 'dnat ip to ip daddr . tcp dport . numgen inc mod 8 map @backends_tcp', expr: [{ dnat: {} }] };
    const cases: NftCommand[] = [
      { verb: 'add', object: 'table', family: 'ip' },
      {
        verb: 'add',
        object: 'chain',
        family: 'ip',
        chain: 'prerouting',
        declaration: '{ type nat hook prerouting priority dstnat; policy accept; }',
      },
      { verb: 'add', object: 'rule', family: 'ip', chain: 'pick_tcp_inc_8', rule: pick },
      { verb: 'add', object: 'element', family: 'ip', set: 'owned_addresses', elements: [{ key: '198.18.0.2' }] },
      { verb: 'add', object: 'element', family: 'ip', set: 'members', elements: [{ key: 'sctp . 198.18.0.2 . 80 . 198.19.0.2 . 8080' }] },
      { verb: 'add', object: 'element', family: 'ip', set: 'services', elements: [{ key: 'tcp . 198.18.0.2 . 80', value: 'goto x' }] },
      { verb: 'delete', object: 'element', family: 'ip', set: 'backends_tcp', keys: ['198.18.0.2 . 80'] },
    ];
    for (const c of cases)
      assert.equal(encodeBatch([{ verb: 'flush', object: 'chain', family: 'ip', chain: 'svc_x' }, c]), undefined, JSON.stringify(c));
  });
});
