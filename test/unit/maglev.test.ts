// Maglev tables for the nftables `mh` scheduler: balanced, the same whatever
// the config's order, weighted, and moving about 1/N of the flows when one
// real server of N is added (where `hash mod N` moves most of them).
import { describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import { MAGLEV_SIZE, maglevTable, remappedFraction } from '../../src/kernel/nft/maglev';
import { backendSlots, slotTotal } from '../../src/kernel/nft/slots';
import { HASH_SEED, pickChainOf, pickRule } from '../../src/kernel/nft/rules';
import { parseComment, serviceComment } from '../../src/kernel/nft/names';
import { ServiceState } from '../../src/model/state';

const ids = (n: number) => Array.from({ length: n }, (_, i) => `10.0.${Math.floor(i / 250)}.${(i % 250) + 1}:80`);
const owners = (members: { id: string; weight: number }[]) => maglevTable(members).map((i) => members[i]?.id ?? '-');

describe('maglev table', () => {
  it('is prime-sized, fully assigned, and balanced to one entry with equal weights', () => {
    for (const n of [1, 2, 3, 4, 8, 16]) {
      const table = maglevTable(ids(n).map((id) => ({ id, weight: 1 })));
      assert.equal(table.length, MAGLEV_SIZE);
      const counts = ids(n).map((_, i) => table.filter((x) => x === i).length);
      assert.ok(Math.max(...counts) - Math.min(...counts) <= 1, `${n} servers: ${counts.join(' ')}`);
    }
  });

  it('depends on the servers, not their order in the config', () => {
    const members = ids(5).map((id, i) => ({ id, weight: 1 + (i % 2) }));
    const reversed = [...members].reverse();
    assert.deepEqual(owners(members), owners(reversed));
  });

  it('follows the weights, and leaves weight 0 out', () => {
    const [a = '', b = '', c = ''] = ids(3);
    const table = owners([
      { id: a, weight: 2 },
      { id: b, weight: 1 },
      { id: c, weight: 0 },
    ]);
    const share = table.filter((x) => x === a).length / table.length;
    assert.ok(Math.abs(share - 2 / 3) < 0.02, `weight 2 of 3: share ${share}`);
    assert.ok(!table.includes(c));
    assert.deepEqual(maglevTable([{ id: a, weight: 0 }]), new Array<number>(MAGLEV_SIZE).fill(-1));
  });

  it('adding one server of N moves about 1/(N+1) of the entries; mod N moves most', () => {
    for (const n of [4, 8, 16]) {
      const before = owners(ids(n).map((id) => ({ id, weight: 1 })));
      const after = owners(ids(n + 1).map((id) => ({ id, weight: 1 })));
      const moved = remappedFraction(before, after);
      // The ideal is 1/(N+1) (only the new server's share moves); Maglev is near it, not exact.
      assert.ok(moved >= 1 / (n + 1) - 0.01 && moved < 1.8 / (n + 1), `N=${n}: maglev moved ${moved.toFixed(3)}`);
      const modBefore = Array.from({ length: MAGLEV_SIZE }, (_, h) => String(h % n));
      const modAfter = Array.from({ length: MAGLEV_SIZE }, (_, h) => String(h % (n + 1)));
      assert.ok(remappedFraction(modBefore, modAfter) > 0.7, `N=${n}: mod N moved most`);
    }
  });

  it('refuses a table size that is not prime', () => {
    assert.throws(() => maglevTable([{ id: 'a', weight: 1 }], 250), /not prime/);
  });
});

describe('mh as nftables slots', () => {
  const service = (weights: number[]): ServiceState =>
    ({
      key: 'tcp/172.16.75.84:80',
      name: 'web',
      vip: '172.16.75.84',
      port: 80,
      protocol: 'tcp',
      mode: 'fullnat',
      scheduler: 'mh',
      realServers: weights.map((weight, i) => ({ address: `172.16.75.${82 + i}`, port: 80, weight })),
    }) as unknown as ServiceState;

  it('gives MAGLEV_SIZE slots, each a real server; none when every weight is 0', () => {
    const { total, slots } = backendSlots(service([1, 1]));
    assert.equal(total, MAGLEV_SIZE);
    assert.deepEqual([...new Set(slots.map((s) => s.value))].sort(), ['172.16.75.82 . 80', '172.16.75.83 . 80']);
    assert.deepEqual(backendSlots(service([0, 0])), { total: 0, slots: [] });
  });

  it('takes its size and seed from maglev: its own table size, seed and pick chain, and the pair in the rule comment', () => {
    const plain = service([1, 1]);
    const own = { ...plain, maglev: { size: 251, seed: 42 } };
    assert.equal(backendSlots(own).total, 251);
    assert.equal(slotTotal(own), 251);
    assert.match(pickRule(own, 251).text, /jhash ip saddr \. tcp sport mod 251 seed 0x2a /);
    assert.match(pickRule(plain, MAGLEV_SIZE).text, new RegExp(`mod ${MAGLEV_SIZE} seed 0x${HASH_SEED.toString(16)} `));
    // Same size, other seed: not the default's pick chain, which services with the default seed share.
    const sameSize = { ...plain, maglev: { size: MAGLEV_SIZE, seed: 42 } };
    assert.notEqual(pickChainOf(sameSize, MAGLEV_SIZE), pickChainOf(plain, MAGLEV_SIZE));
    assert.equal(parseComment(serviceComment({ ...own, device: 'eth0' }))?.mg, '251/42');
    assert.equal(parseComment(serviceComment({ ...plain, device: 'eth0' }))?.mg, undefined);
  });
});
