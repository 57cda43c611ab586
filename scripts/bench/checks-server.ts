// The real servers of bench:checks: one TCP listener on every address of its
// namespace (the bench routes a whole /16 to it as local), counting accepted
// connections and, per real server address, the gaps between them.
// Commands on stdin, one a line: "reset" starts a window, "report" prints the
// window's figures as one JSON line on stdout.
import * as net from 'node:net';
import { performance } from 'node:perf_hooks';

const port = Number(process.argv[2]);
let accepted = 0;
let last = new Map<string, number>();
let gaps: number[] = [];

const server = net.createServer((socket) => {
  const now = performance.now();
  accepted++;
  const key = socket.localAddress ?? '';
  const before = last.get(key);
  if (before !== undefined) gaps.push(now - before);
  last.set(key, now);
  socket.on('error', () => undefined);
  socket.destroy();
});
server.listen({ port, host: '0.0.0.0', backlog: 4096 }, () => process.stdout.write('{"listening":true}\n'));

function percentile(sorted: number[], p: number): number {
  return sorted.length ? (sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? 0) : 0;
}

let buf = '';
process.stdin.on('data', (d: Buffer) => {
  buf += d.toString();
  let i;
  while ((i = buf.indexOf('\n')) >= 0) {
    const command = buf.slice(0, i).trim();
    buf = buf.slice(i + 1);
    if (command === 'reset') {
      accepted = 0;
      last = new Map();
      gaps = [];
    } else if (command === 'report') {
      const sorted = [...gaps].sort((a, b) => a - b);
      const report = {
        accepted,
        addresses: last.size,
        gapP50: percentile(sorted, 0.5),
        gapP99: percentile(sorted, 0.99),
        gapMax: sorted[sorted.length - 1] ?? 0,
      };
      process.stdout.write(`${JSON.stringify(report)}\n`);
    }
  }
});
process.stdin.on('end', () => process.exit(0));
