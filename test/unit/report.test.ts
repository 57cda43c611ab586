// The packet ladder and the HTML report, from pcaps recorded in the netns
// lab (test/fixtures/ladder: `lab verify --out` of each mode, 2-4 requests).
import { describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import { Ladder, LadderArrow } from '../../src/report/ladder';
import { columnX, renderReport, rowY } from '../../src/report/html';
import { LAB_ADDRESSES, RECORDED_HOSTS, RECORDED_MODES, recordedSection } from '../helpers/recorded';

const sections = Object.fromEntries(RECORDED_MODES.map((m) => [m, recordedSection(m)]));
const ladderOf = (m: (typeof RECORDED_MODES)[number]): Ladder => sections[m].ladder;
const find = (l: Ladder, pred: (a: LadderArrow) => boolean) => l.arrows.find(pred);
const rsSyn = (l: Ladder) => find(l, (a) => a.what === 'SYN' && a.to === 'rs1');
const request = (l: Ladder) => find(l, (a) => a.from === 'client' && a.what.startsWith('GET / '));

/** Attributes of every `<tag class="cls" …>` in the HTML, in document order. */
function elements(html: string, tag: string, cls: string): Record<string, string>[] {
  return [...html.matchAll(new RegExp(`<${tag} class="${cls}[^"]*"([^>]*)>`, 'g'))].map((m) =>
    Object.fromEntries([...(m[1] ?? '').matchAll(/([\w-]+)="([^"]*)"/g)].map((a) => [a[1], a[2]])),
  );
}

describe('packet ladder from recorded pcaps', () => {
  for (const mode of RECORDED_MODES) {
    it(`${mode}: one column per host, the connection's packets in time order, each drawn once`, () => {
      const l = ladderOf(mode);
      assert.equal(sections[mode].verdict.pass, true, `the recording of ${mode} passes its own verdict`);
      assert.deepEqual(
        l.hosts.map((h) => h.name),
        RECORDED_HOSTS,
      );
      assert.deepEqual(
        l.arrows.map((a) => a.index),
        l.arrows.map((_, i) => i),
      );
      for (let i = 1; i < l.arrows.length; i++) assert.ok((l.arrows[i]?.atNanos ?? 0) >= (l.arrows[i - 1]?.atNanos ?? 0));
      assert.equal(l.arrows[0]?.atNanos, 0);
      assert.deepEqual([l.arrows[0]?.what, l.arrows[0]?.from, l.arrows[0]?.to], ['SYN', 'client', 'lb']);
      const whats = new Set(l.arrows.map((a) => a.what));
      for (const w of ['SYN', 'SYN-ACK', 'ACK', 'GET / HTTP/1.1', 'HTTP/1.1 200 OK', 'FIN-ACK'])
        assert.ok(whats.has(w), `${mode} has ${w}`);
      for (const a of l.arrows) {
        assert.notEqual(a.from, a.to);
        assert.ok(RECORDED_HOSTS.includes(a.from) && RECORDED_HOSTS.includes(a.to), `${a.from} > ${a.to}`);
        // Every hop here is between two captured hosts: the sender's frame and the receiver's are one arrow.
        assert.deepEqual(a.packets.map((p) => p.host).sort(), [a.from, a.to].sort(), `#${a.index + 1} ${a.what}`);
        assert.ok(a.arrivedNanos !== undefined && a.arrivedNanos >= a.atNanos);
      }
      assert.ok(!l.arrows.some((a) => a.from === 'rs2' || a.to === 'rs2'), 'rs2 has no part in the connection drawn');
    });
  }

  it('L4 modes: the RS gets a SYN before the request; L7: only after it, on a connection of its own', () => {
    for (const mode of ['fullnat', 'transparent', 'dsr'] as const) {
      const l = ladderOf(mode);
      assert.ok((rsSyn(l)?.index ?? Infinity) < (request(l)?.index ?? -1), mode);
      assert.equal(rsSyn(l)?.seq, l.arrows[0]?.seq, `${mode}: the client's sequence number`);
    }
    for (const mode of ['l7-reverse-proxy', 'l7-transparent'] as const) {
      const l = ladderOf(mode);
      assert.equal(l.server?.kind, 'own');
      assert.ok((rsSyn(l)?.index ?? -1) > (request(l)?.index ?? Infinity), mode);
      assert.equal(rsSyn(l)?.leg, 'server');
      assert.equal(l.arrows[1]?.what, 'SYN-ACK', 'the balancer answers the SYN itself');
      assert.deepEqual([l.arrows[1]?.from, l.arrows[1]?.to], ['lb', 'client']);
    }
  });

  it('transparent: the RS sees the client; fullnat: the balancer', () => {
    for (const mode of ['transparent', 'l7-transparent'] as const)
      assert.equal(rsSyn(ladderOf(mode))?.src.split(':')[0], LAB_ADDRESSES.client);
    for (const mode of ['fullnat', 'l7-reverse-proxy'] as const) assert.equal(rsSyn(ladderOf(mode))?.src.split(':')[0], LAB_ADDRESSES.lb);
    assert.equal(ladderOf('fullnat').server?.kind, 'rewritten');
    assert.equal(ladderOf('transparent').server?.kind, 'rewritten');
  });

  it('dsr: the replies go from the RS straight to the client, bypassing the balancer', () => {
    const l = ladderOf('dsr');
    assert.equal(l.server?.kind, 'same');
    const fromRs = l.arrows.filter((a) => a.from === 'rs1');
    assert.ok(fromRs.length > 0 && fromRs.every((a) => a.to === 'client' && a.src === `${LAB_ADDRESSES.vip}:80`));
    assert.ok(!l.arrows.some((a) => a.to === 'lb' && a.from !== 'client'));
    assert.ok(l.notes.some((n) => n.includes('straight to the client')));
    for (const mode of ['fullnat', 'transparent', 'l7-reverse-proxy', 'l7-transparent'] as const)
      assert.ok(
        ladderOf(mode).arrows.every((a) => a.from !== 'rs1' || a.to === 'lb'),
        mode,
      );
  });

  it("facts name frames, and those of the drawn connection are the ladder's arrows", () => {
    const s = sections.fullnat;
    const talks = s.verdict.facts.find((f) => f.fact === 'client talks only to the VIP');
    assert.deepEqual(talks?.packets?.[0], { host: 'client', frame: 1 });
    const drawn = new Set(s.ladder.arrows.flatMap((a) => a.packets.map((p) => `${p.host}#${p.frame}`)));
    assert.ok(talks?.packets?.some((p) => drawn.has(`${p.host}#${p.frame}`)));
    for (const sec of Object.values(sections))
      for (const f of sec.verdict.facts.filter((x) => x.fact !== 'client requests answered'))
        assert.ok((f.packets?.length ?? 0) > 0, `${sec.verdict.mode}: ${f.fact} names its frames`);
  });
});

describe('HTML report', () => {
  const list = RECORDED_MODES.map((m) => sections[m]);
  const html = renderReport(list);

  it('is one self-contained page: inline CSS and SVG, nothing fetched, phone viewport, dark theme', () => {
    assert.match(html, /^<!doctype html>/);
    assert.match(html, /<meta name="viewport" content="width=device-width, initial-scale=1">/);
    assert.match(html, /@media \(prefers-color-scheme: dark\)/);
    assert.doesNotMatch(html, /\ssrc=|<link|@import|https?:\/\//);
    for (const m of html.matchAll(/url\(([^)]*)\)/g)) assert.match(m[1] ?? '', /^#/);
    assert.equal((html.match(/<svg class="ladder" viewBox="0 0 \d+ \d+"/g) ?? []).length, list.length);
    assert.equal((html.match(/<section class="mode"/g) ?? []).length, list.length);
  });

  it('draws a column per host and the arrows where the packets say, in time order', () => {
    const hosts = elements(html, 'g', 'host');
    assert.equal(hosts.length, list.length * RECORDED_HOSTS.length);
    const arrows = elements(html, 'g', 'arrow');
    assert.equal(
      arrows.length,
      list.reduce((n, s) => n + s.ladder.arrows.length, 0),
    );
    let k = 0;
    for (const s of list) {
      for (const a of s.ladder.arrows) {
        const el = arrows[k++] ?? {};
        assert.deepEqual([el['data-index'], el['data-from'], el['data-to']], [String(a.index), a.from, a.to]);
        assert.equal(el['data-at'], String(a.atNanos));
      }
    }
    // The lines themselves: from the sender's column to the receiver's, one row further down for each packet.
    const lines = [
      ...html.matchAll(/<g class="arrow[^"]*"[^>]*data-index="(\d+)"[^>]*>.*?<line x1="([\d.]+)" y1="([\d.]+)" x2="([\d.]+)"/g),
    ];
    assert.equal(lines.length, arrows.length);
    const l = ladderOf('dsr');
    const dsrLines = lines.slice(list.slice(0, 2).reduce((n, s) => n + s.ladder.arrows.length, 0)).slice(0, l.arrows.length);
    dsrLines.forEach((m, i) => {
      const a = l.arrows[i];
      assert.equal(Number(m[2]), columnX(l, a.from));
      assert.equal(Number(m[3]), rowY(i));
      assert.ok(Math.abs(Number(m[4]) - columnX(l, a.to)) <= 3);
    });
  });

  it('labels each arrow with what it is, its addresses and ports, and its time', () => {
    const l = ladderOf('fullnat');
    for (const w of ['SYN', 'SYN-ACK', 'GET / HTTP/1.1', 'HTTP/1.1 200 OK', 'FIN-ACK'])
      assert.ok(html.includes(`<text class="what"`) && html.includes(`>${w}</text>`), w);
    const syn = l.arrows[1];
    assert.ok(html.includes(`>${syn.src} &#62; ${syn.dst}</text>`), 'addresses and ports');
    assert.match(html, />#1 \+0\.0 µs</);
    assert.match(
      html,
      /<title>#2 SYN: 172\.16\.75\.83:\d+ &#62; 172\.16\.75\.82:80 \[S\] seq \d+ ack 0 len 0 id \d+; sent \+[\d.]+ µs, arrived \+[\d.]+ µs; lb\.pcap frame 2, rs1\.pcap frame 1<\/title>/,
    );
  });

  it('links each fact to the arrows of the packets that prove it, and back', () => {
    const facts = elements(html, 'li', 'fact');
    assert.equal(
      facts.length,
      list.reduce((n, s) => n + s.verdict.facts.length, 0),
    );
    const linked = facts.filter((f) => (f['data-arrows'] ?? '') !== '');
    assert.ok(linked.length >= facts.length - list.length, 'every fact but "requests answered" points at arrows');
    for (const m of html.matchAll(/<a href="#(m\d+-a\d+)">/g)) assert.ok(html.includes(`id="${m[1] ?? ''}"`), `${m[1] ?? ''} exists`);
    const arrows = elements(html, 'g', 'arrow');
    for (const f of linked) {
      const section = (f.id ?? '').split('-')[0] ?? '';
      for (const i of (f['data-arrows'] ?? '').split(' ')) {
        const a = arrows.find((x) => x.id === `${section}-a${i}`);
        assert.ok(a?.['data-facts']?.split(' ').includes(f.id ?? ''), `${f.id ?? ''} <-> ${section}-a${i}`);
      }
    }
  });

  it('escapes what it prints', () => {
    const s = recordedSection('fullnat');
    const evil = { ...s, verdict: { ...s.verdict, title: '<script>x</script>' } };
    assert.ok(!renderReport([evil]).includes('<script>x'));
  });
});
