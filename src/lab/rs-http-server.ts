// The real servers' HTTP server in the lab: a real HTTP/1.1 server whose
// answer names the RS and the client address it saw, so a client (and the
// verifier) can tell which RS answered and what source address reached it.
// Run as: node rs-http-server.js --name rs1 --port 80 [--address 0.0.0.0]
import * as http from 'node:http';
import { isIP } from 'node:net';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? (process.argv[i + 1] ?? fallback) : fallback;
}

function fail(message: string): never {
  process.stderr.write(`rs-http-server: ${message}\n`);
  process.exit(2);
}

const name = arg('name', 'rs');
const port = Number(arg('port', '80'));
const address = arg('address', '0.0.0.0');
if (!/^[A-Za-z0-9_.-]{1,32}$/.test(name)) fail(`bad --name ${JSON.stringify(name)}`);
if (!Number.isInteger(port) || port < 1 || port > 65535) fail(`bad --port ${JSON.stringify(arg('port', ''))}`);
if (isIP(address) === 0) fail(`bad --address ${JSON.stringify(address)}`);

/** GET /static/<name>: a fixed body a cache may keep (the L7 reverse proxy's cache is verified with it). */
const STATIC = /^\/static\/([A-Za-z0-9_.-]{1,64})$/;

const server = http.createServer((req, res) => {
  const s = req.socket;
  const staticName = STATIC.exec(req.url ?? '')?.[1];
  // The static body does not name the client: a cached copy is the same for everyone.
  const body = staticName
    ? `static ${staticName} from ${name}\n`
    : `${name} saw client ${s.remoteAddress}:${s.remotePort} on ${s.localAddress}:${s.localPort}\n`;
  // One request per connection keeps every capture's flows simple to judge.
  res.writeHead(200, {
    'Content-Type': 'text/plain',
    'Content-Length': Buffer.byteLength(body),
    'X-Real-Server': name,
    // Only /static/ may be cached; every other answer names its client and must reach the RS each time.
    'Cache-Control': staticName ? 'public, max-age=60' : 'no-store',
    Connection: 'close',
  });
  res.end(req.method === 'HEAD' ? undefined : body);
});
server.on('error', (e) => fail(`${address}:${port}: ${e.message}`));
server.listen(port, address, () =>
  process.stdout.write(`${name}: listening on ${address}:${port} (pid ${process.pid}) since ${new Date().toISOString()}\n`),
);

function stop(signal: NodeJS.Signals): void {
  process.stdout.write(`${name}: ${signal}, stopping\n`);
  server.close(() => process.exit(0));
  // A client that never finishes its request must not keep the lab from going down.
  server.closeAllConnections();
  setTimeout(() => process.exit(0), 500).unref();
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
