// The data-path bench's report from fixed numbers: per-round ratios, the
// goals' verdicts, the markdown table and the SVG chart.
import { describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import { Row, chartSvg, figuresTable, goalsTable, ratio, verdicts } from '../../scripts/bench/dataplane-report';

const f = (value: number, cpu = 10) => ({ value, cpu });
const ROWS: Row[] = [
  // Round 2 ran with the machine twice as busy: every figure halves.
  { label: 'direct', role: 'direct', rounds: { 'keep-alive': [f(1000), f(500)], close: [f(100), f(50)], iperf3: [f(2e10), f(1e10)] } },
  { label: 'fullnat', role: 'l4-nat', rounds: { 'keep-alive': [f(960), f(480)], close: [f(90), f(45)], iperf3: [f(1.8e10), f(0.9e10)] } },
  { label: 'dsr', role: 'l4-dsr', rounds: { 'keep-alive': [f(990), f(495)], close: [f(99), f(49.5)] } },
  { label: 'haproxy <tcp>', role: 'haproxy-tcp', rounds: { 'keep-alive': [f(400), f(200)], close: [f(50), f(25)] } },
  { label: 'L7', role: 'l7', rounds: { 'keep-alive': [f(300), f(150)] } },
];
const row = (label: string) => ROWS.find((r) => r.label === label) as Row;

describe('data-path bench report', () => {
  it('pairs each round with the anchor of the same round', () => {
    assert.equal(ratio(ROWS, row('fullnat'), 'keep-alive', 'direct'), 0.96);
    assert.equal(ratio(ROWS, row('fullnat'), 'keep-alive', 'haproxy-tcp'), 2.4);
    assert.equal(ratio(ROWS, row('dsr'), 'iperf3', 'direct'), undefined);
  });

  it('judges every goal on both kinds of connection, with the shortfall', () => {
    const got = verdicts(ROWS).map((v) => `${v.goal.title} ${v.row.label} ${v.metric} ${v.pass ? 'PASS' : 'MISS'}`);
    assert.deepEqual(got, [
      'L4 NAT >= 0.95 x direct fullnat keep-alive PASS',
      'L4 NAT >= 0.95 x direct fullnat close MISS',
      'DSR >= 0.98 x direct dsr keep-alive PASS',
      'DSR >= 0.98 x direct dsr close PASS',
      'L4 >= 2 x HAProxy mode tcp fullnat keep-alive PASS',
      'L4 >= 2 x HAProxy mode tcp fullnat close MISS',
      'L4 >= 2 x HAProxy mode tcp dsr keep-alive PASS',
      'L4 >= 2 x HAProxy mode tcp dsr close MISS',
    ]);
    assert.match(goalsTable(ROWS), /\| L4 NAT >= 0\.95 x direct \| fullnat \| close \| 0\.900 \| MISS by 0\.050 \(5\.3% short\) \|/);
  });

  it('renders medians, CPU and both ratios in one markdown row per configuration', () => {
    const lines = figuresTable(ROWS).split('\n');
    assert.equal(lines.length, 2 + ROWS.length);
    assert.equal(lines[3], '| fullnat | 720 | 10 | 0.96 | 2.40 | 68 | 10 | 0.90 | 1.80 | 13.50 | 10 | 0.90 | - |');
    assert.equal(lines[6], '| L7 | 225 | 10 | 0.30 | 0.75 | - | - | - | - | - | - | - | - |');
  });

  it('draws one bar per measured figure and escapes labels', () => {
    const svg = chartSvg(ROWS, 'load average 1 & 2');
    assert.ok(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"'));
    assert.ok(svg.trimEnd().endsWith('</svg>'));
    assert.ok(svg.includes('haproxy &lt;tcp&gt;') && svg.includes('load average 1 &amp; 2'));
    // 11 figures measured, plus 3 legend squares and the background.
    assert.equal((svg.match(/<rect /g) ?? []).length, 11 + 3 + 1);
    assert.equal((svg.match(/>n\/a</g) ?? []).length, 4);
  });
});
