// Captures recorded from the netns lab (test/fixtures/ladder/MODE/HOST.pcap), read back as verify saw them.
import * as path from 'node:path';
import { decodeFrame } from '../../src/capture/decode';
import { readPcap } from '../../src/capture/pcap';
import { HostCapture, LinkType } from '../../src/capture/types';
import { LabAddresses } from '../../src/verify/facts';

export const RECORDED = path.join(__dirname, '..', '..', '..', 'test', 'fixtures', 'ladder');
export const RECORDED_MODES = ['fullnat', 'transparent', 'dsr', 'l7-reverse-proxy', 'l7-transparent'] as const;
export const RECORDED_HOSTS = ['client', 'lb', 'rs1', 'rs2'];

/** The reference lab's addresses, as the recordings were made. */
export const LAB_ADDRESSES: LabAddresses = {
  client: '10.8.21.40',
  lb: '172.16.75.83',
  vip: '172.16.75.84',
  port: 80,
  rsPort: 80,
  realServers: { rs1: '172.16.75.82', rs2: '172.16.75.85' },
};

/** One recorded mode's captures; the MAC is left to the ladder to infer, as for any pcap read from disk. */
export function recordedCaptures(mode: string): HostCapture[] {
  return RECORDED_HOSTS.map((host) => {
    const file = path.join(RECORDED, mode, `${host}.pcap`);
    const { linkType, frames } = readPcap(file);
    if (typeof linkType === 'number') throw new Error(`${file}: link type ${linkType}`);
    const lt: LinkType = linkType;
    return { host, device: 'eth0', mac: '', linkType: lt, frames, packets: frames.map((f) => decodeFrame(f, lt)), pcapPath: file };
  });
}
