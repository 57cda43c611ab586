import { describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { decodePcap, readPcap, writePcap } from '../../src/capture/pcap';
import { findCommand, run } from '../../src/util/exec';
import { SYN, ethernet, ipv4, tcp } from '../helpers/frames';

const frames = [
  { tsMicros: 1_700_000_000_123_456, wireLength: 0, data: ethernet('02:00:00:00:00:83', '02:00:00:00:00:40', 0x0800, ipv4('10.8.21.40', '172.16.75.84', 6, tcp(51234, 80, SYN))) },
  { tsMicros: 1_700_000_000_223_456, wireLength: 0, data: ethernet('02:00:00:00:00:82', '02:00:00:00:00:83', 0x0800, ipv4('172.16.75.83', '172.16.75.82', 6, tcp(4574, 80, SYN))) },
].map((f) => ({ ...f, wireLength: f.data.length }));

describe('pcap files', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'slbctl-pcap-'));
  const file = path.join(dir, 'lb.pcap');

  it('round-trips frames and timestamps', () => {
    writePcap(file, 'ETHERNET', frames);
    const back = readPcap(file);
    assert.equal(back.linkType, 'ETHERNET');
    assert.deepEqual(back.frames, frames);
  });

  it('rejects what is not a pcap file', () => {
    assert.throws(() => decodePcap(Buffer.from('not a capture, just some text')), /bad magic/);
  });

  it('tshark reads the file', async (t) => {
    if (!findCommand('tshark')) {
      t.skip('tshark is not installed');
      return;
    }
    writePcap(file, 'ETHERNET', frames);
    const r = await run(['tshark', '-r', file, '-T', 'fields', '-e', 'ip.src', '-e', 'ip.dst', '-e', 'tcp.dstport']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, '10.8.21.40\t172.16.75.84\t80\n172.16.75.83\t172.16.75.82\t80\n');
    fs.rmSync(dir, { recursive: true, force: true });
  });
});
