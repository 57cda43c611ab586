// Captures recorded from the netns lab (test/fixtures/ladder/MODE/HOST.pcap), read back as verify saw them.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { decodeFrame } from '../../src/capture/decode';
import { readPcap } from '../../src/capture/pcap';
import { HostCapture, LinkType } from '../../src/capture/types';
import { Mode } from '../../src/model/types';
import { ReportSection } from '../../src/report/html';
import { buildLadder, captureMac } from '../../src/report/ladder';
import { judge, LabAddresses, RequestOutcome } from '../../src/verify/facts';

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

const MODE_OF: Record<(typeof RECORDED_MODES)[number], Mode> = {
  fullnat: 'fullnat',
  transparent: 'transparent',
  dsr: 'dsr',
  'l7-reverse-proxy': 'fullnat',
  'l7-transparent': 'transparent',
};

/** A recorded mode judged as `lab verify` judged it live (the MACs inferred for the facts that need them) and its ladder. */
export function recordedSection(recorded: (typeof RECORDED_MODES)[number]): ReportSection {
  const captures = recordedCaptures(recorded);
  const a = LAB_ADDRESSES;
  for (const c of captures) c.mac = captureMac(c, new Set([c.host === 'lb' ? a.lb : (a.realServers[c.host] ?? a.client), a.vip]));
  const byHost = (h: string) => captures.find((c) => c.host === h) as HostCapture;
  const requests = JSON.parse(fs.readFileSync(path.join(RECORDED, recorded, 'requests.json'), 'utf8')) as RequestOutcome[];
  const verdict = judge({
    mode: MODE_OF[recorded],
    addresses: a,
    client: byHost('client'),
    lb: byHost('lb'),
    realServers: [byHost('rs1'), byHost('rs2')],
    requests,
    expectedRealServers: ['rs1', 'rs2'],
    serviceType: { protocol: recorded.startsWith('l7') ? 'http' : 'tcp', cache: false },
  });
  return { verdict, ladder: buildLadder({ captures, addresses: a }) };
}
