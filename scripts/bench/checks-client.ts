// The floor of bench:checks: the least a TCP check can cost, a bare loop that
// connects to every real server once an interval and closes, with nothing of
// slbctl around it. Prints {"cpuSeconds": …} when done.
// Usage: node checks-client.js SERVERS INTERVAL_MS SECONDS PORT
import * as net from 'node:net';
import { rsAddress } from './checks-addresses';

const [servers, intervalMs, seconds, port] = process.argv.slice(2, 6).map(Number);
const cpu0 = process.cpuUsage();
let due = performance.now();

function connectAll(): void {
  for (let k = 0; k < servers; k++) {
    const socket = net.connect({ host: rsAddress(k), port });
    socket.once('connect', () => socket.destroy());
    socket.once('error', () => socket.destroy());
  }
  due += intervalMs;
  if (performance.now() < stopAt) setTimeout(connectAll, Math.max(0, due - performance.now()));
}

const stopAt = performance.now() + seconds * 1000;
connectAll();
setTimeout(
  () => {
    const c = process.cpuUsage(cpu0);
    process.stdout.write(`${JSON.stringify({ cpuSeconds: (c.user + c.system) / 1e6 })}\n`);
    process.exit(0);
  },
  seconds * 1000 + 200,
);
