// The data-path bench's report from its rounds: a markdown table of medians
// with the ratios to direct and to HAProxy in mode tcp, the issue's goals with
// PASS or MISS, and an SVG chart of the ratios to direct. A ratio is the
// median of the per-round ratios: each round measures every configuration
// once, close together in time, so a round's ratio cancels most of the
// machine's slow drift in load. Pure: numbers in, text out.

import { median } from './stats';

/** What a configuration is, for the goals: the anchors, the L4 modes, the L7 types. */
export type Role = 'direct' | 'l4-nat' | 'l4-dsr' | 'l7' | 'haproxy-tcp';

/** HTTP keep-alive, a new connection per request, one iperf3 stream. */
export const METRICS = ['keep-alive', 'close', 'iperf3'] as const;
export type Metric = (typeof METRICS)[number];

export interface Figure {
  /** requests/s (keep-alive, close) or bits/s (iperf3). */
  value: number;
  /** The whole machine's busy CPU: µs per request, or ms per GB received (iperf3). */
  cpu: number;
}

export interface Row {
  label: string;
  role: Role;
  /** Each metric's figure in round 1, 2, …: the same index is the same round in every row. */
  rounds: Partial<Record<Metric, readonly Figure[]>>;
}

export interface Goal {
  title: string;
  roles: readonly Role[];
  anchor: 'direct' | 'haproxy-tcp';
  min: number;
}

/** Issue 12's goals for the L4 path, on requests/s with either kind of connection. */
export const GOALS: readonly Goal[] = [
  { title: 'L4 NAT >= 0.95 x direct', roles: ['l4-nat'], anchor: 'direct', min: 0.95 },
  { title: 'DSR >= 0.98 x direct', roles: ['l4-dsr'], anchor: 'direct', min: 0.98 },
  { title: 'L4 >= 2 x HAProxy mode tcp', roles: ['l4-nat', 'l4-dsr'], anchor: 'haproxy-tcp', min: 2 },
];
const GOAL_METRICS: readonly Metric[] = ['keep-alive', 'close'];

/** The medians over the rounds of a row's figure (undefined when it was not measured). */
export function medianFigure(row: Row, metric: Metric): Figure | undefined {
  const got = row.rounds[metric] ?? [];
  return got.length === 0 ? undefined : { value: median(got.map((f) => f.value)), cpu: median(got.map((f) => f.cpu)) };
}

/** The median over the rounds of a row's figure over its anchor's in the same round (undefined without both). */
export function ratio(rows: readonly Row[], row: Row, metric: Metric, anchor: Role): number | undefined {
  const mine = row.rounds[metric] ?? [];
  const base = rows.find((r) => r.role === anchor)?.rounds[metric] ?? [];
  const paired: number[] = [];
  for (let i = 0; i < Math.min(mine.length, base.length); i++) {
    const b = base[i]?.value;
    const v = mine[i]?.value;
    if (b && v !== undefined) paired.push(v / b);
  }
  return paired.length === 0 ? undefined : median(paired);
}

const thousands = (n: number) => Math.round(n).toLocaleString('en-US');
const fixed = (n: number | undefined, digits = 2) => (n === undefined ? '-' : n.toFixed(digits));

function markdown(head: string[], rows: string[][], leftColumns: number): string {
  const line = (cells: string[]) => `| ${cells.join(' | ')} |`;
  const rule = head.map((_, i) => (i < leftColumns ? '---' : '---:'));
  return [line(head), line(rule), ...rows.map(line)].join('\n');
}

/** One row per configuration: each metric's figure, its CPU, and its ratios to direct and to HAProxy mode tcp. */
export function figuresTable(rows: readonly Row[]): string {
  const head = ['configuration'];
  for (const m of METRICS) {
    head.push(m === 'iperf3' ? 'iperf3 Gbit/s' : `${m} req/s`, m === 'iperf3' ? 'CPU ms/GB' : 'CPU µs/req', 'x direct', 'x HAProxy tcp');
  }
  const body = rows.map((r) => {
    const cells = [r.label];
    for (const m of METRICS) {
      const f = medianFigure(r, m);
      if (!f) {
        cells.push('-', '-', '-', '-');
        continue;
      }
      cells.push(
        m === 'iperf3' ? (f.value / 1e9).toFixed(2) : thousands(f.value),
        thousands(f.cpu),
        fixed(ratio(rows, r, m, 'direct')),
        fixed(ratio(rows, r, m, 'haproxy-tcp')),
      );
    }
    return cells;
  });
  return markdown(head, body, 1);
}

export interface Verdict {
  goal: Goal;
  row: Row;
  metric: Metric;
  measured: number;
  pass: boolean;
}

