// The verify report: one self-contained HTML page (inline CSS, SVG and one
// small script, nothing fetched), a section per mode with its packet ladder
// and the verdict's facts beside it, each fact linked to the arrows of the
// packets that prove it. Pure but for writeReport: data in, text out.
import * as path from 'node:path';
import { MODE_TITLES } from '../lab/lb-config';
import { writeFileNoFollow } from '../util/safe-write';
import { writingOutput } from '../verify/judge';
import { Fact, PacketRef, Verdict } from '../verify/facts';
import { Ladder, LadderArrow } from './ladder';

export interface ReportSection {
  verdict: Verdict;
  ladder: Ladder;
}

/** The drawing's grid, in SVG user units (the viewBox scales it to the screen). */
export const GEOMETRY = { gutter: 100, firstColumn: 170, columnGap: 170, header: 58, row: 40, right: 96 };

const escape = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const refText = (r: PacketRef) => `${r.host}#${r.frame}`;

/** x of a host's column. */
export function columnX(ladder: Ladder, host: string): number {
  const i = ladder.hosts.findIndex((h) => h.name === host);
  return GEOMETRY.firstColumn + (i < 0 ? ladder.hosts.length : i) * GEOMETRY.columnGap;
}

/** y of the arrow drawn in row `index`. */
export const rowY = (index: number) => GEOMETRY.header + 30 + index * GEOMETRY.row;

function time(ns: number): string {
  return ns < 10_000_000 ? `+${(ns / 1000).toFixed(1)} µs` : `+${(ns / 1_000_000).toFixed(2)} ms`;
}

/** Each fact's id and the arrows drawing one of its frames. */
function factLinks(prefix: string, facts: Fact[], arrows: LadderArrow[]) {
  const arrowOf = new Map<string, LadderArrow>();
  for (const a of arrows) for (const r of a.packets) arrowOf.set(refText(r), a);
  return facts.map((f, i) => {
    const drawn = new Map<number, LadderArrow>();
    const elsewhere: PacketRef[] = [];
    for (const r of f.packets ?? []) {
      const a = arrowOf.get(refText(r));
      if (a) drawn.set(a.index, a);
      else elsewhere.push(r);
    }
    return { id: `${prefix}-f${i}`, fact: f, arrows: [...drawn.values()].sort((x, y) => x.index - y.index), elsewhere };
  });
}

function renderArrow(prefix: string, ladder: Ladder, a: LadderArrow, facts: string[]): string {
  const x1 = columnX(ladder, a.from);
  const x2 = columnX(ladder, a.to);
  const y = rowY(a.index);
  const mid = (x1 + x2) / 2;
  const tip = x2 > x1 ? x2 - 3 : x2 + 3;
  const frames = a.packets.map((r) => `${r.host}.pcap frame ${r.frame}`).join(', ');
  const arrived = a.arrivedNanos !== undefined ? `, arrived ${time(a.arrivedNanos)}` : '';
  const details = `#${a.index + 1} ${a.what}: ${a.src} > ${a.dst} [${a.flags}] seq ${a.seq} ack ${a.ack} len ${a.length}${a.ipId !== undefined ? ` id ${a.ipId}` : ''}${a.tunnel ? ` in IP-in-IP ${a.tunnel}` : ''}; sent ${time(a.atNanos)}${arrived}; ${frames}`;
  return [
    `<g class="arrow leg-${a.leg}" id="${prefix}-a${a.index}" data-index="${a.index}" data-from="${escape(a.from)}" data-to="${escape(a.to)}" data-at="${a.atNanos}" data-packets="${escape(a.packets.map(refText).join(' '))}" data-facts="${facts.join(' ')}">`,
    `<title>${escape(details)}</title>`,
    `<text class="time" x="${GEOMETRY.gutter}" y="${y + 4}">#${a.index + 1} ${escape(time(a.atNanos))}</text>`,
    `<line x1="${x1}" y1="${y}" x2="${tip}" y2="${y}" marker-end="url(#${prefix}-head-${a.leg})"/>`,
    `<text class="what" x="${mid}" y="${y - 6}">${escape(a.what)}</text>`,
    `<text class="addr" x="${mid}" y="${y + 13}">${escape(`${a.src} > ${a.dst}${a.tunnel ? ` (ipip ${a.tunnel})` : ''}`)}</text>`,
    `</g>`,
  ].join('');
}

