import { describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import { COMMAND, DEST, SERVICE, decode, encode } from '../../src/kernel/ipvs/codec';
import { destinationFromWire, destinationToWire, serviceFromWire, serviceToWire } from '../../src/kernel/ipvs/types';
import { rng } from '../helpers/frames';

describe('IPVS attribute codec', () => {
  it('encodes a service key as the kernel expects (byte fixture)', () => {
    const bytes = encode(SERVICE, { af: 2, protocol: 6, addr: Buffer.from([172, 16, 75, 84, ...new Array<number>(12).fill(0)]), port: 80 });
    assert.equal(
      bytes.toString('hex'),
      [
        '0600',
        '0100',
        '0200',
        '0000', // AF: len 6, type 1, u16 2 (AF_INET), padding
        '0600',
        '0200',
        '0600',
        '0000', // PROTOCOL: u16 6 (TCP)
        '1400',
        '0300',
        'ac104b54000000000000000000000000', // ADDR: 16-byte nf_inet_addr
        '0600',
        '0400',
        '0050',
        '0000', // PORT: big-endian 80
      ].join(''),
    );
  });

  it('nests the service under the command attribute with NLA_F_NESTED', () => {
    const bytes = encode(COMMAND, { service: { af: 2 } });
    assert.equal(bytes.readUInt16LE(2), 0x8001);
    assert.deepEqual(decode(COMMAND, bytes), { service: { af: 2 } });
  });

  it('service and destination round-trip through the wire form', () => {
    const service = {
      protocol: 'udp' as const,
      address: '172.16.75.84',
      port: 53,
      scheduler: 'sh',
      flags: 1,
      timeout: 300,
      netmask: '255.255.255.0',
    };
    assert.deepEqual(serviceFromWire(decode(SERVICE, encode(SERVICE, serviceToWire(service)))), service);
    const dest = {
      address: '172.16.75.82',
      port: 53,
      forwarding: 'tunnel' as const,
      tunnelType: 'ipip' as const,
      weight: 65535,
      upperThreshold: 7,
      lowerThreshold: 3,
    };
    const back = destinationFromWire(decode(DEST, encode(DEST, destinationToWire(dest))));
    assert.deepEqual(
      { ...back, activeConnections: undefined, inactiveConnections: undefined, persistentConnections: undefined },
      { ...dest, activeConnections: undefined, inactiveConnections: undefined, persistentConnections: undefined },
    );
    assert.equal(back.weight, 65535, 'the weight is 32 bits both ways');
  });

  it('skips unknown attributes and never throws on garbage', () => {
    const withUnknown = Buffer.concat([encode(SERVICE, { af: 2 }), Buffer.from([8, 0, 99, 0, 1, 2, 3, 4])]);
    assert.deepEqual(decode(SERVICE, withUnknown), { af: 2 });
    const next = rng(7);
    for (let i = 0; i < 5000; i++) {
      const garbage = Buffer.from(Array.from({ length: Math.floor(next() * 64) }, () => Math.floor(next() * 256)));
      assert.doesNotThrow(() => decode(COMMAND, garbage));
    }
  });
});
