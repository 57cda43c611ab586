import { describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import { COMMAND, decode, encode } from '../../src/kernel/ipvs/codec';
import { daemonFromWire, daemonToWire, sameDaemon } from '../../src/kernel/ipvs/daemon';
import { Attrs } from '../../src/kernel/ipvs/codec';

// Bytes derived from include/uapi/linux/ip_vs.h (IPVS_CMD_ATTR_DAEMON = 3,
// IPVS_DAEMON_ATTR_* = 1..8) and ip_vs_daemon_policy in ip_vs_ctl.c (state and
// sync id u32, interface a NUL-terminated string, group an in_addr, port a
// host-order u16, ttl a u8); netlink attributes are little-endian headers
// padded to 4 bytes.
describe('IPVS sync daemon codec', () => {
  it('encodes NEW_DAEMON for a master as the kernel expects (byte fixture)', () => {
    const bytes = encode(COMMAND, {
      daemon: daemonToWire({ state: 'master', interface: 'eth1', syncId: 7, group: '224.0.0.81', port: 8848 }),
    });
    assert.equal(
      bytes.toString('hex'),
      [
        '3000',
        '0380', // CMD_ATTR_DAEMON: len 48, type 3 | NLA_F_NESTED
        '0800',
        '0100',
        '01000000', // STATE: u32 1 (IP_VS_STATE_MASTER)
        '0900',
        '0200',
        '6574683100',
        '000000', // MCAST_IFN: "eth1\0", padded
        '0800',
        '0300',
        '07000000', // SYNC_ID: u32 7
        '0800',
        '0500',
        'e0000051', // MCAST_GROUP: 224.0.0.81, network order
        '0600',
        '0700',
        '9022',
        '0000', // MCAST_PORT: u16 8848 (0x2290) in host order, padded
      ].join(''),
    );
  });

  it('encodes DEL_DAEMON with the state alone', () => {
    const bytes = encode(COMMAND, { daemon: { state: 2 } });
    assert.equal(bytes.toString('hex'), ['0c00', '0380', '0800', '0100', '02000000'].join(''));
  });

  it('decodes a GET_DAEMON reply as ip_vs_genl_fill_daemon writes it (nest without NLA_F_NESTED)', () => {
    const reply = Buffer.from(
      [
        '4000',
        '0300', // CMD_ATTR_DAEMON: len 64, type 3 (nla_nest_start_noflag)
        '0800',
        '0100',
        '02000000', // STATE: backup
        '0a00',
        '0200',
        '76657468300000',
        '00', // MCAST_IFN: "veth0\0" (len 10), padded
        '0800',
        '0300',
        '2a000000', // SYNC_ID: 42
        '0600',
        '0400',
        'dc05',
        '0000', // SYNC_MAXLEN: 1500
        '0600',
        '0700',
        '0f27',
        '0000', // MCAST_PORT: 9999
        '0500',
        '0800',
        '01',
        '000000', // MCAST_TTL: 1
        '0800',
        '0500',
        'ef010203', // MCAST_GROUP: 239.1.2.3
      ].join(''),
      'hex',
    );
    assert.equal(reply.length, 64);
    const daemon = daemonFromWire(decode(COMMAND, reply).daemon as Attrs);
    assert.deepEqual(daemon, {
      state: 'backup',
      interface: 'veth0',
      syncId: 42,
      group: '239.1.2.3',
      port: 9999,
      ttl: 1,
      maxLength: 1500,
    });
  });

  it('round-trips and compares on state, interface, id, group and port only', () => {
    const d = { state: 'backup' as const, interface: 'sync0', syncId: 255, group: '239.255.0.1', port: 65535 };
    const back = daemonFromWire(decode(COMMAND, encode(COMMAND, { daemon: daemonToWire(d) })).daemon as Attrs);
    assert.deepEqual(back, d);
    assert.ok(back && sameDaemon(back, { ...d }) && sameDaemon({ ...back, ttl: 3 }, d));
    assert.ok(!sameDaemon(d, { ...d, state: 'master' }) && !sameDaemon(d, { ...d, syncId: 1 }) && !sameDaemon(d, { ...d, port: 8848 }));
    assert.equal(daemonFromWire({ state: 0 }), undefined);
  });
});
