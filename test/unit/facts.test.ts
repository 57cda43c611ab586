// The verifier's judgement on hand-made captures: each mode's packets pass
// their own mode and fail the others, with the reason named.
import { describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import { judge, VerifyInput } from '../../src/verify/facts';
import { DecodedPacket, HostCapture } from '../../src/capture/types';
import { Mode } from '../../src/model/types';

const MAC = {
  client: '02:00:00:00:00:40',
  router: '02:00:00:00:00:01',
  lb: '02:00:00:00:00:83',
  rs1: '02:00:00:00:00:82',
  rs2: '02:00:00:00:00:85',
};
const A = {
  client: '10.8.21.40',
  lb: '172.16.75.83',
  vip: '172.16.75.84',
  port: 80,
  realServers: { rs1: '172.16.75.82', rs2: '172.16.75.85' },
};

function pkt(
  src: string,
  dst: string,
  sport: number,
  dport: number,
  flags: 'S' | 'SA' | 'A',
  dstMac: string,
  srcMac: string,
): DecodedPacket {
  return {
    tsNanos: 0n,
    srcMac,
    dstMac,
    etherType: 0x0800,
    ip: { version: 4, src, dst, protocol: 6, ttl: 64 },
    transport: {
      kind: 'tcp',
      srcPort: sport,
      dstPort: dport,
      seq: 0,
      ack: 0,
      payloadLength: 0,
      flags: { syn: flags !== 'A', ack: flags !== 'S', fin: false, rst: false, psh: false },
    },
  };
}

const host = (name: keyof typeof MAC, packets: DecodedPacket[]): HostCapture => ({
  host: name,
  device: 'eth0',
  mac: MAC[name],
  linkType: 'ETHERNET',
  frames: [],
  packets,
});

/** Captures of one connection to each RS, as the given mode would produce them. */
function captures(mode: Mode, broken?: 'rs2-replies-bypass-lb'): Omit<VerifyInput, 'mode' | 'expectedRealServers'> {
  const client: DecodedPacket[] = [];
  const lb: DecodedPacket[] = [];
  const rs: Record<'rs1' | 'rs2', DecodedPacket[]> = { rs1: [], rs2: [] };
  (['rs1', 'rs2'] as const).forEach((r, i) => {
    const sport = 40000 + i;
    const rsAddr = A.realServers[r];
    client.push(
      pkt(A.client, A.vip, sport, 80, 'S', MAC.router, MAC.client),
      pkt(A.vip, A.client, 80, sport, 'SA', MAC.client, MAC.router),
    );
    lb.push(pkt(A.client, A.vip, sport, 80, 'S', MAC.lb, MAC.router));
    if (mode === 'fullnat') {
      lb.push(pkt(A.lb, rsAddr, 5000 + i, 80, 'S', MAC[r], MAC.lb), pkt(rsAddr, A.lb, 80, 5000 + i, 'SA', MAC.lb, MAC[r]));
      rs[r].push(pkt(A.lb, rsAddr, 5000 + i, 80, 'S', MAC[r], MAC.lb), pkt(rsAddr, A.lb, 80, 5000 + i, 'SA', MAC.lb, MAC[r]));
    } else if (mode === 'transparent') {
      const viaLb = !(broken === 'rs2-replies-bypass-lb' && r === 'rs2');
      rs[r].push(
        pkt(A.client, rsAddr, sport, 80, 'S', MAC[r], MAC.lb),
        pkt(rsAddr, A.client, 80, sport, 'SA', viaLb ? MAC.lb : MAC.router, MAC[r]),
      );
      if (viaLb) lb.push(pkt(rsAddr, A.client, 80, sport, 'SA', MAC.lb, MAC[r]));
    } else {
      lb.push(pkt(A.client, A.vip, sport, 80, 'S', MAC[r], MAC.lb));
      rs[r].push(pkt(A.client, A.vip, sport, 80, 'S', MAC[r], MAC.lb), pkt(A.vip, A.client, 80, sport, 'SA', MAC.router, MAC[r]));
    }
  });
  return {
    addresses: A,
    client: host('client', client),
    lb: host('lb', lb),
    realServers: [host('rs1', rs.rs1), host('rs2', rs.rs2)],
    requests: [
      { ok: true, realServer: 'rs1' },
      { ok: true, realServer: 'rs2' },
    ],
  };
}

const verdict = (applied: Mode, judged: Mode, broken?: 'rs2-replies-bypass-lb') =>
  judge({ ...captures(applied, broken), mode: judged, expectedRealServers: ['rs1', 'rs2'] });
const failing = (v: ReturnType<typeof judge>) => v.facts.filter((f) => !f.pass).map((f) => f.fact);

describe('judge', () => {
  const modes: Mode[] = ['fullnat', 'transparent', 'dsr'];
  for (const applied of modes) {
    for (const judged of modes) {
      it(`${applied} packets judged as ${judged}: ${applied === judged ? 'pass' : 'fail'}`, () => {
        const v = verdict(applied, judged);
        assert.equal(v.pass, applied === judged, `failing: ${failing(v).join(', ')}`);
      });
    }
  }

  it('fullnat judged as dsr fails on what the RS saw as source, and says so', () => {
    const v = verdict('fullnat', 'dsr');
    const source = v.facts.find((f) => f.fact === 'real servers see source');
    assert.equal(source?.pass, false);
    assert.equal(source?.seen, '172.16.75.83');
    assert.match(source?.why ?? '', /real servers saw 172\.16\.75\.83/);
  });

  it('transparent with one RS replying past the LB fails and names it', () => {
    const v = verdict('transparent', 'transparent', 'rs2-replies-bypass-lb');
    assert.deepEqual(failing(v), ["real servers' replies come back through the LB"]);
    assert.match(v.facts.find((f) => !f.pass)?.why ?? '', /rs2/);
  });

  it('failed requests fail the verdict', () => {
    const input = { ...captures('dsr'), mode: 'dsr' as const, expectedRealServers: ['rs1', 'rs2'] };
    input.requests = [{ ok: true }, { ok: false, error: 'Operation timed out' }];
    assert.deepEqual(failing(judge(input)), ['client requests answered']);
  });

  it('an empty capture never passes', () => {
    const input: VerifyInput = {
      addresses: A,
      client: host('client', []),
      lb: host('lb', []),
      realServers: [host('rs1', []), host('rs2', [])],
      requests: [],
      mode: 'fullnat',
      expectedRealServers: ['rs1', 'rs2'],
    };
    assert.equal(judge(input).pass, false);
  });
});
