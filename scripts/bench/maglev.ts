// npm run bench:maglev: the fraction of flows that change real server when
// one of N is added or removed, Maglev (the nftables `mh` table, 1021
// entries) beside `hash mod N`, each as a ratio to the ideal (only the
// changed server's share moves: 1/(N+1) when adding, 1/N when removing).
// Pure computation over 200,000 flow hashes; no kernel, nothing timed.
import { createHash } from 'node:crypto';
import { MAGLEV_SIZE, maglevTable } from '../../src/kernel/nft/maglev';

const FLOWS = 200_000;
const flows = Array.from({ length: FLOWS }, (_, i) => createHash('sha256').update(`flow ${i}`).digest().readUInt32BE(0));
const servers = (n: number) => Array.from({ length: n }, (_, i) => ({ id: `10.1.0.${i + 1}:80`, weight: 1 }));

function moved(pick: (h: number) => string, pickAfter: (h: number) => string): number {
  let n = 0;
  for (const h of flows) if (pick(h) !== pickAfter(h)) n++;
  return n / FLOWS;
}

function maglevPick(n: number): (h: number) => string {
  const members = servers(n);
  const table = maglevTable(members);
  return (h) => members[table[h % MAGLEV_SIZE] ?? -1]?.id ?? '-';
}

const modPick = (n: number) => (h: number) => String(h % n);

const rows = [['change', 'ideal', `maglev (${MAGLEV_SIZE})`, 'x ideal', 'mod N', 'x ideal']];
for (const n of [4, 8, 16]) {
  for (const [what, from, to, ideal] of [
    [`add 1 to ${n}`, n, n + 1, 1 / (n + 1)],
    [`remove 1 of ${n}`, n, n - 1, 1 / n],
  ] as const) {
    const m = moved(maglevPick(from), maglevPick(to));
    const d = moved(modPick(from), modPick(to));
    rows.push([what, ideal.toFixed(3), m.toFixed(3), (m / ideal).toFixed(2), d.toFixed(3), (d / ideal).toFixed(2)]);
  }
}
const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length))) ?? [];
for (const r of rows) process.stdout.write(`${r.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ')}\n`);