function renderLadder(prefix: string, ladder: Ladder, factsOf: Map<number, string[]>): string {
  const n = ladder.arrows.length;
  const width = columnX(ladder, ladder.hosts[ladder.hosts.length - 1]?.name ?? '') + GEOMETRY.right;
  const height = rowY(Math.max(n, 1)) - GEOMETRY.row + 24;
  const heads = (['client', 'server'] as const)
    .map(
      (leg) =>
        `<marker id="${prefix}-head-${leg}" class="head leg-${leg}" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z"/></marker>`,
    )
    .join('');
  const hosts = ladder.hosts
    .map((h) => {
      const x = columnX(ladder, h.name);
      return `<g class="host" data-host="${escape(h.name)}"><text class="name" x="${x}" y="20">${escape(h.name)}</text><text class="addr" x="${x}" y="36">${escape(h.address)}</text><line class="lifeline" x1="${x}" y1="${GEOMETRY.header - 12}" x2="${x}" y2="${height - 4}"/></g>`;
    })
    .join('');
  const arrows = ladder.arrows.map((a) => renderArrow(prefix, ladder, a, factsOf.get(a.index) ?? [])).join('');
  const empty = n === 0 ? `<text class="what" x="${width / 2}" y="${rowY(0)}">no packet of a client connection was captured</text>` : '';
  return `<svg class="ladder" viewBox="0 0 ${width} ${height}" role="img" aria-label="packet ladder: ${n} packets"><defs>${heads}</defs>${hosts}${arrows}${empty}</svg>`;
}

function renderFacts(links: ReturnType<typeof factLinks>): string {
  const items = links.map(({ id, fact: f, arrows, elsewhere }) => {
    const proof = arrows.map((a) => `<a href="#${id.replace(/-f\d+$/, '')}-a${a.index}">#${a.index + 1}</a>`);
    // Frames of the other connections, not drawn: named per capture, as Wireshark numbers them.
    const byHost = new Map<string, number[]>();
    for (const r of elsewhere) byHost.set(r.host, [...(byHost.get(r.host) ?? []), r.frame]);
    const other = [...byHost].map(([h, fs]) => `${h}.pcap ${fs.slice(0, 4).join(', ')}${fs.length > 4 ? ` +${fs.length - 4}` : ''}`);
    if (other.length) proof.push(`<span class="ref">(other connections: ${escape(other.join('; '))})</span>`);
    return `<li class="fact ${f.pass ? 'pass' : 'fail'}" id="${id}" data-arrows="${arrows.map((a) => a.index).join(' ')}"><span class="result">${f.pass ? 'pass' : 'FAIL'}</span> <b>${escape(f.fact)}</b><br><span class="exp">expected: ${escape(f.expected)}</span><br><span class="seen">seen: ${escape(f.seen)}</span>${f.why ? `<br><span class="why">${escape(f.why)}</span>` : ''}${proof.length ? `<br><span class="proof">packets: ${proof.join(' ')}</span>` : ''}</li>`;
  });
  return `<ol class="facts">${items.join('')}</ol>`;
}

