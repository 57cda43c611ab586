import { after, describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { decodePcap, encodePcap, readPcap, writePcap } from '../../src/capture/pcap';
import { findCommand, run } from '../../src/util/exec';
import { SYN, ethernet, ipv4, tcp } from '../helpers/frames';
import { epochNanos } from '../helpers/tshark';

const frames = [
  {
    tsNanos: 1_700_000_000_123_456_789n,
    wireLength: 0,
    data: ethernet('02:00:00:00:00:83', '02:00:00:00:00:40', 0x0800, ipv4('10.8.21.40', '172.16.75.84', 6, tcp(51234, 80, SYN))),
  },
  {
    tsNanos: 1_700_000_000_223_456_001n,
    wireLength: 0,
    data: ethernet('02:00:00:00:00:82', '02:00:00:00:00:83', 0x0800, ipv4('172.16.75.83', '172.16.75.82', 6, tcp(4574, 80, SYN))),
  },
].map((f) => ({ ...f, wireLength: f.data.length }));

describe('pcap files', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'slbctl-pcap-'));
  const file = path.join(dir, 'lb.pcap');

  it('round-trips frames and nanosecond timestamps', () => {
    writePcap(file, 'ETHERNET', frames);
    const back = readPcap(file);
    assert.equal(back.linkType, 'ETHERNET');
    assert.deepEqual(back.frames, frames);
  });

  it('encodes nanoseconds in the record header: seconds, then nanoseconds (not microseconds)', () => {
    const bytes = encodePcap('ETHERNET', frames);
    const u32 = (o: number) => (os.endianness() === 'LE' ? bytes.readUInt32LE(o) : bytes.readUInt32BE(o));
    assert.equal(u32(0), 0xa1b23c4d);
    assert.deepEqual([u32(24), u32(28)], [1_700_000_000, 123_456_789]);
    // Frames a few nanoseconds apart stay apart, and the edges of a second survive.
    const edges = [0n, 999_999_999n, 1_000_000_000n, 1_700_000_000_000_000_001n, 4_294_967_295_999_999_999n];
    const data = frames[0]?.data ?? Buffer.alloc(0);
    const back = decodePcap(
      encodePcap(
        'RAW',
        edges.map((tsNanos) => ({ tsNanos, wireLength: data.length, data })),
      ),
    );
    assert.deepEqual(
      back.frames.map((f) => f.tsNanos),
      edges,
    );
  });

  it('reads microsecond files as whole microseconds', () => {
    const data = frames[0]?.data ?? Buffer.alloc(0);
    const micro = encodePcap('ETHERNET', [{ tsNanos: 0n, wireLength: data.length, data }]);
    const le = os.endianness() === 'LE';
    const put = (v: number, o: number) => (le ? micro.writeUInt32LE(v, o) : micro.writeUInt32BE(v, o));
    put(0xa1b2c3d4, 0);
    put(1_700_000_000, 24);
    put(123_456, 28);
    assert.deepEqual(
      decodePcap(micro).frames.map((f) => f.tsNanos),
      [1_700_000_000_123_456_000n],
    );
  });

  it('reads big-endian files, nanosecond timestamps, and drops a half-written last record', () => {
    const data = frames[0]?.data;
    const header = Buffer.alloc(24);
    header.writeUInt32BE(0xa1b23c4d, 0); // nanosecond magic, written big-endian
    header.writeUInt16BE(2, 4);
    header.writeUInt16BE(4, 6);
    header.writeUInt32BE(65535, 16);
    header.writeUInt32BE(101, 20);
    const record = Buffer.alloc(16);
    record.writeUInt32BE(1_700_000_000, 0);
    record.writeUInt32BE(123_456_789, 4);
    record.writeUInt32BE(data.length, 8);
    record.writeUInt32BE(data.length + 100, 12);
    const back = decodePcap(Buffer.concat([header, record, data, record, data.subarray(0, 10)]));
    assert.equal(back.linkType, 'RAW');
    assert.deepEqual(back.frames, [{ tsNanos: 1_700_000_000_123_456_789n, wireLength: data.length + 100, data }]);
  });

  it('writes the classic header: nanosecond magic in host byte order, version 2.4, snap length 65535, link type', () => {
    writePcap(file, 'LINUX_SLL', []);
    const header = fs.readFileSync(file);
    const u32 = (o: number) => (os.endianness() === 'LE' ? header.readUInt32LE(o) : header.readUInt32BE(o));
    assert.equal(header.length, 24);
    assert.equal(u32(0), 0xa1b23c4d);
    assert.equal(u32(4), os.endianness() === 'LE' ? 0x00040002 : 0x00020004);
    assert.equal(u32(16), 65535);
    assert.equal(u32(20), 113);
  });

  it('rejects what is not a pcap file', () => {
    assert.throws(() => decodePcap(Buffer.from('not a capture, just some text')), /bad magic/);
  });

  it('tshark reads the file, to the nanosecond', async (t) => {
    if (!findCommand('tshark')) {
      t.skip('tshark is not installed');
      return;
    }
    writePcap(file, 'ETHERNET', frames);
    const r = await run(['tshark', '-r', file, '-T', 'fields', '-e', 'frame.time_epoch', '-e', 'ip.src', '-e', 'tcp.dstport']);
    assert.equal(r.code, 0, r.stderr);
    const rows = r.stdout
      .trimEnd()
      .split('\n')
      .map((l) => l.split('\t'));
    assert.deepEqual(
      rows.map(([time, src, port]) => [epochNanos(time ?? ''), src, port]),
      [
        [1_700_000_000_123_456_789n, '10.8.21.40', '80'],
        [1_700_000_000_223_456_001n, '172.16.75.83', '80'],
      ],
    );
  });

  after(() => fs.rmSync(dir, { recursive: true, force: true }));
});