export function verdicts(rows: readonly Row[]): Verdict[] {
  const out: Verdict[] = [];
  for (const goal of GOALS)
    for (const row of rows.filter((r) => goal.roles.includes(r.role)))
      for (const metric of GOAL_METRICS) {
        const measured = ratio(rows, row, metric, goal.anchor);
        if (measured !== undefined) out.push({ goal, row, metric, measured, pass: measured >= goal.min });
      }
  return out;
}

/** PASS, or MISS with the shortfall: "MISS by 0.12 (13% short)". */
export function verdictText(v: Verdict): string {
  if (v.pass) return 'PASS';
  const short = v.goal.min - v.measured;
  return `MISS by ${short.toFixed(3)} (${((short / v.goal.min) * 100).toFixed(1)}% short)`;
}

export function goalsTable(rows: readonly Row[]): string {
  const body = verdicts(rows).map((v) => [v.goal.title, v.row.label, v.metric, v.measured.toFixed(3), verdictText(v)]);
  return markdown(['goal', 'configuration', 'connections', 'measured ratio', 'verdict'], body, 3);
}

const escapeXml = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

const BAR_COLOURS: Record<Metric, string> = { 'keep-alive': '#3b6ea8', close: '#d08a2e', iperf3: '#4c9a5b' };
const METRIC_LEGEND: Record<Metric, string> = {
  'keep-alive': 'requests/s, keep-alive',
  close: 'requests/s, a connection per request',
  iperf3: 'iperf3 throughput',
};
/** Where each legend entry starts: after the previous one's text (about 7 px a character at 12 px). */
const LEGEND_X: Record<Metric, number> = { 'keep-alive': 10, close: 190, iperf3: 460 };

/** Horizontal bars: each configuration's figures over direct's, with lines at 1 (direct) and at the goals 0.95 and 0.98. */
export function chartSvg(rows: readonly Row[], subtitle: string): string {
  const labelWidth = 250;
  const plotWidth = 440;
  const bar = 12;
  const groupGap = 14;
  const top = 74;
  const values = rows.flatMap((r) => METRICS.map((m) => ratio(rows, r, m, 'direct') ?? 0));
  const max = Math.max(1.1, Math.ceil(Math.max(...values) * 10) / 10);
  const x = (v: number) => labelWidth + (v / max) * plotWidth;
  const groupHeight = METRICS.length * bar + groupGap;
  const height = top + rows.length * groupHeight + 40;
  const width = labelWidth + plotWidth + 70;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
    `<text x="10" y="20" font-size="15" font-weight="bold">Data path: each configuration over direct client -&gt; RS1 (median)</text>`,
    `<text x="10" y="38" fill="#555555">${escapeXml(subtitle)}</text>`,
  ];
  METRICS.forEach((m) => {
    const lx = LEGEND_X[m];
    out.push(`<rect x="${lx}" y="50" width="12" height="12" fill="${BAR_COLOURS[m]}"/>`);
    out.push(`<text x="${lx + 16}" y="60">${escapeXml(METRIC_LEGEND[m])}</text>`);
  });
  rows.forEach((r, g) => {
    const y0 = top + g * groupHeight;
    out.push(`<text x="${labelWidth - 8}" y="${y0 + (METRICS.length * bar) / 2 + 4}" text-anchor="end">${escapeXml(r.label)}</text>`);
    METRICS.forEach((m, i) => {
      const v = ratio(rows, r, m, 'direct');
      const y = y0 + i * bar;
      if (v === undefined) {
        out.push(`<text x="${labelWidth + 4}" y="${y + bar - 2}" fill="#999999" font-size="10">n/a</text>`);
        return;
      }
      out.push(`<rect x="${labelWidth}" y="${y}" width="${(x(v) - labelWidth).toFixed(1)}" height="${bar - 2}" fill="${BAR_COLOURS[m]}"/>`);
      out.push(`<text x="${(x(v) + 4).toFixed(1)}" y="${y + bar - 2}" font-size="10">${v.toFixed(2)}</text>`);
    });
  });
  const bottom = top + rows.length * groupHeight;
  for (const [v, dash, label] of [
    [1, '', '1 = direct'],
    [0.95, '4 3', '0.95'],
    [0.98, '2 2', '0.98'],
  ] as const) {
    out.push(
      `<line x1="${x(v).toFixed(1)}" y1="${top - 6}" x2="${x(v).toFixed(1)}" y2="${bottom}" stroke="#444444"${dash ? ` stroke-dasharray="${dash}"` : ''}/>`,
    );
    if (v === 1) out.push(`<text x="${x(v).toFixed(1)}" y="${bottom + 14}" text-anchor="middle">${label}</text>`);
  }
  out.push(`<text x="${x(0.95).toFixed(1)}" y="${bottom + 28}" text-anchor="end" font-size="10">goals 0.95 / 0.98</text>`);
  out.push(`<line x1="${labelWidth}" y1="${top - 6}" x2="${labelWidth}" y2="${bottom}" stroke="#000000"/>`);
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}