function renderSection(s: ReportSection, i: number): string {
  const prefix = `m${i}`;
  const links = factLinks(prefix, s.verdict.facts, s.ladder.arrows);
  const factsOf = new Map<number, string[]>();
  for (const l of links) for (const a of l.arrows) factsOf.set(a.index, [...(factsOf.get(a.index) ?? []), l.id]);
  const title = s.verdict.title ?? MODE_TITLES[s.verdict.mode];
  const server = s.ladder.server ? `; real-server side: ${s.ladder.server.tuple} (${s.ladder.server.kind})` : '';
  return [
    `<section class="mode" id="${prefix}" data-mode="${escape(s.verdict.mode)}" data-pass="${s.verdict.pass}">`,
    `<h2>${escape(s.verdict.mode)}: ${escape(title)} <span class="verdict ${s.verdict.pass ? 'pass' : 'fail'}">${s.verdict.pass ? 'PASS' : 'FAIL'}</span></h2>`,
    `<p class="conn">connection ${escape(s.ladder.connection ?? 'none')}${escape(server)}</p>`,
    `<ul class="notes">${s.ladder.notes.map((n) => `<li>${escape(n)}</li>`).join('')}</ul>`,
    `<div class="body"><div class="scroll">${renderLadder(prefix, s.ladder, factsOf)}</div>${renderFacts(links)}</div>`,
    `</section>`,
  ].join('\n');
}

const CSS = `
:root { color-scheme: light dark; --bg: #fff; --fg: #1d1d1f; --muted: #666; --line: #bbb; --client: #1f6fd1; --server: #c0570c; --hl: #d1157a; --pass: #1a7f37; --fail: #cf222e; --card: #f5f5f7; }
@media (prefers-color-scheme: dark) { :root { --bg: #121214; --fg: #e6e6e6; --muted: #9a9a9a; --line: #555; --client: #6cb0ff; --server: #ffa657; --hl: #ff7ac6; --pass: #3fb950; --fail: #ff7b72; --card: #1e1e22; } }
body { margin: 0 auto; max-width: 90rem; padding: 0.75rem; background: var(--bg); color: var(--fg); font: 15px/1.45 system-ui, sans-serif; }
h1 { font-size: 1.3rem; } h2 { font-size: 1.1rem; margin: 1.5rem 0 0.3rem; }
.conn, .legend { color: var(--muted); font-size: 0.85rem; margin: 0.2rem 0; overflow-wrap: anywhere; }
.verdict { font-size: 0.8rem; padding: 0.1rem 0.4rem; border-radius: 0.3rem; color: var(--bg); }
.pass .result, .verdict.pass { background: var(--pass); } .fail .result, .verdict.fail { background: var(--fail); }
.result { color: var(--bg); font-size: 0.75rem; padding: 0 0.3rem; border-radius: 0.25rem; }
.body { display: grid; grid-template-columns: minmax(0, 3fr) minmax(15rem, 2fr); gap: 1rem; align-items: start; }
@media (max-width: 900px) { .body { grid-template-columns: minmax(0, 1fr); } }
.scroll { overflow-x: auto; background: var(--card); border-radius: 0.5rem; }
svg.ladder { display: block; width: 100%; min-width: 36rem; height: auto; font-family: ui-monospace, monospace; }
svg text { fill: var(--fg); paint-order: stroke; stroke: var(--card); stroke-width: 3px; }
svg .host .name { font-weight: bold; font-size: 14px; text-anchor: middle; } svg .host .addr { font-size: 11px; text-anchor: middle; fill: var(--muted); }
svg .lifeline { stroke: var(--line); stroke-dasharray: 4 4; }
svg .time { font-size: 10px; fill: var(--muted); text-anchor: end; }
svg .what { font-size: 12px; text-anchor: middle; } svg .arrow .addr { font-size: 9.5px; text-anchor: middle; fill: var(--muted); }
svg .arrow line { stroke-width: 1.6; } .leg-client line { stroke: var(--client); } .leg-server line { stroke: var(--server); }
.head.leg-client { fill: var(--client); } .head.leg-server { fill: var(--server); }
svg .arrow:target line, svg .arrow.hl line { stroke: var(--hl); stroke-width: 3.5; } svg .arrow:target .what, svg .arrow.hl .what { fill: var(--hl); font-weight: bold; }
.facts { margin: 0; padding-left: 1.4rem; font-size: 0.88rem; } .facts li { margin-bottom: 0.6rem; overflow-wrap: anywhere; }
.facts .exp, .facts .seen, .facts .ref { color: var(--muted); } .facts .why { color: var(--fail); }
.facts li.hl { outline: 2px solid var(--hl); outline-offset: 2px; }
a { color: var(--hl); } .notes { margin: 0.3rem 0 0.6rem; padding-left: 1.2rem; }
.swatch-client { color: var(--client); } .swatch-server { color: var(--server); }
`;

