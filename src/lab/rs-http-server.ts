// The real servers' HTTP server in the lab: a real HTTP/1.1 server whose
// answer names the RS and the client address it saw, so a client (and the
// verifier) can tell which RS answered and what source address reached it.
import * as http from 'node:http';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? (process.argv[i + 1] ?? fallback) : fallback;
}

const name = arg('name', 'rs');
const port = Number(arg('port', '80'));
const address = arg('address', '0.0.0.0');

const server = http.createServer((req, res) => {
  const body = `${name} saw client ${req.socket.remoteAddress}:${req.socket.remotePort} on ${req.socket.localAddress}:${req.socket.localPort}\n`;
  // One request per connection keeps every capture's flows simple to judge.
  res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': Buffer.byteLength(body), 'X-Real-Server': name, Connection: 'close' });
  res.end(body);
});
server.listen(port, address, () => process.stdout.write(`${name}: listening on ${address}:${port}\n`));
const stop = () => server.close(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
