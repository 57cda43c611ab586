import { describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import { GETGEN_TYPE, NEWGEN_TYPE, decodeNewGen, encodeGetGen } from '../../src/kernel/nft/generation';
import { nextGeneration } from '../../src/kernel/nft/applied';

describe('nftables ruleset generation (NFT_MSG_GETGEN)', () => {
  it('asks with the nftables subsystem type and an AF_UNSPEC nfgenmsg', () => {
    assert.equal(GETGEN_TYPE, 0x0a10);
    assert.equal(NEWGEN_TYPE, 0x0a0f);
    assert.equal(encodeGetGen().toString('hex'), '00000000');
  });

  it('reads NFTA_GEN_ID from a NEWGEN reply captured from the kernel (generation 8, pid 0x51e4, "node")', () => {
    const payload = Buffer.from('00000008080001000000000808000200000051e4090003006e6f646500000000', 'hex');
    assert.equal(decodeNewGen(payload), 8);
  });

  it('reads a generation past 2^31 as unsigned big-endian, whatever attribute comes first', () => {
    const payload = Buffer.from('00000000' + '08000200000051e4' + '08000100fffffffe', 'hex');
    assert.equal(decodeNewGen(payload), 0xfffffffe);
  });

  it('refuses a reply without NFTA_GEN_ID, or with a truncated attribute', () => {
    assert.throws(() => decodeNewGen(Buffer.from('0000000008000200000051e4', 'hex')), /NFTA_GEN_ID/);
    assert.throws(() => decodeNewGen(Buffer.from('000000000800010000', 'hex')), /NFTA_GEN_ID/);
  });

  it('the generation after the last 32-bit value is 1 (the kernel skips 0)', () => {
    assert.equal(nextGeneration(7), 8);
    assert.equal(nextGeneration(0xffffffff), 1);
  });
});