// Count errors (data-errors on <html>, from the first line of the page on) and
// mark the page as loaded (data-ready on <body>), so a
// headless browser's dumped DOM tells whether the page worked; records where
// each arrow landed on screen (data-screen: x1 y1 x2 y2 in CSS pixels) for
// the same check; highlights a fact's arrows while it is pointed at.
const ERRORS_SCRIPT = `
(function () {
  var errors = 0;
  var mark = function () { document.documentElement.setAttribute('data-errors', String(errors)); };
  window.addEventListener('error', function () { errors++; mark(); });
  var consoleError = console.error;
  console.error = function () { errors++; mark(); return consoleError.apply(console, arguments); };
  mark();
})();
`;

const SCRIPT = `
(function () {
  var screen = function (el, x1, y1, x2, y2) {
    var m = el.getScreenCTM(), svg = el.ownerSVGElement, a = svg.createSVGPoint(), b = svg.createSVGPoint();
    a.x = x1; a.y = y1; b.x = x2; b.y = y2; a = a.matrixTransform(m); b = b.matrixTransform(m);
    return [a.x, a.y, b.x, b.y].map(function (v) { return v.toFixed(1); }).join(' ');
  };
  document.querySelectorAll('svg line').forEach(function (l) {
    l.parentNode.setAttribute('data-screen', screen(l, l.x1.baseVal.value, l.y1.baseVal.value, l.x2.baseVal.value, l.y2.baseVal.value));
  });
  document.querySelectorAll('li.fact').forEach(function (li) {
    var section = li.closest('section');
    var arrows = (li.getAttribute('data-arrows') || '').split(' ').filter(Boolean).map(function (i) { return section.querySelector('#' + section.id + '-a' + i); });
    var set = function (on) { li.classList.toggle('hl', on); arrows.forEach(function (a) { if (a) a.classList.toggle('hl', on); }); };
    li.addEventListener('mouseenter', function () { set(true); });
    li.addEventListener('mouseleave', function () { set(false); });
  });
  // The theme the page is shown in, and the background it computed to (read by the browser test).
  document.body.setAttribute('data-scheme', matchMedia('(prefers-color-scheme: dark)').matches ? 'dark' : 'light');
  document.body.setAttribute('data-background', getComputedStyle(document.body).backgroundColor);
  document.body.setAttribute('data-ready', 'yes');
})();
`;

/** The whole page: a section per mode, in the order given. */
export function renderReport(sections: ReportSection[], title = 'slbctl verify report'): string {
  const legend = `<p class="legend">One column per host, one arrow per packet of the client's first connection, in the order the kernel timestamped them (one clock for every lab host; time after the first packet on the left). A packet seen by its sender and its receiver is drawn once. <b class="swatch-client">Blue</b>: the connection as the client made it; <b class="swatch-server">orange</b>: the real-server side, rewritten by the balancer or opened by it. Hover an arrow for its frames; a fact's packet links point at the arrows that prove it.</p>`;
  return [
    '<!doctype html>',
    '<html lang="en"><head><meta charset="utf-8">',
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    '<meta name="color-scheme" content="light dark">',
    `<title>${escape(title)}</title><script>${ERRORS_SCRIPT}</script><style>${CSS}</style></head>`,
    `<body class="report"><h1>${escape(title)}</h1>${legend}`,
    ...sections.map(renderSection),
    `<script>${SCRIPT}</script></body></html>`,
    '',
  ].join('\n');
}

/** Write the report (as root: never through a link, src/util/safe-write.ts); its absolute path. */
export function writeReport(file: string, sections: ReportSection[]): string {
  return writingOutput(() => writeFileNoFollow(path.resolve(file), renderReport(sections)));
}
